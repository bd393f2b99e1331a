"""The states and events of clinit's machines, as enums.

This module depends on nothing.  The state names are the Perl
Cluster::Init ones: the group states appear in clstat, and scripts
match on them, so a state's value is its name, upper case.
"""

import enum


class _Named(enum.Enum):
    """An enum whose value is its own name (what clstat and logs show)."""

    @staticmethod
    def _generate_next_value_(name, start, count, last_values):
        return name

    def __str__(self):
        return self.value


class ProcState(_Named):
    """The states of one cltab entry's process."""

    CONFIGURED = enum.auto()  # not running, ready to start
    SETUP = enum.auto()  # started; choosing what to do by mode
    RUNFG = enum.auto()  # wait mode: being started in the foreground
    RUNBG = enum.auto()  # once/respawn mode: being started in the background (respawn: up < start_seconds)
    RUNNING = enum.auto()  # wait mode: running, the group waits for it
    RUNTEST = enum.auto()  # test mode: running
    TESTING = enum.auto()  # test mode: exited, checking the exit status
    DONE = enum.auto()  # wait: exited; once: started; respawn: up start_seconds
    PASS = enum.auto()  # test mode: exited 0
    FAIL = enum.auto()  # test mode: exited non-zero (or could not start)
    PAUSING = enum.auto()  # respawn mode: between an exit and the next start
    STOPPING = enum.auto()  # being stopped: SIGINT, SIGTERM, SIGKILL
    LINGERING = enum.auto()  # being stopped: the leader is gone, other processes of its group are not


class ProcEvent(_Named):
    """What can happen to one entry's process.

    START and STOP come from the group, EXITED from the reaper and
    TIMEOUT from the clock; the others are the verdicts the machine's
    own actions return (the Perl machine's internal events).
    """

    START = enum.auto()
    STOP = enum.auto()
    EXITED = enum.auto()
    TIMEOUT = enum.auto()
    REAPED = enum.auto()  # a process that was not a leader exited
    ADOPT = enum.auto()  # a new daemon takes over what its predecessor left
    RESTART = enum.auto()  # stop gracefully and start again (clinit -r)
    HAND_STOP = enum.auto()  # stop gracefully and stay stopped (clinit --stop)
    HAND_START = enum.auto()  # start one entry of the group's level again (clinit --start)
    # verdicts of "check mode"
    WAIT = enum.auto()
    ONCE = enum.auto()
    RESPAWN = enum.auto()
    TEST = enum.auto()
    OFF = enum.auto()
    # verdicts of "exec"
    STARTED = enum.auto()
    EXEC_FAILED = enum.auto()
    UP = enum.auto()  # started, for good: once at once, respawn after start_seconds
    # verdicts of "check exit status"
    RC_ZERO = enum.auto()
    RC_NONZERO = enum.auto()
    # verdicts of "check respawn rate"
    CONTINUE = enum.auto()
    TOO_RAPID = enum.auto()
    # verdicts of "a start failed: check mode"
    GIVE_UP = enum.auto()
    RETRY = enum.auto()
    # verdicts of "stop" and "check what is left"
    ALL_GONE = enum.auto()
    MEMBERS_REMAIN = enum.auto()
    # verdicts of "adopt"
    ADOPTED_RUNNING = enum.auto()
    ADOPTED_RUNTEST = enum.auto()
    ADOPTED_DONE = enum.auto()
    ADOPTED_PASS = enum.auto()
    ADOPTED_FAIL = enum.auto()
    ADOPTED_PAUSING = enum.auto()  # a handover: a respawn entry between two starts, or held back
    ADOPTED_IDLE = enum.auto()  # a handover: not running (off, or its start failed)
    ADOPTED_RUNBG = enum.auto()  # a handover: a respawn entry started, not up start_seconds yet


class GroupState(_Named):
    """The states of one resource group, as clstat shows them."""

    CONFIGURED = enum.auto()  # nothing running; never told, or halted
    STARTING = enum.auto()  # starting the level's entries in file order
    CHECKING = enum.auto()  # all started; waiting for them to settle
    DONE = enum.auto()  # the level's entries all ran
    PASSED = enum.auto()  # the level's entries were all tests, and all passed
    FAILED = enum.auto()  # a test failed, or an entry could not start
    STOPPING = enum.auto()  # stopping the entries that are not in the new level
    DUMPING = enum.auto()  # forgetting stopped, removed and changed entries
    HALTING = enum.auto()  # stopping every entry of the group


class GroupEvent(_Named):
    """What can happen to a resource group.

    TELL and HALT come from the daemon, PROC from one of the group's
    processes (it changed state); the others are verdicts of the
    group's own actions.
    """

    TELL = enum.auto()
    HALT = enum.auto()
    PROC = enum.auto()
    RESTORE = enum.auto()  # a new daemon takes over what its dead predecessor left
    RESUME = enum.auto()  # the daemon re-executed itself (a handover): the group as it was
    STOP_ENTRY = enum.auto()  # stop one entry by hand (clinit --stop)
    START_ENTRY = enum.auto()  # start one entry by hand (clinit --start)
    ALL_STARTED = enum.auto()
    ALL_DONE = enum.auto()
    ALL_PASSED = enum.auto()
    ANY_FAILED = enum.auto()
    OLD_STOPPED = enum.auto()
    CLEAN = enum.auto()
    ALL_HALTED = enum.auto()


# ---- sets of states: what the machines, the planner and the daemon ask of a state ----

FOREGROUND_PROC_STATES = frozenset(
    {
        ProcState.SETUP,
        ProcState.RUNFG,
        ProcState.RUNNING,
        ProcState.RUNTEST,
        ProcState.TESTING,
        ProcState.STOPPING,
        ProcState.LINGERING,
    }
)
"""A process whose group must wait for it before starting the next entry (``Process.busy``)."""

RAN_PROC_STATES = frozenset({ProcState.DONE, ProcState.PASS, ProcState.FAIL})
"""A process that has run for its level (``Process.ran``)."""

STARTING_PROC_STATES = frozenset({ProcState.SETUP, ProcState.RUNBG})
"""A process being started: its group waits for it before it settles."""

DONE_PROC_STATES = frozenset({ProcState.DONE, ProcState.PASS, ProcState.PAUSING})
"""A process that lets its group settle DONE (a respawn held back counts as done)."""

CARRIED_PROC_STATES = frozenset(
    {
        ProcState.CONFIGURED,
        ProcState.DONE,
        ProcState.PASS,
        ProcState.FAIL,
        ProcState.PAUSING,
        ProcState.RUNNING,
        ProcState.RUNTEST,
        ProcState.RUNBG,  # started, waiting to be up start_seconds (Node.unrest: not a start asked for)
    }
)
"""A process a handover carries over as it is: nothing of it is being started or stopped."""

SETTLED_GROUP_STATES = frozenset({GroupState.DONE, GroupState.PASSED, GroupState.FAILED})
"""A group that has settled at its level: ``clinit -w`` answers."""

AT_REST_GROUP_STATES = SETTLED_GROUP_STATES | {GroupState.CONFIGURED}
"""A group with no transition under way: a new cltab's entries apply at once."""

STARTING_GROUP_STATES = frozenset({GroupState.STARTING, GroupState.CHECKING})
"""A group on its way up to its level."""
