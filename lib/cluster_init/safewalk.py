"""Walking a path as a root daemon must: from /, one component at a time, checked as opened.

Paths are resolved here, not by the kernel: from "/", one component at a
time, each directory opened ``O_PATH | O_DIRECTORY | O_NOFOLLOW`` beneath
the one before (``dir_fd``), so that what is checked is what is opened:
nobody can swap a directory on the way between check and use.  In
*strict* mode (the default when running as root):

- every directory on the way, "/" included, is owned by root (or our own
  uid) and not writable by group or others unless sticky (trust.py);
- a symlink on the way is followed only when it is root's (or ours) and
  the directory holding it is not writable by group or others at all;
  the walk goes on from its target ("/var/run" -> "/run"), at most
  ``MAX_LINKS`` links a path.

Outside strict mode (a daemon of another user) every symlink is followed
and nothing is checked, as before: that user trusts what it trusts.
Errors are ``OSError`` (``PermissionError`` for a refusal, ``refuse``)
whose ``strerror`` names the path and why.  safepath.py opens, replaces,
removes and binds files beneath the directories walked here.
"""

import errno
import os
import stat

from .trust import directory_info_problems, owner_problem

MAX_LINKS = 40
WRITABLE = stat.S_IWGRP | stat.S_IWOTH
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))


def is_strict(strict=None):
    """``strict`` itself, or, when None, whether we run as root."""
    return os.geteuid() == 0 if strict is None else bool(strict)


def kind(mode):
    """What a file of this ``st_mode`` is, as "a FIFO", "a regular file"..."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def reason(error, path):
    """The ``strerror`` of ``error`` without a leading "PATH: " (the caller names it)."""
    text = error.strerror or str(error)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


def refuse(message, code=errno.EPERM):
    return OSError(code, message)  # OSError picks the subclass: PermissionError for EPERM


def join(directory, name):
    return directory.rstrip("/") + "/" + name


def _follow(parent_fd, parent, name, here, strict):
    """The target of the symlink ``name`` in ``parent_fd``; refused unless trusted."""
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError as error:
        raise refuse(f"{here}: {error.strerror}", error.errno) from None
    if not stat.S_ISLNK(info.st_mode):
        raise refuse(f"{here} is {kind(info.st_mode)}, not a directory", errno.ENOTDIR)
    if strict:
        if owner_problem(here, info.st_uid, "symlink"):
            raise refuse(f"{here} is a symlink owned by uid {info.st_uid}, not root; not following it")
        holder = os.fstat(parent_fd)
        if holder.st_mode & WRITABLE or owner_problem(parent, holder.st_uid, "directory"):
            raise refuse(f"{here} is a symlink in a directory others can write ({parent}); not following it")
    target = os.readlink(name, dir_fd=parent_fd)
    if not target:
        raise refuse(f"{here} is an empty symlink", errno.ENOENT)
    return target


def _make(parent_fd, name, here, mode):
    """Create the directory ``name`` with ``mode`` whatever the umask; False if it appeared meanwhile."""
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        return False
    except OSError as error:
        raise refuse(f"cannot create {here}: {error.strerror}", error.errno) from None
    os.chmod(name, mode, dir_fd=parent_fd)  # ours, just made: nobody else may replace it
    return True


def open_directory(path, make=False, mode=0o755, strict=None, links_only=False):
    """An ``O_PATH`` descriptor of the directory ``path``, walked from "/" (see the module).

    A relative ``path`` starts from the current directory's absolute path.
    With ``make``, missing directories are created, each with ``mode``
    whatever the umask; otherwise a missing one is FileNotFoundError.
    PermissionError names the first directory or symlink not trusted; a
    path of more than ``MAX_LINKS`` symlinks is ELOOP.  With
    ``links_only``, only the symlinks are checked, not the directories (a
    directory the daemon only changes to, another user's home say).  The
    caller closes the descriptor (usable as ``dir_fd``, and by ``fstat``).
    """
    strict = is_strict(strict)
    checked = strict and not links_only
    if not path.startswith("/"):
        path = join(os.getcwd(), path)
    pending = [part for part in reversed(path.split("/")) if part]
    stack = []  # (fd, shown path): each directory a child of the one below it
    links = 0
    try:
        stack.append((os.open("/", _DIR), "/"))
        _check(stack[-1][0], "/", checked)
        while pending:
            if links > MAX_LINKS:
                raise refuse(f"{path}: more than {MAX_LINKS} symlinks on the way", errno.ELOOP)
            part = pending.pop()
            parent_fd, parent = stack[-1]
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop()[0])
                continue
            here = join(parent, part)
            try:
                fd = os.open(part, _DIR, dir_fd=parent_fd)
            except FileNotFoundError:
                if not make:
                    raise refuse(f"{here} does not exist", errno.ENOENT) from None
                links += not _make(parent_fd, part, here, mode)  # lost a race: counted as a link
                pending.append(part)
                continue
            except OSError as error:
                if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise refuse(f"{here}: {error.strerror}", error.errno) from None
                target = _follow(parent_fd, parent, part, here, strict)
                links += 1
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                pending.extend(part for part in reversed(target.split("/")) if part)
                continue
            stack.append((fd, here))
            _check(fd, here, checked)
        return stack.pop()[0]
    finally:
        for fd, _shown in stack:
            os.close(fd)


def _check(fd, shown, strict):
    if strict:
        problems = directory_info_problems(shown, os.fstat(fd))
        if problems:
            raise refuse("; ".join(problems))


def ensure_directory(path, mode=0o755, strict=None):
    """Make ``path`` and its missing parents (each ``mode`` whatever the umask) and check the
    way to it, as ``open_directory``; nothing else."""
    os.close(open_directory(path, make=True, mode=mode, strict=strict))


def split(path):
    """``(directory, name)`` of a file's ``path``; IsADirectoryError if it names no file."""
    directory, _, name = path.rpartition("/")
    if name in ("", ".", ".."):
        raise refuse(f"{path} names a directory, not a file", errno.EISDIR)
    return (directory or "/") if path.startswith("/") else (directory or "."), name


def resolve_last(path):
    """``path`` with each symlink at its end replaced by its target, each followed only
    when trusted (strict mode, see ``open_directory``); at most MAX_LINKS of them.  For
    a file that may be reached through a symlink of root's (/etc/cltab, say)."""
    for _ in range(MAX_LINKS):
        directory, name = split(path)
        dir_fd = open_directory(directory, strict=True)
        try:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                return path  # the open says what is wrong
            if not stat.S_ISLNK(info.st_mode):
                return path
            target = _follow(dir_fd, directory, name, path, True)
        finally:
            os.close(dir_fd)
        path = target if target.startswith("/") else join(directory, target)
    raise refuse(f"{path}: more than {MAX_LINKS} symlinks on the way", errno.ELOOP)
