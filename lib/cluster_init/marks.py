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
the processes that predecessor left.

Anybody can put these words in an environment, so a mark alone makes no
process ours (``Ours``): it must also descend from the daemon (started
by it, or handed back to it as their subreaper when their parent
exited: ``procfs.descends_from``), or run as the uid the daemon expects
for the entry: its own, or the user its ``:::user:`` line names (the
caller passes it).  After a crash nothing descends from the new daemon,
and only the uid counts (each Found carries its real uid, which must be
its entry's); a root daemon never takes a process of another uid for
its own on the strength of a mark.  What escapes: a process that
rewrites or clears its environment (some servers do, to set their
process title), and, after a crash, one that changed its uid.  (What
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


class Ours:
    """Which marked processes are ours: those running as one of ``uids`` (real uid),
    or descending from ``ancestor`` (the daemon's pid; None after a crash: nothing
    does).  A process whose parent exits is handed to the nearest subreaper above
    it, or to init: only what the daemon (a subreaper) started descends from it."""

    def __init__(self, uids, ancestor=None):
        self.uids = frozenset(uids)
        self.ancestor = ancestor

    def __call__(self, pid, uid):
        if uid in self.uids:
            return True
        return self.ancestor is not None and procfs.descends_from(pid, self.ancestor)


def _carries(marks, daemon_id, group, tag):
    return (
        marks.get(DAEMON) == daemon_id
        and (group is None or marks.get(GROUP) == group)
        and (tag is None or marks.get(TAG) == tag)
    )


def group_marked(pgid, daemon_id, group, tag, ours=None):
    """True when a live process of group ``pgid`` carries these marks and is
    ``ours`` (an Ours; None: any) (False when it cannot be told: a process we
    cannot vouch for is not signalled)."""
    try:
        every = procfs.pids()
    except OSError:
        return False
    for pid in every:
        if not procfs.live_in_group(pid, pgid):
            continue
        try:
            found = _environ(pid)
            if not _carries(found, daemon_id, group, tag):
                continue
            if ours is None or ours(pid, owner(pid)):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def owner(pid):
    """The real uid ``pid`` runs as (OSError, ValueError or IndexError when it is gone)."""
    return procfs.stat(pid)[2]


def scan(daemon_id, uid, group=None, tag=None, ours=None):
    """The live processes of ``uid`` (a uid, a set of them, or any uid when None) that
    carry ``CLINIT_DAEMON=daemon_id`` (and the group and tag, when given), zombies and
    this process left out.  With ``ours`` (an Ours), ``uid`` is not looked at: the
    processes ``ours`` takes are."""
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
            state, pgid, owner_uid = procfs.stat(pid)
            if state in ("Z", "X") or ours is None and uids is not None and owner_uid not in uids:
                continue
            marks = _environ(pid)
            if not _carries(marks, daemon_id, group, tag) or ours is not None and not ours(pid, owner_uid):
                continue
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        found.append(Found(pid, pgid, marks.get(GROUP), marks.get(TAG), marks.get(LEVEL), owner_uid))
    return found
