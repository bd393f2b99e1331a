"""Standard descriptors 0, 1 and 2, open whatever the command was started with.

``clinit -d <&- >&- 2>&-`` (as some init systems and careless scripts
start daemons) leaves 0, 1 and 2 free, and the next files opened take
them: the daemon's lock file and epoll descriptor would become a
child's standard output.  ``ensure()`` is the first thing the command
does, before the cltab, the log or anything else is opened: each of
0, 1 and 2 that is closed is opened on /dev/null, and Python's
sys.stdin, sys.stdout and sys.stderr (None when their descriptor was
closed at start-up) are made to write there, so that nothing prints a
traceback for want of a stream.

Imports nothing heavy: the clinit command's client path uses it.
"""

import os
import sys

DEVNULL = "/dev/null"
_STREAMS = (("stdin", "r"), ("stdout", "w"), ("stderr", "w"))


def ensure():
    """Open /dev/null on each of 0, 1 and 2 that is closed; the descriptors opened."""
    opened = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            new = os.open(DEVNULL, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            continue  # no /dev/null (a broken chroot): nothing better to do
        if new != fd:  # a lower descriptor was free after all: put it where it belongs
            os.dup2(new, fd, inheritable=True)
            os.close(new)
        else:
            os.set_inheritable(fd, True)  # a standard descriptor, as a child expects it
        opened.append(fd)
    for fd, (name, mode) in enumerate(_STREAMS):
        if getattr(sys, name) is None or fd in opened:
            stream = open(fd, mode, closefd=False, encoding="utf-8", errors="replace")
            if mode == "w":
                stream.reconfigure(line_buffering=True)
            setattr(sys, name, stream)
    return opened
