"""Why a group is where it is: the verdicts its entries make, and why, in words.

``Verdicts`` (a base of group.Group) are the group machine's verdicts on
its level's processes: settled DONE, PASSED or FAILED (``_verdict``), a
settled group turned FAILED (``_check_settled``), a FAILED one healed
(``_check_healed``: only a crash loop's FAILED heals; what sticks is a
failed test, a wait, once or test entry that could not start, or a
FAILED restored after a crash, ``stuck``).  For ``clinit -w``, ``-l``
and the OCF agent:

* ``failures(group)``: ``(tag, why)`` of each of its level's entries that
  fails it (a failed test and its exit, a start that failed and why, a
  crash loop and how many starts in how long: Process.trouble), or of
  the whole group when it was restored FAILED after a crash;
  ``lines`` adds the last line each entry printed;
* ``warnings(group)``: ``(tag, what)`` of its level's ``wait`` and
  ``once`` entries that exited non-zero since it was told a level (the
  group is DONE all the same, as in the Perl clinit, but it deserves a
  look).
"""

import logging

from . import listing
from .states import DONE_PROC_STATES, STARTING_PROC_STATES, GroupEvent, ProcState
from .waitstatus import describe_status

log = logging.getLogger("cluster_init")

WHOLE_GROUP = "*"  # the tag of a failure that is the group's, not one entry's
RESTORED_FAILED = "FAILED when the previous daemon died (its clstat does not say why)"
STUCK = "a test failed, or an entry could not start, at this level since it was told"


def must_wait_for(proc):
    """True while a group must wait for ``proc`` before it settles (not for a crash loop)."""
    return proc.busy or (proc.state in STARTING_PROC_STATES and not proc.crash_looping)


def sticks(proc):
    """True when ``proc`` keeps its group FAILED until it is told a level: a failed test,
    or a wait, once or test entry that could not start (a crash loop's FAILED heals)."""
    return proc.state is ProcState.FAIL or (proc.exec_failed and proc.entry.mode != "respawn")


def failures(group):
    """``(tag, why)`` of what fails ``group`` (see the module docstring)."""
    found = [(proc.entry.tag, proc.trouble) for proc in group.level_machines()]
    found = [(tag, why) for tag, why in found if why is not None]
    if group.stuck and not found:  # restored FAILED, or a test that failed was rerun by hand
        found.append((WHOLE_GROUP, group.stuck))
    return found


def warnings(group):
    """``(tag, what)`` of the wait and once entries of ``group``'s level that exited
    non-zero since it was last told a level."""
    found = []
    if group.told_at is None:
        return found
    for proc in group.level_machines():
        history = proc.history
        if proc.entry.mode not in ("wait", "once") or history.status is None or history.exited_at is None:
            continue
        if history.exited_at >= group.told_at and history.status != 0:
            found.append((proc.entry.tag, f"{proc.entry.mode} entry exited ({describe_status(history.status)})"))
    return found


def lines(group):
    """The lines a wait answer carries: ``(data, warnings)``, each ``GROUP:TAG: text``,
    and the last line the entry printed, when there is one (``last output: ...``)."""
    name = group.name
    procs = {proc.entry.tag: proc for proc in group.level_machines()}
    data = tuple(
        f"{name}:{tag}: {why}{_last_output(procs.get(tag))}" if tag != WHOLE_GROUP else f"{name}: {why}"
        for tag, why in failures(group)
    )
    warned = tuple(f"{name}:{tag}: {what}{_last_output(procs.get(tag))}" for tag, what in warnings(group))
    return data, warned


def _last_output(proc):
    """``; last output: LINE`` of ``proc`` (listing.last_output: no control characters),
    or ""."""
    last = listing.last_output(proc.entry, proc, proc.ctx) if proc is not None else None
    return f"; last output: {last}" if last else ""


class Verdicts:
    """The group machine's verdicts on its level's processes (a base of group.Group)."""

    def level_machines(self):
        """The process machines of the level's entries, in file order."""
        return self._level_procs()

    @property
    def stuck(self):
        """Why the group is FAILED until it is told a level, or None: restored FAILED
        after a crash, or a failed test or start of a wait, once or test entry."""
        return self._stuck

    def _check_settled(self, proc):
        """A settled group: one of its level's entries is crash-looping, cannot be started
        again, or a test run again failed; an entry stopped by hand changes nothing."""
        if proc is None or proc.stopped_by_hand or not self._is_level_proc(proc):
            return None
        trouble = proc.trouble
        if trouble is not None:
            log.warning("group %s: %s:%s: %s: FAILED", self.name, self.name, proc.entry.tag, trouble)
            return GroupEvent.ANY_FAILED
        return None

    def _check_healed(self, proc):
        """A FAILED group heals when nothing sticks and every entry of its level is well again."""
        if proc is None or not self._is_level_proc(proc) or self._stuck:
            return None
        procs = [p for p in self._level_procs() if not p.stopped_by_hand]  # deliberate: no failure
        if any(must_wait_for(p) for p in procs):
            return None
        verdict = self._verdict(procs)
        return None if verdict is GroupEvent.ANY_FAILED else verdict

    def _healed(self, _arg):
        log.warning("group %s: its entries are up again: %s", self.name, self.state)

    def _verdict(self, procs):
        """How the level's processes ``procs`` (none to wait for) settle the group."""
        if any(sticks(proc) for proc in procs) and not self._stuck:
            self._stuck = STUCK
        if self._stuck or any(proc.trouble is not None for proc in procs):
            return GroupEvent.ANY_FAILED
        if procs and all(proc.state is ProcState.PASS for proc in procs):
            return GroupEvent.ALL_PASSED
        if all(proc.state in DONE_PROC_STATES for proc in procs):
            return GroupEvent.ALL_DONE
        return None
