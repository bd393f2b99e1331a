"""Who is on the daemon's socket before it listens: a live daemon refuses the start,
a stale socket is removed.

The socket's directory is reached through safepath (component by
component from /, as premises.py makes it); the socket is connected to
through that directory's descriptor (/proc/self/fd, where the address
fits in a socket address) and removed beneath it.  Nothing there: nothing
to do.  Something there that is not a socket is never touched.  Every
refusal is a DaemonStartError that says why.
"""

import logging
import os
import socket
import stat

from . import safepath
from .errors import DaemonStartError

log = logging.getLogger("cluster_init")


def check(path):
    """Refuse (DaemonStartError) if a live daemon answers on the socket ``path``; remove
    a stale one (beneath its directory, reached through safepath)."""
    directory, name = safepath.split(path)
    try:
        dir_fd = safepath.open_directory(directory)
    except FileNotFoundError:
        return
    except OSError as error:
        raise DaemonStartError(f"cannot check socket {path}: {error.strerror}") from None
    try:
        _check_beneath(dir_fd, name, path)
    finally:
        os.close(dir_fd)


def _check_beneath(dir_fd, name, path):
    """``check`` in the walked directory ``dir_fd``: connected to through it
    (/proc/self/fd, where the address fits), removed beneath it."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise DaemonStartError(f"{path} exists and is not a socket; not touching it")
    address = f"{safepath.PROC_FD}/{dir_fd}/{name}"
    if len(os.fsencode(address)) >= safepath.SUN_PATH_MAX or not os.path.isdir(f"{safepath.PROC_FD}/{dir_fd}"):
        address = path
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        return
    except OSError as error:
        raise DaemonStartError(f"cannot check socket {path}: {error.strerror}") from None
    finally:
        probe.close()
    raise DaemonStartError(f"another clinit daemon is already listening on {path}")

