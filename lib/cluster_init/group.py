"""The machine for one resource group: moves the group's entries to a level.

Told a level, a group

1. stops its running entries that are not in the new level, and those
   whose mode or command changed or that left the cltab (STOPPING),
   gracefully, and waits until they have exited;
2. forgets the stopped ones (DUMPING);
3. starts the level's entries in file order (STARTING): a ``wait`` or
   ``test`` entry must finish before the next one starts, ``once`` and
   ``respawn`` entries do not hold the next one back; an entry that has
   already run at this level is not run again;
4. waits until they have settled (CHECKING; a ``respawn`` entry must
   stay up ``start_seconds``), then rests in DONE, PASSED (the level's
   entries were all tests and all passed) or FAILED (a test failed, an
   entry could not be started, or a ``respawn`` entry is crash-looping:
   a settled group turns FAILED then too, and that FAILED alone heals
   back to DONE once the entry is up; why.py has these verdicts, and
   says why in words).

An entry in both the old and the new level keeps running untouched.
A new level told in the middle of any of this redirects the group.
HALT stops every entry and returns the group to CONFIGURED.  Each
change of state is reported to ``observer(group)``.  After a crash a
group is restored from what is left (``restore``, adopt.py); after a
handover, resumed exactly as it was (``resume``, carry.py).

At rest (DONE, PASSED, FAILED), one entry of the level may be stopped
by hand and kept stopped, or started again (``stop_entry``,
``start_entry``; byhand.py): a deliberate stop changes nothing of the
group's state; a test run again that fails makes it FAILED.
"""

import logging

from . import adopt, why
from .why import Verdicts, must_wait_for as _must_wait_for
from .machine import Machine
from .process import Process
from .states import (
    AT_REST_GROUP_STATES,
    SETTLED_GROUP_STATES,
    GroupEvent,
    GroupState,
    ProcState,
)

log = logging.getLogger("cluster_init")


class Group(Verdicts, Machine):
    """One resource group.  See the module docstring."""

    INITIAL = GroupState.CONFIGURED

    def __init__(self, name, entries, context, observer=None):
        super().__init__()
        self.name = name
        self.ctx = context
        self.observer = observer
        self.entries = ()
        self._entry_by_tag = {}
        self._next_entries = None  # a newer cltab's, for the next tell
        self._use_entries(entries)
        self.level = None  # the level the group is at (or starting)
        self.target = None  # the level it was last told
        self._procs = {}  # tag -> Process, for entries that have a machine
        self._waiting_for = set()  # in CHECKING: the level's processes not settled yet
        self._stuck = None  # why it is FAILED until told a level (not a crash loop), or None
        self.told_at = None  # when it was last told a level, on the System's clock

    # what the daemon calls
    def machine(self, tag):
        """The process machine of entry ``tag``, or None if it has none."""
        return self._procs.get(tag)

    def machines(self):
        """``(tag, Process)`` of every entry that has a machine, oldest first."""
        return list(self._procs.items())

    def tell(self, level):
        self.post(GroupEvent.TELL, level)

    def halt(self):
        self.post(GroupEvent.HALT)

    def restore(self, plan):
        """Take over what a dead predecessor left of this group (adopt.GroupPlan)."""
        self.post(GroupEvent.RESTORE, plan)

    def resume(self, level, state, adoptions, stuck=None, told_at=None):
        """After a handover: be at ``level`` in ``state`` (a GroupState at rest) with the
        machines it had, ``(entry, adopt.Adoption)`` each, FAILED for good ``stuck`` (why)
        and told at ``told_at``; nothing is started or stopped."""
        self.post(GroupEvent.RESUME, (level, state, adoptions, stuck, told_at))

    def stop_entry(self, tag):
        """Stop entry ``tag`` of the level by hand and keep it stopped (only at rest)."""
        self.post(GroupEvent.STOP_ENTRY, tag)

    def start_entry(self, tag):
        """Start entry ``tag`` of the level by hand, or run it again (only at rest)."""
        self.post(GroupEvent.START_ENTRY, tag)

    def set_entries(self, entries):
        """Take the group's entries from a newly read cltab.

        Changes take effect at the next tell: entries that left or
        changed are then stopped and replaced.  A transition under way
        goes on with the entries it started with.
        """
        if self.state in AT_REST_GROUP_STATES:
            self._use_entries(entries)
        else:
            self._next_entries = tuple(entries)

    def _use_entries(self, entries):
        self.entries = tuple(entries)
        self._entry_by_tag = {entry.tag: entry for entry in self.entries}
        self._next_entries = None

    def _take_next_entries(self):
        if self._next_entries is not None:
            self._use_entries(self._next_entries)

    def describe(self):
        return f"group {self.name}"

    def changed(self, old):
        log.info("%s: level %s %s", self.name, self.level, self.state)
        if self.observer is not None:
            self.observer(self)

    # helpers
    def _current_entry(self, tag):
        return self._entry_by_tag.get(tag)

    def _keeps(self, proc, level):
        """True when ``proc`` may run on at ``level`` as it is."""
        current = self._current_entry(proc.entry.tag)
        return current is not None and proc.entry.same_process(current) and current.runs_at(level)

    def _level_procs(self):
        return [
            proc
            for entry in self.entries
            if entry.runs_at(self.level)
            for proc in [self._procs.get(entry.tag)]
            if proc is not None
        ]

    def _is_level_proc(self, proc):
        entry = proc.entry
        return self._procs.get(entry.tag) is proc and entry.runs_at(self.level)

    def _proc_changed(self, proc):
        self.post(GroupEvent.PROC, proc)

    def _forget(self, tag):
        self.ctx.registry.remove(self._procs.pop(tag))

    # actions
    def _start_next(self, level):
        if level is not None:  # a tell
            self._take_next_entries()
            self._told(level)
        self.level = self.target
        for entry in self.entries:
            if not entry.runs_at(self.level):
                continue
            proc = self._procs.get(entry.tag)
            if proc is None:
                proc = Process(entry, self.ctx, on_change=self._proc_changed)
                self._procs[entry.tag] = proc
            if proc.ran or proc.exec_failed:
                continue
            if proc.state is ProcState.CONFIGURED:
                proc.start(self.level)
            if proc.busy:
                return None  # its exit will bring us back here
        return GroupEvent.ALL_STARTED

    def _told(self, level):
        self.target = level
        self._stuck = None
        self.told_at = self.ctx.system.now()

    def _continue_start(self, _proc):
        return self._start_next(None)

    def _stop_entry(self, tag):
        proc = self._procs.get(tag)
        if proc is not None and self._is_level_proc(proc):
            proc.stop_by_hand()

    def _start_entry(self, tag):
        proc = self._procs.get(tag)
        if proc is not None and self._is_level_proc(proc) and proc.can_start_by_hand:
            current = self._current_entry(tag)
            if current is not None and current.runs_at(self.level):
                proc.renew(current)  # nothing of it runs: it starts as the cltab has it now
            proc.start_by_hand(self.level)

    def _restore(self, plan):
        """See adopt.py: adopt what remains, take what had run as run, then go on."""
        self.target = self.level = plan.level
        for entry, adoption in plan.adoptions:
            proc = Process(entry, self.ctx, on_change=self._proc_changed)
            self._procs[entry.tag] = proc
            proc.adopt(adoption)
        level_entries = [entry for entry in self.entries if entry.runs_at(self.level)]
        for tag, adoption in adopt.taken_as_run(plan, level_entries, set(self._procs)).items():
            proc = Process(self._entry_by_tag[tag], self.ctx, on_change=self._proc_changed)
            self._procs[tag] = proc
            proc.adopt(adoption)
        for proc in list(self._procs.values()):
            if not self._keeps(proc, self.level):
                proc.stop()  # it left the cltab, changed, or is off now
        if plan.kind == adopt.HALT:
            return GroupEvent.HALT  # moving to a level nothing recorded: stop what remains
        gone = adopt.services_gone(plan, level_entries)
        if gone or plan.old_state == GroupState.FAILED.value:
            self._stuck = why.RESTORED_FAILED  # clstat does not say why
        if gone:
            return GroupEvent.ANY_FAILED  # its services died with the daemon: nothing is started
        return self._start_next(None)

    def _resume(self, carried):
        """See ``resume``: the machines take the states they had; the verdict names ours."""
        level, state, adoptions, self._stuck, self.told_at = carried
        self.target = self.level = level
        for entry, adoption in adoptions:
            proc = Process(entry, self.ctx, on_change=self._proc_changed)
            self._procs[entry.tag] = proc
            proc.adopt(adoption)
        verdicts = {GroupState.DONE: GroupEvent.ALL_DONE, GroupState.PASSED: GroupEvent.ALL_PASSED}
        return verdicts.get(state, GroupEvent.ANY_FAILED if state is GroupState.FAILED else None)

    def _check_procs(self, proc):
        """Settled yet?  Each process's change costs O(1) until the last one settles."""
        if proc is None:  # entering CHECKING: which of the level's processes do we wait for
            self._waiting_for = {p for p in self._level_procs() if _must_wait_for(p)}
        elif _must_wait_for(proc):
            if self._is_level_proc(proc):
                self._waiting_for.add(proc)
        else:
            self._waiting_for.discard(proc)
        if self._waiting_for:
            return None
        return self._verdict(self._level_procs())

    def _stop_old(self, level):
        self._take_next_entries()
        self._told(level)
        for proc in list(self._procs.values()):
            if proc.state is not ProcState.CONFIGURED and not self._keeps(proc, level):
                proc.stop()
        return self._check_stopped(None)

    def _check_stopped(self, _arg):
        for proc in self._procs.values():
            if proc.state is not ProcState.CONFIGURED and not self._keeps(proc, self.target):
                return None
        return GroupEvent.OLD_STOPPED

    def _garbage_collect(self, _arg):
        for tag, proc in list(self._procs.items()):
            if proc.state is ProcState.CONFIGURED:
                self._forget(tag)
            else:
                proc.renew(self._current_entry(tag))  # same process; levels may differ
        return GroupEvent.CLEAN

    def _halt_group(self, _arg):
        self._take_next_entries()
        for proc in list(self._procs.values()):
            proc.stop()
        return self._check_halted(None)

    def _check_halted(self, _arg):
        if all(proc.state is ProcState.CONFIGURED for proc in self._procs.values()):
            return GroupEvent.ALL_HALTED
        return None

    def _forget_all(self, _arg):
        for tag in list(self._procs):
            self._forget(tag)


# The whole machine.  Rows marked (+) differ from the Perl diagram:
# * STOPPING and HALTING react to each process's exit (PROC) instead of
#   a one-second poll (the Perl timeout/kickme rows);
# * PASSED and FAILED halt through HALTING: a FAILED level may still
#   have once or respawn entries running, which must be stopped;
# * a settled group turns FAILED when a respawn entry of its level starts
#   crash-looping or cannot start again, and heals (FAILED -> DONE) once
#   they are all up, if nothing else failed it.
# * a handover resumes a group at rest straight in the state it had.
Group.TABLE = {
    (GroupState.CONFIGURED, GroupEvent.TELL): (GroupState.STARTING, Group._start_next),
    (GroupState.CONFIGURED, GroupEvent.RESTORE): (GroupState.STARTING, Group._restore),  # (+) adoption after a crash
    (GroupState.CONFIGURED, GroupEvent.RESUME): (GroupState.CONFIGURED, Group._resume),  # (+) a handover
    (GroupState.CONFIGURED, GroupEvent.ALL_DONE): (GroupState.DONE, None),  # (+) resumed DONE
    (GroupState.CONFIGURED, GroupEvent.ALL_PASSED): (GroupState.PASSED, None),  # (+) resumed PASSED
    (GroupState.CONFIGURED, GroupEvent.ANY_FAILED): (GroupState.FAILED, None),  # (+) resumed FAILED
    (GroupState.CONFIGURED, GroupEvent.HALT): (GroupState.CONFIGURED, None),
    (GroupState.CONFIGURED, GroupEvent.PROC): (GroupState.CONFIGURED, None),  # (+)
    (GroupState.STARTING, GroupEvent.PROC): (GroupState.STARTING, Group._continue_start),
    (GroupState.STARTING, GroupEvent.ALL_STARTED): (GroupState.CHECKING, Group._check_procs),
    (GroupState.STARTING, GroupEvent.ANY_FAILED): (GroupState.FAILED, None),  # (+) restored: its services died with the daemon
    (GroupState.STARTING, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.STARTING, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),
    (GroupState.CHECKING, GroupEvent.PROC): (GroupState.CHECKING, Group._check_procs),
    (GroupState.CHECKING, GroupEvent.ALL_DONE): (GroupState.DONE, None),
    (GroupState.CHECKING, GroupEvent.ALL_PASSED): (GroupState.PASSED, None),
    (GroupState.CHECKING, GroupEvent.ANY_FAILED): (GroupState.FAILED, None),
    (GroupState.CHECKING, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.CHECKING, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),
    (GroupState.DONE, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.DONE, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),
    (GroupState.DONE, GroupEvent.PROC): (GroupState.DONE, Group._check_settled),  # (+)
    (GroupState.DONE, GroupEvent.ANY_FAILED): (GroupState.FAILED, None),  # (+) a respawn entry that cannot start again
    (GroupState.PASSED, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.PASSED, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),  # (+)
    (GroupState.PASSED, GroupEvent.PROC): (GroupState.PASSED, Group._check_settled),  # (+)
    (GroupState.PASSED, GroupEvent.ANY_FAILED): (GroupState.FAILED, None),  # (+)
    (GroupState.FAILED, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.FAILED, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),  # (+)
    (GroupState.FAILED, GroupEvent.PROC): (GroupState.FAILED, Group._check_healed),  # (+)
    (GroupState.FAILED, GroupEvent.ALL_DONE): (GroupState.DONE, Group._healed),  # (+) crash loops over
    (GroupState.STOPPING, GroupEvent.OLD_STOPPED): (GroupState.DUMPING, Group._garbage_collect),
    (GroupState.STOPPING, GroupEvent.PROC): (GroupState.STOPPING, Group._check_stopped),  # (+)
    (GroupState.STOPPING, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.STOPPING, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),
    (GroupState.DUMPING, GroupEvent.CLEAN): (GroupState.STARTING, Group._start_next),
    (GroupState.DUMPING, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    (GroupState.DUMPING, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),
    (GroupState.HALTING, GroupEvent.ALL_HALTED): (GroupState.CONFIGURED, Group._forget_all),
    (GroupState.HALTING, GroupEvent.PROC): (GroupState.HALTING, Group._check_halted),  # (+)
    (GroupState.HALTING, GroupEvent.HALT): (GroupState.HALTING, Group._halt_group),
    (GroupState.HALTING, GroupEvent.TELL): (GroupState.STOPPING, Group._stop_old),
    # (+) clinit --stop and --start: one entry, only at rest; the group's state stays
    **{(state, GroupEvent.STOP_ENTRY): (state, Group._stop_entry) for state in SETTLED_GROUP_STATES},
    **{(state, GroupEvent.START_ENTRY): (state, Group._start_entry) for state in SETTLED_GROUP_STATES},
}
