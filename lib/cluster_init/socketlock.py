"""One daemon per socket: an exclusive lock on a file beside the socket.

The daemon takes ``flock(LOCK_EX)`` on ``SOCKET.lock`` in its final
process and holds it until it exits: a second daemon on the same socket
is refused even when the socket file was deleted, and ``clinit -k -w``
knows the daemon has exited when the lock is free.  flock, not a
classic fcntl record lock: a record lock is dropped when any descriptor
of the file is closed and is not kept across a fork.  The descriptor is
close-on-exec, so no child holds the lock after the daemon is gone.
The daemon opens it through safepath.py: a regular file of its own,
never a FIFO (refused without blocking), and, as root, reached only
through trusted directories and symlinks.
"""

import errno
import fcntl
import os
import stat
import time

from .errors import DaemonStartError

RETRY = 0.5  # seconds to retry, so that a client probing the lock never refuses a daemon


def path_for(socket_path):
    return socket_path + ".lock"


def acquire(socket_path):
    """Take the lock of ``socket_path`` for this process; its descriptor.

    DaemonStartError if another daemon holds it.
    """
    from . import safepath

    path = path_for(socket_path)
    try:
        fd = safepath.open_file(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise DaemonStartError(f"cannot open lock file {path}: {safepath.reason(error, path)}") from None
    deadline = time.monotonic() + RETRY
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() > deadline:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise DaemonStartError(
                    f"another clinit daemon{who} is already running on {socket_path} (it holds {path})"
                ) from None
            time.sleep(0.02)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def still_ours(fd, socket_path):
    """True while the lock file at its path is the one ``fd`` holds (not deleted or replaced)."""
    from . import safepath

    try:
        here, held = safepath.lstat(path_for(socket_path)), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _read_pid(fd):
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def held(socket_path):
    """True while a daemon holds the lock of ``socket_path``; None if it cannot be told
    (not a regular file: never waited on)."""
    try:
        fd = os.open(path_for(socket_path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # a FIFO planted there: opened without blocking, and not ours
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        return True if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    finally:
        os.close(fd)
    return False
