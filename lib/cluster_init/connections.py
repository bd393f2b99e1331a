"""The daemon's clients: accept, read requests, write answers, park the waiting ones.

Every connection is served without blocking, from the daemon's one
selector: one request line per connection, one answer, then close.
This module decides who may talk (peers.py, checked at accept), how
long a client may take (deadlines), and how many there may be (limits,
eviction); ``requests`` (requests.py) decides what a request does.

* A client must send its request within CLIENT_TIMEOUT seconds and read
  its answer as fast.
* At most MAX_CONNECTIONS connections are open besides the parked ones;
  when a new client comes and the table is full, the oldest idle
  connection (no request yet) is answered "busy" and closed to make
  room, so that idle connections can never lock the administrator out.
* A request that must wait (a ``wait`` whose group has not settled) is
  answered by a Park: the connection is parked until ``answer`` is
  called for it or its deadline passes (``requests.expired`` gives that
  answer).  At most MAX_WAITERS are parked; past it, a wait is answered
  "busy".  When a parked client goes away, ``requests.gone`` is told.
  Only this module reads or writes a Connection's fields.
* A handover (handover.py) passes the listening socket and the open
  connections on across the daemon's exec (``carry``, ``take_over``).
"""

import errno
import logging
import selectors
import socket

from .listener import Listener
from .peers import Policy, Quieted, peer_of
from .protocol import BUSY, MAX_REQUEST, PERMISSION_DENIED, Answer, ProtocolError, parse_request

log = logging.getLogger("cluster_init")

CLIENT_TIMEOUT = 30.0  # a client must send its request (and read the answer) this fast
MAX_CONNECTIONS = 512  # open connections, parked ones not counted
MAX_WAITERS = 256  # wait requests parked at once
ACCEPT_PAUSE = 0.5  # seconds without accepting when no descriptor is left


class Park:
    """What ``requests.handle`` returns for a connection that is to wait: until when."""

    __slots__ = ("deadline",)

    def __init__(self, deadline):
        self.deadline = deadline


class Connection:
    """One client connection: what it sent, what we still have to send."""

    __slots__ = ("sock", "inbuf", "outbuf", "deadline", "parked", "opened", "peer")

    def __init__(self, sock, now, peer=None):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""
        self.deadline = now + CLIENT_TIMEOUT
        self.parked = False  # waiting for an answer that is not ready yet
        self.opened = now
        self.peer = peer

    def who(self):
        """Who sent the request, for the log: ``uid U (pid P)``."""
        if self.peer is None:
            return "a client whose credentials are unknown"
        return f"uid {self.peer.uid} (pid {self.peer.pid})"

    @property
    def idle(self):
        """No complete request yet and nothing being answered."""
        return not self.parked and not self.outbuf


class Server:
    """The listening socket and every connection, on the daemon's selector.

    ``requests`` has ``handle(connection, request)`` (an Answer, or a
    Park), ``expired(connection)`` (the answer to a parked connection
    whose deadline passed) and ``gone(connection)`` (a parked client went
    away).  A parked connection is answered by ``answer``.
    """

    def __init__(self, selector, clock, requests, policy=None):
        self.selector = selector
        self.clock = clock
        self.requests = requests
        self.policy = policy or Policy()
        self.listener = Listener(selector, self._on_accept)
        self.connections = {}  # Connection -> None, oldest first
        self.waiters = 0
        self.quiet = Quieted(clock)  # refusals are logged, but not one line each

    # the listening socket (listener.py)
    def listen(self, path, socket_gid=None):
        """Bind ``path`` (0600, or 0660 with ``socket_gid``) and listen."""
        self.listener.listen(path, socket_gid)

    def socket_is_ours(self):
        """False when our socket file was deleted or replaced."""
        return self.listener.is_ours()

    def relisten(self):
        """Bind the socket again after it was deleted or replaced (we hold the lock)."""
        return self.listener.relisten()

    def close(self, last_answer):
        """Answer every parked client ``last_answer``, close everything, remove the socket."""
        for connection in list(self.connections):
            if connection.parked:
                connection.outbuf = last_answer.encode()
            self._flush_and_close(connection)
        self.listener.close(unlink=True)

    # a handover (handover.py): what goes across the exec, and taking it over
    def carry(self, parked):
        """``(listener, connections)`` to pass on: the listening socket (Listener.carry)
        and ``(descriptor, bytes read, parked)`` of each connection of ``parked`` (to be
        answered by the new image) and of each still sending its request.  Answers being
        sent are sent first, as far as they go now; the exec closes what is not passed on."""
        for connection in [c for c in self.connections if c.outbuf]:
            self._write(connection)
        kept = [c for c in self.connections if c in parked or c.idle]
        return self.listener.carry(), [(c.sock.fileno(), bytes(c.inbuf), c in parked) for c in kept]

    def take_over(self, path, socket_gid, listener, connections):
        """After a handover: listen on the socket passed on (``(fd, inode)``; None: bind
        ``path`` anew) and serve the connections passed on, ``(fd, bytes read, parked)``;
        the parked ones wait for an answer (``answer``): they are returned."""
        if listener is None:
            self.listen(path, socket_gid)
        else:
            self.listener.take_over(path, socket_gid, *listener)
        waiting, now = [], self.clock()
        for fd, inbuf, parked in connections:
            try:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                peer = peer_of(sock)
            except OSError:
                continue  # gone meanwhile
            connection = Connection(sock, now, peer)
            connection.inbuf += inbuf
            self.connections[connection] = None
            self.selector.register(sock, selectors.EVENT_READ, self._on_event(connection))
            if parked:
                connection.parked = True
                self.waiters += 1
                waiting.append(connection)
        return waiting

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
        self.listener.pause(self.clock() + ACCEPT_PAUSE)

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
        if connection.parked:
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
        answer = self.requests.handle(connection, request)
        if isinstance(answer, Park):
            connection.parked = True
            connection.deadline = answer.deadline
            self.waiters += 1
        else:
            self.answer(connection, answer)

    def _unpark(self, connection):
        if connection.parked:
            connection.parked = False
            self.waiters -= 1

    def answer(self, connection, answer):
        """Send ``answer`` and close the connection once it is sent."""
        if connection not in self.connections:
            return
        self._unpark(connection)
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
        if connection.parked:
            self._unpark(connection)
            self.requests.gone(connection)
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
        if self.listener.paused_until is not None:
            deadlines.append(self.listener.paused_until)
        return min(deadlines) if deadlines else None

    def fire_due(self, now):
        """Answer or close every connection whose deadline has passed."""
        if self.listener.paused_until is not None and now >= self.listener.paused_until:
            self.listener.resume()
        for connection in [c for c in self.connections if c.deadline is not None and c.deadline <= now]:
            if connection.outbuf:
                self._drop(connection)  # it does not read its answer
            elif connection.parked:
                self.answer(connection, self.requests.expired(connection))
            else:
                log.warning("client error: no request within %g s", CLIENT_TIMEOUT)
                self.answer(connection, Answer(False, "timed out waiting for a request"))
