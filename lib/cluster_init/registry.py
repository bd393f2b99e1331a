"""The daemon's index of process machines: by pid, by group and tag.

The reaper hands every exit status to ``deliver``, which finds the
machine that owns the pid; the event loop asks ``next_deadline`` how
long it may sleep and calls ``fire_due`` when a deadline has passed.
"""

import logging

from .sysapi import describe_status

log = logging.getLogger("cluster_init")


class Registry:
    """Every process machine, and which one owns which running pid."""

    def __init__(self):
        self._machines = []
        self._by_pid = {}

    def add(self, machine):
        self._machines.append(machine)

    def remove(self, machine):
        """Forget a machine; it must own no running process."""
        assert machine.pid is None, f"{machine.describe()} still owns pid {machine.pid}"
        self._machines.remove(machine)

    def watch(self, pid, machine):
        """Record that ``machine`` started ``pid``: its exit goes to it."""
        self._by_pid[pid] = machine

    def by_pid(self, pid):
        return self._by_pid.get(pid)

    def find(self, group=None, tag=None):
        """The machines of that group and/or tag, oldest first."""
        return [
            machine
            for machine in self._machines
            if (group is None or machine.entry.group == group)
            and (tag is None or machine.entry.tag == tag)
        ]

    def __iter__(self):
        return iter(list(self._machines))

    def __len__(self):
        return len(self._machines)

    def live_pids(self):
        return sorted(self._by_pid)

    def deliver(self, reaped):
        """Give each ``(pid, wait_status)`` to the machine that owns the pid."""
        for pid, status in reaped:
            machine = self._by_pid.pop(pid, None)
            if machine is None:
                log.debug("reaped pid %d (%s), not one of ours", pid, describe_status(status))
                continue
            machine.exited(pid, status)

    def next_deadline(self):
        """The earliest deadline of any machine, or None."""
        deadlines = [m.deadline for m in self._machines if m.deadline is not None]
        return min(deadlines) if deadlines else None

    def fire_due(self, now):
        """Send TIMEOUT to every machine whose deadline is not after ``now``."""
        for machine in list(self._machines):
            if machine.deadline is not None and machine.deadline <= now:
                machine.timeout()
