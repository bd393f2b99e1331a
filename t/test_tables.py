"""The machines' tables: every transition of the Perl diagrams is there,
every state is reachable, no state is a dead end, and each renders to dot."""

import pytest

from cluster_init.group import Group
from cluster_init.machine import reachable, to_dot
from cluster_init.process import Process
from cluster_init.states import GroupEvent as GE
from cluster_init.states import GroupState as G
from cluster_init.states import ProcEvent as PE
from cluster_init.states import ProcState as P

# machines.md, Process: (state, event) -> next state.  "still running /
# signal next" is our STOPPING/TIMEOUT row.
PERL_PROCESS = {
    (P.CONFIGURED, PE.START): P.SETUP,
    (P.SETUP, PE.WAIT): P.RUNFG,
    (P.SETUP, PE.TEST): P.RUNTEST,
    (P.SETUP, PE.RESPAWN): P.RUNBG,
    (P.SETUP, PE.ONCE): P.RUNBG,
    (P.SETUP, PE.OFF): P.CONFIGURED,
    (P.SETUP, PE.STOP): P.CONFIGURED,
    (P.RUNFG, PE.STARTED): P.RUNNING,
    (P.RUNFG, PE.EXITED): P.DONE,
    (P.RUNFG, PE.EXEC_FAILED): P.CONFIGURED,
    (P.RUNFG, PE.STOP): P.STOPPING,
    (P.RUNTEST, PE.STARTED): P.RUNTEST,
    (P.RUNTEST, PE.EXITED): P.TESTING,
    (P.RUNTEST, PE.EXEC_FAILED): P.CONFIGURED,
    (P.RUNTEST, PE.STOP): P.STOPPING,
    # Perl: STARTED -> DONE.  Ours checks start_seconds first: a once entry (or any,
    # with start_seconds 0) is UP -> DONE at once, a respawn entry after start_seconds
    # (TIMEOUT -> DONE); an exit before that is a failed start (EXITED, below)
    (P.RUNBG, PE.STARTED): P.RUNBG,
    (P.RUNBG, PE.UP): P.DONE,
    (P.RUNBG, PE.TIMEOUT): P.DONE,
    (P.RUNBG, PE.EXITED): P.DONE,
    # Perl: EXEC_FAILED -> CONFIGURED.  Ours gives up (GIVE_UP -> CONFIGURED) but
    # for a respawn entry, which tries again after the hold-back (RETRY -> PAUSING)
    (P.RUNBG, PE.EXEC_FAILED): P.RUNBG,
    (P.RUNBG, PE.GIVE_UP): P.CONFIGURED,
    (P.RUNBG, PE.RETRY): P.PAUSING,
    (P.RUNBG, PE.STOP): P.STOPPING,
    (P.RUNNING, PE.EXITED): P.DONE,
    (P.RUNNING, PE.STOP): P.STOPPING,
    (P.DONE, PE.EXITED): P.DONE,
    (P.DONE, PE.WAIT): P.DONE,
    (P.DONE, PE.ONCE): P.DONE,
    (P.DONE, PE.RESPAWN): P.PAUSING,
    (P.DONE, PE.OFF): P.STOPPING,
    (P.DONE, PE.STOP): P.STOPPING,
    (P.PAUSING, PE.CONTINUE): P.RUNBG,
    (P.PAUSING, PE.TOO_RAPID): P.PAUSING,
    (P.PAUSING, PE.STOP): P.STOPPING,
    (P.STOPPING, PE.TIMEOUT): P.STOPPING,
    # Perl: EXITED -> CONFIGURED.  Ours looks first whether the leader's
    # process group has processes left: ALL_GONE -> CONFIGURED, else LINGERING
    (P.STOPPING, PE.EXITED): P.STOPPING,
    (P.STOPPING, PE.ALL_GONE): P.CONFIGURED,
    (P.STOPPING, PE.MEMBERS_REMAIN): P.LINGERING,
    (P.TESTING, PE.RC_ZERO): P.PASS,
    (P.TESTING, PE.RC_NONZERO): P.FAIL,
    (P.TESTING, PE.STOP): P.CONFIGURED,
    (P.PASS, PE.START): P.SETUP,
    (P.PASS, PE.STOP): P.STOPPING,  # Perl: CONFIGURED; ours stops what the test left running
    (P.FAIL, PE.START): P.SETUP,
    (P.FAIL, PE.STOP): P.STOPPING,  # likewise
}

# machines.md, Group.  The Perl polls ("timeout/check", "kickme") are our
# reaction to each process change (PROC); PASSED and FAILED halt through
# HALTING so that background processes of a FAILED level are stopped.
PERL_GROUP = {
    (G.CONFIGURED, GE.TELL): G.STARTING,
    (G.CONFIGURED, GE.HALT): G.CONFIGURED,
    (G.STARTING, GE.PROC): G.STARTING,
    (G.STARTING, GE.ALL_STARTED): G.CHECKING,
    (G.STARTING, GE.TELL): G.STOPPING,
    (G.STARTING, GE.HALT): G.HALTING,
    (G.CHECKING, GE.PROC): G.CHECKING,
    (G.CHECKING, GE.ALL_DONE): G.DONE,
    (G.CHECKING, GE.ALL_PASSED): G.PASSED,
    (G.CHECKING, GE.ANY_FAILED): G.FAILED,
    (G.CHECKING, GE.TELL): G.STOPPING,
    (G.CHECKING, GE.HALT): G.HALTING,
    (G.DONE, GE.TELL): G.STOPPING,
    (G.DONE, GE.HALT): G.HALTING,
    (G.PASSED, GE.TELL): G.STOPPING,
    (G.PASSED, GE.HALT): G.HALTING,  # Perl: straight to CONFIGURED
    (G.FAILED, GE.TELL): G.STOPPING,
    (G.FAILED, GE.HALT): G.HALTING,  # Perl: straight to CONFIGURED
    (G.STOPPING, GE.OLD_STOPPED): G.DUMPING,
    (G.STOPPING, GE.PROC): G.STOPPING,  # Perl: timeout/check stopped, kickme
    (G.STOPPING, GE.TELL): G.STOPPING,
    (G.STOPPING, GE.HALT): G.HALTING,
    (G.DUMPING, GE.CLEAN): G.STARTING,
    (G.DUMPING, GE.TELL): G.STOPPING,
    (G.DUMPING, GE.HALT): G.HALTING,
    (G.HALTING, GE.ALL_HALTED): G.CONFIGURED,
    (G.HALTING, GE.PROC): G.HALTING,  # Perl: timeout/check halted, kickme
    (G.HALTING, GE.HALT): G.HALTING,
    (G.HALTING, GE.TELL): G.STOPPING,
}

MACHINES = [
    ("Process", Process, P, PERL_PROCESS),
    ("Group", Group, G, PERL_GROUP),
]


@pytest.mark.parametrize("name, machine, states, perl", MACHINES)
def test_every_perl_transition_is_in_the_table(name, machine, states, perl):
    for (state, event), target in perl.items():
        assert (state, event) in machine.TABLE, f"{name}: no row for {state} {event}"
        assert machine.TABLE[(state, event)][0] is target, f"{name}: {state} {event}"


@pytest.mark.parametrize("name, machine, states, perl", MACHINES)
def test_every_state_is_reachable(name, machine, states, perl):
    assert reachable(machine.TABLE, machine.INITIAL) == set(states)


@pytest.mark.parametrize("name, machine, states, perl", MACHINES)
def test_no_state_is_a_dead_end(name, machine, states, perl):
    for state in states:
        exits = {target for (source, _), (target, _) in machine.TABLE.items() if source is state}
        assert exits - {state}, f"{name}: {state} has no way out"
        assert machine.INITIAL in reachable(machine.TABLE, state), f"{name}: {state} never returns"


@pytest.mark.parametrize("name, machine, states, perl", MACHINES)
def test_table_rows_are_well_formed(name, machine, states, perl):
    for (state, event), (target, action) in machine.TABLE.items():
        assert isinstance(state, states) and isinstance(target, states)
        assert action is None or callable(action)


@pytest.mark.parametrize("name, machine, states, perl", MACHINES)
def test_renders_to_dot(name, machine, states, perl):
    dot = to_dot(name, machine.TABLE, machine.INITIAL)
    assert dot.startswith(f"digraph {name} {{")
    assert dot.count(" -> ") == len(machine.TABLE)
    for state in states:
        assert f"  {state.value} -> " in dot
