"""clstat, as clients read it: parse the status file and filter it.

One line per group, exactly as the Perl clinit wrote it::

    Cluster::Init::Group NAME LEVEL STATE

``read`` and ``render`` are what clients use (``render`` gives the Perl
``status()`` method's text); the daemon's writer is statusfile.py.
Imports nothing heavy: the clinit command's client path uses it.
"""

import os

GROUP_CLASS = "Cluster::Init::Group"


def format_line(name, level, state):
    return f"{GROUP_CLASS} {name} {level} {state}\n"


def read(path):
    """The ``(group, level, state)`` rows of a clstat; [] if it does not exist."""
    return read_with_mtime(path)[0]


def read_with_mtime(path):
    """``(rows, mtime)`` of a clstat; ``([], None)`` if it does not exist."""
    try:
        with open(path, "rb") as stream:
            mtime = os.fstat(stream.fileno()).st_mtime
            text = stream.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return [], None
    rows = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == GROUP_CLASS:
            rows.append(tuple(words[1:]))
    return rows, mtime


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
