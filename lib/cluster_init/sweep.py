"""At shutdown, nothing marked is left behind: the processes no entry's stop reaches.

A shutdown halts every group: each entry's stop reaches its process
groups (and, under ``:::kill_mode:all``, its marked processes).  What
an entry started and that left its process group (``setsid cmd &`` in a
respawn entry: one copy per start) would outlive the daemon under the
default kill mode.  The Sweep stops those, whatever the kill mode, on
the entries' own schedule and alongside them: SIGINT when the shutdown
begins, SIGTERM ``term_delay`` seconds later, SIGKILL ``kill_delay``
seconds after that, and one second later it gives up on what is still
there (a WARNING names it), so that a shutdown ends within
term_delay + kill_delay + 1 s whatever others do.  The log names what
it signals.

Which processes: what ``System.leftovers`` finds (marked with this
daemon's identity and descending from it, or, after a crash, running as
its own uid), but those a machine's stop reaches (``claimed``, asked of
the registry's machines).  The sweep looks again at each of its
deadlines, and when a process that was not a leader of ours is reaped
(``members_changed``); it is ``done`` once nothing is left to it.  It is
a timed part of the daemon's loop (``next_deadline``, ``fire_due``).
"""

import logging
import signal

from .states import ProcState

log = logging.getLogger("cluster_init")

GIVE_UP_AFTER = 1.0  # seconds after SIGKILL


class Sweep:
    """The shutdown's sweep of marked leftovers over ``ctx`` (the machines' Context)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.deadline = None
        self.done = False
        self._began = False
        self._schedule = ()  # (signal, seconds to wait after it) still to send
        self._signalled = set()

    def begin(self):
        """The shutdown begins: SIGINT to what no entry's stop reaches."""
        if self._began or self.ctx.daemon_id is None:
            self.done = self.done or self.ctx.daemon_id is None
            return
        self._began = True
        timing = self.ctx.timing
        self._schedule = (
            (signal.SIGINT, timing.term_delay),
            (signal.SIGTERM, timing.kill_delay),
            (signal.SIGKILL, GIVE_UP_AFTER),
        )
        self._step()

    def _claimed(self):
        """What the machines' stops reach: their process groups, and their marks under kill_mode all."""
        pgids, marks = set(), set()
        for machine in self.ctx.registry:
            pgids |= machine.remains.pgids
            if machine.pid is not None:
                pgids.add(machine.pid)
            if machine.state is not ProcState.CONFIGURED:
                marks.add((machine.entry.group, machine.entry.tag))
        return pgids, marks if self.ctx.kill_mode == "all" else set()

    def _left(self):
        pgids, marks = self._claimed()
        return [
            found
            for found in self.ctx.system.leftovers(self.ctx.daemon_id)
            if found.pgid not in pgids and (found.group, found.tag) not in marks
        ]

    def _step(self):
        left = self._left()
        if not left:
            self._finish()
            return
        if not self._schedule:
            log.warning(
                "shutdown: giving up on %s, still there after SIGKILL", _named(left)
            )
            self._finish()
            return
        (signum, wait), self._schedule = self._schedule[0], self._schedule[1:]
        log.warning("shutdown: stopping %s, which no entry's stop reaches, with %s", _named(left), signum.name)
        for found in left:
            self.ctx.system.signal_process(found.pid, signum)
            self._signalled.add(found.pid)
        self.deadline = self.ctx.system.now() + wait

    def _finish(self):
        self.done = True
        self.deadline = None

    def members_changed(self):
        """A process that was no leader of ours was reaped: maybe nothing is left."""
        if self._began and not self.done and not self._left():
            if self._signalled:
                log.info("shutdown: what no entry's stop reached is gone")
            self._finish()

    def next_deadline(self):
        return self.deadline

    def fire_due(self, now):
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self._step()


def _named(found):
    return "pid(s) " + ", ".join(f"{p.pid} ({p.group}:{p.tag})" for p in found)
