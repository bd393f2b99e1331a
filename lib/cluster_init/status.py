"""clstat, as clients read it: parse the status file and filter it.

One line per group, exactly as the Perl clinit wrote it::

    Cluster::Init::Group NAME LEVEL STATE

``read`` and ``render`` are what clients use (``render`` gives the Perl
``status()`` method's text); the daemon's writer is statusfile.py, and
the daemon reads its predecessor's clstat here too.  Reading never
blocks and never reads without bound: the file is opened O_NONBLOCK,
and anything but a regular file (a FIFO planted at the path, a device)
or a file over MAX_CLSTAT_BYTES is refused with an OSError.
Imports nothing heavy: the clinit command's client path uses it.
"""

import errno
import os
import stat

GROUP_CLASS = "Cluster::Init::Group"
MAX_CLSTAT_BYTES = 16 * 1024 * 1024  # a line per group: far more than any node has


def format_line(name, level, state):
    return f"{GROUP_CLASS} {name} {level} {state}\n"


def read(path):
    """The ``(group, level, state)`` rows of a clstat; [] if it does not exist."""
    return read_with_mtime(path)[0]


def read_with_mtime(path):
    """``(rows, mtime)`` of a clstat; ``([], None)`` if it does not exist.

    OSError if it cannot be read, is not a regular file (strerror "not a
    regular file") or is too large.
    """
    try:
        data, mtime = read_regular(path, MAX_CLSTAT_BYTES)
    except FileNotFoundError:
        return [], None
    return rows_of(data), mtime


def rows_of(data):
    """The ``(group, level, state)`` rows of clstat's bytes ``data``."""
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == GROUP_CLASS:
            rows.append(tuple(words[1:]))
    return rows


def read_regular(path, limit):
    """``(bytes, mtime)`` of the regular file at ``path``, read without blocking.

    OSError (ENOENT when it does not exist) if it cannot be opened, is
    not a regular file, or holds more than ``limit`` bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return read_bounded(fd, limit, path), info.st_mtime
    finally:
        os.close(fd)


def read_bounded(fd, limit, path):
    """The bytes of the open regular file ``fd``; OSError (EFBIG) past ``limit`` bytes."""
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
    return b"".join(chunks)


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
