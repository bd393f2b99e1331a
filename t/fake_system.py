"""FakeSystem: the seam (seam.System) for tests, where nothing runs and everything is recorded.

The machines and the daemon's parts call a System for every side
effect; this one records what was asked, lets a test say "pid 1234
exited with status 3", and has a clock the test advances, so machine
and daemon-part tests run without processes or sleeps.  It provides
every member of seam.System (t/test_seam.py holds it, and RealSystem,
to that); what follows "what tests call" is the fake's own.
"""

import contextlib
import dataclasses

from cluster_init.errors import SpawnError


@dataclasses.dataclass
class Spawned:
    """What a FakeSystem was asked to run."""

    pid: int
    command: str
    env: dict
    directory: str = None
    output: str = None
    user: str = None
    output_group: int = None


class FakeSystem:
    """A System for tests: nothing runs, everything is recorded.

    ``spawned`` and ``signals`` list what was asked, in order (a
    ``signal_process`` is recorded as ``("pid", pid, signum)``).
    ``exit(pid, code)`` (or ``exit(pid, signum=9)``) makes the next
    ``reap()`` report that pid; ``advance(seconds)`` moves the clock;
    ``fail_spawns`` makes the next spawns raise SpawnError.  Each spawned
    pid leads its own process group; ``member(pgid)`` adds a process to
    one (a shell's background job), ``escapee(group, tag)`` a marked
    process outside every group (one that called setsid), and
    ``exit(pid)`` of either is reaped as an orphan that came back to us.
    ``pidfds = False`` plays a kernel without pidfds; ``boot_time`` is
    what ``booted_at()`` says (0: it cannot be told); ``limits`` what
    ``raise_open_files_limit()`` finds; ``lines`` maps an output file's
    path to its last line (``last_lines``); ``marked_uids`` records the
    uids each ``find_marked`` was asked to look at besides ours.
    """

    def __init__(self, first_pid=1000, clock=1000.0):
        self.clock = clock
        self.next_pid = first_pid
        self.spawned = []
        self.signals = []
        self.live = set()
        self.fail_spawns = 0
        self.members = {}  # pgid -> pids of its processes besides the leader
        self.escapees = {}  # pid -> (group, tag) of marked processes outside any group
        self.strangers = set()  # process group numbers taken by a stranger's new session
        self.found = []  # marks.Found a new daemon finds at start (adoption)
        self.marked_uids = []  # the uids each find_marked looked at, besides ours
        self.lines = {}  # output file -> its last line
        self.watched = {}  # watch token -> pid
        self.pidfds = True
        self.subreaper = False
        self.boot_time = 0
        self.limits = (1024, 4096)
        self.sealed = False  # seal_descriptors() was called
        self.signals_looked_at = 0  # how many times signals_changed() was called
        self._limit = None
        self._exited = []

    # the seam (seam.System)
    def spawn(self, command, env, directory=None, output=None, user=None, output_group=None):
        if self.fail_spawns:
            self.fail_spawns -= 1
            raise SpawnError("cannot fork: Resource temporarily unavailable")
        pid = self.next_pid
        self.next_pid += 1
        self.spawned.append(Spawned(pid, command, dict(env), directory, output, user, output_group))
        self.live.add(pid)
        return pid

    @contextlib.contextmanager
    def spawning(self):
        yield

    def signals_changed(self):
        self.signals_looked_at += 1

    def seal_descriptors(self):
        self.sealed = True

    def raise_open_files_limit(self):
        self._limit = self.limits
        return self.limits

    def open_files_limit(self):
        return self._limit

    def signal_group(self, pgid, signum):
        self.signals.append((pgid, signum))

    def signal_process(self, pid, signum):
        self.signals.append(("pid", pid, signum))

    def group_alive(self, pgid):
        return pgid in self.live or bool(self.members.get(pgid))

    def group_is_ours(self, pgid, daemon_id, group, tag, uid=None):
        return pgid not in self.strangers and self.group_alive(pgid)

    def marked(self, daemon_id, group, tag, uid=None):
        return sorted(pid for pid, marks in self.escapees.items() if marks == (group, tag))

    def find_marked(self, daemon_id, uids=None):
        self.marked_uids.append(sorted(uids or ()))
        return list(self.found)

    def leftovers(self, daemon_id):
        from cluster_init.marks import Found

        return [Found(pid, pid, group, tag, "") for pid, (group, tag) in sorted(self.escapees.items())]

    def last_lines(self, paths):
        return {path: self.lines[path] for path in paths if path in self.lines}

    def watch_process(self, pid):
        if not self.pidfds:
            return None
        token = 100000 + len(self.watched)
        self.watched[token] = pid
        return token

    def unwatch_process(self, watch):
        self.watched.pop(watch, None)

    def become_subreaper(self, on=True):
        self.subreaper = on
        return True

    def reap(self):
        reaped, self._exited = self._exited, []
        return reaped

    def now(self):
        return self.clock

    def booted_at(self):
        return self.boot_time

    # what tests call
    def exit(self, pid, code=0, signum=None):
        """Make ``pid`` (a leader, a member or an escapee) exit, with ``code`` or killed by ``signum``."""
        status = signum if signum is not None else (code & 0xFF) << 8
        if pid in self.escapees:
            del self.escapees[pid]
        elif pid in self.live:
            self.live.discard(pid)
        else:
            pgids = [pgid for pgid, pids in self.members.items() if pid in pids]
            assert pgids, f"pid {pid} is not running"
            self.members[pgids[0]].discard(pid)
        self._exited.append((pid, status))

    def member(self, pgid):
        """A new process in process group ``pgid``; its pid."""
        pid = self.next_pid
        self.next_pid += 1
        self.members.setdefault(pgid, set()).add(pid)
        return pid

    def escapee(self, group, tag):
        """A new marked process of ``group:tag`` outside any of our groups; its pid."""
        pid = self.next_pid
        self.next_pid += 1
        self.escapees[pid] = (group, tag)
        return pid

    def advance(self, seconds):
        self.clock += seconds

    def pid_of(self, tag):
        """The pid of the newest process started for ``tag``."""
        for spawned in reversed(self.spawned):
            if spawned.env.get("CLINIT_TAG") == tag:
                return spawned.pid
        raise KeyError(tag)

    def running_tags(self):
        """The tags whose newest process is still running, sorted."""
        return sorted(
            spawned.env.get("CLINIT_TAG") for spawned in self.spawned if spawned.pid in self.live
        )
