"""The flat-text protocol spoken on clinit's UNIX socket.

One request per connection: the client sends one line of UTF-8 text,
words separated by single spaces, ended by a newline; the daemon
answers with one or more lines and closes the connection.  The first
answer line is ``ok MESSAGE`` or ``error MESSAGE``.  Lines that follow
it and start with ``warning: `` are warnings (the request was done, but
something deserves a look); any other lines are data (status rows,
listing rows, the problems of a broken cltab).

Requests::

    tell GROUP LEVEL   move GROUP to LEVEL
                       -> ok level transition started
                       -> error no such group: GROUP
    wait GROUP LEVEL [SECONDS]
                       answer once GROUP has settled at LEVEL
                       -> ok GROUP LEVEL DONE|PASSED|FAILED, then for FAILED
                          one "GROUP:TAG: why" line per entry that fails it;
                          warnings name wait and once entries of the level
                          that exited non-zero since it was told
                       -> error GROUP settled at level LEVEL2 STATE
                       -> error timeout: ... (after SECONDS, default WAIT_DEFAULT)
    reread             reread the cltab if it changed
                       -> ok cltab reread | ok cltab unchanged
    status             -> ok N group(s), then one "GROUP LEVEL STATE" line each
    list [GROUP]       -> ok N entries, then one line per entry, its fields
                          separated by tabs (see LIST_FIELDS)
    restart GROUP TAG  stop one entry gracefully and start it again
                       -> ok restarting GROUP:TAG
    stop GROUP TAG     stop one entry of the group's level gracefully, and keep
                       it stopped until a start, a restart or the group's next tell
                       -> ok stopping GROUP:TAG
                       -> error group GROUP is moving (...)  (only a group at rest)
    start GROUP TAG    start one entry of the group's level that is not running,
                       or run a finished once, wait or test entry again
                       -> ok starting GROUP:TAG
    output GROUP TAG   the file the entry's output goes to
                       -> ok output of GROUP:TAG, then the path alone on a line
                       -> error GROUP:TAG writes where the daemon writes ...
    shutdown           halt every group, then exit
                       -> ok all groups halting
    ping               -> ok clinit VERSION pid PID, then "started SECONDS":
                          when this image of the daemon started, since the
                          epoch (a handover changes it, not PID); a data
                          line, so that the first line keeps its old form
    reexec [SECONDS]   hand over: the daemon re-executes itself in place as
                       the version installed (handover.py), once every
                       group is at rest, waiting up to SECONDS (default
                       REEXEC_DEFAULT); answered by the new image
                       -> ok handed over: clinit VERSION runs on as pid PID ...
                       -> error not handed over: WHY
                       -> error timeout: not handed over within SECONDS s: WHY

Error answers whose message starts with one of ERROR_KINDS tell the
client what kind of failure it was: ``cltab refused`` (followed by one
``FILE:LINE: message`` line per problem; the daemon keeps its last good
cltab), ``permission denied``, ``busy`` (too many clients: try again),
``timeout`` (a wait ran out).  Names (groups, levels, tags) must be
non-empty and hold no whitespace, colon or control character.  A
request longer than MAX_REQUEST bytes, or not valid UTF-8, or not one
of the above, gets an error answer.  Nothing a client sends stops the
daemon but ``shutdown``.

Imports nothing: the clinit command's client path uses it.
"""

MAX_REQUEST = 64 * 1024
ENCODING = "utf-8"
WAIT_DEFAULT = 300.0  # seconds a wait request may wait when it names none
REEXEC_DEFAULT = 60.0  # seconds a reexec request waits for the groups to be at rest
MAX_SECONDS = 1e8  # the longest wait a request may name (three years)
WARNING = "warning: "

# the first words of an error message that say what kind of error it is
CLTAB_REFUSED = "cltab refused"
PERMISSION_DENIED = "permission denied"
BUSY = "busy"
TIMEOUT = "timeout"
ERROR_KINDS = (CLTAB_REFUSED, PERMISSION_DENIED, BUSY, TIMEOUT)

# verb -> (names of its arguments, how many of them may be left out)
VERBS = {
    "tell": (("group", "level"), 0),
    "wait": (("group", "level", "seconds"), 1),
    "reread": ((), 0),
    "status": ((), 0),
    "list": (("group",), 1),
    "restart": (("group", "tag"), 0),
    "stop": (("group", "tag"), 0),
    "start": (("group", "tag"), 0),
    "output": (("group", "tag"), 0),
    "shutdown": ((), 0),
    "ping": ((), 0),
    "reexec": (("seconds",), 1),
}

# the fields of a "list" data line, in order
LIST_FIELDS = (
    "group", "tag", "levels", "mode", "state", "pid", "starts", "last_exit", "since", "note", "user", "output",
)


class ProtocolError(ValueError):
    """A request (or answer) that does not follow the protocol."""


class Request:
    """One request: a verb and its arguments (strings)."""

    __slots__ = ("verb", "args")

    def __init__(self, verb, args=()):
        self.verb = verb
        self.args = tuple(args)

    def line(self):
        return " ".join((self.verb,) + self.args) + "\n"

    def __eq__(self, other):
        return isinstance(other, Request) and (self.verb, self.args) == (other.verb, other.args)

    def __repr__(self):
        return f"Request({self.verb!r}, {self.args!r})"


class Answer:
    """One answer: ok or not, a message, warnings and data lines."""

    __slots__ = ("ok", "message", "lines", "warnings")

    def __init__(self, ok, message, lines=(), warnings=()):
        self.ok = ok
        self.message = message
        self.lines = tuple(lines)
        self.warnings = tuple(warnings)

    @property
    def kind(self):
        """For an error answer, which of ERROR_KINDS it is, or None."""
        if self.ok:
            return None
        for kind in ERROR_KINDS:
            if self.message == kind or self.message.startswith(kind + ":") or self.message.startswith(kind + ";"):
                return kind
        return None

    def encode(self):
        head = ("ok" if self.ok else "error") + (" " + self.message if self.message else "")
        lines = (head,) + tuple(WARNING + text for text in self.warnings) + self.lines
        return "".join(line + "\n" for line in lines).encode(ENCODING, "replace")

    def __repr__(self):
        return f"Answer({self.ok!r}, {self.message!r}, {self.lines!r}, {self.warnings!r})"


def check_name(what, name):
    """Raise ProtocolError unless ``name`` is a usable group, level or tag name."""
    if not name:
        raise ProtocolError(f"empty {what}")
    if ":" in name or " " in name or not name.isprintable():
        raise ProtocolError(f"bad {what} {name!r}: no whitespace, colon or control character")


def format_seconds(seconds):
    """``seconds`` as a wait request names them: plain digits, no exponent, to the microsecond.

    ValueError unless 0 <= seconds <= MAX_SECONDS (``1e+06``, what ``%g``
    gives, is not a number the daemon takes; ``-0`` neither).
    """
    seconds = float(seconds) + 0.0  # -0.0 + 0.0 is 0.0
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds: a number from 0 to {MAX_SECONDS:.0f}, not {seconds!r}")
    text = f"{seconds:.6f}".rstrip("0")
    return text[:-1] if text.endswith(".") else text


def parse_seconds(text):
    """The seconds of a wait request (digits, one dot at most); ProtocolError if bad."""
    digits = text.replace(".", "", 1)
    if not (digits.isascii() and digits.isdigit()) or float(text) > MAX_SECONDS:
        raise ProtocolError(f"bad seconds {text[:40]!r}: a number from 0 to {MAX_SECONDS:g}")
    return float(text)



def parse_request(data):
    """The Request in one line of bytes (without its newline)."""
    try:
        text = data.decode(ENCODING)
    except UnicodeDecodeError:
        raise ProtocolError("request is not UTF-8") from None
    if text.endswith("\r"):
        text = text[:-1]
    words = text.split(" ")
    verb, args = words[0], tuple(words[1:])
    if verb not in VERBS:
        raise ProtocolError(f"unknown request {verb[:40]!r} (known: {', '.join(VERBS)})")
    names, optional = VERBS[verb]
    if not len(names) - optional <= len(args) <= len(names):
        usage = " ".join(
            [verb]
            + [name.upper() for name in names[: len(names) - optional]]
            + [f"[{name.upper()}]" for name in names[len(names) - optional:]]
        )
        raise ProtocolError(f"usage: {usage}")
    for what, name in zip(names, args):
        if what == "seconds":
            parse_seconds(name)
        else:
            check_name(what, name)
    return Request(verb, args)


def parse_answer(data):
    """The Answer in the bytes a daemon sent."""
    text = data.decode(ENCODING, "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ProtocolError("empty answer")
    head, _, message = lines[0].partition(" ")
    if head not in ("ok", "error"):
        raise ProtocolError(f"not an answer: {lines[0][:80]!r}")
    warnings = tuple(line[len(WARNING):] for line in lines[1:] if line.startswith(WARNING))
    data_lines = tuple(line for line in lines[1:] if not line.startswith(WARNING))
    return Answer(head == "ok", message, data_lines, warnings)
