"""The daemon's index of process machines, and the one watcher of their children.

* by pid: ``reap`` collects every child that exited (waitpid, through the
  System) and ``deliver`` hands each exit status to the machine that
  owns the pid;
* adopted processes (a dead predecessor's; not our children): their
  exits come through pidfds (``watch_adopted``); ``watch_fd`` and
  ``unwatch_fd`` are the loop's hooks to watch such a descriptor, which
  calls ``pidfd_readable(fd)`` when it is (None when nothing watches:
  machine tests call it themselves);
* deadlines: the loop asks ``next_deadline`` how long it may sleep and
  calls ``fire_due`` when one has passed;
* spawns: a machine that wants its command started asks ``want_spawn``;
  the loop has a bounded batch started per pass (``run_spawns``), so
  clients are served between batches.  With ``immediate`` (machine
  tests) the spawn happens at once.  The registry spawns through the
  System what the machine asks for (``spawn_request``) and tells it how
  that went (``spawned(pid)`` or ``spawn_failed(error)``).
"""

import logging

from .errors import SpawnError
from .waitstatus import describe_status

log = logging.getLogger("cluster_init")


class Registry:
    """Every process machine, and which one owns which running pid and pidfd.

    ``system`` is the seam (sysapi.System) children are spawned, reaped
    and watched through, and whose clock ``run_spawns`` reads.
    """

    def __init__(self, system, immediate=True, watch_fd=None, unwatch_fd=None):
        self.system = system
        self.immediate = immediate
        self.watch_fd = watch_fd  # watch_fd(fd, callback): the loop calls callback() when fd is readable
        self.unwatch_fd = unwatch_fd
        self._machines = {}  # machine -> None, in order of creation
        self._by_pid = {}
        self._to_spawn = {}  # machine -> None, in order of asking
        self._pidfds = {}  # pidfd -> (pid, machine), for adopted processes
        self._stray_watchers = []  # called when a process that was no leader of ours exits

    def add(self, machine):
        self._machines[machine] = None

    def remove(self, machine):
        """Forget a machine; it must own no running process."""
        assert machine.pid is None, f"{machine.describe()} still owns pid {machine.pid}"
        self._machines.pop(machine, None)
        self._to_spawn.pop(machine, None)

    def watch(self, pid, machine):
        """Record that ``machine`` owns ``pid``: its exit goes to it."""
        self._by_pid[pid] = machine

    def forget_pid(self, pid, machine):
        """``machine`` gives up on its leader ``pid`` (a stop that SIGKILL could not end):
        its exit, if it ever comes, is a stray's.  None (the machine's pid from now on)."""
        if pid is not None and self._by_pid.get(pid) is machine:
            del self._by_pid[pid]

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

    # exits
    def reap(self):
        """Collect every child that has exited, without blocking, and deliver each exit."""
        self.deliver(self.system.reap())

    def deliver(self, reaped):
        """Give each ``(pid, wait_status)`` to the machine that owns the pid.

        An exit no machine owns is an orphaned descendant that came back
        to us as its subreaper: the machines still stopping look again.
        """
        strays = 0
        for pid, status in reaped:
            machine = self._by_pid.pop(pid, None)
            if machine is None:
                log.debug("reaped pid %d (%s), not a leader of ours", pid, describe_status(status))
                strays += 1
                continue
            machine.exited(pid, status)
        if strays:
            self.members_changed()

    def members_changed(self):
        """A process that was no leader exited: the machines still stopping look again
        (and whoever ``watch_strays`` asked)."""
        for machine in list(self._machines):
            machine.members_changed()
        for watcher in self._stray_watchers:
            watcher()

    def watch_strays(self, watcher):
        """Have ``watcher()`` called whenever a process that was no leader of ours exits."""
        self._stray_watchers.append(watcher)

    def watch_adopted(self, pid, machine, leader=False, watch=None):
        """Watch ``pid``, which is not our child, through a pidfd; False if it cannot be.

        Its exit goes to ``machine``: as ``exited(pid, None)`` if it is the
        machine's ``leader`` (the status of a process that is not our
        child cannot be known), else as ``members_changed()``.  It cannot
        be watched when it is gone already or pidfds are missing.  ``watch``
        is a pidfd of it already open (a handover passes them on, so that an
        exit during the exec is not missed).
        """
        try:
            fd = self.system.watch_process(pid) if watch is None else watch
        except ProcessLookupError:
            return False  # gone meanwhile: the group check finds out
        if fd is None:
            return False  # no pidfds: a stop finds out by its deadlines
        self._pidfds[fd] = (pid, machine)
        if leader:
            self._by_pid[pid] = machine
        if self.watch_fd is not None:
            self.watch_fd(fd, lambda: self.pidfd_readable(fd))
        return True

    def watched(self, machine):
        """``(pid, pidfd)`` of each process watched through a pidfd for ``machine``
        (adopted after a crash), sorted."""
        return sorted((pid, fd) for fd, (pid, owner) in self._pidfds.items() if owner is machine)

    def pidfd_readable(self, fd):
        """An adopted process exited (its pidfd ``fd`` is readable): tell its machine."""
        pid, machine = self._pidfds.pop(fd, (None, None))
        if machine is None:
            return
        if self.unwatch_fd is not None:
            self.unwatch_fd(fd)
        self.system.unwatch_process(fd)
        if self._by_pid.get(pid) is machine:
            del self._by_pid[pid]
            machine.exited(pid, None)
        else:
            machine.members_changed()

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
        """True if ``machine`` was still waiting for its spawn (and no longer is)."""
        return self._to_spawn.pop(machine, 0) is None

    def spawns_waiting(self):
        return len(self._to_spawn)

    def run_spawns(self, limit=None, until=None):
        """Start up to ``limit`` waiting machines' commands (all of them when None),
        and none once the System's clock reads ``until``; how many were started."""
        done = 0
        while self._to_spawn and (limit is None or done < limit):
            machine = next(iter(self._to_spawn))
            if until is not None and done and self.system.now() >= until:
                break
            del self._to_spawn[machine]
            self._spawn(machine)
            done += 1
        return done

    def _spawn(self, machine):
        try:
            pid = self.system.spawn(**machine.spawn_request())
        except SpawnError as error:
            machine.spawn_failed(error)
            return
        self._by_pid[pid] = machine
        machine.spawned(pid)
