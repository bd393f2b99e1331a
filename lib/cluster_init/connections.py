"""The daemon's socket: listen, accept, read requests, write answers.

Every connection is served without blocking, from the daemon's one
selector: one request line per connection, one answer, then close.
This module decides who may talk (peer credentials, checked at
accept), how long a client may take (deadlines), and how many there may
be (limits, eviction); the daemon decides what a request does.

* A client must send its request within CLIENT_TIMEOUT seconds and read
  its answer as fast.
* At most MAX_CONNECTIONS connections are open besides the waiting ones;
  when a new client comes and the table is full, the oldest idle
  connection (no request yet) is answered "busy" and closed to make
  room, so that idle connections can never lock the administrator out.
* A wait request has its own deadline and its own limit, MAX_WAITERS;
  past it, a wait is answered "busy".
* Peer credentials (SO_PEERCRED) are read at accept: only root, the
  daemon's own user, and members of the socket group (if one is set)
  are served; anybody else gets "permission denied" and a log line.
"""

import array
import errno
import logging
import os
import selectors
import socket
import stat
import struct

from .errors import DaemonStartError
from .trust import make_directory
from .protocol import BUSY, MAX_REQUEST, PERMISSION_DENIED, Answer, ProtocolError, parse_request

log = logging.getLogger("cluster_init")

CLIENT_TIMEOUT = 30.0  # a client must send its request (and read the answer) this fast
MAX_CONNECTIONS = 512  # open connections, waiting ones not counted
MAX_WAITERS = 256  # wait requests pending at once
ACCEPT_PAUSE = 0.5  # seconds without accepting when no descriptor is left
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


class Connection:
    """One client connection: what it sent, what we still have to send."""

    __slots__ = ("sock", "inbuf", "outbuf", "deadline", "waiting", "opened", "peer")

    def __init__(self, sock, now, peer=None):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""
        self.deadline = now + CLIENT_TIMEOUT
        self.waiting = None  # what the daemon waits on for it (its own record), or None
        self.opened = now
        self.peer = peer

    @property
    def idle(self):
        """No complete request yet and nothing being answered."""
        return self.waiting is None and not self.outbuf


class Server:
    """The listening socket and every connection, on the daemon's selector.

    ``handle(connection, request)`` is the daemon's: it returns an Answer,
    or None when the connection is to wait (the daemon sets
    ``connection.waiting`` and later calls ``answer``).
    ``wait_expired(connection)`` gives the answer for a wait whose
    deadline passed.
    """

    def __init__(self, selector, clock, handle, wait_expired, policy=None):
        self.selector = selector
        self.clock = clock
        self.handle = handle
        self.wait_expired = wait_expired
        self.policy = policy or Policy()
        self.path = None
        self.listener = None
        self.inode = None
        self.connections = {}  # Connection -> None, oldest first
        self.waiters = 0
        self.paused_until = None  # accepting paused: no descriptor left (EMFILE)
        self.quiet = Quieted(clock)  # refusals are logged, but not one line each

    # the listening socket
    def listen(self, path, socket_gid=None):
        """Bind ``path`` (0600, or 0660 with ``socket_gid``) and listen."""
        self.path = path
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(path)
            if socket_gid is not None:
                os.chown(path, -1, socket_gid)
                os.chmod(path, 0o660)
            listener.listen(1024)  # the kernel caps it at net.core.somaxconn
        except OSError as error:
            listener.close()
            raise DaemonStartError(f"cannot listen on {path}: {error.strerror or error}") from None
        finally:
            os.umask(old_umask)
        listener.setblocking(False)
        self.listener = listener
        self.inode = os.stat(path).st_ino
        self.selector.register(listener, selectors.EVENT_READ, self._on_accept)
        self._socket_gid = socket_gid

    def socket_is_ours(self):
        """False when our socket file was deleted or replaced."""
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def relisten(self):
        """Bind the socket again after it was deleted or replaced (we hold the lock)."""
        log.warning("socket %s was deleted or replaced: listening on it again", self.path)
        self._close_listener(unlink=False)
        try:
            make_directory(os.path.dirname(self.path))
        except OSError as error:
            log.error("cannot create %s: %s", os.path.dirname(self.path), error.strerror or error)
            return False
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISSOCK(info.st_mode):
                os.unlink(self.path)
            else:
                log.error("%s is not a socket now; not touching it", self.path)
                return False
        try:
            self.listen(self.path, self._socket_gid)
        except DaemonStartError as error:
            log.error("%s", error)
            return False
        return True

    def _close_listener(self, unlink):
        if self.listener is None:
            return
        try:
            self.selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()
        self.listener = None
        if unlink and self.socket_is_ours():
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def close(self, last_answer):
        """Answer every waiting client ``last_answer``, close everything, remove the socket."""
        for connection in list(self.connections):
            if connection.waiting is not None:
                connection.outbuf = last_answer.encode()
            self._flush_and_close(connection)
        self._close_listener(unlink=True)

    # accepting
    def _on_accept(self, key, _mask):
        while True:
            try:
                sock, _address = key.fileobj.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept failed: %s", error.strerror or error)
                    return
                if self._evict_one():
                    continue  # an idle connection made room: the next client may be the administrator
                self._pause_accepting(error)
                return
            sock.setblocking(False)
            now = self.clock()
            try:
                peer = peer_of(sock)
            except OSError:
                peer = None
            if peer is not None and not self.policy.allows(sock, peer):
                self.quiet.warning(
                    ("uid", peer.uid), "refused a client: uid %d (pid %d) may not use this daemon", peer.uid, peer.pid
                )
                self._refuse(sock, f"{PERMISSION_DENIED}: uid {peer.uid} may not use this clinit daemon")
                continue
            if len(self.connections) - self.waiters >= MAX_CONNECTIONS and not self._evict_one():
                self.quiet.warning("busy", "too many clients: refusing one")
                self._refuse(sock, f"{BUSY}: too many clients ({MAX_CONNECTIONS}); try again")
                continue
            connection = Connection(sock, now, peer)
            self.connections[connection] = None
            self.selector.register(sock, selectors.EVENT_READ, self._on_event(connection))

    def _pause_accepting(self, error):
        """No descriptor left: stop accepting for ACCEPT_PAUSE seconds (not a busy loop)."""
        self.quiet.warning("accept", "accept failed: %s; not accepting for %g s", error.strerror or error, ACCEPT_PAUSE)
        self.paused_until = self.clock() + ACCEPT_PAUSE
        try:
            self.selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass

    def _resume_accepting(self):
        self.paused_until = None
        if self.listener is not None:
            try:
                self.selector.register(self.listener, selectors.EVENT_READ, self._on_accept)
            except KeyError:
                pass  # bound again meanwhile, and registered

    def _on_event(self, connection):
        def on_event(_key, mask):
            if mask & selectors.EVENT_READ:
                self._read(connection)
            if mask & selectors.EVENT_WRITE and connection in self.connections:
                self._write(connection)

        return on_event

    def _evict_one(self):
        """Close the oldest idle connection to make room; False if there is none."""
        for connection in self.connections:
            if connection.idle:
                log.debug("too many clients: closing the oldest idle connection")
                self._answer_now(connection, Answer(False, f"{BUSY}: closed to make room for another client"))
                self._drop(connection)
                return True
        return False

    @staticmethod
    def _refuse(sock, message):
        try:
            sock.send(Answer(False, message).encode())
        except OSError:
            pass
        sock.close()

    # reading and writing
    def _read(self, connection):
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection)
            return
        if connection.waiting is not None:
            if not data:  # the waiting client went away
                self._drop(connection)
            return
        if not data:
            if connection.inbuf:  # a last request without its newline
                line, connection.inbuf = bytes(connection.inbuf), bytearray()
                self._request(connection, line)
            else:
                self._drop(connection)
            return
        connection.inbuf += data
        end = connection.inbuf.find(b"\n")
        if end < 0:
            if len(connection.inbuf) > MAX_REQUEST:
                log.warning("client error: request longer than %d bytes", MAX_REQUEST)
                self.answer(connection, Answer(False, f"request longer than {MAX_REQUEST} bytes"))
            return
        line = bytes(connection.inbuf[:end])
        connection.inbuf = bytearray()
        self._request(connection, line)

    def _request(self, connection, line):
        try:
            request = parse_request(line)
        except ProtocolError as error:
            log.warning("client error: %s", error)
            self.answer(connection, Answer(False, str(error)))
            return
        if request.verb == "wait" and self.waiters >= MAX_WAITERS:
            self.quiet.warning("waiters", "too many waiting clients: refusing a wait")
            self.answer(connection, Answer(False, f"{BUSY}: too many waiting clients ({MAX_WAITERS})"))
            return
        answer = self.handle(connection, request)
        if answer is not None:
            self.answer(connection, answer)
        elif connection.waiting is not None:
            self.waiters += 1

    def answer(self, connection, answer):
        """Send ``answer`` and close the connection once it is sent."""
        if connection not in self.connections:
            return
        if connection.waiting is not None:
            connection.waiting = None
            self.waiters -= 1
        connection.outbuf = answer.encode()
        connection.deadline = self.clock() + CLIENT_TIMEOUT
        self.selector.modify(connection.sock, selectors.EVENT_WRITE, self._on_event(connection))
        self._write(connection)

    def _answer_now(self, connection, answer):
        """Best effort, without waiting, for a connection about to be closed: ``answer``,
        or what is left to send when None."""
        try:
            connection.sock.send(connection.outbuf if answer is None else answer.encode())
        except OSError:
            pass

    def _write(self, connection):
        try:
            sent = connection.sock.send(connection.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection)
            return
        connection.outbuf = connection.outbuf[sent:]
        if not connection.outbuf:
            self._drop(connection)

    def _drop(self, connection):
        if self.connections.pop(connection, 0) is not None:
            return
        if connection.waiting is not None:
            connection.waiting = None
            self.waiters -= 1
        try:
            self.selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()

    def _flush_and_close(self, connection):
        """At shutdown: what fits in the socket now is sent, the rest is dropped (a client
        that does not read must not hold the daemon's exit up)."""
        if connection.outbuf:
            self._answer_now(connection, None)
        self._drop(connection)

    # deadlines
    def next_deadline(self):
        deadlines = [c.deadline for c in self.connections if c.deadline is not None]
        if self.paused_until is not None:
            deadlines.append(self.paused_until)
        return min(deadlines) if deadlines else None

    def expire(self, now):
        """Answer or close every connection whose deadline has passed."""
        if self.paused_until is not None and now >= self.paused_until:
            self._resume_accepting()
        for connection in [c for c in self.connections if c.deadline is not None and c.deadline <= now]:
            if connection.outbuf:
                self._drop(connection)  # it does not read its answer
            elif connection.waiting is not None:
                self.answer(connection, self.wait_expired(connection))
            else:
                log.warning("client error: no request within %g s", CLIENT_TIMEOUT)
                self.answer(connection, Answer(False, "timed out waiting for a request"))

    def waiting(self):
        """The connections the daemon has set waiting."""
        return [c for c in self.connections if c.waiting is not None]
