"""The daemon's index of process machines, and their traffic with the loop.

* by pid: the reaper hands every exit status to ``deliver``, which finds
  the machine that owns the pid;
* deadlines: the loop asks ``next_deadline`` how long it may sleep and
  calls ``fire_due`` when one has passed;
* spawns: a machine that wants its command started asks ``want_spawn``;
  the loop forks a bounded batch per pass (``run_spawns``), so clients
  are served between batches.  With ``immediate`` (machine tests) the
  fork happens at once;
* descriptors the loop must watch for a machine (a child's exec report
  pipe, an adopted process's pidfd): ``watch_fd`` and ``unwatch_fd`` are
  the loop's hooks, None when nothing watches (machine tests poll).
"""

import logging

from .sysapi import describe_status

log = logging.getLogger("cluster_init")


class Registry:
    """Every process machine, and which one owns which running pid and descriptor."""

    def __init__(self, immediate=True, watch_fd=None, unwatch_fd=None):
        self.immediate = immediate
        self.watch_fd = watch_fd  # watch_fd(fd, callback): the loop calls callback() when fd is readable
        self.unwatch_fd = unwatch_fd
        self._machines = {}  # machine -> None, in order of creation
        self._by_pid = {}
        self._to_spawn = {}  # machine -> None, in order of asking
        self._fds = {}  # watched fd -> machine

    def add(self, machine):
        self._machines[machine] = None

    def remove(self, machine):
        """Forget a machine; it must own no running process."""
        assert machine.pid is None, f"{machine.describe()} still owns pid {machine.pid}"
        self._machines.pop(machine, None)
        self._to_spawn.pop(machine, None)

    def watch(self, pid, machine):
        """Record that ``machine`` started (or adopted) ``pid``: its exit goes to it."""
        self._by_pid[pid] = machine

    def unwatch(self, pid):
        self._by_pid.pop(pid, None)

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
        """Give each ``(pid, wait_status)`` to the machine that owns the pid.

        Returns the number of exits no machine owned (orphaned descendants
        that came back to us as their subreaper).
        """
        strays = 0
        for pid, status in reaped:
            machine = self._by_pid.pop(pid, None)
            if machine is None:
                log.debug("reaped pid %d (%s), not a leader of ours", pid, describe_status(status))
                strays += 1
                continue
            machine.exited(pid, status)
        return strays

    # deadlines
    def next_deadline(self):
        """The earliest deadline of any machine, or None."""
        deadlines = [m.deadline for m in self._machines if m.deadline is not None]
        return min(deadlines) if deadlines else None

    def fire_due(self, now):
        """Send TIMEOUT to every machine whose deadline is not after ``now``."""
        for machine in [m for m in self._machines if m.deadline is not None and m.deadline <= now]:
            if machine.deadline is not None and machine.deadline <= now:
                machine.timeout()

    # spawns
    def want_spawn(self, machine):
        """``machine`` wants its command started: now, or in the loop's next batch."""
        self._to_spawn[machine] = None
        if self.immediate:
            self.run_spawns()

    def cancel_spawn(self, machine):
        """True if ``machine`` was still waiting for its fork (and no longer is)."""
        return self._to_spawn.pop(machine, 0) is None

    def spawns_waiting(self):
        return len(self._to_spawn)

    def run_spawns(self, limit=None, until=None):
        """Start up to ``limit`` waiting machines (all of them when None), and
        none once the clock of the first one's system reads ``until``."""
        done = 0
        while self._to_spawn and (limit is None or done < limit):
            machine = next(iter(self._to_spawn))
            if until is not None and done and machine.ctx.system.now() >= until:
                break
            del self._to_spawn[machine]
            machine.fork()
            done += 1
        return done

    # watched descriptors
    def watch_descriptor(self, fd, machine, callback):
        """Have the loop call ``callback()`` whenever ``fd`` is readable."""
        self._fds[fd] = machine
        if self.watch_fd is not None:
            self.watch_fd(fd, callback)

    def forget_descriptor(self, fd):
        """Stop watching ``fd`` (before it is closed)."""
        if self._fds.pop(fd, None) is not None and self.unwatch_fd is not None:
            self.unwatch_fd(fd)

    def poll_descriptors(self):
        """Without a loop (machine tests): let every watched descriptor's machine look."""
        for machine in list(self._fds.values()):
            machine.poll()
