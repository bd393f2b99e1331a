"""Opening what a root daemon writes: walked from /, checked as it is opened.

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
  ``MAX_LINKS`` links a path;
- the last component of a file is never followed (``O_NOFOLLOW``).

Outside strict mode (a daemon of another user) every symlink is followed
and nothing is checked, as before: that user trusts what it trusts.
Files are opened ``O_NONBLOCK`` (a FIFO never hangs us), then ``fstat``:
what is not a regular file is refused, as is a file we would write that
is not ours.  Errors are ``OSError`` (``PermissionError`` for a refusal)
whose ``strerror`` names the path and why.  Descriptors are close-on-exec.
"""

import errno
import os
import stat

from .trust import directory_info_problems, owner_problem

MAX_LINKS = 40
PROC_FD = "/proc/self/fd"  # bind() takes no dir_fd: a socket is bound through this
SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux, the NUL included
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITABLE = stat.S_IWGRP | stat.S_IWOTH
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


def _refuse(message, code=errno.EPERM):
    return OSError(code, message)  # OSError picks the subclass: PermissionError for EPERM


def _join(directory, name):
    return directory.rstrip("/") + "/" + name


def _follow(parent_fd, parent, name, here, strict):
    """The target of the symlink ``name`` in ``parent_fd``; refused unless trusted."""
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError as error:
        raise _refuse(f"{here}: {error.strerror}", error.errno) from None
    if not stat.S_ISLNK(info.st_mode):
        raise _refuse(f"{here} is {kind(info.st_mode)}, not a directory", errno.ENOTDIR)
    if strict:
        if owner_problem(here, info.st_uid, "symlink"):
            raise _refuse(f"{here} is a symlink owned by uid {info.st_uid}, not root; not following it")
        holder = os.fstat(parent_fd)
        if holder.st_mode & _WRITABLE or owner_problem(parent, holder.st_uid, "directory"):
            raise _refuse(f"{here} is a symlink in a directory others can write ({parent}); not following it")
    target = os.readlink(name, dir_fd=parent_fd)
    if not target:
        raise _refuse(f"{here} is an empty symlink", errno.ENOENT)
    return target


def _make(parent_fd, name, here, mode):
    """Create the directory ``name`` with ``mode`` whatever the umask; False if it appeared meanwhile."""
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        return False
    except OSError as error:
        raise _refuse(f"cannot create {here}: {error.strerror}", error.errno) from None
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
        path = _join(os.getcwd(), path)
    pending = [part for part in reversed(path.split("/")) if part]
    stack = []  # (fd, shown path): each directory a child of the one below it
    links = 0
    try:
        stack.append((os.open("/", _DIR), "/"))
        _check(stack[-1][0], "/", checked)
        while pending:
            if links > MAX_LINKS:
                raise _refuse(f"{path}: more than {MAX_LINKS} symlinks on the way", errno.ELOOP)
            part = pending.pop()
            parent_fd, parent = stack[-1]
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop()[0])
                continue
            here = _join(parent, part)
            try:
                fd = os.open(part, _DIR, dir_fd=parent_fd)
            except FileNotFoundError:
                if not make:
                    raise _refuse(f"{here} does not exist", errno.ENOENT) from None
                links += not _make(parent_fd, part, here, mode)  # lost a race: counted as a link
                pending.append(part)
                continue
            except OSError as error:
                if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise _refuse(f"{here}: {error.strerror}", error.errno) from None
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
            raise _refuse("; ".join(problems))


def ensure_directory(path, mode=0o755, strict=None):
    """Make ``path`` and its missing parents (each ``mode`` whatever the umask) and check the
    way to it, as ``open_directory``; nothing else."""
    os.close(open_directory(path, make=True, mode=mode, strict=strict))


def split(path):
    """``(directory, name)`` of a file's ``path``; IsADirectoryError if it names no file."""
    directory, _, name = path.rpartition("/")
    if name in ("", ".", ".."):
        raise _refuse(f"{path} names a directory, not a file", errno.EISDIR)
    return (directory or "/") if path.startswith("/") else (directory or "."), name


def open_beneath(dir_fd, name, flags, mode=0o644, strict=None, devices=False, shown=None):
    """Open the file ``name`` in the walked directory ``dir_fd`` with ``flags``; its descriptor.

    ``O_NONBLOCK`` (cleared once open), ``O_CLOEXEC`` and ``O_NOCTTY`` are
    added, and ``O_NOFOLLOW`` in strict mode.  Refused: anything but a
    regular file (but character devices, /dev/null, with ``devices``); a
    file opened for writing that is not ours; in strict mode, one with
    several hard links in a directory others can write.  ``shown`` (the
    full path) is what messages name.
    """
    strict = is_strict(strict)
    shown = shown or name
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | (os.O_NOFOLLOW if strict else 0)
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as error:
        raise _explain(error, dir_fd, name, shown, strict) from None
    try:
        info = os.fstat(fd)
        writing = flags & (os.O_WRONLY | os.O_RDWR)
        if stat.S_ISREG(info.st_mode):
            if writing and info.st_uid != os.geteuid():
                raise _refuse(f"{shown} is owned by uid {info.st_uid}, not by us ({os.geteuid()})")
            if writing and strict and info.st_nlink > 1 and os.fstat(dir_fd).st_mode & _WRITABLE:
                raise _refuse(f"{shown} has {info.st_nlink} hard links, in a directory others can write")
        elif not (devices and stat.S_ISCHR(info.st_mode)):
            raise _refuse(f"{shown} is {kind(info.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _explain(error, dir_fd, name, shown, strict):
    """``error`` of opening ``name``, its message naming ``shown`` and what is there."""
    if error.errno == errno.ELOOP and strict:
        return _refuse(f"{shown} is a symbolic link, not followed ({error.strerror})", error.errno)
    if error.errno == errno.ENXIO:  # a FIFO without a reader, a socket
        try:
            what = kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=not strict).st_mode)
            return _refuse(f"{shown} is {what}, not a regular file", error.errno)
        except OSError:
            pass
    return _refuse(f"{shown}: {error.strerror}", error.errno)


def _beneath(path, strict, action):
    """``action(dir_fd, name, directory)`` in ``path``'s directory, walked (never made)."""
    directory, name = split(path)
    dir_fd = open_directory(directory, strict=strict)
    try:
        return action(dir_fd, name, directory)
    finally:
        os.close(dir_fd)


def open_file(path, flags, mode=0o644, strict=None, devices=False):
    """``open_beneath`` in ``path``'s walked directory."""
    return _beneath(path, strict, lambda fd, name, _: open_beneath(fd, name, flags, mode, strict, devices, path))


def open_append(path, mode=0o640, strict=None):
    """Open ``path`` for appending (created with ``mode``): the log, a child's output.

    A regular file of ours, or a character device (/dev/null); never a
    FIFO (refused without blocking), a symlink (strict) or another's file.
    """
    return open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode, strict, devices=True)


def open_read(path, strict=None):
    """Open the regular file ``path`` for reading without ever blocking (old clstat, pid file).

    A FIFO, device, socket or directory is refused.  Its owner is not
    checked: a caller that must trust the content looks at ``fstat``.
    A reader that only displays may pass ``strict=False``.
    """
    return open_file(path, os.O_RDONLY, strict=strict)


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
        path = target if target.startswith("/") else _join(directory, target)
    raise _refuse(f"{path}: more than {MAX_LINKS} symlinks on the way", errno.ELOOP)


def replace_beneath(dir_fd, name, data, mode=0o644, strict=None, shown=None):
    """Replace ``name`` in ``dir_fd`` by a file of ``data`` (bytes) and ``mode``, atomically.

    The text goes to a temporary ``.NAME.XXXXXXXXXXXX`` created with
    ``O_EXCL`` beneath ``dir_fd``, then renamed over ``name`` (a symlink
    there is replaced, not followed); the temporary never survives an error.
    """
    shown = shown or name
    temporary = f".{name[:200]}.{os.urandom(6).hex()}"
    fd = open_beneath(dir_fd, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, strict, shown=shown)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as error:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise _refuse(f"{shown}: {error.strerror or error}", error.errno) from None
        raise


def replace_file(path, data, mode=0o644, strict=None):
    """``replace_beneath`` in ``path``'s walked directory (clstat)."""
    _beneath(path, strict, lambda fd, name, _: replace_beneath(fd, name, data, mode, strict, path))


def lstat(path, strict=None):
    """``os.stat`` of ``path`` itself (a symlink there not followed in strict mode),
    beneath its walked directory; FileNotFoundError if it is not there."""
    strict = is_strict(strict)

    def look(dir_fd, name, _directory):
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=not strict)
        except OSError as error:
            raise _refuse(f"{path}: {error.strerror}", error.errno) from None

    return _beneath(path, strict, look)


def remove(path, strict=None):
    """Unlink ``path`` (not a directory) beneath its walked directory; FileNotFoundError if absent."""
    def unlink(dir_fd, name, _directory):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError as error:
            raise _refuse(f"{path}: {error.strerror}", error.errno) from None

    _beneath(path, strict, unlink)


def bind_beneath(dir_fd, name, mode=0o600, gid=None, shown=None, directory=None):
    """A ``SOCK_STREAM`` UNIX socket bound to ``name`` in the walked directory ``dir_fd``.

    Bound through ``/proc/self/fd/DIR_FD/NAME``, the directory we hold.
    Where that cannot be (no /proc, an address of 108 bytes or more), it
    is bound to ``directory/name`` once ``directory`` is checked to be the
    one held, and the socket must then appear in it (else
    PermissionError).  The file gets ``mode`` (and group ``gid``), never
    more on the way.  The caller listens; close-on-exec.
    """
    import socket

    shown = shown or name
    address = f"{PROC_FD}/{dir_fd}/{name}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        if len(os.fsencode(address)) < SUN_PATH_MAX and os.path.isdir(f"{PROC_FD}/{dir_fd}"):
            sock.bind(address)
        else:
            _bind_checked(sock, dir_fd, name, shown, directory)
        if gid is not None:
            os.chown(name, -1, gid, dir_fd=dir_fd, follow_symlinks=False)
        if mode != 0o600:
            os.chmod(name, mode, dir_fd=dir_fd)  # our socket, in a directory we trust
    except OSError as error:
        sock.close()
        raise _refuse(f"cannot bind {shown}: {error.strerror or error}", error.errno or errno.EINVAL) from None
    finally:
        os.umask(old_umask)
    return sock


def _bind_checked(sock, dir_fd, name, shown, directory):
    if directory is None:
        raise _refuse(f"{PROC_FD} is not usable and no path was given", errno.ENOENT)
    here, held = os.stat(directory), os.fstat(dir_fd)
    if (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino):
        raise _refuse(f"{directory} changed while it was checked")
    sock.bind(_join(directory, name))
    try:
        landed = stat.S_ISSOCK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        landed = False
    if not landed:
        raise _refuse(f"{directory} changed while the socket was bound")


def bind_unix(path, mode=0o600, gid=None, strict=None):
    """``bind_beneath`` in ``path``'s walked directory (the daemon's socket)."""
    return _beneath(path, strict, lambda fd, name, where: bind_beneath(fd, name, mode, gid, path, where))
