"""Parse a cltab: the inittab-like file that lists a node's commands.

A cltab line is one of

* a comment (first non-blank character ``#``) or a blank line: skipped;
* a setting, ``:::NAME:VALUE`` (or the old ``::override:NAME:VALUE``);
* a boot level, ``:::boot:GROUP:LEVEL`` (boot.py): not a setting, but a
  line of its own kind (settings.LINE_KINDS), one per group;
* an entry, ``group:tag:levels:mode:command``, where the command is
  everything after the fourth colon and may itself hold colons;
* a line about one entry, ``:::user:GROUP:TAG:USER[:UNIXGROUP]`` (users.py):
  not a setting (settings are a last-wins dict), each entry named once.

``parse`` checks every line and raises one CltabError that lists every
bad line, so that one mistake does not hide the next.
"""

import dataclasses
import functools
import re

from . import users as _users
from .boot import boot_levels
from .errors import CltabError
from .trust import cltab_problems
from .settings import (  # noqa: F401 - DEFAULT_SETTINGS and friends are part of this module's face
    DEFAULT_CLTAB,
    DEFAULT_SETTINGS,
    LINE_KINDS,
    PATH_SETTINGS,
    check_value,
    default_cltab,
    file_signature,
    parse_setting,
    read_text,
    signature,
    unknown_name_message,
)

MODES = ("wait", "once", "respawn", "test", "off")


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
    """One cltab entry.  ``line`` is its line number in the file; ``user`` who it runs
    as (``USER`` or ``USER:UNIXGROUP``, from a ``:::user:`` line), None: the daemon's user."""

    group: str
    tag: str
    levels: str
    mode: str
    command: str
    line: int = 0
    user: str = None

    def has_level(self, level):
        """True when ``level`` is the whole levels field or one of its levels."""
        return level == self.levels or level in split_levels(self.levels)

    def runs_at(self, level):
        """True when this entry runs at ``level``: it is not off, and ``level`` is one of its."""
        return self.mode != "off" and self.has_level(level)

    def same_process(self, other):
        """True when ``other`` would run the same process (mode, command and user)."""
        return other is not None and (self.mode, self.command, self.user) == (other.mode, other.command, other.user)


@dataclasses.dataclass(frozen=True)
class Cltab:
    """A parsed cltab: its entries in file order, its settings and its boot levels."""

    path: str
    entries: tuple = ()
    settings: dict = dataclasses.field(default_factory=dict)
    warnings: tuple = ()  # (line, message) of lines that were ignored
    boot: tuple = ()  # (group, level) of each :::boot: line, in file order
    users: tuple = ()  # UserLine of each :::user: line, in file order
    text: str = dataclasses.field(default="", compare=False, repr=False)  # what was parsed

    @functools.cached_property
    def _by_group(self):
        by_group = {}
        for entry in self.entries:
            by_group.setdefault(entry.group, []).append(entry)
        return {name: tuple(entries) for name, entries in by_group.items()}

    def groups(self):
        """The group names, in order of first appearance."""
        return tuple(self._by_group)

    def entries_of(self, group):
        """The group's entries, in file order."""
        return self._by_group.get(group, ())

    def uid_of(self, group, tag):
        """The uid entry ``group:tag`` runs as, as the user database said when the cltab
        was read; None for the daemon's own, or when it could not be told."""
        for line in self.users:
            if (line.group, line.tag) == (group, tag):
                return line.uid
        return None

    def setting(self, name, default=None):
        """The value of a setting: the cltab's, else ``default``, else ours."""
        if name in self.settings:
            return self.settings[name]
        if default is not None:
            return default
        return DEFAULT_SETTINGS.get(name)


@dataclasses.dataclass(frozen=True)
class UserLine:
    """A ``:::user:`` line: entry ``group:tag`` runs as ``user`` (``USER[:UNIXGROUP]``);
    ``uid`` and ``gid`` as the user database said when the cltab was read (None: it
    could not be asked then)."""

    line: int
    group: str
    tag: str
    user: str
    uid: int = None
    gid: int = None


_BAD_NAME_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f]")


def _check_entry(fields):
    """The problems with one entry's five fields, as messages."""
    group, tag, levels, mode, command = fields
    problems = []
    for what, value in (("group", group), ("tag", tag), ("levels", levels)):
        if not value:
            problems.append(f"empty {what}")
        elif _BAD_NAME_CHARACTER.search(value) or not value.isprintable():
            problems.append(f"{what} {value!r} contains whitespace or a control character")
    if not command.strip():
        problems.append("empty command")
    elif "\0" in command:
        problems.append("command contains a NUL character (it would end the command there)")
    if mode not in MODES:
        problems.append(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    return problems


def _user_lines(lines, named, lookup):
    """The UserLines of ``lines`` (``(number, value)`` of each ``:::user:`` line) for the
    entries ``named`` (``(group, tag)``), and ``(problems, warnings)`` as (line, message)."""
    found, problems, warnings = [], [], []
    first = {}
    for number, value in lines:
        try:
            group, tag, user, unixgroup = _users.parse_line(value)
        except ValueError as error:
            problems.append((number, str(error)))
            continue
        text = _users.spec(user, unixgroup)
        if (group, tag) in first:
            first_line = first[(group, tag)]
            problems.append((number, f"a second :::user: line for {group}:{tag} (the first is line {first_line})"))
            continue
        first[(group, tag)] = number
        if (group, tag) not in named:
            problems.append((number, f"no such entry: {group}:{tag}"))
            continue
        identity, problem, warning = _users.check(text, lookup)
        if problem is not None:
            problems.append((number, problem))
            continue
        if warning is not None:
            warnings.append((number, warning))
        uid, gid = (identity.uid, identity.gid) if identity is not None else (None, None)
        found.append(UserLine(number, group, tag, text, uid, gid))
    return found, problems, warnings


def parse(text, path="<cltab>", entries=True, lookup=None):
    """Parse cltab text; ``path`` names the file in errors.

    Returns a Cltab.  Raises CltabError listing every bad line.  With
    ``entries=False`` only the settings are read and entry lines are
    not checked (what a client needs to find the socket).  ``lookup``
    asks the user database for ``:::user:`` lines (users.lookup when None).
    """
    found = []
    settings = {}
    problems = []
    warnings = []
    named = set()
    first_line_of_tag = {}
    kinds = {kind: [] for kind in LINE_KINDS}  # kind -> [(line, value)]: checked once the entries are known
    # only "\n" ends a line: str.splitlines would also split on characters
    # such as \x1e or \u2028 that a command may legitimately contain
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        setting = parse_setting(line)
        if setting is not None:
            name, value = setting
            if name in kinds:
                kinds[name].append((number, value))
                continue
            if name not in DEFAULT_SETTINGS:
                warnings.append((number, unknown_name_message(name)))
                continue
            try:
                settings[name] = check_value(name, value)
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
        named.add((fields[0], fields[1]))
        tag = fields[1]
        if tag in first_line_of_tag:
            messages.append(f"duplicate tag {tag!r} (first used on line {first_line_of_tag[tag]})")
        elif tag:
            first_line_of_tag[tag] = number
        problems.extend((number, message) for message in messages)
        if not messages:
            found.append(Entry(*fields, line=number))
    users = ()
    if entries and kinds["user"]:
        users, user_problems, user_warnings = _user_lines(kinds["user"], named, lookup or _users.lookup)
        problems = problems + user_problems
        warnings = sorted(warnings + user_warnings, key=lambda warning: warning[0])
        by_entry = {(line.group, line.tag): line.user for line in users}
        found = [
            dataclasses.replace(entry, user=by_entry[(entry.group, entry.tag)])
            if (entry.group, entry.tag) in by_entry
            else entry
            for entry in found
        ]
    boot, boot_problems = boot_levels(kinds["boot"], found if entries else None)
    if problems or boot_problems:
        raise CltabError(path, sorted(problems + boot_problems, key=lambda problem: problem[0]), warnings)
    return Cltab(
        path=path,
        entries=tuple(found),
        settings=settings,
        warnings=tuple(warnings),
        boot=boot,
        users=tuple(users),
        text=text,
    )


def load(path, entries=True):
    """Read and parse the cltab file at ``path``; CltabError if it cannot be used."""
    text, _info = read_text(path)
    return parse(text, path, entries=entries)


def _trusted_opener():
    """How a root daemon opens its cltab (``_open_walked``); None for another user's."""
    from .trust import running_as_root

    return _open_walked if running_as_root() else None


def _open_walked(path):
    """The cltab's descriptor, reached from / one component at a time (safepath),
    through trusted symlinks only, the one at its end included; opened without
    blocking (read_text refuses what is not a regular file)."""
    import os

    from . import safepath

    path = safepath.resolve_last(path)
    directory, name = safepath.split(path)
    dir_fd = safepath.open_directory(directory, strict=True)
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
        return os.open(name, flags, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def load_trusted(path):
    """``(Cltab, signature)`` of the cltab at ``path``, as the daemon uses it.

    CltabError if it cannot be read, is not a regular file, is too
    large, has errors, or (for a daemon running as root) is not trusted:
    the file that was opened is checked, not the path, and it was reached
    from / one component at a time, through trusted symlinks only.
    """
    text, info = read_text(path, _trusted_opener())
    problems = cltab_problems(path, info)
    if problems:
        raise CltabError(path, [(0, f"not trusted: {problem}") for problem in problems])
    return parse(text, path), signature(info)
