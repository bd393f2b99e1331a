"""The flat-text protocol spoken on clinit's UNIX socket.

One request per connection: the client sends one line of UTF-8 text,
words separated by single spaces, ended by a newline; the daemon
answers with one or more lines and closes the connection.  The first
answer line is ``ok MESSAGE`` or ``error MESSAGE``; any further lines
are data (status rows, the problems of a broken cltab).

Requests::

    tell GROUP LEVEL   move GROUP to LEVEL
                       -> ok level transition started
                       -> error no such group: GROUP
    wait GROUP LEVEL   answer once GROUP has settled at LEVEL
                       -> ok GROUP LEVEL DONE|PASSED|FAILED
                       -> error GROUP settled at LEVEL2 STATE (told another level meanwhile)
    reread             reread the cltab if it changed
                       -> ok cltab reread | ok cltab unchanged
    status             -> ok N group(s), then one "GROUP LEVEL STATE" line each
    shutdown           halt every group, then exit
                       -> ok all groups halting
    ping               -> ok clinit VERSION pid PID

A tell or reread that finds the cltab broken answers
``error cltab has errors; still using the last good one``, followed by
one ``FILE:LINE: message`` line per problem.  Names (groups, levels)
must be non-empty and hold no whitespace, colon or control character.
A request longer than MAX_REQUEST bytes, or not valid UTF-8, or not
one of the above, gets an error answer.  Nothing a client sends stops
the daemon but ``shutdown``.
"""

import dataclasses

MAX_REQUEST = 64 * 1024
ENCODING = "utf-8"

# verb -> names of its arguments
VERBS = {
    "tell": ("group", "level"),
    "wait": ("group", "level"),
    "reread": (),
    "status": (),
    "shutdown": (),
    "ping": (),
}


class ProtocolError(ValueError):
    """A request (or answer) that does not follow the protocol."""


@dataclasses.dataclass(frozen=True)
class Request:
    verb: str
    args: tuple = ()

    def line(self):
        return " ".join((self.verb,) + tuple(self.args)) + "\n"


@dataclasses.dataclass(frozen=True)
class Answer:
    ok: bool
    message: str
    lines: tuple = ()

    def encode(self):
        head = ("ok" if self.ok else "error") + (" " + self.message if self.message else "")
        text = "".join(line + "\n" for line in (head,) + tuple(self.lines))
        return text.encode(ENCODING, "replace")


def check_name(what, name):
    """Raise ProtocolError unless ``name`` is a usable group or level name."""
    if not name:
        raise ProtocolError(f"empty {what}")
    for char in name:
        if char == ":" or char.isspace() or ord(char) < 32 or ord(char) == 127:
            raise ProtocolError(f"bad {what} {name!r}: no whitespace, colon or control character")


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
    names = VERBS[verb]
    if len(args) != len(names):
        usage = " ".join([verb] + [name.upper() for name in names])
        raise ProtocolError(f"usage: {usage}")
    for what, name in zip(names, args):
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
    return Answer(head == "ok", message, tuple(lines[1:]))
