"""Why a group is where it is, in words: for ``clinit -w``, ``-l`` and the OCF agent.

* ``failures(group)``: ``(tag, why)`` of each of its level's entries that
  fails it (a failed test and its exit, a start that failed and why, a
  crash loop and how many starts in how long: Process.trouble), or of
  the whole group when it was restored FAILED after a crash;
* ``warnings(group)``: ``(tag, what)`` of its level's ``wait`` and
  ``once`` entries that exited non-zero since it was told a level (the
  group is DONE all the same, as in the Perl clinit, but it deserves a
  look).
"""

from .states import ProcState
from .waitstatus import describe_status

WHOLE_GROUP = "*"  # the tag of a failure that is the group's, not one entry's
RESTORED_FAILED = "FAILED when the previous daemon died (its clstat does not say why)"
STUCK = "a test failed, or an entry could not start, at this level since it was told"


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
    """The lines a wait answer carries: ``(data, warnings)``, each ``GROUP:TAG: text``."""
    name = group.name
    data = tuple(f"{name}:{tag}: {why}" if tag != WHOLE_GROUP else f"{name}: {why}" for tag, why in failures(group))
    warned = tuple(f"{name}:{tag}: {what}" for tag, what in warnings(group))
    return data, warned
