"""``clinit -S``: the status from clstat alone, as an LSB init script's status action.

Nothing is asked of the daemon.  The exit status (cli_args.STATUS_*):
4 when clstat is missing, cannot be read (not a regular file: a FIFO
planted there is refused at once, never waited on), or no live daemon
writes it; else 1 if a group shown is FAILED, 3 if one is not where
asked (or none is shown), 0 when all are DONE or PASSED.

Whether a live daemon writes it: for the local clstat (the cltab's),
the lock file beside the socket tells at once (a daemon holds it as
long as it lives; after a kill -9 nobody does); for any clstat, one not
rewritten for STALE_AFTER seconds is stale (a live daemon rewrites it
every 30 to 45).  ``--clstat`` (another node's clstat, on a shared file
system) has only the staleness rule.  The rows of a clstat no live
daemon writes go to stderr as "last recorded", never to stdout: a
script that greps stdout for DONE must not find it there.
"""

import sys
import time

from . import status as _status
from .cli_args import (
    DEFAULT_SOCKET,
    STATUS_FAILED,
    STATUS_NOT_THERE,
    STATUS_OK,
    STATUS_UNKNOWN,
    say,
)
from .client import Client, lock_held
from .errors import CltabError
from .settings import DEFAULT_SETTINGS
from .socketlock import path_for as lock_path

STALE_AFTER = 120.0  # seconds; the daemon rewrites clstat every 30 to 45


def _local_paths(args):
    """``(clstat, socket)`` the cltab names (the defaults without a readable cltab)."""
    client = Client(cltab=args.cltab, socket=args.socket)
    try:
        return client.conf("clstat"), client.conf("socket")
    except CltabError as error:  # the default clstat, then: -S works without a cltab
        say(f"warning: {error}; reading {DEFAULT_SETTINGS['clstat']}")
        return DEFAULT_SETTINGS["clstat"], args.socket or DEFAULT_SOCKET


def _dead(path, socket, mtime):
    """Why no live daemon writes the clstat at ``path``, or None."""
    if socket is not None and lock_held(socket) is False:
        return f"{path} is left from a daemon that is gone: no daemon holds {lock_path(socket)}"
    age = time.time() - mtime
    if age > STALE_AFTER:
        return f"{path} is stale: written {age:.0f} s ago (a live daemon rewrites it every 30 to 45 s)"
    return None


def run(args):
    """Print clstat's rows (GROUP filtered); the LSB status action's exit status."""
    path, socket = args.clstat, None
    if path is None:
        path, socket = _local_paths(args)
    group = args.words[0] if args.words else None
    level = args.words[1] if len(args.words) == 2 else None
    try:
        rows, mtime = _status.read_with_mtime(path)
    except (OSError, UnicodeDecodeError) as error:
        say(f"cannot read {path}: {getattr(error, 'strerror', None) or error}")
        return STATUS_UNKNOWN
    shown = [row for row in rows if group is None or row[0] == group]
    if mtime is None:
        say(f"{path}: no such file: no daemon writes it")
        return STATUS_UNKNOWN
    why = _dead(path, socket, mtime)
    if why is not None:  # the rows are history: never on stdout, where scripts look for DONE
        say(why)
        for line in _status.render(shown).splitlines():
            say(f"last recorded: {line}")
        return STATUS_UNKNOWN
    sys.stdout.write(_status.render(shown))
    if not shown:
        return STATUS_NOT_THERE  # not in clstat (or no group was ever told)
    if any(state == "FAILED" for _name, _level, state in shown):
        return STATUS_FAILED
    if any(state not in ("DONE", "PASSED") or level not in (None, at) for _name, at, state in shown):
        return STATUS_NOT_THERE
    return STATUS_OK
