"""One node's cltab and its groups: what the daemon runs, apart from how it is asked.

* the cltab: ``reread`` takes a changed cltab and applies it; one with
  errors is refused as a whole (CltabError, logged once), the node keeps
  the last good one and does not parse the refused file again until it
  changes;
* the groups, one Group machine each, made at their first tell; a group
  that left the cltab is halted and then forgotten;
* ``restore``: what a dead predecessor on the same socket left is adopted
  (adopt.py plans it) before anything is served;
* ``unrest`` says what keeps the node from a handover (a transition under
  way); ``resume`` takes every group back as it was after one (carry.py);
* ``boot``: then each group of the cltab's boot lines that nothing
  restored is told its boot level (boot.py);
* ``rows`` for ``clinit -l``, ``dump`` for SIGUSR1 (nodeview.py);
* ``shutdown`` halts every group, and sweeps what no entry's stop reaches
  (sweep.py); ``finished`` says when all are halted and swept.

Each change of a group's state goes to the listeners (``subscribe``) as
``listener(group, gone)``, ``gone`` when the group left the cltab and is
now halted and forgotten.  The node touches processes and the clock only
through its Context's System, so tests drive it with a FakeSystem.
"""

import logging
import os

from . import adopt
from . import cltab as _cltab
from . import nodeview
from . import settings as _settings
from .errors import CltabError
from .group import Group
from .states import AT_REST_GROUP_STATES, CARRIED_PROC_STATES, GroupState, ProcState
from .sweep import Sweep

log = logging.getLogger("cluster_init")


def read_cltab(cltab):
    """``(path, Cltab, signature)`` of the cltab a daemon starts with (its absolute
    path); CltabError if it cannot be used."""
    path = os.path.abspath(cltab)
    table, signature = _cltab.load_trusted(path)
    return path, table, signature


def log_warnings(table):
    """Log what the cltab ``table`` has that deserves a look (unknown settings...)."""
    for line, message in table.warnings:
        log.warning("%s:%d: %s", table.path, line, message)


class Node:
    """The cltab at ``path`` (read as ``table`` with ``signature``) and its groups.

    ``ctx`` is the process machines' Context; ``settings_changed(table)``
    is told each newly read cltab (settings that take effect only at the
    next start are the caller's).
    """

    def __init__(self, path, table, signature, ctx, settings_changed=None):
        self.path = path
        self.table = table
        self.signature = signature
        self.refused = None  # (signature, CltabError) of the last cltab refused
        self.ctx = ctx
        self.settings_changed = settings_changed
        self.groups = {}
        self.leaving = set()  # groups halting because they left the cltab
        self.halting = False
        self._listeners = []
        self.sweep = Sweep(ctx)  # at shutdown: what no entry's stop reaches
        ctx.registry.watch_strays(self.sweep.members_changed)
        ctx.reconfigure(table)

    def subscribe(self, listener):
        """Have ``listener(group, gone)`` called at each change of a group's state."""
        self._listeners.append(listener)

    # the groups
    def group(self, name):
        """The Group machine of ``name``, or None if it was never told."""
        return self.groups.get(name)

    def knows(self, name):
        """True when ``name`` is a group of the cltab, or one still halting."""
        return name in self.groups or bool(self.table.entries_of(name))

    def names(self):
        """Every group: the cltab's in file order, then those that left it."""
        return list(dict.fromkeys([*self.table.groups(), *self.groups]))

    def entry(self, name, tag):
        """The cltab's entry ``name:tag``, or None."""
        return next((entry for entry in self.table.entries_of(name) if entry.tag == tag), None)

    def tell(self, name, level):
        """Move group ``name`` (of the cltab) to ``level``."""
        self._group(name).tell(level)

    def shutdown(self, reason):
        """Halt every group; ``finished`` once they are all halted."""
        if self.halting:
            return
        self.halting = True
        log.info("shutting down (%s): halting all groups", reason)
        for group in list(self.groups.values()):
            group.halt()
        self.sweep.begin()

    def finished(self):
        """True once a shutdown has halted every group and no process of ours is left."""
        return (
            self.halting
            and self.sweep.done
            and not self.ctx.registry.live_pids()
            and all(group.state is GroupState.CONFIGURED for group in self.groups.values())
        )

    def _group(self, name, entries=None):
        group = self.groups.get(name)
        if group is None:
            entries = self.table.entries_of(name) if entries is None else entries
            group = Group(name, entries, self.ctx, observer=self._group_changed)
            self.groups[name] = group
        return group

    def _group_changed(self, group):
        gone = group.name in self.leaving and group.state is GroupState.CONFIGURED
        if gone:
            self.leaving.discard(group.name)
            del self.groups[group.name]
            log.info("group %s left the cltab and is halted", group.name)
        for listener in self._listeners:
            listener(group, gone)

    def _leave(self, group):
        log.info("group %s left the cltab: halting it", group.name)
        self.leaving.add(group.name)
        group.halt()

    # the cltab
    def refuse(self, error):
        """The cltab file was refused (CltabError ``error``) when the daemon started on
        its last good copy: refused again, without being parsed, until it changes."""
        self.refused = (_settings.file_signature(self.path), error)

    def reread(self):
        """Reread the cltab if it changed; True if it did.

        A cltab with errors is refused as a whole (CltabError, logged
        once): the node keeps running on the last good one, and does not
        parse a refused file again until it changes.
        """
        signature = _settings.file_signature(self.path)
        if signature is not None and signature == self.signature:
            return False
        if self.refused is not None and self.refused[0] == signature:
            raise self.refused[1]
        try:
            table, signature = _cltab.load_trusted(self.path)
        except CltabError as error:
            self.refused = (signature, error)
            log.error("cltab refused; still using the last good one:\n%s", error)
            raise
        self.refused = None
        self.signature = signature
        log_warnings(table)
        self._apply(table)
        return True

    def _apply(self, table):
        if table.boot != self.table.boot:
            log.info("the cltab's boot lines changed: they take effect at the next daemon start")
        self.table = table
        self.ctx.reconfigure(table)
        if self.settings_changed is not None:
            self.settings_changed(table)
        names = table.groups()
        for name, group in list(self.groups.items()):
            if name in names:
                self.leaving.discard(name)
                group.set_entries(table.entries_of(name))
            elif name not in self.leaving:
                self._leave(group)
        log.info("cltab %s reread: %d entries in %d groups", self.path, len(table.entries), len(names))

    # restoring what a dead predecessor left
    def restore(self, old_rows):
        """Take over what a dead predecessor on our socket left: its processes (found
        by their marks) and ``old_rows``, the ``(group, level, state)`` rows of its
        clstat (adopt.py plans what each group becomes).  The names of the groups
        restored."""
        system = self.ctx.system
        found = system.find_marked(self.ctx.daemon_id, self._user_uids())
        found, strangers = adopt.foreign(found, self.table, self.ctx.uid)
        for process in strangers:
            log.warning(
                "not adopting pid %d (%s:%s): it runs as uid %s, not as its entry's user",
                process.pid,
                process.group,
                process.tag,
                process.uid,
            )
        plans = adopt.plan(found, self.table, old_rows)
        if not plans:
            return set()
        if found:
            log.warning(
                "the previous daemon on %s died and left %d process(es): adopting them",
                self.ctx.daemon_id,
                len(found),
            )
        pidfds = found and self._pidfds_work()
        if found and not pidfds:
            log.warning("pidfds are not available here (Linux 5.3 or later has them): stopping what it left")
        for plan in plans:
            self._restore_group(plan, pidfds)
        return {plan.name for plan in plans}

    def boot(self, restored=()):
        """Tell each group of the cltab's boot lines its boot level, but those named in
        ``restored`` (they keep what they were restored to)."""
        for name, level in self.table.boot:
            if name in restored:
                log.info("group %s was restored: not told its boot level %s", name, level)
                continue
            log.info("boot: telling %s level %s", name, level)
            self.tell(name, level)

    def _user_uids(self):
        """The uids the cltab's entries run as (``:::user:``), besides our own."""
        return sorted({line.uid for line in self.table.users if line.uid is not None})

    def _restore_group(self, plan, pidfds):
        group = self._group(plan.name, entries=() if not plan.in_cltab else None)
        for entry, adoption in plan.adoptions:
            log.info(
                "adopting %s:%s: %s (process groups %s)",
                entry.group,
                entry.tag,
                " ".join(map(str, adoption.pids)),
                " ".join(map(str, sorted(adoption.pgids))),
            )
        group.restore(plan)
        if plan.kind == adopt.HALT:
            log.warning(
                "group %s was %s when the previous daemon died, to a level nothing records:"
                " stopping what is left of it; tell it again",
                plan.name,
                plan.old_state or f"at another level than {plan.level}",
            )
        elif group.state is GroupState.FAILED and plan.kind == adopt.GONE:
            log.warning("group %s: its services died with the previous daemon: FAILED, nothing started", plan.name)
        log.info("group %s restored at level %s %s", plan.name, group.level, group.state)
        if not plan.in_cltab:
            self._leave(group)
        elif not pidfds and plan.adoptions:
            group.halt()

    # a handover: the daemon re-executes itself (handover.py, carry.py)
    def unrest(self):
        """What keeps the node from a handover now, or None when it is at rest: every
        group settled or halted, and no process of it being started or stopped."""
        if self.halting:
            return "the daemon is shutting down"
        for name, group in self.groups.items():
            if group.state not in AT_REST_GROUP_STATES or name in self.leaving:
                return f"group {name} is {group.state}"
            for tag, proc in group.machines():
                starting = proc.state is ProcState.RUNBG and proc.pid is None  # its spawn is asked for
                if proc.state not in CARRIED_PROC_STATES or proc.restarting or starting:
                    return f"{name}:{tag} is {proc.state}"
        if self.ctx.registry.spawns_waiting():
            return "children are waiting to be started"
        return None

    def resume(self, groups, histories):
        """After a handover: each group as it was, ``(name, level, GroupState,
        [(entry, adopt.Adoption)])`` in clstat's order, and the entries' histories
        (Context.histories).  Nothing is started or stopped; a group that left the
        cltab meanwhile is halted, as a reread would."""
        self.ctx.take_histories(histories)
        for name, level, state, adoptions, stuck, told_at in groups:
            in_cltab = bool(self.table.entries_of(name))
            group = self._group(name, entries=None if in_cltab else ())
            group.resume(level, state, adoptions, stuck, told_at)
            self._group_changed(group)  # clstat keeps its order, and a halted group its line
            log.info("group %s resumed at level %s %s", name, group.level, group.state)
            if not in_cltab:
                self._leave(group)

    def _pidfds_work(self):
        system = self.ctx.system
        watch = system.watch_process(os.getpid())
        if watch is None:
            return False
        system.unwatch_process(watch)
        return True

    # what the operator sees (nodeview.py)
    def rows(self, names=None):
        """The ``clinit -l`` fields (protocol.LIST_FIELDS) of every entry of ``names``
        (default: every group)."""
        return nodeview.rows(self, names)

    def dump(self):
        """SIGUSR1: the state of every group and of every entry (as clinit -l has it), to the log."""
        nodeview.dump(self)
