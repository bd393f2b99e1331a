"""The clinit daemon: one process, one thread, one selector, and the parts it wires.

The parts, each in its own module:

* premises.py: the daemon's files (directories, log, lock, socket check);
* node.py: the cltab and the groups (the Group and Process machines);
* requests.py: what each request does, and the clients waiting on groups;
* connections.py: the socket and its connections (accept, peer
  credentials, limits, deadlines);
* statusfile.py: clstat, and when it is written (changes, retries, the
  heartbeat);
* registry.py: the process machines' pids, pidfds, deadlines and spawns;
* signals.py: the signal box (handlers record, a wake-up byte wakes);
  signalactions.py: what each signal does.

Start-up is an ordered list of named steps (``_steps``), each undone in
reverse order at close, whether the daemon ran or a step failed.  The
loop waits in ``selector.select(timeout)``, the timeout being the
nearest ``next_deadline()`` of the timed parts (registry, server, clstat
writer); nothing polls.  After every wake-up it acts on the signals that
arrived (signalactions.py, a table of signal -> action), reaps and hands
each exit to its machine, starts the next batch of children waiting to
start (at most SPAWN_BATCH, or SPAWN_BUDGET seconds' worth, a pass, so
clients are served between batches), fires the parts' due deadlines,
writes clstat if a group changed, and lets a handover asked for go ahead
(handover.py: the daemon re-executes itself in place once the node is at
rest).  The loop decides no policy: the machines do.  An image started by
a handover (``carried``) takes the lock, the socket, the connections and
the groups over from the record instead of making them (carry.py).
"""

import gc
import logging
import os
import selectors
import time

from . import lastgood
from . import signals as _signals
from .connections import Server
from .errors import DaemonStartError
from .handover import Handover
from .node import Node, log_warnings
from .peers import Policy
from .premises import Premises
from .protocol import Answer
from .registry import Registry
from .requests import Requests
from .signalactions import SignalActions
from .statusfile import StatusWriter
from .sysapi import RealSystem
from .version import VERSION

log = logging.getLogger("cluster_init")

SPAWN_BATCH = 32  # children started per loop pass, at most
SPAWN_BUDGET = 0.010  # seconds of starting children per loop pass, at most
# every signal and what the daemon does with it (clinit(8), SIGNALS)
SIGNALS = {**_signals.HANDLED, **_signals.IGNORED}


class Daemon:
    """The daemon.  Construct it (reads the cltab), then ``run()`` it.

    ``cltab`` None is $CLINIT_CLTAB, else /etc/cltab.
    ``socket_path``, ``clstat_path``, ``log_path`` and ``pidfile_path``
    are used where the cltab sets none (None: the defaults); ``system``
    is the seam (sysapi.RealSystem when None).  Raises CltabError from
    the constructor if the cltab cannot be used, DaemonStartError from
    ``run`` if the socket cannot be had.  ``command`` is what re-executes
    the daemon in a handover (handover.own_command; None: it cannot);
    ``carried`` the record of the handover this image is the end of
    (carry.py): then the socket, the lock, the connections and the
    groups are taken over from it instead of being made.
    """

    def __init__(
        self,
        cltab=None,
        socket_path=None,
        clstat_path=None,
        log_path=None,
        pidfile_path=None,
        system=None,
        log_to_stderr=True,
        background=False,
        command=None,
        carried=None,
    ):
        self.system = system or RealSystem()
        self.started = time.time()  # this image's start (the ping answer says it)
        self.carried = carried
        start_dir = carried["start_dir"] if carried is not None else None  # the first image's
        given = {"socket": socket_path, "clstat": clstat_path, "log": log_path, "pidfile": pidfile_path}
        path, table, signature, self.refused_at_start = lastgood.start_on(cltab, given, start_dir)
        self.premises = Premises(table, given, background, log_to_stderr, start_dir=start_dir)
        self.registry = Registry(self.system, immediate=False, watch_fd=self._watch_fd, unwatch_fd=self._unwatch_fd)
        context = self.premises.context(self.system, self.registry)
        self.node = Node(path, table, signature, context, settings_changed=self._cltab_applied)
        if self.refused_at_start is not None:
            self.node.refuse(self.refused_at_start)
        self.clstat = StatusWriter(self.premises.paths["clstat"], self.system.now, on_heartbeat=self._keep_premises)
        self.requests = Requests(self.node, self.clstat, self.system.now, started=self.started)
        self.handover = Handover(self, command, carried, self._watch_fd, self._unwatch_fd)
        self.requests.hand_over_through(self.handover)
        self.node.subscribe(self.clstat.group_changed)  # clstat first: answers flush it
        self.node.subscribe(self.requests.group_changed)
        self.signal_box = _signals.SignalBox()
        self.selector = None
        self.server = None
        self._undo = []  # (name, undo) of the start-up steps taken, in order
        self._restored = set()  # the groups restored after a crash: not booted

    # ---- start and stop ---------------------------------------------------

    def _steps(self):
        """Start-up, in order: ``(name, do, undo)``; undo None when there is nothing to undo."""
        premises, system = self.premises, self.system
        return (
            ("directories", premises.make_directories, None),
            ("log", premises.open_log, premises.close_log),
            ("selector", self._open_selector, self._close_selector),
            ("open files limit", system.raise_open_files_limit, None),
            ("trusted directories", premises.check_trust, None),
            ("lock", self._lock, premises.unlock),
            ("last good cltab", self._keep_last_good, None),
            ("socket", self._listen, self._close_server),
            ("signals", self._catch_signals, self.signal_box.restore),
            ("sealed descriptors", system.seal_descriptors, None),
            ("subreaper", self._become_subreaper, self._give_up_subreaper),
            ("restore", self._restore, None),
            ("freeze", gc.freeze, None),  # what exists now is never collected: less for the collector
            ("announce", self._announce, None),
            ("boot", self._boot, None),  # told, not settled: the loop starts their entries
            ("clstat", self.clstat.start, self._close_clstat),
            ("notify", premises.notify_ready, None),
            ("handed over", self.handover.answer_waiting, None),
        )

    def run(self, ready=None):
        """Serve until a shutdown has halted every group; ``ready()`` once listening."""
        try:
            for name, do, undo in self._steps():
                do()
                if undo is not None:
                    self._undo.append((name, undo))
            if ready is not None:
                ready()
            self._loop()
            log.info("all groups halted; clinit exits")
        except DaemonStartError as error:
            if self.carried is not None:  # nobody sees our stderr, maybe: the log says it
                log.error("the new image cannot start after the handover: %s", error)
            raise
        finally:
            self._close()

    def _close(self):
        """Undo the start-up steps taken, the last first."""
        while self._undo:
            _name, undo = self._undo.pop()
            undo()

    def _open_selector(self):
        self.selector = selectors.DefaultSelector()

    def _close_selector(self):
        self.selector.close()

    def _lock(self):
        (self.premises.lock if self.carried is None else self.handover.take_lock)()

    def _listen(self):
        policy = Policy(gid=self.premises.socket_gid)
        self.server = Server(self.selector, self.system.now, self.requests, policy)
        self.requests.answer_through(self.server.answer)
        if self.carried is not None:
            self.handover.take_socket()  # the socket and the connections passed on
            return
        self.premises.check_socket()
        self.server.listen(self.premises.socket_path, self.premises.socket_gid)

    def _close_server(self):
        self.handover.close()
        self.server.close(Answer(False, "the daemon has shut down"))

    def _catch_signals(self):
        receiver = self.signal_box.install()
        self.selector.register(receiver, selectors.EVENT_READ, _woken)
        self.system.signals_changed()
        if self.carried is not None:
            self.handover.unblock()  # what came during the exec is handled now

    def _become_subreaper(self):
        if not self.system.become_subreaper():
            log.warning("cannot become a child subreaper: orphaned descendants of entries go to init")

    def _give_up_subreaper(self):
        self.system.become_subreaper(False)  # a process that ran a daemon in-process goes on

    def _restore(self):
        """Every group as it was before the handover (carry.py), or what a dead predecessor
        on our socket left (node.py, adopt.py)."""
        if self.carried is not None and self.handover.resume():
            return
        self._restored = self.node.restore(self.clstat.previous(self.system.booted_at()))

    def _boot(self):
        """Tell the groups of the cltab's boot lines their level, but those restored; none
        after a handover (every group is as it was: a halted one stays halted)."""
        if self.carried is not None:
            return
        self.node.boot(self._restored)

    def _announce(self):
        how = "started" if self.carried is None else f"took over from clinit {self.carried['version']} in place"
        log.info(
            "clinit %s %s, pid %d, cltab %s, socket %s",
            VERSION,
            how,
            os.getpid(),
            self.node.path,
            self.premises.socket_path,
        )
        log_warnings(self.node.table)
        if self.refused_at_start is not None:
            lastgood.warn_running_on(self.node.path, self.refused_at_start, self.node.table)

    def _keep_last_good(self):
        lastgood.save(self.premises.paths["clstat"], self.node.table)

    def _cltab_applied(self, table):
        """A reread cltab was applied: settings of ours it changes, and a new last good copy."""
        self.premises.settings_changed(table)
        lastgood.save(self.premises.paths["clstat"], table)

    def _close_clstat(self):
        self.clstat.close(finished=self.node.finished())

    def _keep_premises(self):
        """Our socket and its lock file, taken again if someone removed them (Premises.keep)."""
        self.premises.keep(self.server)

    # ---- the loop ---------------------------------------------------------

    def _timed(self):
        """The parts with deadlines: each has ``next_deadline()`` and ``fire_due(now)``."""
        return (self.registry, self.server, self.clstat, self.node.sweep, self.handover)

    def _loop(self):
        actions = SignalActions(self.node, self.premises, self._keep_premises)
        while not self.node.finished():
            for key, mask in self.selector.select(self._timeout()):
                key.data(key, mask)
            for signum in sorted(self.signal_box.take()):
                actions.act(signum)
            self.registry.reap()
            if self.registry.spawns_waiting():
                with self.system.spawning():
                    self.registry.run_spawns(SPAWN_BATCH, until=self.system.now() + SPAWN_BUDGET)
            now = self.system.now()
            for part in self._timed():
                part.fire_due(now)
            self.clstat.flush()
            self.handover.step()  # a handover asked for: the exec, once the node is at rest

    def _timeout(self):
        if self.registry.spawns_waiting():
            return 0.0  # the next batch, once the clients that are ready are served
        deadlines = [d for d in (part.next_deadline() for part in self._timed()) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self.system.now())

    def _watch_fd(self, fd, callback):
        self.selector.register(fd, selectors.EVENT_READ, lambda _key, _mask: callback())

    def _unwatch_fd(self, fd):
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass


def _woken(_key, _mask):
    """The signal box's wake-up byte: the loop looks at the pending set after select."""
