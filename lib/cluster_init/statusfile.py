"""The daemon's clstat: the last known level and state of each group, and when it is written.

StatusFile is the file: ``write`` replaces it atomically (a temporary
file in the same directory, renamed over the old one), so a reader never
sees half a file.  A failure (a full disk, a read-only directory) is
logged once and reported to the caller; nothing here raises.

StatusWriter decides when: a group's change marks clstat, and ``flush``
(once per wake-up of the loop, and before any answer is sent) writes it
if marked.  A write that failed is tried again at every flush, and the
loop wakes for it at least every RETRY seconds.  The heartbeat rewrites
clstat every HEARTBEAT seconds (a random time in that range) even when
nothing changed, and calls ``on_heartbeat`` (the daemon looks at its
socket and lock file then).  ``next_deadline`` and ``fire_due`` are the
loop's, as for every timed part.
"""

import logging
import os
import random
import tempfile

from .status import format_line
from .status import read_with_mtime as read_clstat_with_mtime

log = logging.getLogger("cluster_init")

HEARTBEAT = (30.0, 45.0)  # clstat is rewritten this often even when idle
RETRY = 1.0  # seconds between attempts to write clstat after a failure


class StatusFile:
    """The daemon's clstat: an ordered map group -> (level, state), and its file."""

    def __init__(self, path):
        self.path = path
        self.groups = {}  # name -> (level, state), in order of first tell
        self.failing = False  # the last write failed (logged once)
        self.written = None  # the text last written

    def update(self, name, level, state):
        self.groups[name] = (level, state)

    def remove(self, name):
        self.groups.pop(name, None)

    def text(self):
        return "".join(format_line(name, level, state) for name, (level, state) in self.groups.items())

    def write(self, force=False):
        """Replace clstat by the current text (unless it is already that, or ``force``);
        True if it worked."""
        text = self.text()
        if text == self.written and not force:
            return True
        directory = os.path.dirname(self.path) or "."
        temporary = None
        try:
            fd, temporary = tempfile.mkstemp(prefix=".clstat.", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fchmod(stream.fileno(), 0o644)
            os.replace(temporary, self.path)
        except OSError as error:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
            if not self.failing:
                log.error("cannot write %s: %s (will retry)", self.path, error.strerror or error)
            self.failing = True
            return False
        if self.failing:
            log.info("%s written again", self.path)
        self.failing = False
        self.written = text
        return True

    def unlink(self):
        """Remove clstat (at shutdown); a failure is logged, not raised."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.error("cannot remove %s: %s", self.path, error.strerror or error)


class StatusWriter:
    """When clstat is written: on change, after a failure, and at every heartbeat.

    ``clock`` is the System's; ``on_heartbeat()`` is called at each
    heartbeat, after clstat is marked for its rewrite.
    """

    def __init__(self, path, clock, on_heartbeat=None):
        self.file = StatusFile(path)
        self.clock = clock
        self.on_heartbeat = on_heartbeat
        self.dirty = False
        self.forced = False  # the heartbeat: rewrite even an unchanged clstat
        self.retry_at = None
        self.heartbeat_at = None

    @property
    def path(self):
        return self.file.path

    def previous(self, booted_at):
        """The ``(group, level, state)`` rows a dead predecessor left in clstat; [] when
        there are none, it cannot be read, or it was written before the machine booted
        (``booted_at``, seconds since the epoch)."""
        try:
            rows, written = read_clstat_with_mtime(self.path)
        except (OSError, UnicodeDecodeError) as error:
            log.warning("cannot read the old %s: %s", self.path, getattr(error, "strerror", None) or error)
            return []
        if written is not None and written < booted_at:
            log.info("%s was written before the machine booted: not restoring from it", self.path)
            return []
        return rows

    def start(self):
        """The first write, whole, and the first heartbeat's time."""
        self.mark(force=True)
        self.flush()
        self._schedule_heartbeat()

    def group_changed(self, group, gone=False):
        """A group changed state (Node's listener); ``gone``: it left the cltab, halted."""
        if gone:
            self.file.remove(group.name)
        else:
            self.file.update(group.name, group.level, group.state.value)
        self.mark()

    def rows(self):
        """``(name, level, state)`` of every group, as clstat has them."""
        return [(name, level, state) for name, (level, state) in self.file.groups.items()]

    def mark(self, force=False):
        """clstat is to be written at the next flush (``force``: even if unchanged)."""
        self.dirty = True
        self.forced = self.forced or force
        self.retry_at = None

    def flush(self):
        """Write clstat if it was marked since it was last written."""
        if not self.dirty:
            return
        if self.file.write(force=self.forced):
            self.dirty = self.forced = False
            self.retry_at = None
        else:
            self.retry_at = self.clock() + RETRY

    def next_deadline(self):
        """The next heartbeat, or the next retry of a failed write if sooner."""
        deadlines = [d for d in (self.heartbeat_at, self.retry_at) if d is not None]
        return min(deadlines) if deadlines else None

    def fire_due(self, now):
        """The heartbeat, if it is due (a due retry is the next flush's)."""
        if self.heartbeat_at is not None and now >= self.heartbeat_at:
            self.mark(force=True)
            if self.on_heartbeat is not None:
                self.on_heartbeat()
            self._schedule_heartbeat()

    def _schedule_heartbeat(self):
        self.heartbeat_at = self.clock() + random.uniform(*HEARTBEAT)

    def close(self, finished):
        """At exit: clstat is removed when every group was halted (``finished``)."""
        if finished:
            self.file.unlink()
