"""The daemon's listening socket: bound, watched, paused, bound again, removed.

The socket file is made mode 0600 (0660, of the socket group, when one
is set: peers.py checks every client anyway), bound, looked at and
removed beneath its directory reached through safepath.py (as root:
through trusted directories and symlinks only).  ``is_ours`` tells whether
the file at the path is still the one we bound; ``relisten`` binds it
again after someone removed or replaced it (the daemon holds the lock
beside it, premises.py, so no other daemon may have it).  With no
descriptor left, accepting pauses (``pause``) instead of spinning.  A
handover passes the listening socket on across the exec (``carry``,
``take_over``): clients that connect meanwhile wait in its queue.
"""

import logging
import os
import selectors
import socket
import stat

from . import safepath
from .errors import DaemonStartError

log = logging.getLogger("cluster_init")

BACKLOG = 1024  # the kernel caps it at net.core.somaxconn


def _bound_to(sock, path):
    """True when ``sock`` was bound to ``path``: by it, or through the directory's
    descriptor (safepath binds ``/proc/self/fd/N/NAME``)."""
    address = sock.getsockname()
    if address == path:
        return True
    head, _, name = address.rpartition("/")
    fd_dir, _, number = head.rpartition("/")
    return fd_dir == safepath.PROC_FD and number.isdigit() and name == os.path.basename(path)


class Listener:
    """The listening socket on ``selector``; ``on_accept(key, mask)`` when a client knocks."""

    def __init__(self, selector, on_accept):
        self.selector = selector
        self.on_accept = on_accept
        self.path = None
        self.sock = None
        self.inode = None
        self.gid = None
        self.paused_until = None  # accepting paused: no descriptor left (EMFILE)

    def listen(self, path, gid=None):
        """Bind ``path`` (0600, or 0660 with the socket group ``gid``) and listen."""
        self.path, self.gid = path, gid
        try:
            sock = safepath.bind_unix(path, 0o600 if gid is None else 0o660, gid)
        except OSError as error:
            raise DaemonStartError(f"cannot listen on {path}: {safepath.reason(error, path)}") from None
        try:
            sock.listen(BACKLOG)
            self.inode = safepath.lstat(path).st_ino
        except OSError as error:
            sock.close()
            raise DaemonStartError(f"cannot listen on {path}: {safepath.reason(error, path)}") from None
        sock.setblocking(False)
        self.sock = sock
        self.selector.register(sock, selectors.EVENT_READ, self.on_accept)

    def carry(self):
        """What a handover passes on: ``(descriptor, inode)`` of the listening socket,
        or None when there is none (a relisten failed)."""
        return None if self.sock is None else (self.sock.fileno(), self.inode)

    def take_over(self, path, gid, fd, inode):
        """Listen on the socket a handover passed on: descriptor ``fd``, bound to ``path``
        by the image before the exec.  DaemonStartError if it is not that socket."""
        try:
            sock = socket.socket(fileno=fd)
        except OSError as error:
            raise DaemonStartError(f"the socket passed on (descriptor {fd}): {error.strerror or error}") from None
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not _bound_to(sock, path):
            sock.detach()
            raise DaemonStartError(f"descriptor {fd} is not the socket {path}")
        self.path, self.gid, self.inode = path, gid, inode
        sock.setblocking(False)
        self.sock = sock
        self.selector.register(sock, selectors.EVENT_READ, self.on_accept)

    def is_ours(self):
        """False when our socket file was deleted or replaced."""
        try:
            return safepath.lstat(self.path).st_ino == self.inode
        except OSError:
            return False

    def relisten(self):
        """Bind the socket again after it was deleted or replaced (we hold the lock);
        False, and logged, if it cannot be."""
        log.warning("socket %s was deleted or replaced: listening on it again", self.path)
        self.close(unlink=False)
        try:
            info = safepath.lstat(self.path)
            if not stat.S_ISSOCK(info.st_mode):
                log.error("%s is not a socket now; not touching it", self.path)
                return False
            safepath.remove(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.error("cannot listen on %s again: %s", self.path, safepath.reason(error, self.path))
            return False
        try:
            self.listen(self.path, self.gid)
        except DaemonStartError as error:
            log.error("%s", error)
            return False
        return True

    def pause(self, until):
        """Stop accepting until the clock reads ``until`` (``resume``)."""
        self.paused_until = until
        try:
            self.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass

    def resume(self):
        self.paused_until = None
        if self.sock is not None:
            try:
                self.selector.register(self.sock, selectors.EVENT_READ, self.on_accept)
            except KeyError:
                pass  # bound again meanwhile, and registered

    def close(self, unlink):
        """Stop listening; ``unlink``: remove the socket file too, if it is still ours."""
        if self.sock is None:
            return
        try:
            self.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()
        self.sock = None
        if unlink and self.is_ours():
            try:
                safepath.remove(self.path)
            except OSError:
                pass
