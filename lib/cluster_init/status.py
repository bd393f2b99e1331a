"""clstat: the plain-text status file, written atomically, read and filtered.

One line per group, exactly as the Perl clinit wrote it::

    Cluster::Init::Group NAME LEVEL STATE

``StatusFile`` is the daemon's writer; ``read`` and ``render`` are what
clients use (``render`` gives the Perl ``status()`` method's text).
"""

import logging
import os
import tempfile

log = logging.getLogger("cluster_init")

GROUP_CLASS = "Cluster::Init::Group"


class StatusFile:
    """The daemon's clstat: the last known level and state of each group."""

    def __init__(self, path):
        self.path = path
        self.groups = {}  # name -> (level, state), in order of first tell

    def update(self, name, level, state):
        self.groups[name] = (level, state)

    def remove(self, name):
        self.groups.pop(name, None)

    def text(self):
        return "".join(
            f"{GROUP_CLASS} {name} {level} {state}\n"
            for name, (level, state) in self.groups.items()
        )

    def write(self):
        """Replace clstat by the current text, atomically (write, then rename).

        A failure is logged, never raised: the daemon keeps serving.
        """
        directory = os.path.dirname(self.path) or "."
        try:
            fd, temporary = tempfile.mkstemp(prefix=".clstat.", dir=directory)
        except OSError as error:
            log.error("cannot write %s: %s", self.path, error)
            return False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(self.text())
                os.fchmod(stream.fileno(), 0o644)
            os.replace(temporary, self.path)
        except OSError as error:
            log.error("cannot write %s: %s", self.path, error)
            try:
                os.unlink(temporary)
            except OSError:
                pass
            return False
        return True

    def unlink(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def read(path):
    """The ``(group, level, state)`` rows of a clstat; [] if it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read()
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == GROUP_CLASS:
            rows.append(tuple(words[1:]))
    return rows


def render(rows, group=None, level=None):
    """The Perl ``status()`` text for ``rows``, filtered by group and level.

    Each matching group gives ``GROUP LEVEL STATE``; a column that was
    filtered on is left out, and with both filters the answer is the
    bare state word with no newline.
    """
    out = []
    for name, row_level, state in rows:
        if group is not None and name != group:
            continue
        if level is not None and row_level != level:
            continue
        words = ([] if group is not None else [name]) + ([] if level is not None else [row_level])
        words.append(state)
        end = "" if group is not None and level is not None else "\n"
        out.append(" ".join(words) + end)
    return "".join(out)
