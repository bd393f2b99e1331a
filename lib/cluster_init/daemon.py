"""The clinit daemon: one process, one thread, one selector.

The loop waits in ``selector.select(timeout)``, the timeout being the
nearest deadline of any process machine, client connection, clstat
retry or the clstat heartbeat; nothing polls.  It watches

* the socket and its connections (connections.py: accept, peer
  credentials, reading requests, writing answers, limits);
* the wake-up end of the signal box (signals.py): handlers record the
  signals in a set, the wake-up byte only wakes the loop;
* each adopted process's pidfd (processes a dead predecessor left).

After every wake-up the loop handles the signals that arrived, reaps
with ``waitpid(-1, WNOHANG)`` until nothing is left and hands each
status to the process machine that owns the pid, starts the next batch
of children that are waiting to start (at most SPAWN_BATCH, or
SPAWN_BUDGET seconds' worth, a pass, each
spawn returning as soon as the child has exec'ed, so clients are served
between batches), fires due deadlines, and writes clstat if a group
changed.  The loop decides no policy: the group and
process machines do.
"""

import gc
import logging
import os
import random
import selectors
import socket
import stat
import sys
import tempfile

from . import adopt
from . import cltab as _cltab
from . import listing
from . import marks
from . import settings as _settings
from . import signals as _signals
from . import socketlock
from .config import child_settings, resolve_paths, socket_group_id
from .connections import Policy, Server
from .errors import CltabError, DaemonStartError
from .group import Group
from .logfile import LogFile, QuietStreamHandler
from .process import Context, Timing
from .protocol import CLTAB_REFUSED, TIMEOUT, WAIT_DEFAULT, Answer
from .registry import Registry
from .states import SETTLED_GROUP_STATES, GroupState
from .status import read_with_mtime as read_clstat_with_mtime
from .statusfile import StatusFile
from .sysapi import RealSystem
from .trust import check_directory_trust, make_directory, open_append
from .version import VERSION

log = logging.getLogger("cluster_init")

HEARTBEAT = (30.0, 45.0)  # clstat is rewritten this often even when idle
SPAWN_BATCH = 32  # children started per loop pass, at most
SPAWN_BUDGET = 0.010  # seconds of starting children per loop pass, at most
CLSTAT_RETRY = 1.0  # seconds between attempts to write clstat after a failure
# every signal and what the daemon does with it (clinit(8), SIGNALS)
SIGNALS = {**_signals.HANDLED, **_signals.IGNORED}


def sd_notify(path, message):
    """Send ``message`` to systemd's notification socket ``path`` (Type=notify)."""
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), path)
        except OSError as error:
            log.warning("cannot notify systemd on %s: %s", path, error.strerror or error)


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
        self.given = {"socket": socket, "clstat": clstat, "log": log, "pidfile": pidfile}
        self.paths = resolve_paths(self.table, self.given, self.start_dir)
        self.system = system or RealSystem()
        self.umask = os.umask(0o022)  # children's; clinit -d -b keeps it as the daemon's
        os.umask(self.umask)
        self.selector = None
        self.registry = Registry(immediate=False, watch_fd=self._watch_fd, unwatch_fd=self._unwatch_fd)
        directory, output = child_settings(self.table, self.start_dir, self.paths, background)
        environ = dict(os.environ)
        self.notify_socket = environ.pop("NOTIFY_SOCKET", None)  # for us, not for children
        environ[marks.DAEMON] = self.paths["socket"]  # our children's identity mark
        self.ctx = Context(
            self.system,
            self.registry,
            Timing.from_cltab(self.table),
            environ,
            directory=directory,
            output=output,
            daemon_id=self.paths["socket"],
            kill_mode=self.table.setting("kill_mode"),
        )
        self.socket_group_name = self.table.setting("socket_group")
        self.socket_gid = socket_group_id(self.table)
        self.groups = {}
        self.leaving = set()  # groups halting because they left the cltab
        self.clstat = StatusFile(self.paths["clstat"])
        self.clstat_dirty = False
        self.clstat_forced = False  # the heartbeat: rewrite even an unchanged clstat
        self.clstat_retry_at = None
        self.halting = False
        self.log_to_stderr = log_to_stderr
        self.server = None
        self.signal_box = _signals.SignalBox()
        self.heartbeat_at = None
        self._log_handlers = []
        self.logfile = None
        self.lock_fd = None  # the flock that makes us the one daemon on our socket
        self.keep_lock = False  # hold it until the process exits (clinit -d -b)
        self._handlers = {
            "tell": self._on_tell,
            "wait": self._on_wait,
            "reread": self._on_reread,
            "status": self._on_status,
            "list": self._on_list,
            "restart": self._on_restart,
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

    def make_directories(self):
        """The directories of the daemon's files (mode 0755); DaemonStartError if one cannot be."""
        names = ("socket", "clstat", "log", "pidfile") if self.background else ("socket", "clstat", "log")
        for name in names:
            directory = os.path.dirname(self.paths[name])
            try:
                make_directory(directory)
            except OSError as error:
                hint = " (set -p or :::pidfile:)" if name == "pidfile" else f" (set :::{name}:)"
                raise DaemonStartError(f"cannot create {directory} for the {name}: {error.strerror}{hint}") from None

    def check_files(self):
        """Before clinit -d -b detaches, where nothing it says afterwards is seen:
        DaemonStartError unless the log opens and clstat's directory takes files."""
        self.make_directories()
        try:
            os.close(open_append(self.paths["log"]))
        except OSError as error:
            raise DaemonStartError(f"cannot open the log {self.paths['log']}: {error.strerror or error}") from None
        for name, hint in (("clstat", ""), ("pidfile", " (set -p or :::pidfile:)")):
            try:
                fd, probe = tempfile.mkstemp(prefix=f".{name}.", dir=os.path.dirname(self.paths[name]))
                os.close(fd)
                os.unlink(probe)
            except OSError as error:
                raise DaemonStartError(
                    f"cannot write the {name} {self.paths[name]}: {error.strerror or error}{hint}"
                ) from None

    def run(self, ready=None):
        """Serve until a shutdown has halted every group; ``ready()`` once listening."""
        self._open_log()
        try:
            self._start()
            log.info(
                "clinit %s started, pid %d, cltab %s, socket %s",
                VERSION,
                os.getpid(),
                self.cltab_path,
                self.paths["socket"],
            )
            self._log_warnings(self.table)
            self._mark_clstat()
            self.clstat_forced = True
            self._flush_clstat()
            self._schedule_heartbeat()
            if self.notify_socket:
                sd_notify(self.notify_socket, f"READY=1\nMAINPID={os.getpid()}")
            if ready is not None:
                ready()
            self._loop()
            log.info("all groups halted; clinit exits")
        finally:
            self._close()

    def _start(self):
        self.selector = selectors.DefaultSelector()
        self.system.nofile = self.system.raise_open_files_limit()
        path = self.paths["socket"]
        self.make_directories()
        for name in ("socket", "clstat", "pidfile") if self.background else ("socket", "clstat"):
            try:
                check_directory_trust(os.path.dirname(self.paths[name]), self.paths[name])
            except PermissionError as error:
                raise DaemonStartError(str(error)) from None
        if self.lock_fd is None:
            self.lock_fd = socketlock.acquire(path)
        self.check_socket()
        policy = Policy(gid=self.socket_gid)
        self.server = Server(self.selector, self.system.now, self._handle, self._wait_expired, policy)
        self.server.listen(path, self.socket_gid)
        receiver = self.signal_box.install()
        self.selector.register(receiver, selectors.EVENT_READ, _woken)
        self.system.signals_changed()
        self.system.seal_descriptors()
        if not self.system.become_subreaper():
            log.warning("cannot become a child subreaper: orphaned descendants of entries go to init")
        self._adopt()
        gc.freeze()  # what exists now is never collected: less for the collector to walk

    def _adopt(self):
        """Take over what a dead predecessor on our socket left (adopt.py)."""
        found = self.system.find_marked(self.paths["socket"])
        try:
            old_rows, written = read_clstat_with_mtime(self.paths["clstat"])
        except (OSError, UnicodeDecodeError) as error:
            log.warning("cannot read the old %s: %s", self.paths["clstat"], getattr(error, "strerror", None) or error)
            old_rows, written = [], None
        if written is not None and written < adopt.booted_at():
            log.info("%s was written before the machine booted: not restoring from it", self.paths["clstat"])
            old_rows = []
        plans = adopt.plan(found, self.table, old_rows)
        if not plans:
            return
        if found:
            log.warning(
                "the previous daemon on %s died and left %d process(es): adopting them",
                self.paths["socket"],
                len(found),
            )
        pidfds = found and self._pidfds_work()
        if found and not pidfds:
            log.warning("pidfds are not available here (Linux 5.3 or later has them): stopping what it left")
        for plan in plans:
            group = self._group(plan.name, entries=() if not plan.in_cltab else None)
            for entry, adoption in plan.adoptions:
                log.info(
                    "adopting %s:%s: %s (process groups %s)",
                    entry.group,
                    entry.tag,
                    " ".join(map(str, adoption.pids)),
                    " ".join(map(str, sorted(adoption.pgids))),
                )
            group.restore(plan)
            if plan.kind == adopt.HALT:
                log.warning(
                    "group %s was %s when the previous daemon died, to a level nothing records:"
                    " stopping what is left of it; tell it again",
                    plan.name,
                    plan.old_state or f"at another level than {plan.level}",
                )
            elif group.state is GroupState.FAILED and plan.kind == adopt.GONE:
                log.warning(
                    "group %s: its services died with the previous daemon: FAILED, nothing started",
                    plan.name,
                )
            log.info("group %s restored at level %s %s", plan.name, group.level, group.state)
            if not plan.in_cltab:
                log.info("group %s left the cltab: halting it", plan.name)
                self.leaving.add(plan.name)
                group.halt()
            elif not pidfds and plan.adoptions:
                group.halt()

    def _pidfds_work(self):
        watch = self.system.watch_process(os.getpid())
        if watch is None:
            return False
        self.system.unwatch_process(watch)
        return True

    def _open_log(self):
        logger = logging.getLogger("cluster_init")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        path = self.paths["log"]
        try:
            make_directory(os.path.dirname(path))
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

    def _close(self):
        if self.server is not None:
            self.server.close(Answer(False, "the daemon has shut down"))
        if self.selector is not None:
            self.selector.close()
        if self.halting and self._finished():
            self.clstat.unlink()
        self.signal_box.restore()
        if self.selector is not None:
            self.system.become_subreaper(False)  # a process that ran a daemon in-process goes on
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
            self._on_signals(self.signal_box.take())
            self.registry.deliver(self.system.reap())
            if self.registry.spawns_waiting():
                with self.system.spawning():
                    self.registry.run_spawns(SPAWN_BATCH, until=self.system.now() + SPAWN_BUDGET)
            now = self.system.now()
            self.registry.fire_due(now)
            self.server.expire(now)
            if now >= self.heartbeat_at:
                self._heartbeat()
            self._flush_clstat()

    def _timeout(self):
        if self.registry.spawns_waiting():
            return 0.0  # the next batch, once the clients that are ready are served
        deadlines = [
            self.heartbeat_at,
            self.registry.next_deadline(),
            self.server.next_deadline(),
            self.clstat_retry_at,
        ]
        nearest = min(d for d in deadlines if d is not None)
        return max(0.0, nearest - self.system.now())

    def _watch_fd(self, fd, callback):
        self.selector.register(fd, selectors.EVENT_READ, lambda _key, _mask: callback())

    def _unwatch_fd(self, fd):
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _finished(self):
        return not self.registry.live_pids() and all(
            group.state is GroupState.CONFIGURED for group in self.groups.values()
        )

    def _schedule_heartbeat(self):
        self.heartbeat_at = self.system.now() + random.uniform(*HEARTBEAT)

    def _heartbeat(self):
        """clstat is rewritten even when nothing changed; a lost socket is bound again."""
        self._mark_clstat()
        self.clstat_forced = True
        self._check_socket_file()
        self._schedule_heartbeat()

    def _check_socket_file(self):
        """Our socket and its lock file are still there; if not, take them again.

        Someone removed them (the whole directory, say): a second daemon could
        start meanwhile.  We lock a new lock file first; if another daemon
        already holds it, we do not touch its socket, and say so.
        """
        path = self.paths["socket"]
        if self.server.socket_is_ours() and socketlock.still_ours(self.lock_fd, path):
            return
        if not socketlock.still_ours(self.lock_fd, path):
            log.warning("the lock file %s was deleted or replaced: locking it again", socketlock.path_for(path))
            try:
                make_directory(os.path.dirname(path))
                lock_fd = socketlock.acquire(path)
            except (OSError, DaemonStartError) as error:
                log.error("%s: this daemon no longer listens; stop one of the two", error)
                return
            os.close(self.lock_fd)
            self.lock_fd = lock_fd
        self.server.relisten()

    def _mark_clstat(self):
        self.clstat_dirty = True
        self.clstat_retry_at = None

    def _flush_clstat(self):
        """Write clstat if a group changed since it was last written.

        Called once per wake-up and before any answer is sent, so that a
        client that was answered finds clstat up to date.  A write that
        fails is tried again at every wake-up and at least every
        CLSTAT_RETRY seconds until it succeeds.
        """
        if not self.clstat_dirty:
            return
        if self.clstat.write(force=self.clstat_forced):
            self.clstat_dirty = self.clstat_forced = False
            self.clstat_retry_at = None
        else:
            self.clstat_retry_at = self.system.now() + CLSTAT_RETRY

    def _on_signals(self, pending):
        for signum in sorted(pending):
            if signum in (_signals.signal.SIGTERM, _signals.signal.SIGINT):
                self.shutdown(f"signal {_signals.signal.Signals(signum).name}")
            elif signum == _signals.signal.SIGHUP:
                self._reopen_log()
                self._check_socket_file()
                try:
                    self.reread()
                except CltabError:
                    pass  # logged; the last good cltab stays
            elif signum == _signals.signal.SIGUSR1:
                self.dump()
            elif signum != _signals.signal.SIGCHLD:
                log.info("ignoring signal %s", _signal_name(signum))

    def dump(self):
        """SIGUSR1: the state of every group and of every entry (as clinit -l has it), to the log."""
        log.info("state dump: %d group(s), %d process(es) running", len(self.groups), len(self.registry.live_pids()))
        now = self.system.now()
        for name in dict.fromkeys([*self.table.groups(), *self.groups]):
            group = self.groups.get(name)
            if group is not None:
                log.info("group %s: level %s %s", name, group.level, group.state)
            else:
                log.info("group %s: never told", name)
            for entry, proc, left in self._entries_and_procs(name):
                fields = listing.row(entry, proc, self.ctx, now, left)
                log.info(
                    "  %s:%s: %s, pid %s, started %s time(s), last exit %s%s%s",
                    name,
                    entry.tag,
                    fields[4],
                    fields[5],
                    fields[6],
                    fields[7],
                    "" if fields[8] == "-" else f", {fields[8]}s in its state",
                    "" if fields[9] == "-" else f" ({fields[9]})",
                )

    # ---- clients ----------------------------------------------------------

    def _handle(self, connection, request):
        try:
            answer = self._handlers[request.verb](connection, *request.args)
        except Exception as error:  # a bug must not take the daemon down
            log.exception("internal error handling %r", request.line().strip())
            answer = Answer(False, f"internal error: {error}")
        if answer is not None:
            self._flush_clstat()
        return answer

    def _wait_expired(self, connection):
        group, level, seconds = connection.waiting
        return Answer(False, f"{TIMEOUT}: {group} did not settle at level {level} within {seconds:g} s")

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

    def _on_list(self, _connection, group=None):
        names = [group] if group is not None else list(dict.fromkeys([*self.table.groups(), *self.groups]))
        if group is not None and group not in self.groups and not self.table.entries_of(group):
            return Answer(False, f"no such group: {group}")
        now = self.system.now()
        rows = [
            listing.row(entry, proc, self.ctx, now, left)
            for name in names
            for entry, proc, left in self._entries_and_procs(name)
        ]
        return Answer(True, f"{len(rows)} entries", tuple("\t".join(row) for row in rows))

    def _entries_and_procs(self, name):
        """``(entry, machine or None, left the cltab)``: the group's entries in file
        order, then the machines whose entry left the cltab."""
        machine = self.groups.get(name)
        procs = machine.procs if machine is not None else {}
        entries = self.table.entries_of(name)
        tags = {entry.tag for entry in entries}
        listed = [(entry, procs.get(entry.tag), False) for entry in entries]
        listed += [(proc.entry, proc, True) for tag, proc in procs.items() if tag not in tags]
        return listed

    def _on_restart(self, _connection, group, tag):
        if self.halting:
            return Answer(False, "the daemon is shutting down")
        machine = self.groups.get(group)
        entry = next((e for e in self.table.entries_of(group) if e.tag == tag), None)
        if entry is None:
            what = "no such group" if not self.table.entries_of(group) else "no such entry"
            return Answer(False, f"{what}: {group}:{tag}" if what == "no such entry" else f"{what}: {group}")
        level = machine.level if machine is not None else None
        if level is None or entry.mode == "off" or not entry.has_level(level):
            return Answer(False, f"{group}:{tag} is not part of the level of group {group} ({level or 'never told'})")
        proc = machine.procs.get(tag)
        if proc is None:
            return Answer(False, f"{group}:{tag} has not been started at level {level} yet")
        log.info("restarting %s:%s", group, tag)
        proc.restart()
        return Answer(True, f"restarting {group}:{tag}")

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

    def _group(self, name, entries=None):
        group = self.groups.get(name)
        if group is None:
            entries = self.table.entries_of(name) if entries is None else entries
            group = Group(name, entries, self.ctx, observer=self._group_changed)
            self.groups[name] = group
        return group

    def _group_changed(self, group):
        self.clstat.update(group.name, group.level, group.state.value)
        self._mark_clstat()
        gone = group.name in self.leaving and group.state is GroupState.CONFIGURED
        if gone:
            self.leaving.discard(group.name)
            del self.groups[group.name]
            self.clstat.remove(group.name)
            log.info("group %s left the cltab and is halted", group.name)
        if self.server is None:
            return
        for connection in self.server.waiting():
            if connection.waiting[0] == group.name:
                if gone:
                    answer = Answer(False, f"{group.name} left the cltab and was halted")
                else:
                    answer = self._wait_answer(*connection.waiting[:2])
                if answer is not None:
                    self._flush_clstat()
                    self.server.answer(connection, answer)

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
        """SIGHUP: reopen the log (logrotate); children open their output files anew anyway."""
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
        self.ctx.kill_mode = table.setting("kill_mode")
        if table.setting("socket_group") != self.socket_group_name:
            log.warning("setting socket_group changed: takes effect at the next daemon start")
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


def _signal_name(signum):
    try:
        return _signals.signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - _signals.signal.SIGRTMIN}"


def _woken(_key, _mask):
    """The signal box's wake-up byte: the loop looks at the pending set after select."""
