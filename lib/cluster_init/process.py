"""The machine for one cltab entry: starts, watches and stops its process.

Behaviour by mode:

* ``wait``: runs in the foreground; DONE when the command has exited.
* ``once``: runs in the background; DONE as soon as it has started.
* ``respawn``: started again whenever it exits; DONE once it has stayed
  up ``start_seconds`` (at once when 0, as the Perl clinit did); the
  respawn guard and the crash loop are crashloop.py's.
* ``test``: runs in the foreground; PASS on exit status 0, else FAIL.
* ``off``: never runs.

Stopping reaches every process the entry left, not only its leader (the
shell the daemon started): SIGINT, then SIGTERM ``term_delay`` seconds
later, then SIGKILL ``kill_delay`` seconds after that, until none
remains, or SIGKILL has failed for KILL_REPEATS seconds (remains.py).
LINGERING is that state: the leader is gone, members of its process
groups remain.  All waiting is by deadlines on the System's clock; the
machine never sleeps and never calls ``os``.  The registry starts the
command (``spawn_request``, then ``spawned`` or ``spawn_failed``) and
hands it every exit (``exited``, ``members_changed``).

A daemon that starts where its predecessor died adopts the processes it
left (``adopt``, an adopt.Adoption); the registry watches their pidfds
(they are not our children), so their exit status cannot be known: an
adopted ``test`` that exits FAILs ("result unknown after adoption"), an
adopted ``wait`` is done.  After a handover (the daemon re-executed
itself) an Adoption carries the machine's own state, times and counts.
adoption.py has the machine's side of both (``adopt``, ``_adopt``).
"""

import logging

from .adoption import Adopting
from .byhand import HAND_ROWS, HandControl
from .crashloop import RespawnActions, Respawns
from .machine import Machine
from .remains import Remains
from .states import FOREGROUND_PROC_STATES, RAN_PROC_STATES, ProcEvent, ProcState
from .waitstatus import describe_status, exit_code

log = logging.getLogger("cluster_init")

_MODE_VERDICTS = {mode: ProcEvent[mode.upper()] for mode in ("wait", "once", "respawn", "test", "off")}


class Process(Adopting, HandControl, RespawnActions, Machine):
    """One cltab entry's process.  See the module docstring (crashloop.py has the
    actions of a respawn entry's starts and exits, and ``trouble``; byhand.py those
    of a stop and a start by hand)."""

    INITIAL = ProcState.CONFIGURED

    def __init__(self, entry, context, on_change=None):
        super().__init__()
        self.entry = entry
        self.ctx = context
        self.on_change = on_change
        self.pid = None
        self.level = None  # level the group was told when it started us
        self.deadline = None  # when TIMEOUT is due, on the System's clock
        self.respawns = Respawns(context, entry)  # starts and exits: the guard, the crash loop
        self.since = context.system.now()  # when the machine entered its state
        self.remains = Remains(entry.group, entry.tag, context)  # what a stop must reach
        self.adopted = False
        self.failure = None  # why the last start failed
        self.restarting = False  # stopping to start again (clinit -r)
        self._since = None  # a handover: when it entered the state it takes
        self.history = context.history_of(entry)  # starts and last exit, across machines
        context.registry.add(self)

    # what the group, the registry and the clock call
    def start(self, level=None):
        self.post(ProcEvent.START, level)

    def stop(self):
        self.post(ProcEvent.STOP)

    def exited(self, pid, status):
        """``pid`` exited with wait status ``status`` (None: unknown, it was adopted)."""
        if pid == self.pid:
            self.post(ProcEvent.EXITED, status)

    def members_changed(self):
        """A process that was not a leader exited: while lingering, look again."""
        if self.state is ProcState.LINGERING:
            self.post(ProcEvent.REAPED)

    def restart(self):
        """Stop gracefully and start again at the same level, clearing a respawn hold-back."""
        self.post(ProcEvent.RESTART)

    def timeout(self):
        self.deadline = None
        self.post(ProcEvent.TIMEOUT)

    def renew(self, entry):
        """Run on under ``entry``, a newer cltab's entry for the same process (levels may differ)."""
        self.entry = entry

    def spawn_request(self):
        """What the registry is to start for us: ``System.spawn``'s keyword arguments."""
        return self.ctx.spawn_arguments(self.entry, self.level)

    def spawned(self, pid):
        """The registry started our command as ``pid``: STARTED follows."""
        self.remains.new_leader(pid)
        self.pid = pid
        self.respawns.started()
        self.history.starts += 1
        self.failure = None
        log.info("%s: started pid %d: %s", self.describe(), pid, self.entry.command)
        self.post(ProcEvent.STARTED)

    def spawn_failed(self, error):
        """The registry could not start our command (a SpawnError): EXEC_FAILED follows."""
        log.error("%s: cannot start: %s", self.describe(), error)
        self.failure = str(error)
        self.post(ProcEvent.EXEC_FAILED)

    # what the group, the listing and the daemon ask
    @property
    def exec_failed(self):
        """True when the last start failed (``failure`` says why)."""
        return self.failure is not None

    @property
    def held_back_for(self):
        """Seconds left of a respawn hold-back, or None."""
        if self.state is ProcState.PAUSING and self.deadline is not None:
            return max(0.0, self.deadline - self.ctx.system.now())
        return None

    @property
    def ran(self):
        """True once the entry has run for the level: DONE, PASS or FAIL."""
        return self.state in RAN_PROC_STATES

    @property
    def busy(self):
        """True while the group must wait for this process."""
        return self.state in FOREGROUND_PROC_STATES

    def describe(self):
        return f"{self.entry.group}:{self.entry.tag}"

    def changed(self, old):
        self.since = self.ctx.system.now()
        log.debug("%s: %s -> %s", self.describe(), old, self.state)

    def settled(self):
        if self._since is not None:
            self.since, self._since = self._since, None
        if self.on_change is not None:
            self.on_change(self)

    # actions
    def _check_mode(self, level):
        self.stopped_by_hand = False  # any start ends a stop by hand (byhand.py)
        if level is not None:
            self.level = level
        return _MODE_VERDICTS[self.entry.mode]

    def _exec(self, _arg):
        """Ask for the spawn: at once, or in the loop's next batch (see Registry)."""
        self.ctx.registry.want_spawn(self)

    def _record_exit(self, status):
        self.history.status = status
        self.history.exited_at = self.ctx.system.now()
        if status is None:
            log.info("%s: pid %d exited (result unknown after adoption)", self.describe(), self.pid)
        elif exit_code(status) != 0 and self.entry.mode in ("wait", "once") and self.state is not ProcState.STOPPING:
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
            return ProcEvent.RC_NONZERO
        return ProcEvent.RC_ZERO if exit_code(status) == 0 else ProcEvent.RC_NONZERO

    def _failed_check_mode(self, _arg):
        return ProcEvent.RETRY if self.entry.mode == "respawn" else ProcEvent.GIVE_UP

    def _hold_back(self, _arg):
        hold = self.ctx.timing.respawn_hold
        self.deadline = self.ctx.system.now() + hold
        log.warning("%s: trying again in %g seconds", self.describe(), hold)

    def _begin_stop(self, _arg):
        self.deadline = None
        if self.ctx.registry.cancel_spawn(self):
            return ProcEvent.ALL_GONE  # never started
        self.remains.begin_stop(self.pid)
        if not self.remains.any(self.pid) and self.pid is None:
            return ProcEvent.ALL_GONE
        self._signal_next(None)
        return None if self.pid is not None else ProcEvent.MEMBERS_REMAIN

    def _signal_next(self, _arg):
        if self.pid is None and not self.remains.any(None):
            return ProcEvent.ALL_GONE
        wait = self.remains.signal_next(self.describe(), self.pid)
        if wait is None:  # SIGKILL failed for long enough: taken as stopped (remains.py)
            self.pid = self.ctx.registry.forget_pid(self.pid, self)  # its exit will be a stray's
            return ProcEvent.ALL_GONE
        self.deadline = self.ctx.system.now() + wait
        return None

    def _leader_exited(self, status):
        self._record_exit(status)
        return ProcEvent.MEMBERS_REMAIN if self.remains.any(None) else ProcEvent.ALL_GONE

    def _check_remaining(self, _arg):
        return None if self.remains.any(None) else ProcEvent.ALL_GONE

    def _stopped(self, _arg):
        self.deadline = None
        self.remains.clear()
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
        self.respawns.forget()
        return ProcEvent.START


# The whole machine.  Rows marked (+) are ours, not the Perl diagram's:
# explicit no-ops where the Perl one logged a stray event, the respawn
# hold-back ending on our own clock's TIMEOUT, LINGERING (the Perl one
# gave up once the leader exited, and left the rest of its process group
# running), and adoption.
Process.TABLE = {
    (ProcState.CONFIGURED, ProcEvent.START): (ProcState.SETUP, Process._check_mode),
    (ProcState.CONFIGURED, ProcEvent.STOP): (ProcState.CONFIGURED, None),  # (+) halting a stopped entry
    (ProcState.SETUP, ProcEvent.WAIT): (ProcState.RUNFG, Process._exec),
    (ProcState.SETUP, ProcEvent.TEST): (ProcState.RUNTEST, Process._exec),
    (ProcState.SETUP, ProcEvent.RESPAWN): (ProcState.RUNBG, Process._exec),
    (ProcState.SETUP, ProcEvent.ONCE): (ProcState.RUNBG, Process._exec),
    (ProcState.SETUP, ProcEvent.OFF): (ProcState.CONFIGURED, None),
    (ProcState.SETUP, ProcEvent.STOP): (ProcState.CONFIGURED, None),
    (ProcState.RUNFG, ProcEvent.STARTED): (ProcState.RUNNING, None),
    (ProcState.RUNFG, ProcEvent.EXITED): (ProcState.DONE, Process._exited_check_mode),
    (ProcState.RUNFG, ProcEvent.EXEC_FAILED): (ProcState.CONFIGURED, None),
    (ProcState.RUNFG, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.RUNTEST, ProcEvent.STARTED): (ProcState.RUNTEST, None),
    (ProcState.RUNTEST, ProcEvent.EXITED): (ProcState.TESTING, Process._exited_check_rc),
    (ProcState.RUNTEST, ProcEvent.EXEC_FAILED): (ProcState.CONFIGURED, None),
    (ProcState.RUNTEST, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.RUNBG, ProcEvent.STARTED): (ProcState.RUNBG, Process._check_start),  # (+) Perl: DONE at once
    (ProcState.RUNBG, ProcEvent.UP): (ProcState.DONE, Process._up),  # (+) once, or start_seconds 0
    (ProcState.RUNBG, ProcEvent.TIMEOUT): (ProcState.DONE, Process._up),  # (+) up start_seconds
    (ProcState.RUNBG, ProcEvent.EXITED): (ProcState.DONE, Process._exited_respawning),  # a failed start
    (ProcState.RUNBG, ProcEvent.EXEC_FAILED): (ProcState.RUNBG, Process._failed_check_mode),  # (+) Perl: CONFIGURED
    (ProcState.RUNBG, ProcEvent.GIVE_UP): (ProcState.CONFIGURED, None),
    (ProcState.RUNBG, ProcEvent.RETRY): (ProcState.PAUSING, Process._hold_back),  # (+) a respawn entry keeps trying
    (ProcState.RUNBG, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.RUNNING, ProcEvent.EXITED): (ProcState.DONE, Process._exited_check_mode),
    (ProcState.RUNNING, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.DONE, ProcEvent.EXITED): (ProcState.DONE, Process._exited_by_mode),
    (ProcState.DONE, ProcEvent.TIMEOUT): (ProcState.DONE, Process._up),  # (+) a crash loop may end now
    (ProcState.DONE, ProcEvent.WAIT): (ProcState.DONE, None),
    (ProcState.DONE, ProcEvent.ONCE): (ProcState.DONE, None),
    (ProcState.DONE, ProcEvent.RESPAWN): (ProcState.PAUSING, Process._check_rate),
    (ProcState.DONE, ProcEvent.OFF): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.DONE, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.PAUSING, ProcEvent.CONTINUE): (ProcState.RUNBG, Process._exec),
    (ProcState.PAUSING, ProcEvent.TOO_RAPID): (ProcState.PAUSING, None),
    (ProcState.PAUSING, ProcEvent.TIMEOUT): (ProcState.RUNBG, Process._exec),  # (+) the hold-back is over
    (ProcState.PAUSING, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),
    (ProcState.STOPPING, ProcEvent.TIMEOUT): (ProcState.STOPPING, Process._signal_next),
    (ProcState.STOPPING, ProcEvent.EXITED): (ProcState.STOPPING, Process._leader_exited),
    (ProcState.STOPPING, ProcEvent.ALL_GONE): (ProcState.CONFIGURED, Process._stopped),
    (ProcState.STOPPING, ProcEvent.MEMBERS_REMAIN): (ProcState.LINGERING, None),  # (+) the leader is gone, not its group
    (ProcState.STOPPING, ProcEvent.STOP): (ProcState.STOPPING, Process._cancel_restart),  # (+) already stopping
    (ProcState.LINGERING, ProcEvent.TIMEOUT): (ProcState.LINGERING, Process._signal_next),  # (+)
    (ProcState.LINGERING, ProcEvent.REAPED): (ProcState.LINGERING, Process._check_remaining),  # (+)
    (ProcState.LINGERING, ProcEvent.ALL_GONE): (ProcState.CONFIGURED, Process._stopped),  # (+)
    (ProcState.LINGERING, ProcEvent.STOP): (ProcState.LINGERING, Process._cancel_restart),  # (+)
    (ProcState.TESTING, ProcEvent.RC_ZERO): (ProcState.PASS, None),
    (ProcState.TESTING, ProcEvent.RC_NONZERO): (ProcState.FAIL, None),
    (ProcState.TESTING, ProcEvent.STOP): (ProcState.CONFIGURED, None),
    (ProcState.PASS, ProcEvent.START): (ProcState.SETUP, Process._check_mode),
    (ProcState.PASS, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),  # (+) what a test left behind stops too
    (ProcState.FAIL, ProcEvent.START): (ProcState.SETUP, Process._check_mode),
    (ProcState.FAIL, ProcEvent.STOP): (ProcState.STOPPING, Process._begin_stop),  # (+)
    # (+) adoption: a new daemon takes over what its dead predecessor left
    (ProcState.CONFIGURED, ProcEvent.ADOPT): (ProcState.SETUP, Process._adopt),
    (ProcState.SETUP, ProcEvent.ADOPTED_RUNNING): (ProcState.RUNNING, None),
    (ProcState.SETUP, ProcEvent.ADOPTED_RUNTEST): (ProcState.RUNTEST, None),
    (ProcState.SETUP, ProcEvent.ADOPTED_DONE): (ProcState.DONE, None),
    (ProcState.SETUP, ProcEvent.ADOPTED_PASS): (ProcState.PASS, None),
    (ProcState.SETUP, ProcEvent.ADOPTED_FAIL): (ProcState.FAIL, None),
    (ProcState.SETUP, ProcEvent.ADOPTED_PAUSING): (ProcState.PAUSING, None),  # a handover: held back, or between starts
    (ProcState.SETUP, ProcEvent.ADOPTED_IDLE): (ProcState.CONFIGURED, None),  # a handover: off, or its start failed
    (ProcState.SETUP, ProcEvent.ADOPTED_RUNBG): (ProcState.RUNBG, None),  # a handover: not up start_seconds yet
    # (+) clinit -r: stop gracefully, then start again at the same level
    (ProcState.RUNFG, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.RUNNING, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.RUNTEST, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.RUNBG, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.DONE, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.PAUSING, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.PASS, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.FAIL, ProcEvent.RESTART): (ProcState.STOPPING, Process._begin_restart),
    (ProcState.STOPPING, ProcEvent.RESTART): (ProcState.STOPPING, Process._restart_later),
    (ProcState.LINGERING, ProcEvent.RESTART): (ProcState.LINGERING, Process._restart_later),
    (ProcState.CONFIGURED, ProcEvent.RESTART): (ProcState.CONFIGURED, Process._restart_now),
    **HAND_ROWS,  # (+) clinit --stop and --start: byhand.py
}
