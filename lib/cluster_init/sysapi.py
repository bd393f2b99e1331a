"""The real side of the seam: RealSystem, the operating system as the daemon uses it.

seam.System lists what a System does and the contract of each member;
RealSystem does it for real, and the tests' FakeSystem (t/fake_system.py)
plays it.  RealSystem only puts the pieces together: launcher.py starts
children, procfs.py and marks.py look at processes under /proc, and
what is left here is short: signals, pidfds, the subreaper, reaping and
the clocks.
"""

import ctypes
import errno
import os
import select
import time

from . import marks, outputs, procfs, safepath
from .errors import SpawnError
from .launcher import Launcher, identity_of

SHELL = "/bin/sh"
PR_SET_CHILD_SUBREAPER = 36


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


def _check_directory(directory):
    """As root, a child's working directory is reached through trusted symlinks only
    (safepath), or the child would run, as root, where another user pointed a symlink:
    SpawnError saying why.  The directories on the way may be anybody's (the daemon
    writes nothing there; an entry may run in its user's home)."""
    if not safepath.is_strict():
        return
    try:
        os.close(safepath.open_directory(directory, links_only=True))
    except OSError as error:
        if error.errno in (errno.EPERM, errno.ELOOP):
            raise SpawnError(f"cannot change to directory {directory}: {error.strerror}") from None


def _ours(uid):
    """marks.Ours while the daemon lives: what descends from it, or runs as the
    expected ``uid`` (None: ours)."""
    return marks.Ours({os.getuid() if uid is None else uid}, os.getpid())


def _owned_by(pid, uid):
    try:
        return marks.owner(pid) == uid
    except (OSError, ValueError, IndexError):
        return False


class RealSystem:
    """The operating system, as the daemon uses it (seam.System has the contracts)."""

    def __init__(self):
        self._launcher = Launcher()

    # starting children (launcher.py)
    def spawn(self, command, env, directory=None, output=None, user=None, output_group=None):
        if directory is not None:
            _check_directory(directory)
        identity = None
        if user is not None:
            identity = identity_of(user)  # looked up at each start: SpawnError when it cannot be
            env = {**env, **identity.environ()}
        return self._launcher.spawn(SHELL, [SHELL, "-c", command], env, directory, output, identity, output_group)

    def spawning(self):
        return self._launcher.spawning()

    def signals_changed(self):
        self._launcher.signals_changed()

    def seal_descriptors(self):
        self._launcher.seal_descriptors()

    def raise_open_files_limit(self):
        return self._launcher.raise_open_files_limit()

    def open_files_limit(self):
        return self._launcher.limit

    # signalling and looking at processes
    def signal_group(self, pgid, signum):
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # gone, or not ours to signal: the stop gives up on it in bounded time

    def signal_process(self, pid, signum):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def group_alive(self, pgid):
        return procfs.group_alive(pgid)

    def group_is_ours(self, pgid, daemon_id, group, tag, uid=None):
        return procfs.group_exists(pgid) and marks.group_marked(pgid, daemon_id, group, tag, _ours(uid))

    def marked(self, daemon_id, group, tag, uid=None):
        return [found.pid for found in marks.scan(daemon_id, None, group, tag, ours=_ours(uid))]

    def leftovers(self, daemon_id):
        me, euid = os.getpid(), os.geteuid()
        found = marks.scan(daemon_id, None if euid == 0 else os.getuid())
        return [
            process
            for process in found
            if procfs.descends_from(process.pid, me) or _owned_by(process.pid, euid)
        ]

    def find_marked(self, daemon_id, uids=None):
        return marks.scan(daemon_id, {os.getuid(), *(uids or ())})

    # what the entries print
    def last_lines(self, paths):
        return outputs.last_lines(paths)

    # watching and collecting
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
        """PR_SET_CHILD_SUBREAPER through ctypes."""
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

    # time
    def now(self):
        return time.monotonic()

    def booted_at(self):
        return procfs.booted_at()
