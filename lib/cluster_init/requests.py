"""What each request of the protocol does (protocol.py has the words).

``handle(connection, request)`` answers at once (an Answer), or parks
the connection (connections.Park: a wait whose group has not settled).
The waiting clients are an index by group: at each change of a group
(``group_changed``, a Node listener) the waits on that group that can be
answered are answered through ``reply`` (the server's ``answer``), and
forgotten.  The server says when a parked connection's deadline passed
(``expired``: the timeout answer) or when its client went away
(``gone``).  A connection is only a key here, and says who asked
(``connection.who()``, for the log): nothing of it is read or written.
The verbs on one entry (``restart``, ``stop``, ``start``, ``output``)
are entryverbs.py's.

clstat is flushed before an answer goes out, so that a client that was
answered finds it up to date.  A bug in a verb is an "internal error"
answer and a log line, never the daemon's end.
"""

import logging
import os

from . import why
from .connections import Park
from .entryverbs import EntryVerbs
from .errors import CltabError
from .protocol import CLTAB_REFUSED, REEXEC_DEFAULT, TIMEOUT, WAIT_DEFAULT, Answer
from .states import SETTLED_GROUP_STATES, GroupState
from .version import VERSION

log = logging.getLogger("cluster_init")


def refusal(error):
    """The answer to a reread that found the cltab refused (CltabError ``error``)."""
    return Answer(False, f"{CLTAB_REFUSED}; still using the last good one", tuple(str(error).splitlines()))


def refused_warning(error):
    """The warning a tell carries when the cltab file was refused: it acts on the last
    good one, and says which file and its first error."""
    problems = str(error).splitlines()
    more = f" (and {len(problems) - 1} more: clinit --check lists them)" if len(problems) > 1 else ""
    return f"cltab {error.path} refused, acting on the last good one: {problems[0]}{more}"


def _level_names(field):
    """The levels a levels field names, as a person means them: ``run`` is run (it may
    be told as r, u or n too, but nobody means that), ``12`` is 1 and 2, ``a,bc`` is a
    and bc."""
    if "," in field:
        return [name for name in field.split(",") if name]
    return list(field) if field.isdigit() else [field]


def no_entries_warning(group, level, entries):
    """What a tell of a level at which ``group`` has no entries says: its levels, and
    the nearest one (a verb typed as a level: clinit web status)."""
    import difflib

    levels = list(dict.fromkeys(name for entry in entries if entry.mode != "off" for name in _level_names(entry.levels)))
    text = f"group {group} has no entries at level {level}: all of its entries stop"
    if not levels:
        return text
    nearest = max(levels, key=lambda name: difflib.SequenceMatcher(None, level, name).ratio())
    return f"{text} (its levels: {', '.join(levels)}; did you mean {nearest}?)"


class Requests:
    """The verbs, over a Node, a StatusWriter (clstat) and the System's ``clock``."""

    def __init__(self, node, clstat, clock, started=None):
        self.node = node
        self.clstat = clstat
        self.clock = clock
        self.started = started  # when this image of the daemon started (seconds since the epoch)
        self.reply = None  # reply(connection, answer): how a parked connection is answered
        self.handover = None  # handover.Handover: the reexec request and its waiting clients
        self._by_group = {}  # group -> {connection: (level, seconds)}, oldest first
        self._group_of = {}  # parked connection -> its group
        entries = EntryVerbs(node)  # clinit -r, --stop, --start, --output
        self.verbs = {
            "tell": self.tell,
            "wait": self.wait,
            "reread": self.reread,
            "status": self.status,
            "list": self.list,
            "restart": entries.restart,
            "stop": entries.stop,
            "start": entries.start,
            "output": entries.output,
            "shutdown": self.shutdown,
            "ping": self.ping,
            "reexec": self.reexec,
        }

    def answer_through(self, reply):
        """Answer parked connections with ``reply(connection, answer)`` (the server's)."""
        self.reply = reply

    def hand_over_through(self, handover):
        """Have ``reexec`` requests, and their waiting clients, handled by ``handover``."""
        self.handover = handover

    # what the server calls
    def handle(self, connection, request):
        """An Answer, or a Park for a connection that is to wait."""
        try:
            answer = self.verbs[request.verb](connection, *request.args)
        except Exception as error:  # a bug must not take the daemon down
            log.exception("internal error handling %r", request.line().strip())
            answer = Answer(False, f"internal error: {error}")
        if isinstance(answer, Answer):
            self.clstat.flush()
        return answer

    def expired(self, connection):
        """The answer to a wait whose deadline passed; the wait is forgotten."""
        if self.handover is not None and self.handover.waits(connection):
            return self.handover.expired(connection)
        group, level, seconds = self._forget(connection)
        return Answer(False, f"{TIMEOUT}: {group} did not settle at level {level} within {seconds:g} s")

    def gone(self, connection):
        """The client of a parked connection went away (or the server closes)."""
        if self.handover is not None:
            self.handover.gone(connection)
        self._forget(connection)

    def waiting(self, group=None):
        """How many clients wait (on ``group``, or on any)."""
        if group is not None:
            return len(self._by_group.get(group, ()))
        return len(self._group_of)

    def _park(self, connection, group, level, seconds):
        self._by_group.setdefault(group, {})[connection] = (level, seconds)
        self._group_of[connection] = group
        return Park(self.clock() + seconds)

    def _forget(self, connection):
        """``(group, level, seconds)`` of a parked connection, no longer parked here."""
        group = self._group_of.pop(connection, None)
        if group is None:
            return None
        waits = self._by_group[group]
        level, seconds = waits.pop(connection)
        if not waits:
            del self._by_group[group]
        return group, level, seconds

    def group_changed(self, group, gone=False):
        """A group changed state (Node's listener): answer the waits it settles."""
        name = group.name
        for connection, (level, _seconds) in list(self._by_group.get(name, {}).items()):
            if gone:
                answer = Answer(False, f"{name} left the cltab and was halted")
            else:
                answer = self._wait_answer(name, level)
            if answer is not None:
                self._forget(connection)
                self.clstat.flush()
                self.reply(connection, answer)

    def _wait_answer(self, name, level):
        group = self.node.group(name)
        if group is None:
            return None
        if group.state in SETTLED_GROUP_STATES:
            if group.level == level:
                failures, warnings = why.lines(group)
                return Answer(True, f"{name} {level} {group.state}", failures, warnings)
            return Answer(False, f"{name} settled at level {group.level} {group.state}")
        if group.state is GroupState.CONFIGURED:
            return Answer(False, f"{name} was halted")
        return None

    # the verbs
    def tell(self, _connection, group, level):
        if self.node.halting:
            return Answer(False, "the daemon is shutting down")
        warnings = []
        try:
            self.node.reread()
        except CltabError as error:  # a broken cltab never blocks a tell
            warnings.append(refused_warning(error))
        entries = self.node.table.entries_of(group)
        if not entries:
            log.warning("client error: no such group: %s", group)
            return Answer(False, f"no such group: {group}", warnings=warnings)
        if not any(entry.runs_at(level) for entry in entries):
            warnings.append(no_entries_warning(group, level, entries))
            log.warning("%s", warnings[-1])
        log.info("telling %s level %s", group, level)
        self.node.tell(group, level)
        return Answer(True, "level transition started", warnings=warnings)

    def wait(self, connection, group, level, seconds=None):
        if not self.node.knows(group):
            return Answer(False, f"no such group: {group}")
        answer = self._wait_answer(group, level)
        if answer is None:
            return self._park(connection, group, level, WAIT_DEFAULT if seconds is None else float(seconds))
        return answer

    def reread(self, _connection):
        try:
            changed = self.node.reread()
        except CltabError as error:
            return refusal(error)
        return Answer(True, "cltab reread" if changed else "cltab unchanged")

    def status(self, _connection):
        rows = tuple(f"{name} {level} {state}" for name, level, state in self.clstat.rows())
        return Answer(True, f"{len(rows)} group(s)", rows)

    def list(self, _connection, group=None):
        if group is not None and not self.node.knows(group):
            return Answer(False, f"no such group: {group}")
        rows = self.node.rows(None if group is None else [group])
        return Answer(True, f"{len(rows)} entries", tuple("\t".join(row) for row in rows))

    def shutdown(self, _connection):
        self.node.shutdown("shutdown request")
        return Answer(True, "all groups halting")

    def ping(self, _connection):
        started = () if self.started is None else (f"started {self.started:.6f}",)  # a data line
        return Answer(True, f"clinit {VERSION} pid {os.getpid()}", started)

    def reexec(self, connection, seconds=None):
        """Hand over (handover.py): answered by the new image, or with why not."""
        if self.node.halting:
            return Answer(False, "the daemon is shutting down")
        if self.handover is None:
            return Answer(False, "this daemon cannot re-execute itself")
        try:
            self.node.reread()  # the new image reads it too: one that is refused is not handed over
        except CltabError as error:
            return refusal(error)
        return self.handover.ask(connection, REEXEC_DEFAULT if seconds is None else float(seconds))
