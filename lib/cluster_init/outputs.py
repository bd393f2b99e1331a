"""What an entry printed last: the last line of its output file, fit to be shown.

``clinit -l`` (and a ``-w`` that reports a failure) shows each entry's
last output line.  ``last_line`` reads only the end of the file (at most
TAIL_BYTES), opened so that it never blocks (safepath.py: a FIFO planted
at the path is refused, a root daemon follows no untrusted symlink), and
``clean`` makes the line safe to put on one line of an operator's
terminal or of a tab-separated listing: terminal escape sequences and
every control or invisible character go (a tab becomes a space), what a
carriage return overwrote goes (a progress bar shows its last state),
and the line is cut at MAX_CHARS.
"""

import os
import re

from . import safepath

TAIL_BYTES = 4096
MAX_CHARS = 160
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")


def clean(text):
    """``text`` (one line) without escape sequences, control or invisible characters,
    what a carriage return overwrote, and cut at MAX_CHARS ("..." marks a cut)."""
    text = _ESCAPES.sub("", text).rstrip("\r")
    text = text.rsplit("\r", 1)[-1]
    text = "".join(" " if char == "\t" else char for char in text if char == "\t" or char.isprintable())
    text = text.strip()
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 3].rstrip() + "..."
    return text


def last_lines(paths):
    """``{path: its last_line}`` for each of ``paths`` that has one; each directory is
    walked once (safepath.open_directory), however many of its files are read."""
    found = {}
    by_directory = {}
    for path in dict.fromkeys(paths):
        directory, name = safepath.split(path)
        by_directory.setdefault(directory, []).append((path, name))
    for directory, files in by_directory.items():
        try:
            dir_fd = safepath.open_directory(directory)
        except OSError:
            continue
        try:
            for path, name in files:
                try:
                    fd = safepath.open_beneath(dir_fd, name, os.O_RDONLY, shown=path)
                except OSError:
                    continue
                line = _last_line_of(fd)
                if line is not None:
                    found[path] = line
        finally:
            os.close(dir_fd)
    return found


def last_line(path):
    """The last non-blank line of the file ``path``, cleaned (the end of it, if it is
    longer than TAIL_BYTES); None when there is none, or the file cannot be read
    (missing, not a regular file, not ours to read)."""
    try:
        fd = safepath.open_read(path)
    except OSError:
        return None
    return _last_line_of(fd)


def _last_line_of(fd):
    """``last_line`` of the open file ``fd``, which is closed."""
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - TAIL_BYTES)
        data = os.pread(fd, size - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    for raw in reversed(data.split(b"\n")):  # the first may be the end of a longer line
        line = clean(raw.decode("utf-8", "replace"))
        if line:
            return line
    return None
