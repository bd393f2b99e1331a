"""``clinit --output GROUP TAG [-n LINES] [-f]``: what one entry printed, as tail does.

The daemon says which file the entry's standard output and error go to
(the ``output`` request: the file of its last start, else the one it
would get now); the command reads that file itself, with the rights of
whoever runs it: root, the daemon's user, or, with ``:::socket_group:``,
a member of that group (the daemon gives the files that group, mode
0640).  It prints the last LINES lines (default 10) as they are, bytes
and all.  With ``-f`` it goes on, as ``tail -F`` does: every chunk is
written and flushed at once, also into a pipe; a file emptied in place
(logrotate's copytruncate) is followed from its start again, with a
line on standard error; a file replaced (renamed away, a new one made)
is finished, then the new one followed from its start; a file that does
not exist yet is waited for.  It ends at Ctrl-C (one line, exit 130:
the daemon goes on) or when its reader goes away (a closed pipe: exit 0).

Client path: imports no ``signal``, nothing heavy (t/test_client_path.py).
"""

import os
import stat
import sys
import time

from .cli_args import DEFAULT_LINES, EXIT_OK, say
from .errors import Error, Interrupted, PermissionDenied

POLL = 0.1  # seconds between two looks at a followed file
BLOCK = 65536


class ReaderGone(Exception):
    """Our standard output was closed (``clinit --output -f ... | head``)."""


def _open(path):
    """The file at ``path`` opened for reading (never blocking); None if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except PermissionError as error:
        raise PermissionDenied(
            f"cannot read {path}: {error.strerror} (the entries' output is readable by root,"
            " the daemon's user and the :::socket_group: group)"
        ) from None
    except OSError as error:
        raise Error(f"cannot read {path}: {error.strerror or error}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Error(f"{path} is not a regular file; not reading it")
    return fd


def tail_start(fd, size, count):
    """Where the last ``count`` lines of the file ``fd`` (``size`` bytes) begin."""
    if count <= 0 or size == 0:
        return size
    end = size - 1  # the last line's own newline does not count
    position = end
    found = 0
    while position > 0:
        start = max(0, position - BLOCK)
        data = os.pread(fd, position - start, start)
        cut = len(data)
        while True:
            newline = data.rfind(b"\n", 0, cut)
            if newline < 0:
                break
            found += 1
            if found == count:
                return start + newline + 1
            cut = newline
        position = start
    return 0


class Writer:
    """Writes to standard output, flushed at once; ReaderGone when nobody reads any more."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout.buffer

    def __call__(self, data):
        try:
            self.stream.write(data)
            self.stream.flush()
        except BrokenPipeError:
            null = os.open(os.devnull, os.O_WRONLY)  # no complaint when Python flushes at exit
            os.dup2(null, self.stream.fileno())
            os.close(null)
            raise ReaderGone() from None


def _copy(fd, offset, write):
    """Write what the file ``fd`` holds from ``offset`` on; the offset after it."""
    while True:
        data = os.pread(fd, BLOCK, offset)
        if not data:
            return offset
        write(data)
        offset += len(data)


def follow(path, fd, offset, write, poll=POLL, sleep=time.sleep):
    """Print what is written to ``path`` from ``offset`` on, forever (see the module);
    ``fd`` is the file open (None: not there yet), and closed here."""
    if fd is None:
        say(f"{path} does not exist yet; waiting for it")
    try:
        while True:
            if fd is None:
                fd, offset = _open(path), 0
                if fd is None:
                    sleep(poll)
                    continue
            offset = _copy(fd, offset, write)
            info = os.fstat(fd)
            if info.st_size < offset:
                say(f"{path} was truncated; following it from its start")
                offset = 0
                continue
            try:
                now = os.stat(path)
            except OSError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                _copy(fd, offset, write)  # what was written before the switch
                os.close(fd)
                fd = None
                say(f"{path} was replaced; following the new file")
                continue
            sleep(poll)
    finally:
        if fd is not None:
            os.close(fd)


def show(client, args):
    """clinit --output: the exit status (errors are raised as cluster_init.Error)."""
    group, tag = args.words
    path = client.output_file(group, tag)
    count = DEFAULT_LINES if args.lines is None else args.lines
    write = Writer()
    fd = _open(path)
    try:
        offset = 0
        if fd is not None:
            size = os.fstat(fd).st_size
            offset = _copy(fd, tail_start(fd, size, count), write) if count else size
        elif not args.follow:
            say(f"{group}:{tag} has printed nothing yet ({path} does not exist)")
            return EXIT_OK
        if args.follow:
            fd, handed = None, fd
            follow(path, handed, offset, write)
    except ReaderGone:
        return EXIT_OK
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while following the output of {group}:{tag}; the daemon goes on") from None
    finally:
        if fd is not None:
            os.close(fd)
    return EXIT_OK
