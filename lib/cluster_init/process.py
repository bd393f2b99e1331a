"""The machine for one cltab entry: starts, watches and stops its process.

Behaviour by mode:

* ``wait``: runs in the foreground; DONE when the command has exited.
* ``once``: runs in the background; DONE as soon as it has started.
* ``respawn``: as ``once``, and started again whenever it exits; more
  than ``respawn_limit`` restarts in a row, each less than
  ``respawn_window`` seconds after the one before, hold the entry back
  for ``respawn_hold`` seconds ("respawning too rapidly").
* ``test``: runs in the foreground; PASS on exit status 0, else FAIL.
* ``off``: never runs.

Stopping signals the entry's process groups SIGINT, then SIGTERM
``term_delay`` seconds later, then SIGKILL ``kill_delay`` seconds after
that (and again every KILL_AGAIN seconds), until no process of them is
left: not only the leader (the shell the daemon started), but every
process of every process group the entry started, whose leader may have
exited long before (a shell's background jobs, which ignore SIGINT, the
rest of a ``cmd &`` once entry).  LINGERING is that state: the leader is
gone, members are left.  Under ``kill_mode`` ``all`` a stop also reaches
the processes found under /proc with the entry's marks (marks.py), which
finds one that called setsid.  All waiting is by deadlines on the
System's clock; the machine never sleeps and never calls ``os``.

A daemon that starts where its predecessor died adopts the processes it
left (``adopt``): their exits come through pidfds (they are not our
children), so their exit status cannot be known: an adopted ``test``
that exits FAILs ("result unknown after adoption"), an adopted ``wait``
is done.
"""

import dataclasses
import logging
import signal

from .machine import Machine
from .errors import SpawnError
from .states import ProcEvent as E
from .states import ProcState as S
from .sysapi import describe_status, exit_code

log = logging.getLogger("cluster_init")


@dataclasses.dataclass(frozen=True)
class Timing:
    """The delays and limits of the process machine (cltab settings)."""

    term_delay: float = 5.0
    kill_delay: float = 10.0
    respawn_limit: int = 5
    respawn_window: float = 1.0
    respawn_hold: float = 60.0

    @classmethod
    def from_cltab(cls, cltab):
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: cltab.setting(name) for name in names})


@dataclasses.dataclass
class Context:
    """What a process machine needs from outside: the seam, the index, the settings.

    ``directory`` is where children run (None: the daemon's own working
    directory) and ``output`` the template of the file their stdout and
    stderr go to (None: the daemon's own), see ``output_path``.
    """

    system: object
    registry: object
    timing: Timing = Timing()
    environ: dict = dataclasses.field(default_factory=dict)
    directory: str = None
    output: str = None
    daemon_id: str = None  # the CLINIT_DAEMON mark of our children
    kill_mode: str = "group"
    history: dict = dataclasses.field(default_factory=dict)  # (group, tag) -> History


class History:
    """What the daemon remembers of an entry across its machines: starts and last exit."""

    __slots__ = ("starts", "status")

    def __init__(self):
        self.starts = 0
        self.status = None  # wait status of the last exit, or None


class Adoption:
    """What a new daemon found of an entry its predecessor ran, or decided for it.

    ``leader`` is the entry's leader (its shell) if it still runs, else
    None; ``pids`` every process of the entry that still runs (watched
    through pidfds), ``pgids`` their process groups, ``verdict`` the event
    that names the state to take (ADOPTED_RUNNING, ADOPTED_DONE, ...).
    """

    __slots__ = ("leader", "pids", "pgids", "verdict", "level")

    def __init__(self, verdict, level, leader=None, pids=(), pgids=()):
        self.verdict, self.level, self.leader = verdict, level, leader
        self.pids, self.pgids = tuple(pids), set(pgids)


KILL_AGAIN = 1.0  # seconds between SIGKILLs while processes are left


def _file_name(name):
    """``name`` as one path component: no slash, and neither "." nor ".."."""
    name = name.replace("/", "_")
    return name.replace(".", "_") if name in (".", "..") else name


def output_path(template, entry):
    """The output file of ``entry``: ``%g`` is its group, ``%t`` its tag, ``%%`` a %.

    A slash in a group or tag becomes ``_``, and so does each dot of a
    name that is "." or "..", so that a name never reaches into another
    directory.
    """
    if template is None:
        return None
    names = {"g": _file_name(entry.group), "t": _file_name(entry.tag), "%": "%"}
    out = []
    i = 0
    while i < len(template):
        char = template[i]
        if char == "%" and i + 1 < len(template) and template[i + 1] in names:
            out.append(names[template[i + 1]])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


# A process whose group must wait for it before starting the next entry.
FOREGROUND_STATES = frozenset(
    {S.SETUP, S.RUNFG, S.RUNNING, S.RUNTEST, S.TESTING, S.STOPPING, S.LINGERING}
)
RAN_STATES = frozenset({S.DONE, S.PASS, S.FAIL})
_MODE_VERDICTS = {"wait": E.WAIT, "once": E.ONCE, "respawn": E.RESPAWN, "test": E.TEST, "off": E.OFF}


class Process(Machine):
    """One cltab entry's process.  See the module docstring."""

    INITIAL = S.CONFIGURED

    def __init__(self, entry, context, on_change=None):
        super().__init__()
        self.entry = entry
        self.ctx = context
        self.on_change = on_change
        self.pid = None
        self.status = None  # wait status of the last exit
        self.level = None  # level the group was told when it started us
        self.deadline = None  # when TIMEOUT is due, on the System's clock
        self.exec_failed = False
        self.last_start = None
        self.rapid_restarts = 0
        self.starts = 0  # how many times the command was started
        self.since = context.system.now()  # when the machine entered its state
        self.pgids = set()  # process groups we started that may still have processes
        self.watches = {}  # pid -> pidfd, for adopted processes
        self.adopted = False
        self.failure = None  # why the last start failed
        self.restarting = False  # stopping to start again (clinit -r)
        self.history = context.history.setdefault((entry.group, entry.tag), History())
        self._signals_left = ()
        self._escapees = ()  # marked processes outside our groups (kill_mode all)
        self._kill_warned = False
        context.registry.add(self)

    # what the group, the reaper and the clock call
    def start(self, level=None):
        self.post(E.START, level)

    def stop(self):
        self.post(E.STOP)

    def exited(self, pid, status):
        if pid == self.pid:
            self.post(E.EXITED, status)

    def members_changed(self):
        """A process that was not a leader exited: while lingering, look again."""
        if self.state is S.LINGERING:
            self.post(E.REAPED)

    def adopt(self, adoption):
        """Take over processes a dead predecessor left (or restore a state it had)."""
        self.post(E.ADOPT, adoption)

    def restart(self):
        """Stop gracefully and start again at the same level, clearing a respawn hold-back."""
        self.post(E.RESTART)

    @property
    def held_back_for(self):
        """Seconds left of a respawn hold-back, or None."""
        if self.state is S.PAUSING and self.deadline is not None:
            return max(0.0, self.deadline - self.ctx.system.now())
        return None

    def fork(self):
        """The registry's turn for us: start the child; STARTED or EXEC_FAILED follows."""
        env = dict(self.ctx.environ)
        env.update(
            CLINIT_GROUP=self.entry.group,
            CLINIT_TAG=self.entry.tag,
            CLINIT_LEVEL=self.level if self.level is not None else "",
        )
        try:
            pid = self.ctx.system.spawn(
                self.entry.command,
                env,
                directory=self.ctx.directory,
                output=output_path(self.ctx.output, self.entry),
            )
        except SpawnError as error:
            log.error("%s: cannot start: %s", self.describe(), error)
            self.failure = str(error)
            self.exec_failed = True
            self.post(E.EXEC_FAILED)
            return
        if self.pgids:
            self.pgids = {pgid for pgid in self.pgids if self._group_left(pgid)}
        self.pid = pid
        self.pgids.add(pid)  # the child leads its own session and process group
        self.last_start = self.ctx.system.now()
        self.starts += 1
        self.history.starts += 1
        self.exec_failed = False
        self.failure = None
        self.ctx.registry.watch(pid, self)
        log.info("%s: started pid %d: %s", self.describe(), pid, self.entry.command)
        self.post(E.STARTED)

    def timeout(self):
        self.deadline = None
        self.post(E.TIMEOUT)

    @property
    def ran(self):
        """True once the entry has run for the level: DONE, PASS or FAIL."""
        return self.state in RAN_STATES

    @property
    def busy(self):
        """True while the group must wait for this process."""
        return self.state in FOREGROUND_STATES

    def describe(self):
        return f"{self.entry.group}:{self.entry.tag}"

    def changed(self, old):
        self.since = self.ctx.system.now()
        log.debug("%s: %s -> %s", self.describe(), old, self.state)

    def settled(self):
        if self.on_change is not None:
            self.on_change(self)

    # actions
    def _check_mode(self, level):
        if level is not None:
            self.level = level
        return _MODE_VERDICTS[self.entry.mode]

    def _exec(self, _arg):
        """Ask for the spawn: at once, or in the loop's next batch (see Registry)."""
        self.ctx.registry.want_spawn(self)

    def _record_exit(self, status):
        self.status = status
        self.history.status = status
        if status is None:
            log.info("%s: pid %d exited (result unknown after adoption)", self.describe(), self.pid)
        elif exit_code(status) != 0 and self.entry.mode in ("wait", "once") and self.state is not S.STOPPING:
            log.warning("%s: pid %d exited (%s)", self.describe(), self.pid, describe_status(status))
        else:
            log.info("%s: pid %d exited (%s)", self.describe(), self.pid, describe_status(status))
        self.pid = None

    def _exited_check_mode(self, status):
        self._record_exit(status)
        return self._check_mode(None)

    def _exited_check_rc(self, status):
        self._record_exit(status)
        if status is None:
            log.warning("%s: test failed: its result is unknown after adoption", self.describe())
            return E.RC_NONZERO
        return E.RC_ZERO if exit_code(status) == 0 else E.RC_NONZERO

    def _check_rate(self, _arg):
        timing = self.ctx.timing
        now = self.ctx.system.now()
        if self.last_start is not None and now - self.last_start < timing.respawn_window:
            self.rapid_restarts += 1
        else:
            self.rapid_restarts = 0
        if self.rapid_restarts > timing.respawn_limit:
            self.rapid_restarts = 0
            self.deadline = now + timing.respawn_hold
            log.warning(
                "%s respawning too rapidly: holding back %g seconds",
                self.describe(),
                timing.respawn_hold,
            )
            return E.TOO_RAPID
        return E.CONTINUE

    def _failed_check_mode(self, _arg):
        return E.RETRY if self.entry.mode == "respawn" else E.GIVE_UP

    def _hold_back(self, _arg):
        hold = self.ctx.timing.respawn_hold
        self.deadline = self.ctx.system.now() + hold
        log.warning("%s: trying again in %g seconds", self.describe(), hold)

    def _group_left(self, pgid):
        """True while process group ``pgid`` still has processes of ours."""
        system = self.ctx.system
        if pgid == self.pid or self.ctx.daemon_id is None:
            return system.group_alive(pgid)  # its leader is ours until reaped: the number is ours
        return system.group_is_ours(pgid, self.ctx.daemon_id, self.entry.group, self.entry.tag)

    def _processes_left(self):
        """True while any process of ours is left (and forget the groups that are not ours)."""
        system = self.ctx.system
        self.pgids = {pgid for pgid in self.pgids if self._group_left(pgid)}
        self._escapees = ()
        if self.ctx.kill_mode == "all" and self.ctx.daemon_id is not None:
            self._escapees = system.marked(self.ctx.daemon_id, self.entry.group, self.entry.tag)
        return bool(self.pgids or self._escapees)

    def _begin_stop(self, _arg):
        self.deadline = None
        if self.ctx.registry.cancel_spawn(self):
            return E.ALL_GONE  # never started
        timing = self.ctx.timing
        self._signals_left = (
            (signal.SIGINT, timing.term_delay),
            (signal.SIGTERM, timing.kill_delay),
            (signal.SIGKILL, KILL_AGAIN),
        )
        self._kill_warned = False
        if self.pid is not None:
            self.pgids.add(self.pid)  # a leader leads its own process group
        if not self._processes_left() and self.pid is None:
            return E.ALL_GONE
        self._signal_next(None)
        return None if self.pid is not None else E.MEMBERS_LEFT

    def _signal_next(self, _arg):
        if self.pid is None and not self._processes_left():
            return E.ALL_GONE
        if not self._signals_left:  # SIGKILL was sent and something is still there
            if not self._kill_warned:
                log.warning("%s: processes left after SIGKILL; sending it again every %g s", self.describe(), KILL_AGAIN)
                self._kill_warned = True
            self._signals_left = ((signal.SIGKILL, KILL_AGAIN),)
        (signum, wait), self._signals_left = self._signals_left[0], self._signals_left[1:]
        system = self.ctx.system
        if self.pid is not None:
            log.info("%s: stopping pid %d with %s", self.describe(), self.pid, signum.name)
        else:
            log.info(
                "%s: stopping what its leader left (process groups %s%s) with %s",
                self.describe(),
                " ".join(str(pgid) for pgid in sorted(self.pgids)) or "-",
                f", marked pids {' '.join(map(str, self._escapees))}" if self._escapees else "",
                signum.name,
            )
        for pgid in sorted(self.pgids):
            system.signal_group(pgid, signum)
        for pid in self._escapees:
            system.signal_process(pid, signum)
        self.deadline = system.now() + wait
        return None

    def _leader_exited(self, status):
        self._record_exit(status)
        return E.MEMBERS_LEFT if self._processes_left() else E.ALL_GONE

    def _check_left(self, _arg):
        return None if self._processes_left() else E.ALL_GONE

    def _stopped(self, _arg):
        self.deadline = None
        self._signals_left = ()
        self.pgids.clear()
        if self.restarting:
            return self._restart_now(None)
        return None

    def _begin_restart(self, _arg):
        self.restarting = True
        log.info("%s: restarting", self.describe())
        return self._begin_stop(None)

    def _cancel_restart(self, _arg):
        self.restarting = False  # a stop wins over a restart under way

    def _restart_later(self, _arg):
        self.restarting = True  # once stopped

    def _restart_now(self, _arg):
        self.restarting = False
        self.rapid_restarts = 0
        return E.START

    def _adopt(self, adoption):
        self.adopted = True
        self.level = adoption.level
        self.pgids = set(adoption.pgids)
        registry = self.ctx.registry
        for pid in adoption.pids:
            try:
                watch = self.ctx.system.watch_process(pid)
            except ProcessLookupError:
                continue  # gone meanwhile: the group check finds out
            if watch is None:
                continue  # no pidfds: the stop finds out by its deadlines
            self.watches[pid] = watch
            registry.watch_descriptor(watch, self, lambda pid=pid: self._watched_exit(pid))
            if pid == adoption.leader:
                self.pid = pid
                registry.watch(pid, self)
        if adoption.leader is not None and self.pid is None and adoption.verdict in (
            E.ADOPTED_RUNNING,
            E.ADOPTED_RUNTEST,
        ):
            return E.ADOPTED_DONE  # its leader cannot be watched: count it as done
        return adoption.verdict

    def _watched_exit(self, pid):
        """An adopted process exited (its pidfd is readable)."""
        watch = self.watches.pop(pid, None)
        if watch is not None:
            self.ctx.registry.forget_descriptor(watch)
            self.ctx.system.unwatch_process(watch)
        if pid == self.pid:
            self.ctx.registry.unwatch(pid)
            self.exited(pid, None)
        else:
            self.members_changed()


# The whole machine.  Rows marked (+) are ours, not the Perl diagram's:
# explicit no-ops where the Perl one logged a stray event, the respawn
# hold-back ending on our own clock's TIMEOUT, LINGERING (the Perl one
# gave up once the leader exited, and left the rest of its process group
# running), and adoption.
Process.TABLE = {
    (S.CONFIGURED, E.START): (S.SETUP, Process._check_mode),
    (S.CONFIGURED, E.STOP): (S.CONFIGURED, None),  # (+) halting a stopped entry
    (S.SETUP, E.WAIT): (S.RUNFG, Process._exec),
    (S.SETUP, E.TEST): (S.RUNTEST, Process._exec),
    (S.SETUP, E.RESPAWN): (S.RUNBG, Process._exec),
    (S.SETUP, E.ONCE): (S.RUNBG, Process._exec),
    (S.SETUP, E.OFF): (S.CONFIGURED, None),
    (S.SETUP, E.STOP): (S.CONFIGURED, None),
    (S.RUNFG, E.STARTED): (S.RUNNING, None),
    (S.RUNFG, E.EXITED): (S.DONE, Process._exited_check_mode),
    (S.RUNFG, E.EXEC_FAILED): (S.CONFIGURED, None),
    (S.RUNFG, E.STOP): (S.STOPPING, Process._begin_stop),
    (S.RUNTEST, E.STARTED): (S.RUNTEST, None),
    (S.RUNTEST, E.EXITED): (S.TESTING, Process._exited_check_rc),
    (S.RUNTEST, E.EXEC_FAILED): (S.CONFIGURED, None),
    (S.RUNTEST, E.STOP): (S.STOPPING, Process._begin_stop),
    (S.RUNBG, E.STARTED): (S.DONE, None),
    (S.RUNBG, E.EXITED): (S.DONE, Process._exited_check_mode),
    (S.RUNBG, E.EXEC_FAILED): (S.RUNBG, Process._failed_check_mode),  # (+) Perl: CONFIGURED
    (S.RUNBG, E.GIVE_UP): (S.CONFIGURED, None),
    (S.RUNBG, E.RETRY): (S.PAUSING, Process._hold_back),  # (+) a respawn entry keeps trying
    (S.RUNBG, E.STOP): (S.STOPPING, Process._begin_stop),
    (S.RUNNING, E.EXITED): (S.DONE, Process._exited_check_mode),
    (S.RUNNING, E.STOP): (S.STOPPING, Process._begin_stop),
    (S.DONE, E.EXITED): (S.DONE, Process._exited_check_mode),
    (S.DONE, E.WAIT): (S.DONE, None),
    (S.DONE, E.ONCE): (S.DONE, None),
    (S.DONE, E.RESPAWN): (S.PAUSING, Process._check_rate),
    (S.DONE, E.OFF): (S.STOPPING, Process._begin_stop),
    (S.DONE, E.STOP): (S.STOPPING, Process._begin_stop),
    (S.PAUSING, E.CONTINUE): (S.RUNBG, Process._exec),
    (S.PAUSING, E.TOO_RAPID): (S.PAUSING, None),
    (S.PAUSING, E.TIMEOUT): (S.RUNBG, Process._exec),  # (+) the hold-back is over
    (S.PAUSING, E.STOP): (S.STOPPING, Process._begin_stop),
    (S.STOPPING, E.TIMEOUT): (S.STOPPING, Process._signal_next),
    (S.STOPPING, E.EXITED): (S.STOPPING, Process._leader_exited),
    (S.STOPPING, E.ALL_GONE): (S.CONFIGURED, Process._stopped),
    (S.STOPPING, E.MEMBERS_LEFT): (S.LINGERING, None),  # (+) the leader is gone, not its group
    (S.STOPPING, E.STOP): (S.STOPPING, Process._cancel_restart),  # (+) already stopping
    (S.LINGERING, E.TIMEOUT): (S.LINGERING, Process._signal_next),  # (+)
    (S.LINGERING, E.REAPED): (S.LINGERING, Process._check_left),  # (+)
    (S.LINGERING, E.ALL_GONE): (S.CONFIGURED, Process._stopped),  # (+)
    (S.LINGERING, E.STOP): (S.LINGERING, Process._cancel_restart),  # (+)
    (S.TESTING, E.RC_ZERO): (S.PASS, None),
    (S.TESTING, E.RC_NONZERO): (S.FAIL, None),
    (S.TESTING, E.STOP): (S.CONFIGURED, None),
    (S.PASS, E.START): (S.SETUP, Process._check_mode),
    (S.PASS, E.STOP): (S.STOPPING, Process._begin_stop),  # (+) what a test left behind stops too
    (S.FAIL, E.START): (S.SETUP, Process._check_mode),
    (S.FAIL, E.STOP): (S.STOPPING, Process._begin_stop),  # (+)
    # (+) adoption: a new daemon takes over what its dead predecessor left
    (S.CONFIGURED, E.ADOPT): (S.SETUP, Process._adopt),
    (S.SETUP, E.ADOPTED_RUNNING): (S.RUNNING, None),
    (S.SETUP, E.ADOPTED_RUNTEST): (S.RUNTEST, None),
    (S.SETUP, E.ADOPTED_DONE): (S.DONE, None),
    (S.SETUP, E.ADOPTED_PASS): (S.PASS, None),
    (S.SETUP, E.ADOPTED_FAIL): (S.FAIL, None),
    # (+) clinit -r: stop gracefully, then start again at the same level
    (S.RUNFG, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.RUNNING, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.RUNTEST, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.RUNBG, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.DONE, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.PAUSING, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.PASS, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.FAIL, E.RESTART): (S.STOPPING, Process._begin_restart),
    (S.STOPPING, E.RESTART): (S.STOPPING, Process._restart_later),
    (S.LINGERING, E.RESTART): (S.LINGERING, Process._restart_later),
    (S.CONFIGURED, E.RESTART): (S.CONFIGURED, Process._restart_now),
}
