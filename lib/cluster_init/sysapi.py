"""The seam for side effects: every spawn, kill, wait and clock read.

The machines never call ``os`` or ``time`` themselves; they call a
System.  RealSystem does the real thing; FakeSystem records what was
asked, lets a test say "pid 1234 exited with status 3", and has a clock
the test advances, so machine tests run without processes or sleeps.

A System has these operations:

``spawn(command, env, directory=None, output=None)``
    Start a child that runs ``/bin/sh -c command`` in a new session and
    process group with default signal dispositions, an empty signal
    mask, stdin from /dev/null, stdout and stderr appended to the file
    ``output`` (or, when None, those of the daemon), in ``directory``
    (or the daemon's), with the umask and the open-file limit the daemon
    was started with, and no other descriptor of ours.  Returns its pid
    once the shell has been exec'ed; raises SpawnError if the
    directory, the output file or the exec failed.
``spawning()``
    A context for a batch of spawns (see RealSystem).
``raise_open_files_limit()``
    Raise the daemon's soft open-files limit; the limits it had.
(Output files are opened for each spawn and closed once the child has
them: a rotated file is opened anew by the next child, and the daemon
holds no descriptor per entry.)
``signal_group(pgid, signum)``, ``signal_process(pid, signum)``
    Send a signal to a process group, or one process; one that is gone
    is no error.
``group_alive(pgid)``
    True while any process of the process group is left.
``group_is_ours(pgid, daemon_id, group, tag)``
    True while a process of the group is left that carries these marks:
    a group whose leader is gone can be emptied, and its number taken by
    a stranger's new session; only ours may be signalled.
``marked(daemon_id, group, tag)``
    The pids of our uid's processes that carry these marks (marks.py).
``find_marked(daemon_id)``
    Every live process of our uid that carries that daemon identity, as
    marks.Found (what a new daemon adopts).
``watch_process(pid)``, ``unwatch_process(watch)``
    A descriptor that becomes readable when ``pid`` (not necessarily our
    child) exits: a pidfd; None where pidfds are missing (Linux < 5.3).
``become_subreaper()``
    Make orphaned descendants come back to us (PR_SET_CHILD_SUBREAPER).
``reap()``
    Collect every child that has exited, without blocking: a list of
    ``(pid, wait_status)``.
``now()``
    A monotonic clock, in seconds.
"""

import contextlib
import ctypes
import dataclasses
import errno
import logging
import os
import resource
import select
import signal
import time

from . import marks
from .errors import SpawnError
from .spawn import Spawner
from .trust import open_append

SHELL = "/bin/sh"
PR_SET_CHILD_SUBREAPER = 36


def exit_code(wait_status):
    """The exit code of a wait status; minus the signal number if killed."""
    return os.waitstatus_to_exitcode(wait_status)


def describe_status(wait_status):
    """``exit 3`` or ``signal 9 (SIGKILL)``, for logs."""
    code = exit_code(wait_status)
    if code >= 0:
        return f"exit {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown"
    return f"signal {-code} ({name})"


def read_to_eof(fd, timeout=None):
    """Everything read from ``fd`` until every writer has closed it.

    TimeoutError if a read waits longer than ``timeout`` seconds.
    """
    data = bytearray()
    while True:
        if timeout is not None:
            readable, _, _ = select.select([fd], [], [], timeout)
            if not readable:
                raise TimeoutError(f"nothing to read within {timeout} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            return bytes(data)
        data += chunk


def _group_exists(pgid):
    """True while the kernel knows process group ``pgid`` (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _directory_problem(directory):
    """Why a child could not change to ``directory``, or None if it could."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        return error.strerror
    os.close(fd)
    return None


def changed_signals():
    """The signals whose disposition is not the default (Python's own included)."""
    changed = []
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if handler not in (signal.SIG_DFL, None):
            changed.append(signum)
    return changed


class RealSystem:
    """The operating system, as the daemon uses it.

    Children are started with the C library's posix_spawn (spawn.py: a
    vfork-style clone, so the cost does not grow with the daemon's
    memory, and the child's setup done by glibc).  What posix_spawn
    cannot do for one child is arranged in the daemon for all of them:

    * umask: the daemon keeps the one it was started with;
    * open-file limit: ``spawning()`` lowers the daemon's soft
      RLIMIT_NOFILE to ``nofile`` (the limit it was started with) for
      the length of a batch of spawns;
    * descriptors: the child closes every descriptor from 3 on; every
      descriptor the daemon has is close-on-exec as well (Python opens
      them so; ``seal_descriptors`` marks the ones the daemon
      inherited), which is all there is where glibc is older than 2.34;
    * working directory: changed in the child, or, where glibc is older
      than 2.29, in the daemon before it spawns.
    """

    def __init__(self):
        self.nofile = None  # (soft, hard) RLIMIT_NOFILE for children
        self._reset_signals = None
        self._null = None
        self._directory = None  # the directory we are in for children
        self._spawner = Spawner()

    def signals_changed(self):
        """The daemon changed signal dispositions: look again at the next spawn."""
        self._reset_signals = None

    @staticmethod
    def seal_descriptors():
        """Make every descriptor but 0, 1 and 2 close-on-exec, and 1 and 2 inheritable."""
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                os.set_inheritable(fd, fd in (0, 1, 2))
            except OSError:
                pass  # the directory listing's own descriptor, closed by now

    @staticmethod
    def _open_output(path):
        try:
            return open_append(path)
        except OSError as error:
            raise SpawnError(f"cannot open output {path}: {error.strerror or error}") from None

    def raise_open_files_limit(self):
        """Raise the soft RLIMIT_NOFILE to the hard one; the limits as they were.

        Hundreds of connections and waiters, and the pidfds of adopted
        processes, can pass the usual soft limit of 1024; children get the
        original limits back (``spawning``).
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (OSError, ValueError) as error:
                logging.getLogger("cluster_init").warning(
                    "cannot raise the open files limit to %d: %s", hard, error
                )
        return soft, hard

    @contextlib.contextmanager
    def spawning(self):
        """A batch of spawns: children get the open-file limit the daemon was started with."""
        current = resource.getrlimit(resource.RLIMIT_NOFILE)
        lower = self.nofile is not None and self.nofile != current
        if lower:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
        try:
            yield
        finally:
            if lower:
                resource.setrlimit(resource.RLIMIT_NOFILE, current)

    def _change_directory(self, directory):
        if directory != self._directory:
            try:
                os.chdir(directory)
            except OSError as error:
                raise SpawnError(f"cannot change to directory {directory}: {error.strerror}") from None
            self._directory = directory

    def spawn(self, command, env, directory=None, output=None):
        if self._null is None:
            self._null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        spawner = self._spawner
        if directory is not None and not (spawner.available and spawner.chdir_in_child):
            self._change_directory(directory)
        out = 1 if output is None else self._open_output(output)
        err = 2 if output is None else out
        argv = [SHELL, "-c", command]
        try:
            if spawner.available:
                return spawner.spawn(SHELL, argv, env, self._null, out, err, directory)
            return self._python_posix_spawn(argv, env, out, err)
        except OSError as error:
            reason = _directory_problem(directory) if directory is not None else None
            if reason is not None:
                raise SpawnError(f"cannot change to directory {directory}: {reason}") from None
            raise SpawnError(f"cannot exec {SHELL}: {error.strerror or error}") from None
        finally:
            if output is not None:
                os.close(out)

    def _python_posix_spawn(self, argv, env, out, err):
        """Without ctypes' posix_spawn: the signals glibc keeps may stay ignored."""
        if self._reset_signals is None:
            self._reset_signals = tuple(changed_signals())
        actions = [(os.POSIX_SPAWN_DUP2, self._null, 0), (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)]
        return os.posix_spawn(
            SHELL, argv, env, file_actions=actions, setsid=True, setsigdef=self._reset_signals, setsigmask=()
        )

    def signal_group(self, pgid, signum):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    def signal_process(self, pid, signum):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def group_alive(self, pgid):
        """True while a process of group ``pgid`` lives; zombies do not count (an init
        that does not reap, or a parent that has not reaped yet, must not hold a stop).
        When it cannot be told (no descriptor left to read /proc), True: go on stopping."""
        if not _group_exists(pgid):
            return False
        if marks.live_in_group(pgid, pgid):
            return True  # its leader: the common case, one read
        try:
            names = os.listdir("/proc")
        except OSError:
            return True
        return any(marks.live_in_group(int(name), pgid) for name in names if name.isdigit())

    def group_is_ours(self, pgid, daemon_id, group, tag):
        return _group_exists(pgid) and marks.group_marked(pgid, daemon_id, group, tag)

    def marked(self, daemon_id, group, tag):
        uid = None if os.geteuid() == 0 else os.getuid()  # root signals what dropped privileges too
        return [found.pid for found in marks.scan(daemon_id, uid, group, tag)]

    def find_marked(self, daemon_id):
        return marks.scan(daemon_id, os.getuid())

    def watch_process(self, pid):
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return None
        try:
            return pidfd_open(pid)
        except ProcessLookupError:
            raise
        except OSError as error:
            if error.errno in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                return None
            raise

    def unwatch_process(self, watch):
        os.close(watch)

    def become_subreaper(self, on=True):
        """PR_SET_CHILD_SUBREAPER through ctypes (``on=False`` gives it up);
        False where it cannot be had."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0
        except (OSError, AttributeError):
            return False

    def reap(self):
        reaped = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped.append((pid, status))
        return reaped

    def now(self):
        return time.monotonic()


@dataclasses.dataclass
class Spawned:
    """What a FakeSystem was asked to run."""

    pid: int
    command: str
    env: dict
    directory: str = None
    output: str = None


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
    ``pidfds = False`` plays a kernel without pidfds.
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
        self.watched = {}  # watch token -> pid
        self.pidfds = True
        self.subreaper = False
        self._exited = []

    def spawn(self, command, env, directory=None, output=None):
        if self.fail_spawns:
            self.fail_spawns -= 1
            raise SpawnError("cannot fork: Resource temporarily unavailable")
        pid = self.next_pid
        self.next_pid += 1
        self.spawned.append(Spawned(pid, command, dict(env), directory, output))
        self.live.add(pid)
        return pid

    @contextlib.contextmanager
    def spawning(self):
        yield

    def raise_open_files_limit(self):
        return (1024, 4096)

    def signal_group(self, pgid, signum):
        self.signals.append((pgid, signum))

    def signal_process(self, pid, signum):
        self.signals.append(("pid", pid, signum))

    def group_alive(self, pgid):
        return pgid in self.live or bool(self.members.get(pgid))

    def group_is_ours(self, pgid, daemon_id, group, tag):
        return pgid not in self.strangers and self.group_alive(pgid)

    def marked(self, daemon_id, group, tag):
        return sorted(pid for pid, marks in self.escapees.items() if marks == (group, tag))

    def find_marked(self, daemon_id):
        return list(self.found)

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
