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
4. waits until they have settled (CHECKING), then rests in DONE, PASSED
   (the level's entries were all tests and all passed) or FAILED (a
   test failed, or an entry could not be started).

An entry in both the old and the new level is left running untouched.
A new level told in the middle of any of this redirects the group.
HALT stops every entry and returns the group to CONFIGURED.  Each
change of state is reported to ``observer(group)``.
"""

import logging

from . import adopt
from .machine import Machine
from .process import Process
from .states import GroupEvent as E
from .states import GroupState as S
from .states import ProcState

log = logging.getLogger("cluster_init")

_STILL_STARTING = frozenset({ProcState.SETUP, ProcState.RUNBG})
_SETTLED_DONE = frozenset({ProcState.DONE, ProcState.PASS, ProcState.PAUSING})


_AT_REST = frozenset({S.CONFIGURED, S.DONE, S.PASSED, S.FAILED})


def _unsettled(proc):
    """True while the group must wait for ``proc`` before it settles."""
    return proc.busy or proc.state in _STILL_STARTING


class Group(Machine):
    """One resource group.  See the module docstring."""

    INITIAL = S.CONFIGURED

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
        self.procs = {}  # tag -> Process, for entries that have a machine
        self._unsettled = set()  # in CHECKING: the level's processes not settled yet

    # what the daemon calls
    def tell(self, level):
        self.post(E.TELL, level)

    def halt(self):
        self.post(E.HALT)

    def restore(self, plan):
        """Take over what a dead predecessor left of this group (adopt.GroupPlan)."""
        self.post(E.RESTORE, plan)

    def set_entries(self, entries):
        """Take the group's entries from a newly read cltab.

        Changes take effect at the next tell: entries that left or
        changed are then stopped and replaced.  A transition under way
        goes on with the entries it started with.
        """
        if self.state in _AT_REST:
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
        return (
            current is not None
            and current.mode != "off"
            and proc.entry.same_process(current)
            and current.has_level(level)
        )

    def _level_procs(self):
        return [
            proc
            for entry in self.entries
            if entry.mode != "off" and entry.has_level(self.level)
            for proc in [self.procs.get(entry.tag)]
            if proc is not None
        ]

    def _is_level_proc(self, proc):
        entry = proc.entry
        return self.procs.get(entry.tag) is proc and entry.mode != "off" and entry.has_level(self.level)

    def _proc_changed(self, proc):
        self.post(E.PROC, proc)

    def _forget(self, tag):
        self.ctx.registry.remove(self.procs.pop(tag))

    # actions
    def _start_next(self, level):
        if level is not None:  # a tell
            self._take_next_entries()
            self.target = level
        self.level = self.target
        for entry in self.entries:
            if entry.mode == "off" or not entry.has_level(self.level):
                continue
            proc = self.procs.get(entry.tag)
            if proc is None:
                proc = Process(entry, self.ctx, on_change=self._proc_changed)
                self.procs[entry.tag] = proc
            if proc.ran or proc.exec_failed:
                continue
            if proc.state is ProcState.CONFIGURED:
                proc.start(self.level)
            if proc.busy:
                return None  # its exit will bring us back here
        return E.ALL_STARTED

    def _continue_start(self, _proc):
        return self._start_next(None)

    def _check_settled(self, proc):
        """A settled group: one of its level's entries could not be started again."""
        if proc is not None and proc.exec_failed and self._is_level_proc(proc):
            log.warning("group %s: %s:%s cannot be started: FAILED", self.name, self.name, proc.entry.tag)
            return E.ANY_FAILED
        return None

    def _restore(self, plan):
        """See adopt.py: adopt what is left, take what had run as run, then go on."""
        self.target = self.level = plan.level
        for entry, adoption in plan.adoptions:
            proc = Process(entry, self.ctx, on_change=self._proc_changed)
            self.procs[entry.tag] = proc
            proc.adopt(adoption)
        level_entries = [e for e in self.entries if e.mode != "off" and e.has_level(self.level)]
        for tag, adoption in adopt.taken_as_run(plan, level_entries, set(self.procs)).items():
            proc = Process(self._entry_by_tag[tag], self.ctx, on_change=self._proc_changed)
            self.procs[tag] = proc
            proc.adopt(adoption)
        for proc in list(self.procs.values()):
            if not self._keeps(proc, self.level):
                proc.stop()  # it left the cltab, changed, or is off now
        if plan.kind == adopt.HALT:
            return E.HALT  # moving to a level nothing recorded: stop what is left
        if adopt.services_gone(plan, level_entries):
            return E.ANY_FAILED  # its services died with the daemon: nothing is started
        return self._start_next(None)

    def _check_procs(self, proc):
        """Settled yet?  Each process's change costs O(1) until the last one settles."""
        if proc is None:  # entering CHECKING: which of the level's processes do we wait for
            self._unsettled = {p for p in self._level_procs() if _unsettled(p)}
        elif _unsettled(proc):
            if self._is_level_proc(proc):
                self._unsettled.add(proc)
        else:
            self._unsettled.discard(proc)
        if self._unsettled:
            return None
        procs = self._level_procs()
        if any(proc.state is ProcState.FAIL or proc.exec_failed for proc in procs):
            return E.ANY_FAILED
        if procs and all(proc.state is ProcState.PASS for proc in procs):
            return E.ALL_PASSED
        if all(proc.state in _SETTLED_DONE for proc in procs):
            return E.ALL_DONE
        return None

    def _stop_old(self, level):
        self._take_next_entries()
        self.target = level
        for proc in list(self.procs.values()):
            if proc.state is not ProcState.CONFIGURED and not self._keeps(proc, level):
                proc.stop()
        return self._check_stopped(None)

    def _check_stopped(self, _arg):
        for proc in self.procs.values():
            if proc.state is not ProcState.CONFIGURED and not self._keeps(proc, self.target):
                return None
        return E.OLD_STOPPED

    def _garbage_collect(self, _arg):
        for tag, proc in list(self.procs.items()):
            if proc.state is ProcState.CONFIGURED:
                self._forget(tag)
            else:
                proc.entry = self._current_entry(tag)  # same process; levels may differ
        return E.CLEAN

    def _halt_group(self, _arg):
        self._take_next_entries()
        for proc in list(self.procs.values()):
            proc.stop()
        return self._check_halted(None)

    def _check_halted(self, _arg):
        if all(proc.state is ProcState.CONFIGURED for proc in self.procs.values()):
            return E.ALL_HALTED
        return None

    def _forget_all(self, _arg):
        for tag in list(self.procs):
            self._forget(tag)


# The whole machine.  Rows marked (+) differ from the Perl diagram:
# * STOPPING and HALTING react to each process's exit (PROC) instead of
#   a one-second poll (the Perl timeout/kickme rows);
# * PASSED and FAILED halt through HALTING: a FAILED level may still
#   have once or respawn entries running, which must be stopped;
# * a process changing state after the group settled changes nothing.
Group.TABLE = {
    (S.CONFIGURED, E.TELL): (S.STARTING, Group._start_next),
    (S.CONFIGURED, E.RESTORE): (S.STARTING, Group._restore),  # (+) adoption after a crash
    (S.CONFIGURED, E.HALT): (S.CONFIGURED, None),
    (S.CONFIGURED, E.PROC): (S.CONFIGURED, None),  # (+)
    (S.STARTING, E.PROC): (S.STARTING, Group._continue_start),
    (S.STARTING, E.ALL_STARTED): (S.CHECKING, Group._check_procs),
    (S.STARTING, E.ANY_FAILED): (S.FAILED, None),  # (+) restored: its services died with the daemon
    (S.STARTING, E.TELL): (S.STOPPING, Group._stop_old),
    (S.STARTING, E.HALT): (S.HALTING, Group._halt_group),
    (S.CHECKING, E.PROC): (S.CHECKING, Group._check_procs),
    (S.CHECKING, E.ALL_DONE): (S.DONE, None),
    (S.CHECKING, E.ALL_PASSED): (S.PASSED, None),
    (S.CHECKING, E.ANY_FAILED): (S.FAILED, None),
    (S.CHECKING, E.TELL): (S.STOPPING, Group._stop_old),
    (S.CHECKING, E.HALT): (S.HALTING, Group._halt_group),
    (S.DONE, E.TELL): (S.STOPPING, Group._stop_old),
    (S.DONE, E.HALT): (S.HALTING, Group._halt_group),
    (S.DONE, E.PROC): (S.DONE, Group._check_settled),  # (+)
    (S.DONE, E.ANY_FAILED): (S.FAILED, None),  # (+) a respawn entry that cannot start again
    (S.PASSED, E.TELL): (S.STOPPING, Group._stop_old),
    (S.PASSED, E.HALT): (S.HALTING, Group._halt_group),  # (+)
    (S.PASSED, E.PROC): (S.PASSED, Group._check_settled),  # (+)
    (S.PASSED, E.ANY_FAILED): (S.FAILED, None),  # (+)
    (S.FAILED, E.TELL): (S.STOPPING, Group._stop_old),
    (S.FAILED, E.HALT): (S.HALTING, Group._halt_group),  # (+)
    (S.FAILED, E.PROC): (S.FAILED, None),  # (+)
    (S.STOPPING, E.OLD_STOPPED): (S.DUMPING, Group._garbage_collect),
    (S.STOPPING, E.PROC): (S.STOPPING, Group._check_stopped),  # (+)
    (S.STOPPING, E.TELL): (S.STOPPING, Group._stop_old),
    (S.STOPPING, E.HALT): (S.HALTING, Group._halt_group),
    (S.DUMPING, E.CLEAN): (S.STARTING, Group._start_next),
    (S.DUMPING, E.TELL): (S.STOPPING, Group._stop_old),
    (S.DUMPING, E.HALT): (S.HALTING, Group._halt_group),
    (S.HALTING, E.ALL_HALTED): (S.CONFIGURED, Group._forget_all),
    (S.HALTING, E.PROC): (S.HALTING, Group._check_halted),  # (+)
    (S.HALTING, E.HALT): (S.HALTING, Group._halt_group),
    (S.HALTING, E.TELL): (S.STOPPING, Group._stop_old),
}
