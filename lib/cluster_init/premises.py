"""The daemon's places on disk: where its files are, and taking them.

* where: the socket, clstat, the log and the pid file (``resolve_paths``),
  and the directory the daemon was started from, its umask and its
  environment, which its children get (``context``);
* the directories of those files, made in one place (mode 0755) and, for
  a root daemon, trusted: every file and directory here is reached
  component by component from / (safepath.py), following a symlink on
  the way only when it and its directory are root's and nobody else can
  write there (/var/run -> /run);
* what is at the clstat and pid-file paths: a regular file or nothing (a
  FIFO there would hang whoever opens it: refused, ``check_trust``);
* the socket: a stale one (no daemon answers) is removed, a live one
  refuses the start (stalesocket.py);
* the lock beside the socket (socketlock.py), held for the daemon's life,
  or until its process exits (``clinit -d`` and ``-d -b``, ``keep_lock``),
  and taken again, with the socket, when someone removed them (``keep``);
* the log (logfile.py): opened at start, reopened on SIGHUP;
* what ``clinit -d -b`` checks before it detaches (``check_files``);
* sd_notify: READY=1 to systemd when NOTIFY_SOCKET is set (RELOADING=1
  before a handover);
* a handover (handover.py) passes the lock on across the exec
  (``take_lock``), and says where the first image started (``start_dir``).

Every failure to start is a DaemonStartError that says what to set.
"""

import errno
import logging
import os
import socket
import stat

from . import cltab as _cltab
from . import marks, safepath, socketlock, stalesocket
from .context import Context
from .errors import CltabError, DaemonStartError
from .logfile import DaemonLog

log = logging.getLogger("cluster_init")

HINTS = {"pidfile": " (set -p or :::pidfile:)"}  # what to set when a file cannot be had


def resolve_paths(table, given, base):
    """Absolute paths of socket, clstat, log and pidfile.

    A cltab setting wins over ``given`` (constructor arguments, command
    line flags), which wins over the defaults; relative paths are taken
    from ``base``, the directory the daemon was started from (as the
    Perl daemon did), also after ``clinit -d -b`` has moved to /.
    """
    return {
        name: os.path.normpath(os.path.join(base, table.setting(name, given.get(name))))
        for name in _cltab.PATH_SETTINGS
    }


def socket_group_id(table):
    """The gid of the ``socket_group`` setting (looked up once, at start), or None."""
    name = table.setting("socket_group")
    if name is None:
        return None
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise CltabError(table.path, [(0, f"setting socket_group: no such group {name!r}")]) from None


def sd_notify(path, message):
    """Send ``message`` to systemd's notification socket ``path`` (Type=notify)."""
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), path)
        except OSError as error:
            log.warning("cannot notify systemd on %s: %s", path, error.strerror or error)


def _is_terminal(fd):
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _hint(name):
    return HINTS.get(name, f" (set :::{name}:)")


def _probe(path):
    """Create and remove a temporary file in ``path``'s directory, reached through safepath."""
    directory, name = safepath.split(path)
    dir_fd = safepath.open_directory(directory)
    try:
        probe = f".{name}.{os.urandom(6).hex()}"
        os.close(safepath.open_beneath(dir_fd, probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


class Premises:
    """Where one daemon keeps its files, and what it holds of them.

    Built from the cltab ``table`` it starts with and the paths ``given``
    (socket, clstat, log, pidfile; None for the cltab's or the default);
    ``background`` for ``clinit -d -b`` (the pid file is the daemon's then).
    Raises CltabError if the socket group does not exist.
    """

    def __init__(self, table, given, background=False, log_to_stderr=True, start_dir=None):
        self.start_dir = start_dir or os.getcwd()  # a handover says where the first image started
        self.umask = os.umask(0o022)  # children's; clinit -d -b keeps it as the daemon's
        os.umask(self.umask)
        self.given = dict(given)
        self.background = background
        self.terminal = _is_terminal(1)  # before -b detaches: children write here, or to files
        self.paths = resolve_paths(table, self.given, self.start_dir)
        self.daemon_log = DaemonLog(self.paths["log"], log_to_stderr)
        self.socket_group = table.setting("socket_group")
        self.socket_gid = socket_group_id(table)
        self.environ = dict(os.environ)
        self.notify_socket = self.environ.pop("NOTIFY_SOCKET", None)  # for us, not for children
        self.environ[marks.DAEMON] = self.paths["socket"]  # our children's identity mark
        self.lock_fd = None
        self._keep_lock = False
        self._made = False

    @property
    def socket_path(self):
        return self.paths["socket"]

    def _names(self):
        """The daemon's files: the pid file is its own only when it detaches."""
        return ("socket", "clstat", "log", "pidfile") if self.background else ("socket", "clstat", "log")

    def context(self, system, registry):
        """The process machines' Context: the children's environment, where they run."""
        return Context(
            system,
            registry,
            environ=dict(self.environ),
            daemon_id=self.paths["socket"],
            start_dir=self.start_dir,
            log_path=self.paths["log"],
            background=self.background,
            terminal=self.terminal,
            output_group=self.socket_gid,
            uid=os.getuid(),
        )

    def settings_changed(self, table):
        """A newly read cltab: log each setting of ours it changes (they take effect at
        the next daemon start)."""
        if table.setting("socket_group") != self.socket_group:
            log.warning("setting socket_group changed: takes effect at the next daemon start")
        for name, path in resolve_paths(table, self.given, self.start_dir).items():
            if path != self.paths[name]:
                log.warning("setting %s changed to %s: takes effect at the next daemon start", name, path)

    # directories
    def _make_directory_of(self, name):
        directory = os.path.dirname(self.paths[name])
        try:
            safepath.ensure_directory(directory)
        except OSError as error:
            why = "not using" if error.errno == errno.EPERM else "cannot create"
            raise DaemonStartError(f"{why} {directory} for the {name}: {error.strerror}{_hint(name)}") from None

    def make_directories(self):
        """The directories of the daemon's files (mode 0755), once; DaemonStartError
        if one cannot be made."""
        if self._made:
            return
        for name in self._names():
            self._make_directory_of(name)
        self._made = True

    def check_trust(self):
        """The directories were checked as they were made (safepath); here, what is at
        the clstat and pid-file paths: DaemonStartError unless it is a regular file or
        nothing (a symlink, as root: clstat is replaced, never followed)."""
        for name in ("clstat", "pidfile") if self.background else ("clstat",):
            path = self.paths[name]
            try:
                info = safepath.lstat(path)
            except OSError:
                continue  # nothing there, or said when it is written
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                raise DaemonStartError(
                    f"the {name} {path} is {safepath.kind(info.st_mode)}, not a regular file;"
                    f" remove it or choose another path{_hint(name)}"
                )

    def check_files(self):
        """Before clinit -d -b detaches, where nothing it says afterwards is seen:
        DaemonStartError unless the log opens and clstat's directory takes files."""
        self.make_directories()
        self.check_trust()
        path = self.paths["log"]
        try:
            os.close(safepath.open_append(path))
        except OSError as error:
            raise DaemonStartError(f"cannot open the log {path}: {safepath.reason(error, path)}") from None
        for name in ("clstat", "pidfile"):
            try:
                _probe(self.paths[name])
            except OSError as error:
                raise DaemonStartError(
                    f"cannot write the {name} {self.paths[name]}: {error.strerror or error}{HINTS.get(name, '')}"
                ) from None

    # the socket and its lock
    def check_socket(self):
        """Refuse if a live daemon answers on our socket; remove a stale one
        (stalesocket.py)."""
        stalesocket.check(self.paths["socket"])

    def lock(self):
        """Take the socket's lock (DaemonStartError if another daemon holds it)."""
        if self.lock_fd is None:
            self.lock_fd = socketlock.acquire(self.paths["socket"])

    def take_lock(self, fd):
        """A handover passed the lock on (descriptor ``fd``, locked before the exec): hold
        it, or, when the lock file was removed or replaced meanwhile, lock it anew."""
        if socketlock.still_ours(fd, self.paths["socket"]):
            self.lock_fd = fd
            return
        try:
            os.close(fd)
        except OSError:
            pass  # not open: the exec did not keep it
        self.lock()

    def keep_lock(self):
        """Hold the lock until this process exits, past ``unlock`` (clinit -d: ``-k -w``
        returns once the process has exited; with -b, after the pid file is gone)."""
        self._keep_lock = True

    def unlock(self):
        if self.lock_fd is not None and not self._keep_lock:
            os.close(self.lock_fd)
            self.lock_fd = None

    def lock_is_ours(self):
        """False when the lock file was deleted or replaced."""
        return socketlock.still_ours(self.lock_fd, self.paths["socket"])

    def retake_lock(self):
        """The lock file is gone (the whole directory, say): make its directory and lock
        a new one.  False, and logged, when that cannot be done (another daemon holds it)."""
        path = self.paths["socket"]
        log.warning("the lock file %s was deleted or replaced: locking it again", socketlock.path_for(path))
        try:
            safepath.ensure_directory(os.path.dirname(path))
            lock_fd = socketlock.acquire(path)
        except (OSError, DaemonStartError) as error:
            log.error("%s: this daemon no longer listens; stop one of the two", error)
            return False
        os.close(self.lock_fd)
        self.lock_fd = lock_fd
        return True

    def keep(self, server):
        """Our socket (the connections.Server ``server`` listens on it) and its lock file
        are still there; if not, take them again.

        Someone removed them (the whole directory, say): a second daemon could
        start meanwhile.  We lock a new lock file first; if another daemon
        already holds it, we do not touch its socket, and say so.
        """
        lock_is_ours = self.lock_is_ours()
        if server.socket_is_ours() and lock_is_ours:
            return
        if not lock_is_ours and not self.retake_lock():
            return
        server.relisten()

    # the log (logfile.DaemonLog)
    def open_log(self):
        """The log file, and stderr for warnings unless ``log_to_stderr`` is off."""
        self.daemon_log.open()

    def reopen_log(self):
        """SIGHUP: reopen the log (logrotate)."""
        self.daemon_log.reopen()

    def close_log(self):
        self.daemon_log.close()

    def notify_ready(self):
        """Tell systemd (Type=notify) that the daemon serves, if it asked."""
        if self.notify_socket:
            sd_notify(self.notify_socket, f"READY=1\nMAINPID={os.getpid()}")

    def notify_reloading(self, now):
        """Tell systemd that the daemon is about to re-execute itself (``now``: the
        monotonic clock); READY=1 follows from the new image, or from us if it fails."""
        if self.notify_socket:
            sd_notify(self.notify_socket, f"RELOADING=1\nMONOTONIC_USEC={int(now * 1e6)}")
