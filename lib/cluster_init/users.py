"""Entries that run as another user: the ``:::user:`` lines and the user database.

A cltab line ``:::user:GROUP:TAG:USER`` (or ``USER:UNIXGROUP``) makes a
root daemon start the entry GROUP:TAG as USER: uid, the user's primary
group (or UNIXGROUP) as gid, the supplementary groups the user database
gives the user (as initgroups does), and HOME, USER and LOGNAME set.

``parse_line`` reads such a line's value; ``lookup`` asks the user
database, through the C library's getpwnam_r and getgrnam_r, so that
"no such user" (the database answered, and the user is not in it) and
"the lookup failed" (NSS down: LDAP unreachable at boot, say) are told
apart: the first refuses the cltab (file:line), the second only fails
the start that needed it, with its reason, and the start is tried again
on the respawn schedule (launcher.py).  Python's pwd module cannot tell
them apart: it raises KeyError for both.
"""

import ctypes
import errno
import os

MAX_BUFFER = 1 << 20  # the largest buffer a lookup grows to


class NoSuchUser(LookupError):
    """The user database answered: no such user (or group)."""


class LookupFailed(OSError):
    """The user database could not be asked (NSS down); ``strerror`` says why."""


class Identity:
    """Who an entry runs as: ``name``, ``uid``, ``gid``, ``groups`` (supplementary), ``home``."""

    __slots__ = ("name", "uid", "gid", "groups", "home")

    def __init__(self, name, uid, gid, groups, home):
        self.name, self.uid, self.gid, self.groups, self.home = name, uid, gid, tuple(groups), home

    def environ(self):
        """What the entry's environment gets: HOME, USER and LOGNAME."""
        return {"HOME": self.home or "/", "USER": self.name, "LOGNAME": self.name}

    def is_current(self):
        """True when this is exactly who we are: uid, gid and supplementary groups."""
        return (
            self.uid == os.geteuid() == os.getuid()
            and self.gid == os.getegid() == os.getgid()
            and set(self.groups) | {self.gid} == set(os.getgroups()) | {self.gid}
        )

    def __repr__(self):
        return f"Identity({self.name!r}, uid={self.uid}, gid={self.gid}, groups={self.groups})"


def parse_line(value):
    """``(group, tag, user, unixgroup or None)`` of a ``:::user:`` line's value;
    ValueError saying what is wrong."""
    fields = value.split(":")
    if len(fields) not in (3, 4) or not all(fields):
        raise ValueError(f"expected :::user:GROUP:TAG:USER or :::user:GROUP:TAG:USER:UNIXGROUP, found {value!r}")
    for field in fields:
        if not field.isprintable() or any(char.isspace() for char in field):
            raise ValueError(f"{field!r} contains whitespace or a control character")
    group, tag, user = fields[:3]
    return group, tag, user, fields[3] if len(fields) == 4 else None


def spec(user, unixgroup=None):
    """The entry's user as the cltab wrote it: ``USER`` or ``USER:UNIXGROUP``."""
    return user if unixgroup is None else f"{user}:{unixgroup}"


def split_spec(text):
    """``(user, unixgroup or None)`` of a ``spec``."""
    user, _, unixgroup = text.partition(":")
    return user, unixgroup or None


# the C library's user and group database, through ctypes
class _Passwd(ctypes.Structure):
    _fields_ = [
        ("pw_name", ctypes.c_char_p),
        ("pw_passwd", ctypes.c_char_p),
        ("pw_uid", ctypes.c_uint),
        ("pw_gid", ctypes.c_uint),
        ("pw_gecos", ctypes.c_char_p),
        ("pw_dir", ctypes.c_char_p),
        ("pw_shell", ctypes.c_char_p),
    ]


class _Group(ctypes.Structure):
    _fields_ = [
        ("gr_name", ctypes.c_char_p),
        ("gr_passwd", ctypes.c_char_p),
        ("gr_gid", ctypes.c_uint),
        ("gr_mem", ctypes.POINTER(ctypes.c_char_p)),
    ]


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        for name, structure in (("getpwnam_r", _Passwd), ("getgrnam_r", _Group)):
            function = getattr(libc, name)
            function.argtypes = [
                ctypes.c_char_p,
                ctypes.POINTER(structure),
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.POINTER(structure)),
            ]
            function.restype = ctypes.c_int
        _LIBC = libc
    return _LIBC


def _ask(function, name, structure, what, take):
    """``take(entry)`` of ``function(name, &entry, buffer, size, &result)`` (taken while
    the buffer its strings point into lives); NoSuchUser, or LookupFailed."""
    entry = structure()
    result = ctypes.POINTER(structure)()
    size = 4096
    while True:
        buffer = ctypes.create_string_buffer(size)
        code = function(os.fsencode(name), ctypes.byref(entry), buffer, size, ctypes.byref(result))
        if code == errno.ERANGE and size < MAX_BUFFER:
            size *= 4
            continue
        if code != 0:
            raise LookupFailed(code, f"cannot look up {what} {name!r}: {os.strerror(code)}")
        if not result:
            raise NoSuchUser(f"no such {what} {name!r}")
        return take(entry)


def _user(name):
    """``(uid, gid, home)`` of user ``name``."""
    return _ask(
        _libc().getpwnam_r, name, _Passwd, "user", lambda e: (e.pw_uid, e.pw_gid, os.fsdecode(e.pw_dir or b"/"))
    )


def _group(name):
    return _ask(_libc().getgrnam_r, name, _Group, "group", lambda entry: entry.gr_gid)


def lookup(text):
    """The Identity of a ``spec`` (``USER`` or ``USER:UNIXGROUP``), as the user database
    has it now.  NoSuchUser when it says there is no such user or group, LookupFailed
    when it cannot be asked."""
    name, unixgroup = split_spec(text)
    try:
        uid, gid, home = _user(name)
        if unixgroup is not None:
            gid = _group(unixgroup)
    except (OSError, AttributeError) as error:  # no getpwnam_r in this C library
        if isinstance(error, LookupFailed):
            raise
        raise LookupFailed(errno.ENOSYS, f"cannot look up user {name!r}: {error}") from None
    try:
        groups = os.getgrouplist(name, gid)
    except OSError as error:
        raise LookupFailed(error.errno, f"cannot look up the groups of {name!r}: {error.strerror}") from None
    return Identity(name, uid, gid, groups, home)


def check(text, lookup_=lookup):
    """``(Identity or None, problem or None, warning or None)`` for a cltab's user ``text``.

    A problem refuses the cltab: no such user or group, or a daemon that
    is not root and would have to become another user.  A lookup that
    fails is only a warning: it is tried again at each start.
    """
    try:
        identity = lookup_(text)
    except NoSuchUser as error:
        return None, f"{error} (the user database says so)", None
    except LookupFailed as error:
        return None, None, f"{error.strerror}; tried again at each start of the entry"
    if os.geteuid() != 0 and (identity.uid != os.geteuid() or identity.gid != os.getegid()):
        return identity, (
            f"clinit runs as uid {os.geteuid()}, not root: it cannot start an entry as {text}"
            f" (uid {identity.uid}, gid {identity.gid})"
        ), None
    return identity, None, None
