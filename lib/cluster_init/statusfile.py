"""The daemon's clstat writer: the last known level and state of each group.

``write`` replaces the file atomically (a temporary file in the same
directory, renamed over the old one), so a reader never sees half a
file.  A failure (a full disk, a read-only directory) is logged once
and reported to the caller, who tries again later; nothing here raises.
"""

import logging
import os
import tempfile

from .status import format_line

log = logging.getLogger("cluster_init")


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
