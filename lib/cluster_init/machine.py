"""The one dispatcher every clinit state machine runs on.

A machine declares its whole behaviour as one table::

    TABLE = {(state, event): (next_state, action), ...}

where ``action`` is a function ``action(machine, arg)`` or None.  The
dispatcher enters ``next_state``, then calls the action; an action may
return an event (a verdict, such as STARTED or EXEC_FAILED), which is
handled next, before anything else that was posted.  Events posted
while the machine is busy are queued and handled in order once it is
free (run to completion), so an action can safely cause events on its
own machine.  ``changed`` is called after every change of state;
``settled`` once the machine has finished handling everything it was
given and is free again, if its state changed meanwhile (or an action
set ``news``: it changed what the machine reports, not its state): a
machine that
tells another machine about itself does it from ``settled``, so that
the other machine never sees it half-way through a step, and may post
to it again.  A (state, event) pair missing from the table is logged
and ignored, never raised.
"""

import collections
import logging

log = logging.getLogger("cluster_init")


class Machine:
    """Base of the table-driven machines; subclasses set TABLE and INITIAL."""

    TABLE = {}
    INITIAL = None

    def __init__(self):
        self.state = self.INITIAL
        self._queue = collections.deque()
        self._busy = False
        self.news = False  # an action changed what the machine reports, not its state

    def post(self, event, arg=None):
        """Handle ``event`` now, or after the event being handled now."""
        self._queue.append((event, arg))
        if self._busy:
            return
        self._busy = True
        moved = False
        try:
            while self._queue:
                moved |= self._step(*self._queue.popleft())
        finally:
            self._busy = False
        if moved or self.news:
            self.news = False
            self.settled()

    def _step(self, event, arg):
        """Handle one event; True if the state changed."""
        row = self.TABLE.get((self.state, event))
        if row is None:
            self.unexpected(event)
            return False
        next_state, action = row
        old = self.state
        self.state = next_state
        verdict = action(self, arg) if action is not None else None
        if old is not next_state:
            self.changed(old)
        if verdict is not None:
            self._queue.appendleft((verdict, None))
        return old is not next_state

    def changed(self, old):
        """Called after each change of state; ``old`` is the state left."""

    def settled(self):
        """Called when the machine is free again after changing state."""

    def unexpected(self, event):
        log.debug("%s: %s ignored in %s", self.describe(), event, self.state)

    def describe(self):
        return type(self).__name__


def action_name(action):
    return action.__name__.lstrip("_") if action is not None else ""


def to_dot(name, table, initial):
    """The table as a Graphviz digraph, one edge per (state, event)."""
    lines = [f"digraph {name} {{", "  rankdir=LR;", f"  {initial.value} [shape=doublecircle];"]
    for (state, event), (next_state, action) in table.items():
        label = event.value.lower()
        if action is not None:
            label += "/" + action_name(action)
        lines.append(f'  {state.value} -> {next_state.value} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def reachable(table, initial):
    """The states reachable from ``initial`` through the table's edges."""
    seen = {initial}
    todo = [initial]
    while todo:
        state = todo.pop()
        for (source, _event), (target, _action) in table.items():
            if source is state and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
