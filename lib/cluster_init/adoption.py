"""The process machine's side of adoption: taking over processes it did not start.

Two ways a daemon finds processes of an entry it did not start itself:

* after a crash, a new daemon adopts what its dead predecessor left
  (adopt.py plans it): those processes are not its children, so the
  registry watches them through pidfds and their exit status cannot be
  known;
* after a handover (handover.py: the daemon re-executed itself), the
  machine had them: the Adoption carries what it had (adopt.Carried),
  and its leader, still our child, is reaped with its status as before.

``Adopting`` is a part of the Process machine (process.py): its ``_adopt``
is the action of the table's ADOPT row, and returns the verdict that
names the state to take.
"""

from .states import ProcEvent

# an adopted process that is watched as a running leader, if it can be
_LEADS = (ProcEvent.ADOPTED_RUNNING, ProcEvent.ADOPTED_RUNTEST)


class Adopting:
    """Process's adoption: ``adopt`` posts ADOPT, ``_adopt`` is its action."""

    def adopt(self, adoption):
        """Take over processes a dead predecessor left, or what this machine had
        before a handover (or restore a state it had): an adopt.Adoption."""
        self.post(ProcEvent.ADOPT, adoption)

    def _adopt(self, adoption):
        """The registry watches the adopted processes' pidfds, or, after a handover, our
        own child as before; their exits come back here."""
        carried = adoption.carried
        self.adopted = carried is None or carried.adopted
        self.level = adoption.level
        self.remains.adopt(adoption.pgids)
        if carried is not None:
            self.failure, self.deadline = carried.failure, carried.deadline
            self._since, self.stopped_by_hand = carried.since, carried.stopped_by_hand
            if carried.respawns is not None:
                self.respawns.take(carried.respawns)
        watches = carried.watches if carried is not None else {}
        for pid in adoption.pids:
            leader = pid == adoption.leader
            if leader and not self.adopted:
                self.ctx.registry.watch(pid, self)  # still our child: reaped, with its status
                self.pid = pid
            elif self.ctx.registry.watch_adopted(pid, self, leader=leader, watch=watches.get(pid)) and leader:
                self.pid = pid
        if self.pid is None and adoption.leader is not None and adoption.verdict in _LEADS:
            return ProcEvent.ADOPTED_DONE  # its leader cannot be watched: count it as done
        return adoption.verdict
