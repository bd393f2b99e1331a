"""What a daemon running as root trusts: sshd's StrictModes, for clinit.

A root daemon runs whatever its cltab says, as root.  So it uses only a
cltab owned by root and writable by nobody else, in directories (from /
down, along the path as given and along the file it leads to) that only
root can change: owned by root and not writable by group or others,
unless the sticky bit keeps others from replacing what they do not own.
The files it creates or appends to (log, output, lock) are opened
without following symlinks, in directories that pass the same check,
and must be regular files of its own.  A daemon run by another user
trusts what that user trusts, and none of this applies.
"""

import errno
import os
import stat

from .errors import CltabError


def running_as_root():
    return os.geteuid() == 0


def file_problems(path, info):
    """Why a root daemon must not use the cltab ``path`` whose fstat is ``info``."""
    problems = []
    if info.st_uid != 0:
        problems.append(f"owned by uid {info.st_uid}, not root (fix: chown root {path})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(f"writable by group or others (fix: chmod go-w {path})")
    return problems


def owner_problem(path, uid, what="directory"):
    """Why a root daemon must not trust ``what`` ``path`` owned by ``uid``; None if it may
    (root's, or the daemon's own uid's)."""
    if uid in (0, os.geteuid()):
        return None
    ours = "" if os.geteuid() == 0 else f" or uid {os.geteuid()}"
    return f"{what} {path} is owned by uid {uid}, not root{ours} (fix: chown root {path})"


def directory_info_problems(path, info):
    """Why a root daemon must not trust the directory ``path`` whose stat is ``info``
    ([] if it may): not root's, or writable by group or others without the sticky bit."""
    problems = [owner_problem(path, info.st_uid)]
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        problems.append(
            f"directory {path} is writable by group or others without the sticky bit (fix: chmod go-w {path})"
        )
    return [problem for problem in problems if problem]


def directory_problems(directory):
    """Why a root daemon must not trust ``directory`` and every one above it."""
    problems = []
    real = os.path.realpath(directory)
    parts = [part for part in real.split(os.sep) if part]
    current = os.sep
    for part in [None] + parts:
        if part is not None:
            current = os.path.join(current, part)
        try:
            info = os.stat(current)
        except FileNotFoundError:
            break  # the daemon creates it (as root, not writable by others)
        except OSError as error:
            problems.append(f"directory {current}: {error.strerror}")
            break
        problems += directory_info_problems(current, info)
    return problems


def cltab_problems(path, info):
    """Every reason a root daemon must refuse this cltab; [] when not root.

    The directories of the path as given are checked as well as those of
    the file it leads to: whoever may replace a symlink on the way may
    replace the cltab.
    """
    if not running_as_root():
        return []
    problems = file_problems(path, info)
    for directory in (os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))):
        problems += [problem for problem in directory_problems(directory) if problem not in problems]
    return problems


def check_cltab_trust(path, info=None):
    """Raise CltabError (line 0, with the fix) if a root daemon must refuse ``path``."""
    if not running_as_root():
        return
    if info is None:
        info = os.stat(path)
    problems = cltab_problems(path, info)
    if problems:
        raise CltabError(path, [(0, f"not trusted: {problem}") for problem in problems])


def check_directory_trust(directory, what):
    """Raise PermissionError if a root daemon must not create ``what`` in ``directory``."""
    if not running_as_root():
        return
    problems = directory_problems(directory)
    if problems:
        raise PermissionError(f"{what}: not trusted: {'; '.join(problems)}")


def make_directory(path, mode=0o755):
    """Create ``path`` and its missing parents, each ``mode`` whatever the umask."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        make_directory(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def open_append(path, mode=0o640):
    """Open ``path`` for appending (created with ``mode``); fd, close-on-exec.

    Only a regular file of ours (or a character device, /dev/null say) is
    taken: a FIFO would block the daemon (it is opened without blocking,
    and refused), and a file another user created in a shared directory
    would receive what our children print.  As root, a symlink at
    ``path`` is refused (ELOOP) and the directory must be trusted.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    if running_as_root():
        check_directory_trust(os.path.dirname(os.path.abspath(path)) or "/", path)
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags, mode)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            if info.st_uid != os.geteuid():
                raise PermissionError(errno.EPERM, f"owned by uid {info.st_uid}, not by us ({os.geteuid()})")
        elif not stat.S_ISCHR(info.st_mode):
            raise PermissionError(errno.EPERM, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
