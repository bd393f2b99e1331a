"""The per-entry listing (``clinit -l``): one row of fields per entry.

The daemon builds the rows (``row``); the command prints them as an
aligned table with a header on a terminal, and as tab-separated fields
without a header otherwise (``render``), so that ``cut`` and ``awk``
work.  The fields are protocol.LIST_FIELDS; the last two are the user
the entry runs as and the last line it printed (``last_output``, which
a failure report may show too).
"""

from .protocol import LIST_FIELDS
from .waitstatus import last_exit

SINCE = LIST_FIELDS.index("since")
HEADER = ("GROUP", "TAG", "LEVELS", "MODE", "STATE", "PID", "STARTS", "LAST", "SINCE", "NOTE", "USER", "OUTPUT")


def output_file(entry, proc, ctx):
    """The file ``entry``'s output goes to: its last start's (while it has a machine,
    ``proc``), else where it would go now; None when it writes where the daemon writes."""
    history = ctx.history.get((entry.group, entry.tag)) if proc is not None else None
    started = history.output if history is not None else None
    return started or ctx.output_of(entry)


def last_output(entry, proc, ctx):
    """The last line ``entry`` printed (outputs.clean: no control characters), or None."""
    path = output_file(entry, proc, ctx)
    return ctx.system.last_lines([path]).get(path) if path is not None else None


def last_outputs(listed, ctx):
    """``{path: last line}`` for the ``(entry, proc)`` pairs ``listed`` that have a
    machine (read in one go: ``row`` takes it as ``lines``)."""
    paths = [output_file(entry, proc, ctx) for entry, proc in listed if proc is not None]
    return ctx.system.last_lines([path for path in paths if path is not None])


def row(entry, proc, ctx, now, left=False, lines=None):
    """The fields of one entry (``proc`` its machine, or None; ``left``: it left the cltab;
    ``lines``: ``last_outputs``, when the caller read them for many rows)."""
    history = ctx.history.get((entry.group, entry.tag))
    notes = []
    if proc is not None:
        trouble = proc.trouble  # a failed test, a start that failed, a crash loop
        held = proc.held_back_for
        if trouble is not None:
            notes.append(trouble)
        elif held is not None:
            notes.append(f"respawn held back, {held:.0f}s left")
        if proc.respawns.detaches and trouble is None:
            notes.append(proc.respawns.hint())
        if proc.adopted:
            notes.append("adopted")
        if proc.restarting:
            notes.append("restarting")
        if proc.stopped_by_hand:
            notes.append("stopped by hand")
    if left:
        notes.append("left the cltab")
    return (
        entry.group,
        entry.tag,
        entry.levels,
        entry.mode,
        proc.state.value if proc is not None else "CONFIGURED",
        str(proc.pid) if proc is not None and proc.pid is not None else "-",
        str(history.starts if history is not None else 0),
        last_exit(history.status if history is not None else None),
        str(int(now - proc.since)) if proc is not None else "-",
        "; ".join(notes) or "-",
        entry.user or "-",
        _last(entry, proc, ctx, lines) or "-",
    )


def _last(entry, proc, ctx, lines):
    if proc is None:
        return None
    if lines is None:
        return last_output(entry, proc, ctx)
    return lines.get(output_file(entry, proc, ctx))


def duration(seconds):
    """``42s``, ``3m07s``, ``2h05m``, ``3d04h``."""
    if not seconds.isdigit():
        return seconds
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def render(lines, table):
    """The listing's text: an aligned table with a header, or the tab-separated lines."""
    if not table:
        return "".join(line + "\n" for line in lines)
    rows = [HEADER]
    for line in lines:
        fields = line.split("\t")
        fields[SINCE] = duration(fields[SINCE])
        rows.append(tuple(fields))
    widths = [max(len(r[i]) for r in rows) for i in range(len(LIST_FIELDS))]
    return "".join(
        "  ".join(field.ljust(width) for field, width in zip(r, widths)).rstrip() + "\n" for r in rows
    )
