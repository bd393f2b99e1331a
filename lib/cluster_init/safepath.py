"""Opening what a root daemon writes: walked from /, checked as it is opened.

The walk is safewalk.py's (``open_directory``, ``ensure_directory``,
``resolve_last``; re-exported here); this module opens, replaces,
removes and binds files beneath the directories it walked.

In *strict* mode (the default when running as root) the directories on
the way and the symlinks followed must be trusted (safewalk.py), and
the last component of a file is never followed (``O_NOFOLLOW``).

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

from .safewalk import (  # noqa: F401 - the walk is part of this module's face
    MAX_LINKS,
    WRITABLE,
    ensure_directory,
    is_strict,
    join,
    kind,
    open_directory,
    reason,
    refuse,
    resolve_last,
    split,
)

PROC_FD = "/proc/self/fd"  # bind() takes no dir_fd: a socket is bound through this
SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux, the NUL included


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
                raise refuse(f"{shown} is owned by uid {info.st_uid}, not by us ({os.geteuid()})")
            if writing and strict and info.st_nlink > 1 and os.fstat(dir_fd).st_mode & WRITABLE:
                raise refuse(f"{shown} has {info.st_nlink} hard links, in a directory others can write")
        elif not (devices and stat.S_ISCHR(info.st_mode)):
            raise refuse(f"{shown} is {kind(info.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _explain(error, dir_fd, name, shown, strict):
    """``error`` of opening ``name``, its message naming ``shown`` and what is there."""
    if error.errno == errno.ELOOP and strict:
        return refuse(f"{shown} is a symbolic link, not followed ({error.strerror})", error.errno)
    if error.errno == errno.ENXIO:  # a FIFO without a reader, a socket
        try:
            what = kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=not strict).st_mode)
            return refuse(f"{shown} is {what}, not a regular file", error.errno)
        except OSError:
            pass
    return refuse(f"{shown}: {error.strerror}", error.errno)


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
            raise refuse(f"{shown}: {error.strerror or error}", error.errno) from None
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
            raise refuse(f"{path}: {error.strerror}", error.errno) from None

    return _beneath(path, strict, look)


def remove(path, strict=None):
    """Unlink ``path`` (not a directory) beneath its walked directory; FileNotFoundError if absent."""
    def unlink(dir_fd, name, _directory):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError as error:
            raise refuse(f"{path}: {error.strerror}", error.errno) from None

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
        raise refuse(f"cannot bind {shown}: {error.strerror or error}", error.errno or errno.EINVAL) from None
    finally:
        os.umask(old_umask)
    return sock


def _bind_checked(sock, dir_fd, name, shown, directory):
    if directory is None:
        raise refuse(f"{PROC_FD} is not usable and no path was given", errno.ENOENT)
    here, held = os.stat(directory), os.fstat(dir_fd)
    if (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino):
        raise refuse(f"{directory} changed while it was checked")
    sock.bind(join(directory, name))
    try:
        landed = stat.S_ISSOCK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        landed = False
    if not landed:
        raise refuse(f"{directory} changed while the socket was bound")


def bind_unix(path, mode=0o600, gid=None, strict=None):
    """``bind_beneath`` in ``path``'s walked directory (the daemon's socket)."""
    return _beneath(path, strict, lambda fd, name, where: bind_beneath(fd, name, mode, gid, path, where))
