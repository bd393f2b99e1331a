"""What a daemon carries across its own exec (a handover): the record, and where it goes.

Before it re-executes itself (handover.py), the daemon writes down what
it has that the new image cannot find on its own, as one JSON record:

* every group at rest (its level and state, in clstat's order, why it
  is FAILED for good, when it was told) and the machine of each of its
  entries (state, leader pid, process groups, level, its deadline, the
  respawn guard and the crash loop, why a start failed, a stop by hand,
  whether its processes were adopted after a crash), ``capture``;
* the entries' histories (starts, last exit);
* the descriptors the new image takes over, which the exec keeps open:
  the listening socket, the lock beside it, the clients' connections, and
  the pidfds of processes adopted after a crash (``descriptors``);
* the signals blocked for the exec (the new image unblocks them once its
  handlers are in place: a signal sent meanwhile waits, none is lost),
  the directory the daemon was started from, its version and pid.

The record travels in an anonymous memory file (memfd) whose descriptor
number is in the environment variable CLINIT_REEXEC; the new image reads
it and closes it (``receive``), and uses it only when it names its own
pid: a CLINIT_REEXEC inherited by an unrelated ``clinit -d`` is ignored
(and a descriptor that is not a regular file is not even read).
``parse`` turns the groups back into what Node.resume takes, and raises
ValueError on anything it does not know, before anything is made.
"""

import json
import os
import stat

from .adopt import Adoption, Carried
from .cltab import Entry
from .states import GroupState, ProcEvent, ProcState
from .version import VERSION

ENVIRONMENT = "CLINIT_REEXEC"  # the record's descriptor; "probe" for the probe (handover.py)
FORMAT = 1  # the record's format; READS, those a daemon of this version takes over from
READS = (1,)
MAGIC = "clinit handover"
MAX_RECORD = 256 << 20  # bytes: far more than 100,000 entries need
# the state a carried machine takes, by the verdict of its ADOPT row
_VERDICTS = {
    ProcState.CONFIGURED: ProcEvent.ADOPTED_IDLE,
    ProcState.DONE: ProcEvent.ADOPTED_DONE,
    ProcState.PASS: ProcEvent.ADOPTED_PASS,
    ProcState.FAIL: ProcEvent.ADOPTED_FAIL,
    ProcState.PAUSING: ProcEvent.ADOPTED_PAUSING,
    ProcState.RUNNING: ProcEvent.ADOPTED_RUNNING,
    ProcState.RUNTEST: ProcEvent.ADOPTED_RUNTEST,
    ProcState.RUNBG: ProcEvent.ADOPTED_RUNBG,
}


def _machine(proc, registry):
    entry = proc.entry
    return {
        "entry": [entry.group, entry.tag, entry.levels, entry.mode, entry.command, entry.line],
        "state": proc.state.value,
        "pid": proc.pid,
        "watched": [list(watch) for watch in registry.watched(proc)],
        "pgids": sorted(proc.remains.pgids),
        "level": proc.level,
        "adopted": proc.adopted,
        "failure": proc.failure,
        "respawns": proc.respawns.carried(),
        "deadline": proc.deadline,
        "since": proc.since,
        "stopped_by_hand": proc.stopped_by_hand,
    }


def descriptors(record):
    """The pidfds a ``capture`` record names: the exec must keep them open."""
    return [fd for group in record["groups"] for machine in group["machines"] for _pid, fd in machine["watched"]]


def capture(node, order=()):
    """The groups and histories of ``node`` (at rest: Node.unrest is None) as plain
    data; groups named in ``order`` (clstat's) first, in that order."""
    names = [name for name in order if name in node.groups]
    names += [name for name in node.groups if name not in names]
    groups = []
    for name in names:
        group = node.groups[name]
        machines = [_machine(proc, node.ctx.registry) for _tag, proc in group.machines()]
        groups.append({
            "name": name, "level": group.level, "state": group.state.value, "machines": machines,
            "stuck": group.stuck, "told_at": group.told_at,
        })
    return {"groups": groups, "history": [list(row) for row in node.ctx.histories()]}


def _adoption(record):
    state = ProcState(record["state"])
    if state not in _VERDICTS:
        raise ValueError(f"a machine in state {state} cannot be carried")
    group, tag, levels, mode, command, line = record["entry"]
    entry = Entry(str(group), str(tag), str(levels), str(mode), str(command), int(line))
    pid = record["pid"]
    watches = {int(watched): int(fd) for watched, fd in record["watched"]}
    pids = set(watches) | ({pid} if pid is not None else set())
    carried = Carried(
        adopted=bool(record["adopted"]),
        failure=record["failure"],
        respawns=record["respawns"],
        deadline=record["deadline"],
        since=record["since"],
        stopped_by_hand=bool(record.get("stopped_by_hand", False)),
        watches=watches,
    )
    adoption = Adoption(
        _VERDICTS[state], record["level"], leader=pid, pids=sorted(pids), pgids=record["pgids"], carried=carried
    )
    return entry, adoption


def parse(record):
    """``(groups, histories)`` for Node.resume from a record's ``capture`` part;
    ValueError (or KeyError, TypeError) if anything in it is unknown."""
    groups = []
    for group in record["groups"]:
        state = GroupState(group["state"])
        adoptions = [_adoption(machine) for machine in group["machines"]]
        groups.append((str(group["name"]), group["level"], state, adoptions, group["stuck"], group["told_at"]))
    histories = [(str(g), str(t), dict(fields)) for g, t, fields in record["history"]]
    return groups, histories


def send(record):
    """A descriptor holding ``record`` (with the magic, format, version and our pid),
    read from its start by ``receive``; close-on-exec until the exec is prepared."""
    data = json.dumps(dict(record, magic=MAGIC, format=FORMAT, version=VERSION, pid=os.getpid())).encode()
    try:
        fd = os.memfd_create("clinit-handover", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile

        with tempfile.TemporaryFile() as stream:
            fd = os.dup(stream.fileno())
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def receive(value):
    """The record a handover left in descriptor ``value`` (CLINIT_REEXEC's), which is
    closed; ValueError saying why it cannot be used.  A descriptor that is not a
    regular file (a terminal, a pipe: a read could block) is neither read nor closed."""
    if not value.isdigit():
        raise ValueError(f"{ENVIRONMENT}={value[:40]!r} is not a descriptor")
    fd = int(value)
    try:
        info = os.fstat(fd)
    except OSError as error:
        raise ValueError(f"{ENVIRONMENT}: descriptor {fd}: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{ENVIRONMENT}: descriptor {fd} is not a handover record")
    try:
        return _check(_read(fd, info.st_size), fd)
    finally:
        os.close(fd)


def _read(fd, size):
    if size > MAX_RECORD:
        raise ValueError(f"{ENVIRONMENT}: descriptor {fd} is too big for a handover record")
    chunks, done = [], 0
    try:
        while True:  # pread: the offset of a file shared with someone else stays where it is
            chunk = os.pread(fd, 1 << 20, done)
            if not chunk or done > MAX_RECORD:
                break
            chunks.append(chunk)
            done += len(chunk)
    except OSError as error:
        raise ValueError(f"{ENVIRONMENT}: cannot read descriptor {fd}: {error.strerror or error}") from None
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise ValueError(f"{ENVIRONMENT}: descriptor {fd} holds no handover record") from None


def _check(record, fd):
    if not isinstance(record, dict) or record.get("magic") != MAGIC:
        raise ValueError(f"{ENVIRONMENT}: descriptor {fd} holds no handover record")
    if record.get("format") not in READS:
        raise ValueError(f"handover record format {record.get('format')!r} is unknown to clinit {VERSION}")
    if record.get("pid") != os.getpid():
        raise ValueError(f"the handover record is pid {record.get('pid')}'s, not ours ({os.getpid()})")
    return record
