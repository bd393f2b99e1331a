"""What the kernel says about processes: which live, in which process group,
whose they are, and when the machine booted (mostly read under /proc).

Nothing here decides anything: sysapi.RealSystem and marks.py ask.  A
process that vanishes while it is looked at is simply not there.
"""

import os


def group_exists(pgid):
    """True while the kernel knows process group ``pgid`` (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def stat(pid):
    """``(state, pgid, real uid)`` of a process (OSError, ValueError or IndexError
    when it is gone or cannot be read)."""
    with open(f"/proc/{pid}/stat", "rb") as stream:
        fields = stream.read().rsplit(b")", 1)[1].split()
    state, pgid = fields[0].decode(), int(fields[2])
    with open(f"/proc/{pid}/status", "rb") as stream:
        for line in stream:
            if line.startswith(b"Uid:"):
                return state, pgid, int(line.split()[1])
    raise ValueError("no Uid line")


def live_in_group(pid, pgid):
    """True when ``pid`` lives, is no zombie, and belongs to process group ``pgid``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid


def pids():
    """The pids under /proc, as ints (OSError when /proc cannot be listed)."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_alive(pgid):
    """True while a process of group ``pgid`` lives; zombies do not count (an init
    that does not reap, or a parent that has not reaped yet, must not hold a stop).
    When it cannot be told (no descriptor left to read /proc), True: go on stopping."""
    if not group_exists(pgid):
        return False
    if live_in_group(pgid, pgid):
        return True  # its leader: the common case, one read
    try:
        every = pids()
    except OSError:
        return True
    return any(live_in_group(pid, pgid) for pid in every)


def parent(pid):
    """The parent pid of ``pid`` (OSError, ValueError or IndexError when it is gone)."""
    with open(f"/proc/{pid}/stat", "rb") as stream:
        return int(stream.read().rsplit(b")", 1)[1].split()[1])


def descends_from(pid, ancestor):
    """True when ``ancestor`` is ``pid``'s parent, or its parent's, and so on (False when
    a process on the way is gone)."""
    seen = 0
    while pid > 1 and seen < 4096:
        try:
            pid = parent(pid)
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
        seen += 1
    return False


def booted_at():
    """When the machine booted (seconds since the epoch), or 0 if it cannot be told."""
    try:
        with open("/proc/stat", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("btime "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
