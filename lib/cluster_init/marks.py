"""The marks every child carries, and finding processes by them under /proc.

Each child the daemon starts has in its environment

    CLINIT_DAEMON   the daemon's identity: the absolute path of its socket,
                    the same for every daemon on that socket, across restarts
    CLINIT_GROUP    its entry's resource group
    CLINIT_TAG      its entry's tag
    CLINIT_LEVEL    the level its group was told when it started

and every process it starts inherits them, also after setsid.  So a
stop under ``:::kill_mode:all`` finds an entry's processes that left its
process group, and a daemon that starts where its predecessor died finds
the processes that predecessor left.  Only processes of the daemon's own
uid (and of the users its entries run as, ``:::user:``) are looked at,
so that nobody can plant a process that a root daemon would take for
its own; each Found carries its real uid, which must be its entry's.  What escapes: a process that rewrites or clears
its environment (some servers do, to set their process title).  (What
else /proc says of a process, procfs.py reads.)
"""

import os

from . import procfs

DAEMON = "CLINIT_DAEMON"
GROUP = "CLINIT_GROUP"
TAG = "CLINIT_TAG"
LEVEL = "CLINIT_LEVEL"


class Found:
    """A running process that carries a daemon's marks."""

    __slots__ = ("pid", "pgid", "group", "tag", "level", "uid")

    def __init__(self, pid, pgid, group, tag, level, uid=None):
        self.pid, self.pgid, self.group, self.tag, self.level = pid, pgid, group, tag, level
        self.uid = uid  # its real uid (None: not known)

    def __repr__(self):
        return f"Found(pid={self.pid}, pgid={self.pgid}, {self.group}:{self.tag} at {self.level!r}, uid {self.uid})"


def _environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as stream:
        data = stream.read()
    marks = {}
    for item in data.split(b"\0"):
        if item.startswith(b"CLINIT_"):
            name, _, value = item.partition(b"=")
            marks[name.decode("ascii", "replace")] = os.fsdecode(value)
    return marks


def group_marked(pgid, daemon_id, group, tag):
    """True when a live process of group ``pgid`` carries these marks (False when it
    cannot be told: a process we cannot vouch for is not signalled)."""
    try:
        every = procfs.pids()
    except OSError:
        return False
    for pid in every:
        if not procfs.live_in_group(pid, pgid):
            continue
        try:
            found = _environ(pid)
        except OSError:
            continue
        if found.get(DAEMON) == daemon_id and found.get(GROUP) == group and found.get(TAG) == tag:
            return True
    return False


def owner(pid):
    """The real uid ``pid`` runs as (OSError, ValueError or IndexError when it is gone)."""
    return procfs.stat(pid)[2]


def scan(daemon_id, uid, group=None, tag=None):
    """The live processes of ``uid`` (a uid, a set of them, or any uid when None) that
    carry ``CLINIT_DAEMON=daemon_id`` (and the group and tag, when given), zombies and
    this process left out."""
    uids = None if uid is None else {uid} if isinstance(uid, int) else set(uid)
    found = []
    me = os.getpid()
    try:
        every = procfs.pids()
    except OSError:
        return found  # no descriptor left: what cannot be seen is not signalled
    for pid in every:
        if pid == me:
            continue
        try:
            state, pgid, owner = procfs.stat(pid)
            if uids is not None and owner not in uids or state in ("Z", "X"):
                continue
            marks = _environ(pid)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if marks.get(DAEMON) != daemon_id:
            continue
        if group is not None and marks.get(GROUP) != group:
            continue
        if tag is not None and marks.get(TAG) != tag:
            continue
        found.append(Found(pid, pgid, marks.get(GROUP), marks.get(TAG), marks.get(LEVEL), owner))
    return found
