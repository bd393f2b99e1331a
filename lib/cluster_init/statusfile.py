"""The daemon's clstat: the last known level and state of each group, and when it is written.

StatusFile is the file: ``write`` replaces it atomically (a temporary
file in the same directory, renamed over the old one), so a reader never
sees half a file.  A failure (a full disk, a read-only directory) is
logged once and reported to the caller; nothing here raises.  Its
directory is reached component by component from / (safepath.py), so a
root daemon writes it, and removes it, only where it checked.

``previous`` reads a dead predecessor's clstat, which decides what a new
daemon restores: only one it trusts (``trusted_problems``): a regular
file owned by root or by the daemon's own uid and writable by nobody
else, reached (as root) through trusted directories.  Another one is
ignored, with a log line, as if there were none.

StatusWriter decides when: a group's change marks clstat, and ``flush``
(once per wake-up of the loop, and before any answer is sent) writes it
if marked.  A write that failed is tried again at every flush, and the
loop wakes for it at least every RETRY seconds.  The heartbeat rewrites
clstat every HEARTBEAT seconds (a random time in that range) even when
nothing changed, and calls ``on_heartbeat`` (the daemon looks at its
socket and lock file then).  ``next_deadline`` and ``fire_due`` are the
loop's, as for every timed part.
"""

import errno
import logging
import os
import random
import stat

from . import safepath
from .status import MAX_CLSTAT_BYTES, format_line, read_bounded, rows_of

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
        try:
            safepath.replace_file(self.path, text.encode("utf-8"), 0o644)
        except OSError as error:
            if not self.failing:
                log.error("cannot write clstat: %s (will retry)", error.strerror or error)
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
            safepath.remove(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.error("cannot remove clstat: %s", error.strerror or error)


class Untrusted(Exception):
    """The old clstat is not one the daemon may restore from; the message says why."""


def trusted_problems(info):
    """Why the old clstat whose fstat is ``info`` must not be restored from ([] if it may):
    not a regular file, not root's or ours, writable by group or others."""
    problems = []
    if not stat.S_ISREG(info.st_mode):
        problems.append(f"{safepath.kind(info.st_mode)}, not a regular file")
    if info.st_uid not in (0, os.geteuid()):
        problems.append(f"owned by uid {info.st_uid}, not root" + (f" or uid {os.geteuid()}" if os.geteuid() else ""))
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append("writable by group or others")
    return problems


def read_trusted(path):
    """``(rows, mtime)`` of the clstat at ``path`` if it is trusted (see the module).

    FileNotFoundError when there is none; Untrusted naming why it is not
    (as root: a directory or symlink on the way that is not trusted, a
    symlink at the path); another OSError when it cannot be read.
    """
    try:
        fd = safepath.open_read(path)
    except PermissionError as error:  # a refusal of safepath's: on the way, or what is there
        raise Untrusted(error.strerror or str(error)) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Untrusted(error.strerror) from None
        raise
    try:
        info = os.fstat(fd)
        problems = trusted_problems(info)
        if problems:
            raise Untrusted("; ".join(problems))
        return rows_of(read_bounded(fd, MAX_CLSTAT_BYTES, path)), info.st_mtime
    finally:
        os.close(fd)


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
            rows, written = read_trusted(self.path)
        except FileNotFoundError:
            return []
        except Untrusted as error:
            log.warning("not restoring from %s: %s", self.path, error)
            return []
        except OSError as error:
            log.warning("cannot read the old %s: %s", self.path, error.strerror or error)
            return []
        if written < booted_at:
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
