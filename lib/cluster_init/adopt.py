"""A daemon that starts where its predecessor died takes over what it left.

The daemon holds the socket's lock, so any process that carries its
identity (CLINIT_DAEMON, marks.py) and runs as its uid was left by a
daemon on the same socket that is gone: killed, crashed, or restarted
by systemd with KillMode=process.  ``plan`` turns those processes, the
cltab and the old clstat into what each group is to become:

* an entry with processes left is adopted: a ``wait`` entry whose shell
  still runs is RUNNING, a ``test`` entry RUNTEST, the others DONE
  (their exits come through pidfds; their exit status cannot be known);
* the group takes the level its processes were started at, and, when
  the old clstat says it had settled there (DONE, PASSED, FAILED), that
  state: the level's other entries are taken as run (a ``wait`` or
  ``once`` entry as DONE, a ``test`` as PASS, or FAIL in a FAILED
  group), so that telling the same level again starts nothing twice;
  a ``respawn`` entry with no process left is started again;
* a group the old clstat shows settled, with no process left, is
  restored the same way, so that clstat is right without any tell;
* processes of an entry that left the cltab, or whose group did, are
  adopted and stopped.
"""

import collections

from .cltab import Entry
from .process import Adoption
from .states import SETTLED_GROUP_STATES
from .states import GroupState as G
from .states import ProcEvent as E

SETTLED = {state.value for state in SETTLED_GROUP_STATES}


class GroupPlan:
    """What one group becomes: its level, its old state, and the adoptions."""

    def __init__(self, name, level, old_state, in_cltab):
        self.name = name
        self.level = level
        self.old_state = old_state  # its state in the old clstat, if at this level
        self.in_cltab = in_cltab
        self.adoptions = []  # (Entry, Adoption)

    @property
    def settled(self):
        return self.old_state in SETTLED

    @property
    def halting(self):
        return self.old_state == G.HALTING.value

    def __repr__(self):
        return f"GroupPlan({self.name} {self.level} {self.old_state}, {len(self.adoptions)} adopted)"


def _leader(processes):
    leaders = [found for found in processes if found.pid == found.pgid]
    return max(leaders, key=lambda found: found.pid).pid if leaders else None


def _verdict(mode, leader, old_state):
    if mode == "wait" and leader is not None:
        return E.ADOPTED_RUNNING
    if mode == "test":
        if leader is not None:
            return E.ADOPTED_RUNTEST
        return E.ADOPTED_FAIL if old_state == G.FAILED.value else E.ADOPTED_PASS
    return E.ADOPTED_DONE


def plan(found, table, old_rows):
    """The GroupPlans for the processes ``found`` (marks.Found), the cltab
    ``table`` and the old clstat's ``old_rows`` ((group, level, state) rows)."""
    old = {name: (level, state) for name, level, state in old_rows}
    by_group = collections.defaultdict(lambda: collections.defaultdict(list))
    for process in found:
        if process.group and process.tag:
            by_group[process.group][process.tag].append(process)
    plans = []
    for name, tags in by_group.items():
        levels = collections.Counter(p.level for processes in tags.values() for p in processes)
        level = levels.most_common(1)[0][0] or "?"
        old_level, old_state = old.get(name, (None, None))
        plan_ = GroupPlan(name, level, old_state if old_level == level else None, bool(table.entries_of(name)))
        entries = {entry.tag: entry for entry in table.entries_of(name)}
        for tag, processes in tags.items():
            entry = entries.get(tag) or Entry(name, tag, level, "once", "(left the cltab)")
            leader = _leader(processes)
            adoption = Adoption(
                _verdict(entry.mode, leader, plan_.old_state),
                level,
                leader=leader,
                pids=[p.pid for p in processes],
                pgids={p.pgid for p in processes},
            )
            plan_.adoptions.append((entry, adoption))
        plans.append(plan_)
    for name, (level, state) in old.items():
        if name not in by_group and state in SETTLED and table.entries_of(name):
            plans.append(GroupPlan(name, level, state, True))
    return plans


def restored_as_run(plan_, entry):
    """The Adoption for an entry of a settled group's level that has no process left,
    or None when it must run again (a ``respawn`` entry whose process is gone)."""
    if entry.mode in ("wait", "once", "test"):
        return Adoption(_verdict(entry.mode, None, plan_.old_state), plan_.level)
    return None
