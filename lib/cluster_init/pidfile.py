"""The pid file of ``clinit -d -b``: lockfile's PIDLockFile, every access through safepath.

lockfile's own PIDLockFile reaches the pid file by its path: it reads it
with a blocking open (a FIFO planted there hangs the command for good),
follows any symlink on the way, and creates and removes it by path.
SafePIDLockFile keeps lockfile's contract (the pid file, created with
O_EXCL, is the lock; python-daemon's DaemonContext enters it once
detached and exits it at the end) but reads, creates and removes the
file beneath its directory reached through safepath.py: never blocking
(a FIFO, a device or a directory there is an OSError that says so), and,
as root, only through trusted directories and symlinks, its last
component never followed.  Needs the lockfile package (``clinit -d -b``
checks for it first).
"""

import os

from lockfile import AlreadyLocked, LockFailed, NotLocked, NotMyLock
from lockfile.pidlockfile import PIDLockFile

from . import safepath

MAX_BYTES = 64  # a pid and a newline; more is not a pid file of ours


class SafePIDLockFile(PIDLockFile):
    """PIDLockFile (lockfile.pidlockfile) through safepath; see the module."""

    def read_pid(self):
        """The pid the file holds, or None when there is no file or no number in it.
        OSError when what is there is not a regular file or cannot be reached."""
        try:
            fd = safepath.open_read(self.path)
        except FileNotFoundError:
            return None
        try:
            data = os.read(fd, MAX_BYTES)
        finally:
            os.close(fd)
        try:
            return int(data.split(b"\n", 1)[0].strip())  # FHS: the pid in decimal, a newline
        except ValueError:
            return None

    def is_locked(self):
        """True when something is at the path (a pid file, or what a stale one left)."""
        try:
            safepath.lstat(self.path)
        except FileNotFoundError:
            return False
        return True

    def acquire(self, timeout=None):
        """Create the pid file with our pid (O_EXCL: it is the lock); AlreadyLocked when
        one is there, LockFailed when it cannot be created (the reason said)."""
        try:
            fd = safepath.open_file(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise AlreadyLocked(f"{self.path} is already locked") from None
        except OSError as error:
            raise LockFailed(f"cannot create {self.path}: {safepath.reason(error, self.path)}") from None
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def release(self):
        if not self.is_locked():
            raise NotLocked(f"{self.path} is not locked")
        if not self.i_am_locking():
            raise NotMyLock(f"{self.path} is locked, but not by me")
        self.break_lock()

    def break_lock(self):
        """Remove the pid file, if there is one."""
        try:
            safepath.remove(self.path)
        except FileNotFoundError:
            pass
