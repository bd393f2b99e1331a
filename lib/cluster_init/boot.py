"""Boot levels: the cltab's ``:::boot:GROUP:LEVEL`` lines.

Each names the level a group is told when the daemon starts, unless the
daemon restores the group after a crash (node.py ``boot``): so the
service manager that starts ``clinit -d`` (systemd, the init script, an
inittab line) brings the node's groups up with no other command, and
stopping it brings them down.  One line per group.

These are not settings (settings are one value each, the last line
wins): ``boot_levels`` checks every line once the entries are known, and
reports each problem at its line, as every cltab error is: a value that
is not GROUP:LEVEL, a bad name, a group named twice, a group that has no
entry, a level at which the group has no entry (an ``off`` entry does
not count).
"""

import re

_BAD_NAME = re.compile(r"[\s\x00-\x1f\x7f]")


def _name_problem(what, name):
    if not name:
        return f"boot: empty {what}"
    if _BAD_NAME.search(name) or not name.isprintable():
        return f"boot: {what} {name!r} contains whitespace or a control character"
    return None


def boot_levels(lines, entries):
    """``(((group, level), ...), problems)`` of the boot lines ``lines`` (``(line
    number, value)`` pairs, the value after ``:::boot:``), checked against the
    cltab's ``entries`` (None: not checked, only the settings were read).
    ``problems`` are ``(line number, message)``."""
    found = []
    problems = []
    first_line = {}
    for number, value in lines:
        group, sep, level = value.partition(":")
        if not sep or ":" in level:
            problems.append((number, f"boot: GROUP:LEVEL wanted, not {value!r}"))
            continue
        messages = [m for m in (_name_problem("group", group), _name_problem("level", level)) if m]
        if not messages and group in first_line:
            messages.append(f"boot: group {group!r} has a boot level already (line {first_line[group]})")
        if not messages and entries is not None:
            messages.extend(_entry_problems(group, level, entries))
        if messages:
            problems.extend((number, message) for message in messages)
            continue
        first_line[group] = number
        found.append((group, level))
    return tuple(found), problems


def _entry_problems(group, level, entries):
    ours = [entry for entry in entries if entry.group == group]
    if not ours:
        return [f"boot: no group {group!r} in this cltab"]
    if not any(entry.runs_at(level) for entry in ours):
        return [f"boot: group {group!r} has no entries at level {level!r}"]
    return []
