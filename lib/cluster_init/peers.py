"""Who is at the other end of the daemon's socket, and who may talk to it.

Peer credentials (SO_PEERCRED) are read at accept: only root, the
daemon's own user, and members of the socket group (if one is set) are
served (``Policy``).  Refusals are logged, but not one line each
(``Quieted``): a flood of clients must not flood the log.
"""

import array
import errno
import logging
import os
import socket
import struct

log = logging.getLogger("cluster_init")

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux 4.13; not named in Python 3.11


class Peer:
    """Who is at the other end of a connection (from SO_PEERCRED)."""

    __slots__ = ("pid", "uid", "gid")

    def __init__(self, pid, uid, gid):
        self.pid, self.uid, self.gid = pid, uid, gid


def peer_of(sock):
    """The Peer of a connected UNIX socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return Peer(*struct.unpack("3i", data))


def peer_groups(sock, pid):
    """The peer's supplementary group ids: SO_PEERGROUPS, else /proc/PID/status."""
    size = 64
    while size <= 65536 * 4:
        try:
            data = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, size * 4)
        except OSError as error:
            if error.errno == errno.ERANGE:
                size *= 4
                continue
            break
        groups = array.array("I")
        groups.frombytes(data[: len(data) - len(data) % 4])
        return set(groups)
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("Groups:"):
                    return {int(word) for word in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


class Policy:
    """Who may use the socket: root, the daemon's user, and the socket group's members."""

    def __init__(self, uid=None, gid=None):
        self.uid = os.geteuid() if uid is None else uid
        self.gid = gid  # the socket group's id, or None

    def allows(self, sock, peer):
        if peer.uid in (0, self.uid):
            return True
        if self.gid is None:
            return False
        return peer.gid == self.gid or self.gid in peer_groups(sock, peer.pid)


class Quieted:
    """At most one log line per key a minute; how many were left out is said with the next."""

    def __init__(self, clock, every=60.0):
        self.clock = clock
        self.every = every
        self._last = {}  # key -> (when it was last logged, how many were left out since)

    def warning(self, key, message, *args):
        now = self.clock()
        last, left_out = self._last.get(key, (None, 0))
        if last is not None and now - last < self.every:
            self._last[key] = (last, left_out + 1)
            return
        if left_out:
            message += f" (and {left_out} more in the last minute)"
        self._last[key] = (now, 0)
        log.warning(message, *args)
