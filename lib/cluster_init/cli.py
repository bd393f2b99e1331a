"""The clinit command: ``main`` sends each form of the command line to its module.

=================  ==========================================================
cli_args.py        the forms, the flags, the usage, the exit statuses
cli_client.py      the forms that talk to the daemon: tell (-w), reread, -k, -l, -r, --output
cli_output.py      --output: the end of an entry's output file, and -f following it
cli_status.py      -S: the status from clstat alone, as an LSB status action
cli_daemon.py      -d (the daemon's start) and --check: never on the client path
=================  ==========================================================

The client path (the common forms) imports no argparse, subprocess,
logging, dataclasses, signal, python-daemon or lockfile, and none of the
daemon's modules (t/test_client_path.py checks it).

Whatever the command was started with, 0, 1 and 2 are open before
anything else is (stdfds.py); a Ctrl-C prints one line and exits 130;
no form of the command prints a traceback.
"""

import sys

from . import stdfds
from .cli_args import (  # noqa: F401  (the command line's names, as they were here)
    EXIT_CLTAB,
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_INSTALLED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    STATUS_FAILED,
    STATUS_NOT_THERE,
    STATUS_OK,
    STATUS_UNKNOWN,
    Options,
    build_parser,
    parse,
    quick_parse,
    say,
    usage_problem,
)
from .errors import Interrupted


def _dispatch(args):
    if args.daemon or args.check:
        from . import cli_daemon

        return cli_daemon.run_daemon(args) if args.daemon else cli_daemon.check(args)
    if args.status:
        from . import cli_status

        return cli_status.run(args)
    from . import cli_client

    return cli_client.run(args)


def main(argv=None):
    """Run the command line ``argv`` (default: sys.argv[1:]); its exit status."""
    stdfds.ensure()
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        return _dispatch(args)
    except Interrupted as error:
        say(error)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        say("interrupted; what the daemon was asked before goes on")
        return EXIT_INTERRUPTED
