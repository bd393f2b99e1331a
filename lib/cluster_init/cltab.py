"""Parse a cltab: the inittab-like file that lists a node's commands.

A cltab line is one of

* a comment (first non-blank character ``#``) or a blank line: skipped;
* a setting, ``:::NAME:VALUE`` (or the old ``::override:NAME:VALUE``);
* an entry, ``group:tag:levels:mode:command``, where the command is
  everything after the fourth colon and may itself hold colons.

``parse`` checks every line and raises one CltabError that lists every
bad line, so that one mistake does not hide the next.
"""

import dataclasses
import os

from .errors import CltabError

MODES = ("wait", "once", "respawn", "test", "off")
DEFAULT_CLTAB = "/etc/cltab"

# Settings a cltab may hold, with their defaults; the numbers are seconds
# or counts.  The Perl clinit knew socket, clstat and log.
DEFAULT_SETTINGS = {
    "socket": "/var/run/clinit/clinit.s",
    "clstat": "/var/run/clinit/clstat",
    "log": "/var/run/clinit/log",
    "pidfile": "/var/run/clinit/clinit.pid",
    "term_delay": 5.0,  # SIGINT ... SIGTERM
    "kill_delay": 10.0,  # SIGTERM ... SIGKILL
    "respawn_limit": 5,  # rapid restarts allowed before holding back
    "respawn_window": 1.0,  # a restart this soon after the last one is rapid
    "respawn_hold": 60.0,  # how long a too rapid entry is held back
}
PATH_SETTINGS = ("socket", "clstat", "log", "pidfile")
_NUMBER_SETTINGS = {
    "term_delay": float,
    "kill_delay": float,
    "respawn_limit": int,
    "respawn_window": float,
    "respawn_hold": float,
}


def split_levels(field):
    """The levels a levels field names.

    Without a comma every character is a level (``12`` is 1 and 2);
    with one, the comma-separated words are (``long3,`` is long3).
    """
    if "," in field:
        return tuple(level for level in field.split(",") if level)
    return tuple(field)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One cltab entry.  ``line`` is its line number in the file."""

    group: str
    tag: str
    levels: str
    mode: str
    command: str
    line: int = 0

    def has_level(self, level):
        """True when ``level`` is the whole levels field or one of its levels."""
        return level == self.levels or level in split_levels(self.levels)

    def same_process(self, other):
        """True when ``other`` would run the same process (mode and command)."""
        return other is not None and (self.mode, self.command) == (other.mode, other.command)


@dataclasses.dataclass(frozen=True)
class Cltab:
    """A parsed cltab: its entries in file order and its settings."""

    path: str
    entries: tuple = ()
    settings: dict = dataclasses.field(default_factory=dict)

    def groups(self):
        """The group names, in order of first appearance."""
        return tuple(dict.fromkeys(entry.group for entry in self.entries))

    def entries_of(self, group):
        """The group's entries, in file order."""
        return tuple(entry for entry in self.entries if entry.group == group)

    def setting(self, name, default=None):
        """The value of a setting: the cltab's, else ``default``, else ours."""
        if name in self.settings:
            return self.settings[name]
        if default is not None:
            return default
        return DEFAULT_SETTINGS.get(name)


def _has_space(text):
    return any(char.isspace() for char in text)


def _parse_setting(line):
    """``(name, value)`` for a setting line, or None for any other line."""
    for prefix in (":::", "::override:"):
        if line.startswith(prefix):
            name, sep, value = line[len(prefix):].partition(":")
            if sep and name and value:
                return name, value
    return None


def _check_setting(name, value):
    """The setting's value converted, or raise ValueError saying why not."""
    convert = _NUMBER_SETTINGS.get(name)
    if convert is None:
        return value
    try:
        number = convert(value)
    except ValueError:
        raise ValueError(f"setting {name} wants a number, not {value!r}") from None
    if number < 0:
        raise ValueError(f"setting {name} must not be negative")
    return number


def _check_entry(fields):
    """The problems with one entry's five fields, as messages."""
    group, tag, levels, mode, command = fields
    problems = []
    for what, value in (("group", group), ("tag", tag), ("levels", levels)):
        if not value:
            problems.append(f"empty {what}")
    if not command.strip():
        problems.append("empty command")
    if _has_space(group):
        problems.append(f"group {group!r} contains whitespace")
    if _has_space(levels):
        problems.append(f"levels {levels!r} contain whitespace")
    if mode not in MODES:
        problems.append(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    return problems


def parse(text, path="<cltab>", entries=True):
    """Parse cltab text; ``path`` names the file in errors.

    Returns a Cltab.  Raises CltabError listing every bad line.  With
    ``entries=False`` only the settings are read and entry lines are
    not checked (what a client needs to find the socket).
    """
    found = []
    settings = {}
    problems = []
    first_line_of_tag = {}
    # only "\n" ends a line: str.splitlines would also split on characters
    # such as \x1e or \u2028 that a command may legitimately contain
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        setting = _parse_setting(line)
        if setting is not None:
            name, value = setting
            try:
                settings[name] = _check_setting(name, value)
            except ValueError as error:
                problems.append((number, str(error)))
            continue
        if not entries:
            continue
        fields = line.split(":", 4)
        if len(fields) < 5:
            problems.append(
                (number, f"expected group:tag:levels:mode:command, found {len(fields)} field(s)")
            )
            continue
        messages = _check_entry(fields)
        tag = fields[1]
        if tag in first_line_of_tag:
            messages.append(f"duplicate tag {tag!r} (first used on line {first_line_of_tag[tag]})")
        elif tag:
            first_line_of_tag[tag] = number
        problems.extend((number, message) for message in messages)
        if not messages:
            found.append(Entry(*fields, line=number))
    if problems:
        raise CltabError(path, problems)
    return Cltab(path=path, entries=tuple(found), settings=settings)


def load(path, entries=True):
    """Read and parse the cltab file at ``path``; CltabError if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as stream:
            text = stream.read()
    except OSError as error:
        raise CltabError(path, [(0, f"cannot read: {error.strerror or error}")]) from None
    return parse(text, path, entries=entries)


def file_signature(path):
    """What tells us a cltab changed: (mtime_ns, size, inode), or None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
