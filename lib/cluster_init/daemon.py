"""The clinit daemon: one process, one thread, one selector.

The loop waits in ``selector.select(timeout)``, the timeout being the
nearest deadline of any process machine, client connection or the
clstat heartbeat; nothing polls.  It watches

* the listening UNIX socket (new clients) and each client connection,
  read and written without blocking, one request per connection
  (protocol.py);
* the self-pipe: SIGCHLD, SIGTERM, SIGINT and SIGHUP only make
  ``signal.set_wakeup_fd`` write their number to a non-blocking,
  close-on-exec socketpair.  After every wake-up the loop reaps with
  ``waitpid(-1, WNOHANG)`` until nothing is left and hands each status
  to the process machine that owns the pid, then fires due deadlines.

SIGTERM and SIGINT halt every group; the daemon exits when the last
child is gone.  SIGHUP rereads the cltab.  The loop decides no policy:
the group and process machines do.
"""

import functools
import logging
import os
import random
import selectors
import signal
import socket
import stat
import sys

from . import cltab as _cltab
from . import settings as _settings
from . import socketlock
from .errors import CltabError, DaemonStartError
from .group import Group
from .logfile import LogFile, QuietStreamHandler
from .process import Context, Timing
from .protocol import CLTAB_REFUSED, MAX_REQUEST, TIMEOUT, WAIT_DEFAULT, Answer, ProtocolError, parse_request
from .registry import Registry
from .states import SETTLED_GROUP_STATES, GroupState
from .statusfile import StatusFile
from .sysapi import RealSystem
from .version import VERSION

log = logging.getLogger("cluster_init")

HEARTBEAT = (30.0, 45.0)  # clstat is rewritten this often even when idle
CLIENT_TIMEOUT = 30.0  # a client must send its request (and read the answer) this fast
MAX_CONNECTIONS = 512
HANDLED_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _on_signal(_signum, _frame):
    """Does nothing: set_wakeup_fd has already written the signal number."""


def resolve_paths(table, given, base):
    """Absolute paths of socket, clstat, log and pidfile.

    A cltab setting wins over ``given`` (constructor arguments, command
    line flags), which wins over the defaults; relative paths are taken
    from ``base``, the directory the daemon was started from (as the
    Perl daemon did), also after ``clinit -d -b`` has moved to /.
    """
    return {
        name: os.path.normpath(os.path.join(base, table.setting(name, given.get(name))))
        for name in _cltab.PATH_SETTINGS
    }


def sd_notify(path, message):
    """Send ``message`` to systemd's notification socket ``path`` (Type=notify)."""
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), path)
        except OSError as error:
            log.warning("cannot notify systemd on %s: %s", path, error.strerror or error)


def child_settings(table, base, paths, background):
    """``(directory, output)`` for children: see Context."""
    directory = table.setting("directory")
    directory = base if directory is None else os.path.normpath(os.path.join(base, directory))
    output = table.setting("output")
    if output is not None:
        output = os.path.normpath(os.path.join(base, output))
    elif background:
        output = paths["log"]
    return directory, output


class Connection:
    """One client connection: what it sent, what we still have to send."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""
        self.deadline = deadline
        self.waiting = None  # (group, level) of a pending wait request


class Daemon:
    """The daemon.  Construct it (reads the cltab), then ``run()`` it.

    Raises CltabError from the constructor if the cltab cannot be used,
    DaemonStartError from ``run`` if the socket cannot be had.
    """

    def __init__(
        self,
        cltab=_cltab.DEFAULT_CLTAB,
        socket=None,
        clstat=None,
        log=None,
        pidfile=None,
        system=None,
        log_to_stderr=True,
        background=False,
    ):
        self.start_dir = os.getcwd()
        self.background = background
        self.cltab_path = os.path.abspath(cltab)
        self.table, self.signature = _cltab.load_trusted(self.cltab_path)
        self.refused = None  # (signature, CltabError) of the last cltab refused
        given = {"socket": socket, "clstat": clstat, "log": log, "pidfile": pidfile}
        self.given = given
        self.paths = resolve_paths(self.table, given, self.start_dir)
        self.system = system or RealSystem()
        umask = os.umask(0o022)
        os.umask(umask)
        self.system.umask = umask
        self.registry = Registry()
        directory, output = child_settings(self.table, self.start_dir, self.paths, background)
        environ = dict(os.environ)
        self.notify_socket = environ.pop("NOTIFY_SOCKET", None)  # for us, not for children
        self.ctx = Context(
            self.system,
            self.registry,
            Timing.from_cltab(self.table),
            environ,
            directory=directory,
            output=output,
        )
        self.groups = {}
        self.leaving = set()  # groups halting because they left the cltab
        self.clstat = StatusFile(self.paths["clstat"])
        self.clstat_dirty = False
        self.halting = False
        self.log_to_stderr = log_to_stderr
        self.connections = set()
        self.selector = None
        self.listener = None
        self.socket_inode = None
        self.heartbeat_at = None
        self._wakeup = None
        self._saved_signals = None
        self._log_handlers = []
        self.logfile = None
        self.lock_fd = None  # the flock that makes us the one daemon on our socket
        self.keep_lock = False  # hold it until the process exits (clinit -d -b)
        self._handlers = {
            "tell": self._on_tell,
            "wait": self._on_wait,
            "reread": self._on_reread,
            "status": self._on_status,
            "shutdown": self._on_shutdown,
            "ping": self._on_ping,
        }

    # ---- start and stop ---------------------------------------------------

    def check_socket(self):
        """Refuse if a live daemon answers on our socket; remove a stale one."""
        path = self.paths["socket"]
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise DaemonStartError(f"{path} exists and is not a socket; not touching it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing stale socket %s", path)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        except OSError as error:
            raise DaemonStartError(f"cannot check socket {path}: {error.strerror}") from None
        finally:
            probe.close()
        raise DaemonStartError(f"another clinit daemon is already listening on {path}")

    def run(self, ready=None):
        """Serve until a shutdown has halted every group; ``ready()`` once listening."""
        self._open_log()
        try:
            self._listen()
            self._install_signals()
            self.selector = selectors.DefaultSelector()
            self.selector.register(self.listener, selectors.EVENT_READ, self._on_accept)
            self.selector.register(self._wakeup[0], selectors.EVENT_READ, self._on_signals)
            log.info(
                "clinit %s started, pid %d, cltab %s, socket %s",
                VERSION,
                os.getpid(),
                self.cltab_path,
                self.paths["socket"],
            )
            self._log_warnings(self.table)
            self.clstat.write()
            self._schedule_heartbeat()
            if self.notify_socket:
                sd_notify(self.notify_socket, f"READY=1\nMAINPID={os.getpid()}")
            if ready is not None:
                ready()
            self._loop()
            log.info("all groups halted; clinit exits")
        finally:
            self._close()

    def _open_log(self):
        logger = logging.getLogger("cluster_init")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        path = self.paths["log"]
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            self.logfile = LogFile(path)
        except OSError as error:
            print(f"clinit: cannot open log {path}: {error.strerror or error}", file=sys.stderr)
        else:
            self._log_handlers.append(self.logfile)
        if self.log_to_stderr:
            handler = QuietStreamHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            handler.setFormatter(logging.Formatter("clinit: %(message)s"))
            self._log_handlers.append(handler)
        for handler in self._log_handlers:
            logger.addHandler(handler)

    def _listen(self):
        path = self.paths["socket"]
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        except OSError as error:
            raise DaemonStartError(f"cannot create {os.path.dirname(path)}: {error.strerror}")
        if self.lock_fd is None:
            self.lock_fd = socketlock.acquire(path)
        self.check_socket()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)  # only our user (and root) may connect
        try:
            listener.bind(path)
            listener.listen(128)
        except OSError as error:
            listener.close()
            raise DaemonStartError(f"cannot listen on {path}: {error.strerror}") from None
        finally:
            os.umask(old_umask)
        listener.setblocking(False)
        self.listener = listener
        self.socket_inode = os.stat(path).st_ino

    def _install_signals(self):
        receiver, sender = socket.socketpair()
        receiver.setblocking(False)
        sender.setblocking(False)
        self._wakeup = (receiver, sender)
        old_fd = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
        old_handlers = {signum: signal.signal(signum, _on_signal) for signum in HANDLED_SIGNALS}
        self._saved_signals = (old_fd, old_handlers)

    def _close(self):
        for connection in list(self.connections):
            if connection.waiting is not None:
                connection.outbuf = Answer(False, "the daemon has shut down").encode()
            self._flush_and_close(connection)
        if self.selector is not None:
            self.selector.close()
        if self.listener is not None:
            self.listener.close()
            try:
                if os.stat(self.paths["socket"]).st_ino == self.socket_inode:
                    os.unlink(self.paths["socket"])
            except OSError:
                pass
        if self.halting and self._finished():
            self.clstat.unlink()
        if self._saved_signals is not None:
            old_fd, old_handlers = self._saved_signals
            signal.set_wakeup_fd(old_fd)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
        if self._wakeup is not None:
            for end in self._wakeup:
                end.close()
        logger = logging.getLogger("cluster_init")
        for handler in self._log_handlers:
            logger.removeHandler(handler)
            handler.close()
        self._log_handlers = []
        if self.lock_fd is not None and not self.keep_lock:
            os.close(self.lock_fd)
            self.lock_fd = None

    # ---- the loop ---------------------------------------------------------

    def _loop(self):
        while not (self.halting and self._finished()):
            for key, mask in self.selector.select(self._timeout()):
                key.data(key, mask)
            self.registry.deliver(self.system.reap())
            now = self.system.now()
            self.registry.fire_due(now)
            self._expire_connections(now)
            if now >= self.heartbeat_at:
                self.clstat_dirty = True
                self._schedule_heartbeat()
            self._flush_clstat()

    def _flush_clstat(self):
        """Write clstat if a group changed since it was last written.

        Called once per wake-up and before any answer is sent, so that
        a client that was answered finds clstat up to date.
        """
        if self.clstat_dirty:
            self.clstat_dirty = False
            self.clstat.write()

    def _finished(self):
        return not self.registry.live_pids() and all(
            group.state is GroupState.CONFIGURED for group in self.groups.values()
        )

    def _timeout(self):
        deadlines = [self.heartbeat_at, self.registry.next_deadline()]
        deadlines += [c.deadline for c in self.connections if c.deadline is not None]
        nearest = min(d for d in deadlines if d is not None)
        return max(0.0, nearest - self.system.now())

    def _schedule_heartbeat(self):
        self.heartbeat_at = self.system.now() + random.uniform(*HEARTBEAT)

    def _on_signals(self, key, _mask):
        while True:
            try:
                data = key.fileobj.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            for signum in data:
                if signum in (signal.SIGTERM, signal.SIGINT):
                    self.shutdown(f"signal {signal.Signals(signum).name}")
                elif signum == signal.SIGHUP:
                    self._reopen_log()
                    try:
                        self.reread()
                    except CltabError:
                        pass  # logged; the last good cltab stays

    # ---- clients ----------------------------------------------------------

    def _on_accept(self, key, _mask):
        while True:
            try:
                sock, _address = key.fileobj.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.error("accept failed: %s", error)
                return
            if len(self.connections) >= MAX_CONNECTIONS:
                log.warning("too many clients; refusing one")
                sock.close()
                continue
            sock.setblocking(False)
            connection = Connection(sock, self.system.now() + CLIENT_TIMEOUT)
            self.connections.add(connection)
            self.selector.register(
                sock, selectors.EVENT_READ, functools.partial(self._on_client, connection)
            )

    def _on_client(self, connection, _key, mask):
        if mask & selectors.EVENT_READ:
            self._read(connection)
        if mask & selectors.EVENT_WRITE and connection in self.connections:
            self._write(connection)

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
                self._handle(connection, line)
            else:
                self._drop(connection)
            return
        connection.inbuf += data
        end = connection.inbuf.find(b"\n")
        if end < 0:
            if len(connection.inbuf) > MAX_REQUEST:
                log.warning("client error: request longer than %d bytes", MAX_REQUEST)
                self._answer(connection, Answer(False, f"request longer than {MAX_REQUEST} bytes"))
            return
        line = bytes(connection.inbuf[:end])
        connection.inbuf = bytearray()
        self._handle(connection, line)

    def _handle(self, connection, line):
        try:
            request = parse_request(line)
        except ProtocolError as error:
            log.warning("client error: %s", error)
            self._answer(connection, Answer(False, str(error)))
            return
        try:
            answer = self._handlers[request.verb](connection, *request.args)
        except Exception as error:  # a bug must not take the daemon down
            log.exception("internal error handling %r", request.line().strip())
            answer = Answer(False, f"internal error: {error}")
        if answer is not None:
            self._answer(connection, answer)

    def _answer(self, connection, answer):
        self._flush_clstat()
        connection.waiting = None
        connection.outbuf = answer.encode()
        connection.deadline = self.system.now() + CLIENT_TIMEOUT
        self.selector.modify(
            connection.sock, selectors.EVENT_WRITE, functools.partial(self._on_client, connection)
        )
        self._write(connection)

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
        self.connections.discard(connection)
        try:
            self.selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()

    def _flush_and_close(self, connection):
        if connection.outbuf:
            try:
                connection.sock.setblocking(True)
                connection.sock.settimeout(1.0)
                connection.sock.sendall(connection.outbuf)
            except OSError:
                pass
        self._drop(connection)

    def _expire_connections(self, now):
        for connection in list(self.connections):
            if connection.deadline is None or connection.deadline > now:
                continue
            if connection.outbuf:
                self._drop(connection)  # it does not read its answer
            elif connection.waiting is not None:
                group, level, seconds = connection.waiting
                self._answer(
                    connection, Answer(False, f"{TIMEOUT}: {group} did not settle at level {level} within {seconds:g} s")
                )
            else:
                log.warning("client error: no request within %g s", CLIENT_TIMEOUT)
                self._answer(connection, Answer(False, "timed out waiting for a request"))

    # ---- requests ---------------------------------------------------------

    def _on_tell(self, _connection, group, level):
        if self.halting:
            return Answer(False, "the daemon is shutting down")
        refusal = self._reread_or_refusal()
        if refusal is not None:
            return refusal
        entries = self.table.entries_of(group)
        if not entries:
            log.warning("client error: no such group: %s", group)
            return Answer(False, f"no such group: {group}")
        warnings = ()
        if not any(entry.mode != "off" and entry.has_level(level) for entry in entries):
            warnings = (f"group {group} has no entries at level {level}: all of its entries stop",)
            log.warning("%s", warnings[0])
        log.info("telling %s level %s", group, level)
        self._group(group).tell(level)
        return Answer(True, "level transition started", warnings=warnings)

    def _on_wait(self, connection, group, level, seconds=None):
        if group not in self.groups and group not in self.table.groups():
            return Answer(False, f"no such group: {group}")
        answer = self._wait_answer(group, level)
        if answer is None:
            seconds = WAIT_DEFAULT if seconds is None else float(seconds)
            connection.waiting = (group, level, seconds)
            connection.deadline = self.system.now() + seconds
        return answer

    def _wait_answer(self, name, level):
        group = self.groups.get(name)
        if group is None:
            return None
        if group.state in SETTLED_GROUP_STATES:
            if group.level == level:
                return Answer(True, f"{name} {level} {group.state}")
            return Answer(False, f"{name} settled at level {group.level} {group.state}")
        if group.state is GroupState.CONFIGURED:
            return Answer(False, f"{name} was halted")
        return None

    def _on_reread(self, _connection):
        try:
            changed = self.reread()
        except CltabError as error:
            return self._refusal(error)
        return Answer(True, "cltab reread" if changed else "cltab unchanged")

    def _on_status(self, _connection):
        rows = tuple(
            f"{name} {level} {state}" for name, (level, state) in self.clstat.groups.items()
        )
        return Answer(True, f"{len(rows)} group(s)", rows)

    def _on_shutdown(self, _connection):
        self.shutdown("shutdown request")
        return Answer(True, "all groups halting")

    def _on_ping(self, _connection):
        return Answer(True, f"clinit {VERSION} pid {os.getpid()}")

    # ---- groups and the cltab ---------------------------------------------

    def shutdown(self, reason):
        """Halt every group; the loop ends once they are all halted."""
        if self.halting:
            return
        self.halting = True
        log.info("shutting down (%s): halting all groups", reason)
        for group in list(self.groups.values()):
            group.halt()

    def _group(self, name):
        group = self.groups.get(name)
        if group is None:
            group = Group(name, self.table.entries_of(name), self.ctx, observer=self._group_changed)
            self.groups[name] = group
        return group

    def _group_changed(self, group):
        self.clstat.update(group.name, group.level, group.state.value)
        self.clstat_dirty = True
        gone = group.name in self.leaving and group.state is GroupState.CONFIGURED
        if gone:
            self.leaving.discard(group.name)
            del self.groups[group.name]
            self.clstat.remove(group.name)
            log.info("group %s left the cltab and is halted", group.name)
        for connection in list(self.connections):
            if connection.waiting is not None and connection.waiting[0] == group.name:
                if gone:
                    answer = Answer(False, f"{group.name} left the cltab and was halted")
                else:
                    answer = self._wait_answer(*connection.waiting[:2])
                if answer is not None:
                    self._answer(connection, answer)

    def reread(self):
        """Reread the cltab if it changed; True if it did.

        A cltab with errors is refused as a whole (CltabError, logged
        once): the daemon keeps running on the last good one, and does
        not parse a refused file again until it changes.
        """
        signature = _settings.file_signature(self.cltab_path)
        if signature is not None and signature == self.signature:
            return False
        if self.refused is not None and self.refused[0] == signature:
            raise self.refused[1]
        try:
            table, signature = _cltab.load_trusted(self.cltab_path)
        except CltabError as error:
            self.refused = (signature, error)
            log.error("cltab refused; still using the last good one:\n%s", error)
            raise
        self.refused = None
        self.signature = signature
        self._log_warnings(table)
        self._apply(table)
        return True

    @staticmethod
    def _log_warnings(table):
        for line, message in table.warnings:
            log.warning("%s:%d: %s", table.path, line, message)

    def _reopen_log(self):
        """SIGHUP: reopen the log and the children's output files (logrotate)."""
        self.system.reopen_outputs()
        if self.logfile is None:
            return
        try:
            self.logfile.reopen()
        except OSError as error:
            log.error("cannot reopen log %s: %s", self.logfile.path, error.strerror or error)
        else:
            log.info("log reopened")

    def _reread_or_refusal(self):
        try:
            self.reread()
        except CltabError as error:
            return self._refusal(error)
        return None

    @staticmethod
    def _refusal(error):
        lines = tuple(str(error).splitlines())
        return Answer(False, f"{CLTAB_REFUSED}; still using the last good one", lines)

    def _apply(self, table):
        self.table = table
        self.ctx.timing = Timing.from_cltab(table)
        for name, path in resolve_paths(table, self.given, self.start_dir).items():
            if path != self.paths[name]:
                log.warning("setting %s changed to %s: takes effect at the next daemon start", name, path)
        self.ctx.directory, self.ctx.output = child_settings(
            table, self.start_dir, self.paths, self.background
        )
        names = table.groups()
        for name, group in list(self.groups.items()):
            if name in names:
                self.leaving.discard(name)
                group.set_entries(table.entries_of(name))
            elif name not in self.leaving:
                log.info("group %s left the cltab: halting it", name)
                self.leaving.add(name)
                group.halt()
        log.info(
            "cltab %s reread: %d entries in %d groups", self.cltab_path, len(table.entries), len(names)
        )
