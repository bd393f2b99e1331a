"""The forms of the command that are not a client's: ``-d`` and ``--check``.

``-d`` runs the daemon (``-d -b`` detached), ``--check`` reads a cltab
as the daemon would.  Both import the daemon's heavier modules (the
cltab parser, logging, python-daemon), which the client path never
loads: cli.py imports this module only for these two forms.

A daemon that re-executed itself (a handover, handover.py) finds its
record through CLINIT_REEXEC, which is taken out of the environment
before anything else (its children never see it); under ``-d -b`` it
is detached already: it keeps its pid file, and removes it at exit.
A daemon run by the command holds its lock until its process exits, so
that ``clinit -k -w`` returns only then (premises.keep_lock).
``--check`` with CLINIT_REEXEC=probe is the handover's probe: it ends
with the handover formats this version reads.
"""

import os
import sys

from .cli_args import EXIT_CLTAB, EXIT_ERROR, EXIT_NOT_INSTALLED, EXIT_OK, say
from .errors import CltabError, DaemonStartError, MissingDependency


def _carried():
    """The record of the handover this process is the end of, or None (carry.py)."""
    from . import carry

    value = os.environ.pop(carry.ENVIRONMENT, None)
    if value is None:
        return None
    try:
        return carry.receive(value)
    except ValueError as error:
        say(f"warning: {error}; starting afresh")
        return None


def run_daemon(args):
    """clinit -d [-b]: serve until shut down; the daemon's exit status."""
    carried = _carried()
    try:
        from .daemon import Daemon
        from .handover import own_command

        detach = args.background and carried is None
        if args.background:
            from . import background

            if detach:
                background.check_dependencies()
        daemon = Daemon(
            cltab=args.cltab,
            socket_path=args.socket,
            pidfile_path=args.pidfile,
            log_to_stderr=not args.background,
            background=args.background,
            command=own_command(args),
            carried=carried,
        )
        if detach:
            if daemon.refused_at_start is not None:  # said here: the log is all it says later
                say(f"warning: {daemon.refused_at_start.path} refused: running on the last good one,"
                    f" {daemon.node.table.path}:\n{daemon.refused_at_start}")
            background.start(daemon)
        elif args.background:
            background.run_detached(daemon)
        else:
            daemon.premises.keep_lock()  # until this process exits: -k -w waits for that
            daemon.run()
    except MissingDependency as error:
        say(error)
        return EXIT_NOT_INSTALLED
    except CltabError as error:
        say(error)
        return EXIT_CLTAB
    except DaemonStartError as error:
        say(error)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    return EXIT_OK


def check(args):
    """clinit --check: every problem of the cltab (exit 6) or a count and the boot
    levels (exit 0), and who the entries that name a user run as; its warnings
    (setting names nobody knows, a user that cannot be looked up now) either way,
    -v or not; and which output directories do not exist yet (the daemon makes them)."""
    from .cltab import load_trusted

    try:
        table, _signature = load_trusted(args.cltab)
    except CltabError as error:
        print(error, file=sys.stderr)
        _warn(args, error.warnings)
        return EXIT_CLTAB
    _warn(args, table.warnings)
    for directory in _missing_output_directories(table):
        say(f"note: output directory {directory} does not exist yet (the daemon makes it, mode 0755, when an entry starts)")
    entries, groups = len(table.entries), len(table.groups())
    boot = "".join(f"; at boot, {group} {level}" for group, level in table.boot)
    print(f"{args.cltab}: ok, {_count(entries, 'entry', 'entries')} in {_count(groups, 'group', 'groups')}{boot}")
    for line in table.users:
        ids = "not looked up" if line.uid is None else f"uid {line.uid}, gid {line.gid}"
        print(f"{args.cltab}:{line.line}: {line.group}:{line.tag} runs as {line.user} ({ids})")
    if os.environ.get("CLINIT_REEXEC") == "probe":
        from .handover import probe_line

        print(probe_line())
    return EXIT_OK


def _missing_output_directories(table):
    """The directories of the entries' output files (relative paths from here, as a
    daemon started here takes them) that do not exist, in file order."""
    import os

    from .context import child_settings, output_path

    _directory, template = child_settings(table, os.getcwd(), {"log": None}, background=False)
    if template is None:
        return []
    directories = (os.path.dirname(output_path(template, entry)) for entry in table.entries if entry.mode != "off")
    return [directory for directory in dict.fromkeys(directories) if not os.path.isdir(directory)]


def _count(number, one, many):
    return f"{number} {one if number == 1 else many}"


def _warn(args, warnings):
    for line, message in warnings:
        say(f"warning: {args.cltab}:{line}: {message}")
