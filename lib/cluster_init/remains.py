"""What remains of one entry's processes, and the signals that stop all of it.

An entry's leader (the shell the daemon started) leads its own session
and process group; what it started may outlive it there (a shell's
background jobs, the rest of a ``cmd &`` once entry), and, found by its
marks under ``kill_mode`` ``all``, outside it (a process that called
setsid).  ``Remains`` keeps the process groups an entry started that may
still have processes of ours, tells whether any process of ours remains,
and sends each signal of the stop schedule to all of it: SIGINT, SIGTERM
``term_delay`` seconds later, SIGKILL ``kill_delay`` seconds after that,
then SIGKILL again every KILL_AGAIN seconds, KILL_REPEATS times in all.
Then it gives up (``signal_next`` says so): what SIGKILL did not end
in that time is stuck in the kernel, or not ours to signal, and a stop
must end in bounded time whatever others do.  Through the System only.
"""

import logging
import signal

log = logging.getLogger("cluster_init")

KILL_AGAIN = 1.0  # seconds between SIGKILLs while processes remain
KILL_REPEATS = 5  # SIGKILLs sent in all; KILL_AGAIN seconds after the last, the stop gives up


class Remains:
    """The process groups (and marked escapees) of one entry; see the module docstring."""

    def __init__(self, group, tag, context):
        self._marks = (group, tag)
        self.ctx = context
        self.pgids = set()  # process groups we started that may still have processes
        self.escapees = ()  # marked processes outside our groups (kill_mode all)
        self._schedule = ()  # (signal, seconds to wait after it) still to send
        self._kill_warned = False
        self._kills = 0  # SIGKILLs sent in this stop

    def _has_ours(self, pgid, leader):
        """True while process group ``pgid`` still has processes of ours."""
        system = self.ctx.system
        if pgid == leader or self.ctx.daemon_id is None:
            return system.group_alive(pgid)  # its leader is ours until reaped: the number is ours
        uid = self.ctx.expected_uid(*self._marks)
        return system.group_is_ours(pgid, self.ctx.daemon_id, *self._marks, uid=uid)

    def new_leader(self, pid):
        """A new leader ``pid``: forget the groups with nothing of ours, add its own."""
        if self.pgids:
            self.pgids = {pgid for pgid in self.pgids if self._has_ours(pgid, None)}
        self.pgids.add(pid)  # the child leads its own session and process group

    def adopt(self, pgids):
        """The process groups a dead predecessor's processes of this entry are in."""
        self.pgids = set(pgids)

    def any(self, leader):
        """True while any process of ours remains (and forget the groups that are not ours).

        ``leader`` is the entry's leader, not reaped yet, or None.
        """
        self.pgids = {pgid for pgid in self.pgids if self._has_ours(pgid, leader)}
        self.escapees = ()
        if self.ctx.kill_mode == "all" and self.ctx.daemon_id is not None:
            uid = self.ctx.expected_uid(*self._marks)
            self.escapees = self.ctx.system.marked(self.ctx.daemon_id, *self._marks, uid=uid)
        return bool(self.pgids or self.escapees)

    def begin_stop(self, leader):
        """Start the stop schedule over (``leader``: the running leader, or None)."""
        timing = self.ctx.timing
        self._schedule = (
            (signal.SIGINT, timing.term_delay),
            (signal.SIGTERM, timing.kill_delay),
            (signal.SIGKILL, KILL_AGAIN),
        )
        self._kill_warned = False
        self._kills = 0
        if leader is not None:
            self.pgids.add(leader)  # a leader leads its own process group

    def signal_next(self, who, leader):
        """Send the schedule's next signal to all of it; the seconds to wait for it, or
        None when SIGKILL was sent KILL_REPEATS times and something is still there: the
        stop gives up (a WARNING names what is left), and the caller takes the entry as
        stopped."""
        if not self._schedule:  # SIGKILL was sent and something is still there
            if self._kills >= KILL_REPEATS:
                log.warning(
                    "%s: giving up: still there %g s after SIGKILL: %s; the entry is taken as stopped",
                    who,
                    KILL_REPEATS * KILL_AGAIN,
                    self._left(leader),
                )
                return None
            if not self._kill_warned:
                log.warning("%s: processes left after SIGKILL; sending it again every %g s", who, KILL_AGAIN)
                self._kill_warned = True
            self._schedule = ((signal.SIGKILL, KILL_AGAIN),)
        (signum, wait), self._schedule = self._schedule[0], self._schedule[1:]
        self._kills += signum == signal.SIGKILL
        if leader is not None:
            log.info("%s: stopping pid %d with %s", who, leader, signum.name)
        else:
            log.info(
                "%s: stopping what its leader left (process groups %s%s) with %s",
                who,
                " ".join(str(pgid) for pgid in sorted(self.pgids)) or "-",
                f", marked pids {' '.join(map(str, self.escapees))}" if self.escapees else "",
                signum.name,
            )
        system = self.ctx.system
        for pgid in sorted(self.pgids):
            system.signal_group(pgid, signum)
        for pid in self.escapees:
            system.signal_process(pid, signum)
        return wait

    def _left(self, leader):
        """What is still there, in words: the leader, process groups, marked pids."""
        parts = [f"pid {leader}"] if leader is not None else []
        if self.pgids:
            parts.append("process groups " + " ".join(str(pgid) for pgid in sorted(self.pgids)))
        if self.escapees:
            parts.append("marked pids " + " ".join(str(pid) for pid in self.escapees))
        return ", ".join(parts) or "nothing it can name"

    def clear(self):
        """All of it is gone: forget it, and the schedule."""
        self._schedule = ()
        self.pgids.clear()
