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

Stopping signals the whole process group SIGINT, then SIGTERM
``term_delay`` seconds later, then SIGKILL ``kill_delay`` seconds after
that, until the process has exited.  All waiting is by deadlines on the
System's clock; the machine never sleeps and never calls ``os``.
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


def output_path(template, entry):
    """The output file of ``entry``: ``%g`` is its group, ``%t`` its tag, ``%%`` a %.

    A slash in a group or tag becomes ``_``, so that a name never
    reaches into another directory.
    """
    if template is None:
        return None
    names = {"g": entry.group.replace("/", "_"), "t": entry.tag.replace("/", "_"), "%": "%"}
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
FOREGROUND_STATES = frozenset({S.SETUP, S.RUNFG, S.RUNNING, S.RUNTEST, S.TESTING, S.STOPPING})
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
        self._signals_left = ()
        context.registry.add(self)

    # what the group, the reaper and the clock call
    def start(self, level=None):
        self.post(E.START, level)

    def stop(self):
        self.post(E.STOP)

    def exited(self, pid, status):
        if pid == self.pid:
            self.post(E.EXITED, status)

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
            self.exec_failed = True
            self.post(E.EXEC_FAILED)
            return
        self.pid = pid
        self.last_start = self.ctx.system.now()
        self.starts += 1
        self.exec_failed = False
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
        log.info("%s: pid %d exited (%s)", self.describe(), self.pid, describe_status(status))
        self.pid = None

    def _exited_check_mode(self, status):
        self._record_exit(status)
        return self._check_mode(None)

    def _exited_check_rc(self, status):
        self._record_exit(status)
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

    def _begin_stop(self, _arg):
        self.deadline = None
        if self.ctx.registry.cancel_spawn(self) or self.pid is None:
            return E.EXITED  # never forked, or nothing left running
        timing = self.ctx.timing
        self._signals_left = (
            (signal.SIGINT, timing.term_delay),
            (signal.SIGTERM, timing.kill_delay),
            (signal.SIGKILL, None),
        )
        return self._signal_next(None)

    def _signal_next(self, _arg):
        if not self._signals_left or self.pid is None:
            return None
        (signum, wait), self._signals_left = self._signals_left[0], self._signals_left[1:]
        log.info("%s: stopping pid %d with %s", self.describe(), self.pid, signum.name)
        self.ctx.system.signal_group(self.pid, signum)
        self.deadline = None if wait is None else self.ctx.system.now() + wait
        return None

    def _stopped(self, status):
        self.deadline = None
        self._signals_left = ()
        if status is not None:
            self._record_exit(status)


# The whole machine.  Rows marked (+) are ours, not the Perl diagram's:
# explicit no-ops where the Perl one logged a stray event, and the
# respawn hold-back ending on our own clock's TIMEOUT.
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
    (S.RUNBG, E.EXEC_FAILED): (S.CONFIGURED, None),
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
    (S.STOPPING, E.EXITED): (S.CONFIGURED, Process._stopped),
    (S.STOPPING, E.STOP): (S.STOPPING, None),  # (+) already stopping
    (S.TESTING, E.RC_ZERO): (S.PASS, None),
    (S.TESTING, E.RC_NONZERO): (S.FAIL, None),
    (S.TESTING, E.STOP): (S.CONFIGURED, None),
    (S.PASS, E.START): (S.SETUP, Process._check_mode),
    (S.PASS, E.STOP): (S.CONFIGURED, None),
    (S.FAIL, E.START): (S.SETUP, Process._check_mode),
    (S.FAIL, E.STOP): (S.CONFIGURED, None),
}
