"""A daemon that starts where its predecessor died takes over what it left.

The daemon holds the socket's lock, so any process that carries its
identity (CLINIT_DAEMON, marks.py) and runs as its uid was left by a
daemon on the same socket that is gone: killed, crashed, or restarted
by systemd with KillMode=process.  ``plan`` turns those processes, the
cltab and the old clstat (ignored when written before the machine last
booted) into what each group is to become, one GroupPlan each:

* SETTLED: the old clstat says the group had settled at that level (or
  there is no clstat line for it).  Its processes are adopted: a
  ``wait`` entry whose shell still runs is RUNNING, a ``test`` entry
  RUNTEST, the others DONE (their exits come through pidfds; their exit
  status cannot be known).  The level's
  other ``wait``, ``once`` and ``test`` entries are taken as run (DONE;
  PASS, or FAIL in a FAILED group), so that telling the same level
  starts nothing twice; a ``respawn`` entry whose process is gone is
  started again, as the daemon would have done had it lived.
* STARTING: it was starting that level (STARTING or CHECKING).  Entries
  before the last adopted one, in file order, had run; the start goes
  on from there, in file order, after what is still running.
* HALT: it was being moved away (STOPPING, DUMPING, HALTING) to a level
  nothing records, or its processes disagree with clstat.  What remains
  is adopted and stopped; the group must be told again.
* GONE: no process of it remains, and clstat says it had settled.  If
  its level has no ``respawn`` entry, nothing had to run: it is restored
  as clstat says.  Otherwise its services died with the daemon: it is
  restored FAILED, nothing is started (a cluster manager then recovers
  it by stop and start, which runs its wait and test entries again).
  A group that was on its way, with nothing remaining, is not restored.

Processes of an entry that left the cltab, or whose group did, are
adopted and stopped.

The level of a group is the one the old clstat recorded when an entry
of a process found belongs to it (an entry in two levels keeps running
across a tell, and its CLINIT_LEVEL mark says the level it was first
started at); otherwise, or without a clstat line, the marks' level.

Only a process running as its entry's user is adopted (``own``): the
daemon's own uid, or the uid the entry's ``:::user:`` line names; any
other process that carries the marks is left alone, never signalled
(``foreign`` sorts them out before ``plan``).

The planner is pure: it is given what is known of the machine (the
processes found, the old clstat's rows, dropped by the caller when
written before the machine last booted).

A daemon that re-executed itself (a handover, handover.py) plans
nothing: it knows exactly what it had.  Each entry's machine is adopted
with a Carried record, so that it takes the state, the times and the
counts it had, and its leader, still our child, is reaped as before.
"""

import collections

from .cltab import Entry
from .states import SETTLED_GROUP_STATES, STARTING_GROUP_STATES, GroupState, ProcEvent

SETTLED, STARTING, HALT, GONE = "settled", "starting", "halt", "gone"


class Adoption:
    """What a new daemon found of an entry its predecessor ran, or decided for it.

    ``leader`` is the entry's leader (its shell) if it still runs, else
    None; ``pids`` every process of the entry that still runs (watched
    through pidfds), ``pgids`` their process groups, ``verdict`` the event
    that names the state to take (ADOPTED_RUNNING, ADOPTED_DONE, ...).
    """

    __slots__ = ("leader", "pids", "pgids", "verdict", "level", "carried")

    def __init__(self, verdict, level, leader=None, pids=(), pgids=(), carried=None):
        self.verdict, self.level, self.leader = verdict, level, leader
        self.pids, self.pgids = tuple(pids), set(pgids)
        self.carried = carried  # a Carried record, in a handover


class Carried:
    """What a machine had before its daemon re-executed itself (a handover).

    ``adopted``: its processes were themselves adopted after a crash (not
    our children: watched through pidfds again); otherwise its leader is
    our child and its exit is reaped with its status.  The times are on
    the monotonic clock, which an exec does not reset.
    """

    __slots__ = ("adopted", "failure", "respawns", "deadline", "since", "stopped_by_hand", "watches")

    def __init__(
        self, adopted=False, failure=None, respawns=None, deadline=None, since=None, stopped_by_hand=False,
        watches=None,
    ):
        self.adopted, self.failure = adopted, failure
        self.respawns = respawns  # crashloop.Respawns.carried(): the guard, the crash loop
        self.deadline, self.since = deadline, since
        self.stopped_by_hand = stopped_by_hand  # clinit --stop: kept stopped (byhand.py)
        self.watches = dict(watches or {})  # pid -> its pidfd, kept open across the exec


def _group_state(name):
    """The GroupState a clstat line names, or None for a name that is none."""
    try:
        return GroupState(name)
    except ValueError:
        return None


class GroupPlan:
    """What one group becomes: its level, how it is restored, and the adoptions."""

    def __init__(self, name, level, kind, old_state, in_cltab):
        self.name = name
        self.level = level
        self.kind = kind  # SETTLED, STARTING, HALT or GONE
        self.old_state = old_state  # its state in the old clstat, if at this level
        self.in_cltab = in_cltab
        self.adoptions = []  # (Entry, Adoption)

    def __repr__(self):
        return f"GroupPlan({self.name} {self.level} {self.kind} {self.old_state}, {len(self.adoptions)} adopted)"


def _leader(processes):
    leaders = [found for found in processes if found.pid == found.pgid]
    return max(leaders, key=lambda found: found.pid).pid if leaders else None


def _verdict(mode, leader, old_state):
    if mode == "wait" and leader is not None:
        return ProcEvent.ADOPTED_RUNNING
    if mode == "test":
        if leader is not None:
            return ProcEvent.ADOPTED_RUNTEST
        return ProcEvent.ADOPTED_FAIL if _group_state(old_state) is GroupState.FAILED else ProcEvent.ADOPTED_PASS
    return ProcEvent.ADOPTED_DONE


def _kind(old_level, old_state, level):
    if old_state is None:
        return SETTLED  # no line in clstat: steady state is the likeliest
    if old_level != level:
        return HALT
    state = _group_state(old_state)
    if state in SETTLED_GROUP_STATES:
        return SETTLED
    if state in STARTING_GROUP_STATES:
        return STARTING
    return HALT


def _level(tags, entries, old_level):
    """The level a group's processes (``tags``: tag -> processes) were left at.

    The level clstat recorded (``old_level``, None without a line) when an
    entry of a process found belongs to it: an entry in two levels keeps
    running across a tell, and its CLINIT_LEVEL mark is the level of its
    first start.  Otherwise the marks' most common level ("?" if none).
    """
    if old_level is not None and any(tag in entries and entries[tag].runs_at(old_level) for tag in tags):
        return old_level
    levels = collections.Counter(p.level for processes in tags.values() for p in processes)
    return levels.most_common(1)[0][0] or "?"


def expected_uid(table, group, tag, own_uid):
    """The uid the processes of entry ``group:tag`` of ``table`` must run as: the uid of
    its ``:::user:`` line (None when it could not be looked up), else ``own_uid``."""
    entry = next((entry for entry in table.entries_of(group) if entry.tag == tag), None)
    if entry is not None and entry.user is not None:
        return table.uid_of(group, tag)
    return own_uid


def foreign(found, table, own_uid):
    """``(own, strangers)``: the processes ``found`` that run as their entry's user, and
    the others.  With ``own_uid`` None (or a process whose uid is not known), every
    process is taken as its entry's."""
    own, strangers = [], []
    for process in found:
        if own_uid is None or process.uid is None:
            own.append(process)
            continue
        wanted = expected_uid(table, process.group, process.tag, own_uid)
        (own if wanted is not None and process.uid == wanted else strangers).append(process)
    return own, strangers


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
        entries = {entry.tag: entry for entry in table.entries_of(name)}
        old_level, old_state = old.get(name, (None, None))
        level = _level(tags, entries, old_level)
        kind = _kind(old_level, old_state, level)
        plan_ = GroupPlan(name, level, kind, old_state if old_level == level else None, bool(table.entries_of(name)))
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
        if name not in by_group and _group_state(state) in SETTLED_GROUP_STATES and table.entries_of(name):
            plans.append(GroupPlan(name, level, GONE, state, True))
    return plans


def taken_as_run(plan_, entries, adopted_tags):
    """The Adoptions that mark entries of the plan's level as run: ``{tag: Adoption}``.

    ``entries`` are the group's entries of that level, in file order.  A
    ``respawn`` entry is never taken as run: it must be running.
    """
    if plan_.kind in (SETTLED, GONE):
        done = [entry for entry in entries if entry.tag not in adopted_tags]
    elif plan_.kind == STARTING:
        positions = [i for i, entry in enumerate(entries) if entry.tag in adopted_tags]
        last = max(positions) if positions else -1
        done = [entry for entry in entries[:last] if entry.tag not in adopted_tags]
    else:
        done = []
    return {
        entry.tag: Adoption(_verdict(entry.mode, None, plan_.old_state), plan_.level)
        for entry in done
        if entry.mode in ("wait", "once", "test")
    }


def services_gone(plan_, entries):
    """True when a GONE group's level has a respawn entry: its services died with the daemon."""
    return plan_.kind == GONE and any(entry.mode == "respawn" for entry in entries)
