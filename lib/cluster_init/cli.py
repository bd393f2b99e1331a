"""The clinit command line: the Perl clinit's flags, plus -b, -p, -w and -t.

    clinit -d [-b] [-p PIDFILE] [-c CLTAB] [-s SOCKET]   run the daemon
    clinit [-v] [-w [-t SECONDS]] [GROUP] LEVEL           tell a group a level
    clinit [-v]                                           reread the cltab
    clinit -k [-w [-t SECONDS]] [-v]                      shut the daemon down

Exit status: 0 success, 1 the daemon answered with an error (or the
group settled FAILED, with -w), 2 usage error, 3 no daemon answers on
the socket, 124 the -w wait timed out.
"""

import argparse
import socket as _socket
import sys
import time

from .client import Client
from .cltab import DEFAULT_CLTAB, DEFAULT_SETTINGS
from .errors import CltabError, DaemonError, DaemonStartError, Error, NotRunning, Timeout
from .version import VERSION

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_TIMEOUT = 124

DEFAULT_SOCKET = DEFAULT_SETTINGS["socket"]
DEFAULT_PIDFILE = DEFAULT_SETTINGS["pidfile"]

DESCRIPTION = """\
Tell the clinit daemon to move resource group GROUP to runlevel LEVEL:
the level's cltab entries start, the group's others stop, no other group
is touched.  GROUP defaults to the host name.  Without GROUP and LEVEL,
the daemon rereads the cltab."""

EPILOG = """\
exit status: 0 success, 1 the daemon answered with an error (or the group
settled FAILED, with -w), 2 usage error, 3 no daemon answers on the socket,
124 a -w wait timed out.  See clinit(8) and cltab(5)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"clinit: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser():
    parser = _Parser(
        prog="clinit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-d", "--daemon", action="store_true", help="run the daemon (in the foreground)")
    parser.add_argument("-b", "--background", action="store_true", help="with -d: detach; return once the daemon accepts requests")
    parser.add_argument("-p", "--pidfile", metavar="PIDFILE", help=f"with -d -b: pid file (default {DEFAULT_PIDFILE})")
    parser.add_argument("-k", "--kill", action="store_true", help="shut down the daemon and all its children")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the status after doing whatever else was asked")
    parser.add_argument("-w", "--wait", action="store_true", help="wait until the group settles at LEVEL (exit 1 if FAILED); with -k, until the daemon has exited")
    parser.add_argument("-t", "--timeout", metavar="SECONDS", type=float, help="with -w: give up after SECONDS (exit 124)")
    parser.add_argument("-c", "--cltab", metavar="CLTAB", default=DEFAULT_CLTAB, help=f"the cltab (default {DEFAULT_CLTAB})")
    parser.add_argument("-s", "--socket", metavar="SOCKET", help=f"the daemon's socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--version", action="version", version=f"clinit {VERSION}")
    parser.add_argument("words", nargs="*", metavar="[GROUP] LEVEL", help=argparse.SUPPRESS)
    return parser


def _check_usage(parser, args):
    if len(args.words) > 2:
        parser.error("too many arguments: expected [GROUP] LEVEL")
    if args.daemon and (args.kill or args.words or args.wait):
        parser.error("-d runs the daemon; it takes no GROUP, LEVEL, -k or -w")
    if (args.background or args.pidfile) and not args.daemon:
        parser.error("-b and -p go with -d")
    if args.wait and not (args.kill or args.words):
        parser.error("-w goes with a GROUP LEVEL or with -k")
    if args.timeout is not None and not args.wait:
        parser.error("-t goes with -w")
    if args.timeout is not None and args.timeout < 0:
        parser.error("-t wants a number of seconds, not less than 0")
    if args.kill and args.words:
        parser.error("-k takes no GROUP or LEVEL")


def _run_daemon(args):
    from . import background
    from .daemon import Daemon

    try:
        daemon = Daemon(
            cltab=args.cltab,
            socket=args.socket,
            pidfile=args.pidfile,
            log_to_stderr=not args.background,
        )
        if args.background:
            background.start(daemon)
        else:
            daemon.run()
    except (CltabError, DaemonStartError) as error:
        print(f"clinit: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    return EXIT_OK


def _wait_for_exit(client, timeout):
    """Until no daemon answers on the socket; False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while client.alive():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _tell(client, args):
    level = args.words[-1]
    group = args.words[0] if len(args.words) == 2 else _socket.gethostname()
    print(client.tell(group, level))
    if not args.wait:
        return EXIT_OK
    try:
        state = client.wait(group, level, timeout=args.timeout)
    except Timeout:
        print(f"clinit: {group} did not settle at level {level} within {args.timeout:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    print(f"{group} {level} {state}")
    return EXIT_ERROR if state == "FAILED" else EXIT_OK


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    if args.daemon:
        return _run_daemon(args)
    client = Client(cltab=args.cltab, socket=args.socket)
    try:
        if args.kill:
            client.shutdown()
            if args.wait and not _wait_for_exit(client, args.timeout):
                print(f"clinit: the daemon did not exit within {args.timeout:g} s", file=sys.stderr)
                return EXIT_TIMEOUT
            code = EXIT_OK
        elif args.words:
            code = _tell(client, args)
        else:
            client.reread()
            code = EXIT_OK
    except NotRunning as error:
        print(f"clinit: {error}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except DaemonError as error:
        print(f"clinit: {error}", file=sys.stderr)
        code = EXIT_ERROR
    except Error as error:
        print(f"clinit: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.verbose:
        sys.stdout.write(client.status())
    return code
