"""What the operator sees of a node: the rows of ``clinit -l`` and the SIGUSR1 dump.

Both read a Node (node.py) and change nothing: every group in the
cltab's order, then those that left it (``Node.names``); each group's
entries in file order, then the machines whose entry left the cltab
(``entries_and_machines``); the fields of each are listing.row's
(protocol.LIST_FIELDS).
"""

import logging

from . import listing
from .protocol import LIST_FIELDS

log = logging.getLogger("cluster_init")


def entries_and_machines(node, name):
    """``(entry, machine or None, left the cltab)``: group ``name``'s entries in file
    order, then the machines whose entry left the cltab."""
    group = node.group(name)
    machines = group.machines() if group is not None else []
    entries = node.table.entries_of(name)
    tags = {entry.tag for entry in entries}
    listed = [(entry, group.machine(entry.tag) if group is not None else None, False) for entry in entries]
    listed += [(proc.entry, proc, True) for tag, proc in machines if tag not in tags]
    return listed


def rows(node, names=None):
    """The ``clinit -l`` fields (protocol.LIST_FIELDS) of every entry of ``names``
    (default: every group)."""
    now = node.ctx.system.now()
    names = node.names() if names is None else names
    listed = [item for name in names for item in entries_and_machines(node, name)]
    lines = listing.last_outputs([(entry, proc) for entry, proc, _left in listed], node.ctx)
    return [listing.row(entry, proc, node.ctx, now, left, lines) for entry, proc, left in listed]


def dump(node):
    """The state of every group and of every entry (as clinit -l has it), to the log."""
    log.info(
        "state dump: %d group(s), %d process(es) running",
        len(node.groups),
        len(node.ctx.registry.live_pids()),
    )
    now = node.ctx.system.now()
    for name in node.names():
        group = node.group(name)
        if group is not None:
            log.info("group %s: level %s %s", name, group.level, group.state)
        else:
            log.info("group %s: never told", name)
        for entry, proc, left in entries_and_machines(node, name):
            fields = dict(zip(LIST_FIELDS, listing.row(entry, proc, node.ctx, now, left)))
            log.info(
                "  %s:%s: %s, pid %s, started %s time(s), last exit %s%s%s",
                name,
                entry.tag,
                fields["state"],
                fields["pid"],
                fields["starts"],
                fields["last_exit"],
                "" if fields["since"] == "-" else f", {fields['since']}s in its state",
                "" if fields["note"] == "-" else f" ({fields['note']})",
            )
