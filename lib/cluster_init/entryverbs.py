"""The verbs on one entry of a group: ``clinit -r``, ``--stop``, ``--start`` and ``--output``.

Requests (requests.py) hands them the request's words; each answers at
once with an Answer.  An entry is restarted, stopped or started only at
its group's level and while the group is at rest: in the middle of a
transition the answer says to try again once the group has settled.
``--output`` says where an entry writes, whether it runs or not.
"""

import logging

from . import listing
from .protocol import Answer
from .states import AT_REST_GROUP_STATES, SETTLED_GROUP_STATES, GroupState, ProcState

log = logging.getLogger("cluster_init")


def _moving(group):
    """Why one entry of ``group`` (a Group machine or None) must wait (clinit -r, --stop,
    --start): it is moving, and where to; None when it is at rest.  A restart in the
    middle of a transition would start an entry the transition is stopping, and the
    group would wait for it for good."""
    if group is None or group.state in AT_REST_GROUP_STATES:
        return None
    if group.state is GroupState.HALTING:
        return f"group {group.name} is moving (HALTING): try again once it has settled"
    return (
        f"group {group.name} is moving ({group.state}, to level {group.target}):"
        f" try again once it has settled (clinit -w {group.name} {group.target})"
    )


class EntryVerbs:
    """The per-entry verbs over a Node ``node``: ``restart``, ``stop``, ``start`` and
    ``output``, each ``(connection, group, tag)`` -> Answer."""

    def __init__(self, node):
        self.node = node

    def restart(self, _connection, group, tag):
        if self.node.halting:
            return Answer(False, "the daemon is shutting down")
        entry = self.node.entry(group, tag)
        if entry is None:
            if not self.node.table.entries_of(group):
                return Answer(False, f"no such group: {group}")
            return Answer(False, f"no such entry: {group}:{tag}")
        machine = self.node.group(group)
        level = machine.level if machine is not None else None
        moving = _moving(machine)
        if moving is not None:
            return Answer(False, moving)
        if level is None or not entry.runs_at(level):
            return Answer(False, f"{group}:{tag} is not part of the level of group {group} ({level or 'never told'})")
        proc = machine.machine(tag)
        if proc is None:
            return Answer(False, f"{group}:{tag} has not been started at level {level} yet")
        log.info("restarting %s:%s", group, tag)
        proc.restart()
        return Answer(True, f"restarting {group}:{tag}")

    def _entry_at_rest(self, group, tag):
        """``(Group, Process or None)`` of entry ``group:tag`` of its group's level, the
        group at rest; or the error Answer that says why not (clinit --stop, --start)."""
        if self.node.halting:
            return Answer(False, "the daemon is shutting down")
        entry = self.node.entry(group, tag)
        if entry is None:
            if not self.node.table.entries_of(group):
                return Answer(False, f"no such group: {group}")
            return Answer(False, f"no such entry: {group}:{tag}")
        machine = self.node.group(group)
        moving = _moving(machine)
        if moving is not None:
            return Answer(False, moving)
        level = machine.level if machine is not None and machine.state in SETTLED_GROUP_STATES else None
        if level is None or not entry.runs_at(level):
            return Answer(False, f"{group}:{tag} is not part of the level of group {group} ({level or 'not told'})")
        return machine, machine.machine(tag)

    def stop(self, connection, group, tag):
        """Stop one entry of the level gracefully, and keep it stopped."""
        found = self._entry_at_rest(group, tag)
        if isinstance(found, Answer):
            return found
        machine, proc = found
        if proc is not None and proc.stopped_by_hand:
            return Answer(True, f"{group}:{tag} is stopped by hand already")
        if proc is None or not proc.running:
            return Answer(True, f"{group}:{tag} is not running")
        log.info("%s:%s: stop by hand, asked by %s", group, tag, connection.who())
        machine.stop_entry(tag)
        return Answer(True, f"stopping {group}:{tag}")

    def start(self, connection, group, tag):
        """Start one entry of the level that is not running, or run a finished one again."""
        found = self._entry_at_rest(group, tag)
        if isinstance(found, Answer):
            return found
        machine, proc = found
        if proc is None:
            level = machine.level
            return Answer(False, f"{group}:{tag} has not been started at level {level} yet: tell {group} {level}")
        if proc.held_back_for is not None:
            why = f"cannot start: {proc.failure}" if proc.exec_failed else "respawning too rapidly"
            return Answer(
                False,
                f"{group}:{tag} is held back ({why}; {proc.held_back_for:.0f} s left):"
                f" clinit -r {group} {tag} starts it now",
            )
        if proc.state in (ProcState.STOPPING, ProcState.LINGERING):
            return Answer(False, f"{group}:{tag} is being stopped ({proc.state}): try again once it has stopped")
        if not proc.can_start_by_hand:
            pid = f" (pid {proc.pid})" if proc.pid is not None else ""
            return Answer(True, f"{group}:{tag} is running already{pid}")
        log.info("%s:%s: start by hand, asked by %s", group, tag, connection.who())
        machine.start_entry(tag)
        return Answer(True, f"starting {group}:{tag}")

    def output(self, _connection, group, tag):
        """Where entry ``group:tag`` writes (clinit --output reads it there)."""
        entry, proc = self.node.entry(group, tag), None
        machine = self.node.group(group)
        if machine is not None:
            proc = machine.machine(tag)
        if entry is None and proc is None:
            if not self.node.knows(group):
                return Answer(False, f"no such group: {group}")
            return Answer(False, f"no such entry: {group}:{tag}")
        path = listing.output_file(entry or proc.entry, proc, self.node.ctx)
        if path is None:
            return Answer(
                False,
                f"{group}:{tag} writes where the daemon writes (its terminal), not to a file;"
                " set :::output: in the cltab to have one",
            )
        return Answer(True, f"output of {group}:{tag}", (path,))
