"""Starting a child: what clinit arranges around posix_spawn for every child.

Children are started with the C library's posix_spawn (spawn.py: a
vfork-style clone, so the cost does not grow with the daemon's memory,
and the child's setup done by glibc).  What posix_spawn cannot do for
one child is arranged in the daemon for all of them:

* umask: the daemon keeps the one it was started with;
* open-file limit: ``raise_open_files_limit`` remembers the limits the
  daemon was started with, and ``spawning()`` lowers the daemon's soft
  RLIMIT_NOFILE to them for the length of a batch of spawns;
* descriptors: the child closes every descriptor from 3 on; every
  descriptor the daemon has is close-on-exec as well (Python opens them
  so; ``seal_descriptors`` marks the ones the daemon inherited), which
  is all there is where glibc is older than 2.34;
* working directory: changed in the child, or, where glibc is older
  than 2.29, in the daemon before it spawns;
* signals: glibc's posix_spawn resets every one; without it, Python's
  os.posix_spawn resets those the daemon changed (``signals_changed``
  says to look again).

Output files are opened for each spawn and closed once the child has
them: a rotated file is opened anew by the next child, and the daemon
holds no descriptor per entry.  Their missing directories are made then
(``open_output``), so that %g and %t may stand in a directory's name.
With a socket group, they are given that group (mode 0640), so that
whoever may command the daemon may read what its entries print
(``clinit --output``).

An entry that runs as another user (``:::user:``) takes the user path
instead of posix_spawn: its identity is looked up at each start (users.py;
a lookup that fails fails that start, with its reason), and it is
started by fork, a change of ids and exec (forkexec.py).
"""

import contextlib
import logging
import os
import resource
import signal
import stat

from . import safepath, users
from .errors import SpawnError
from .forkexec import not_default, spawn_as
from .spawn import Spawner


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


def _directory_problem(directory):
    """Why a child could not change to ``directory``, or None if it could."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        return error.strerror
    os.close(fd)
    return None


def open_output(path, group=None):
    """The output file ``path`` of a child, opened for append (created 0640), its
    missing directories made (0755), given the group ``group`` (None: left as it
    is; see ``_share``); SpawnError saying why when it cannot be.

    Walked component by component from / (safepath.py): as root, every
    directory on the way must be trusted, no symlink is followed unless
    trusted, and the file must be a regular file of ours (or a character
    device, /dev/null); a FIFO is refused without blocking.
    """
    try:
        directory, name = safepath.split(path)
        dir_fd = safepath.open_directory(directory, make=True, mode=0o755)
        try:
            fd = safepath.open_beneath(
                dir_fd, name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640, devices=True, shown=path
            )
        finally:
            os.close(dir_fd)
    except OSError as error:
        raise SpawnError(f"cannot open output {path}: {error.strerror or error}") from None
    if group is not None:
        _share(fd, path, group)
    return fd


def _share(fd, path, group):
    """Give the output file ``fd`` (at ``path``) the group ``group``, readable by it."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        if info.st_gid != group:
            os.fchown(fd, -1, group)
        if stat.S_IMODE(info.st_mode) & 0o040 == 0:
            os.fchmod(fd, stat.S_IMODE(info.st_mode) | 0o040)
    except OSError as error:
        logging.getLogger("cluster_init").warning(
            "cannot give the output file %s to group %d: %s", path, group, error.strerror or error
        )


def identity_of(user):
    """The users.Identity an entry's ``user`` names now; SpawnError saying why not."""
    try:
        return users.lookup(user)
    except (users.NoSuchUser, users.LookupFailed) as error:
        raise SpawnError(str(error) if isinstance(error, users.NoSuchUser) else error.strerror) from None


class Launcher:
    """Starts children (``spawn``) with what the daemon keeps for them: the open-file
    limit it was started with, its umask, none of its descriptors, default signals."""

    def __init__(self):
        self.limit = None  # (soft, hard) RLIMIT_NOFILE for children; None: the daemon's own
        self._reset_signals = None
        self._user_signals = None  # what the user path sets to the default (forkexec.not_default)
        self._null = None
        self._directory = None  # the directory we are in for children
        self._spawner = Spawner()

    def signals_changed(self):
        """The daemon changed signal dispositions: look again at the next spawn."""
        self._reset_signals = None
        self._user_signals = None

    @staticmethod
    def seal_descriptors():
        """Make every descriptor but 0, 1 and 2 close-on-exec, and 1 and 2 inheritable."""
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                os.set_inheritable(fd, fd in (0, 1, 2))
            except OSError:
                pass  # the directory listing's own descriptor, closed by now

    def raise_open_files_limit(self):
        """Raise the soft RLIMIT_NOFILE to the hard one; the limits as they were,
        which children get from now on (``spawning``).

        Hundreds of connections and waiters, and the pidfds of adopted
        processes, can pass the usual soft limit of 1024.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (OSError, ValueError) as error:
                logging.getLogger("cluster_init").warning(
                    "cannot raise the open files limit to %d: %s", hard, error
                )
        self.limit = (soft, hard)
        return self.limit

    @contextlib.contextmanager
    def spawning(self):
        """A batch of spawns: children get the open-file limit the daemon was started with."""
        current = resource.getrlimit(resource.RLIMIT_NOFILE)
        lower = self.limit is not None and self.limit != current
        if lower:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.limit)
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

    def spawn(self, path, argv, env, directory=None, output=None, identity=None, output_group=None):
        """Start ``path`` with ``argv`` and ``env``: its pid once it has been exec'ed
        (seam.System.spawn says what the child gets); SpawnError if it could not be.
        ``identity`` (users.Identity) other than ours takes the user path (root only:
        another daemon runs its entries as itself, the only user cltab.py lets it name)."""
        if self._null is None:
            self._null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        spawner = self._spawner
        as_user = identity is not None and os.geteuid() == 0 and not identity.is_current()
        if directory is not None and not as_user and not (spawner.available and spawner.chdir_in_child):
            self._change_directory(directory)
        out = 1 if output is None else open_output(output, output_group)
        err = 2 if output is None else out
        try:
            if as_user:
                if self._user_signals is None:
                    self._user_signals = tuple(not_default())
                return spawn_as(identity, path, argv, env, (self._null, out, err), directory, self._user_signals)
            if spawner.available:
                return spawner.spawn(path, argv, env, self._null, out, err, directory)
            return self._python_posix_spawn(path, argv, env, out, err)
        except OSError as error:
            reason = _directory_problem(directory) if directory is not None else None
            if reason is not None:
                raise SpawnError(f"cannot change to directory {directory}: {reason}") from None
            raise SpawnError(f"cannot exec {path}: {error.strerror or error}") from None
        finally:
            if output is not None:
                os.close(out)

    def _python_posix_spawn(self, path, argv, env, out, err):
        """Without ctypes' posix_spawn: the signals glibc keeps may stay ignored."""
        if self._reset_signals is None:
            self._reset_signals = tuple(changed_signals())
        actions = [(os.POSIX_SPAWN_DUP2, self._null, 0), (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)]
        return os.posix_spawn(
            path, argv, env, file_actions=actions, setsid=True, setsigdef=self._reset_signals, setsigmask=()
        )
