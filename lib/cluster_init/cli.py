"""The clinit command line: the Perl clinit's flags, and ours.

The common forms (``GROUP LEVEL``, ``-k``, ``-v``, ``-w``, with ``-c``,
``-s``, ``-t``) are parsed by hand, so that a tell costs little more
than the interpreter's start-up; anything else (``-h``, ``-d``, the
rarer flags, a usage error) goes through argparse.  The client path
imports no argparse, subprocess, logging, dataclasses, python-daemon
or lockfile (a test checks it).
"""

import os
import sys
import time

from .client import Client
from .errors import (
    Busy,
    CltabError,
    CltabRefused,
    DaemonError,
    DaemonStartError,
    Error,
    MissingDependency,
    NotRunning,
    PermissionDenied,
    Timeout,
)
from .settings import DEFAULT_CLTAB, DEFAULT_SETTINGS
from .protocol import MAX_SECONDS
from .version import VERSION

# the command's exit statuses (clinit(8), EXIT STATUS)
EXIT_OK = 0
EXIT_ERROR = 1  # an error answer, a group settled FAILED (-w), a busy daemon; -d: cannot start
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # no daemon answers on the socket
EXIT_DENIED = 4  # the socket cannot be reached, or the daemon refuses this user
EXIT_NOT_INSTALLED = 5  # -d -b: python-daemon or lockfile is missing
EXIT_CLTAB = 6  # the cltab was refused: unreadable, not a regular file, errors, untrusted
EXIT_TIMEOUT = 124  # a -w wait timed out

# clinit -S: the statuses of an LSB init script's status action
STATUS_OK = 0  # every group shown is DONE or PASSED (at LEVEL, when given)
STATUS_FAILED = 1  # a group shown is FAILED
STATUS_NOT_THERE = 3  # not in clstat, at another level, on its way, or CONFIGURED
STATUS_UNKNOWN = 4  # clstat missing or stale: no live daemon writes it
STALE_AFTER = 120.0  # seconds; the daemon rewrites clstat every 30 to 45

DEFAULT_SOCKET = DEFAULT_SETTINGS["socket"]
DEFAULT_PIDFILE = DEFAULT_SETTINGS["pidfile"]

USAGE = """\
clinit [-v] [-w [-t SECONDS]] [-c CLTAB] [-s SOCKET] [GROUP] LEVEL
       clinit [-v] [-c CLTAB] [-s SOCKET]
       clinit -k [-w [-t SECONDS]] [-c CLTAB] [-s SOCKET]
       clinit -l [-c CLTAB] [-s SOCKET] [GROUP]
       clinit -S [-c CLTAB | --clstat CLSTAT] [GROUP [LEVEL]]
       clinit -r [-c CLTAB] [-s SOCKET] GROUP TAG
       clinit -d [-b] [-p PIDFILE] [-c CLTAB] [-s SOCKET]
       clinit --check [-v] [-c CLTAB]
       clinit -h | --version"""

DESCRIPTION = """\
Tell the clinit daemon to move resource group GROUP to runlevel LEVEL:
the level's cltab entries start, the group's others stop, no other group
is touched.  GROUP defaults to the host name.  Without GROUP and LEVEL,
the daemon rereads the cltab.  -d runs the daemon; --check checks a
cltab as the daemon would."""

EPILOG = """\
exit status of the command: 0 success; 1 an error answer, a group that
settled FAILED (-w) or a busy daemon; 2 usage error; 3 no daemon answers;
4 permission denied; 6 the cltab was refused; 124 a -w wait timed out.
exit status of -S (as an LSB status action): 0 every group shown is DONE
or PASSED (at LEVEL); 1 one is FAILED; 3 not in clstat, at another level,
on its way or CONFIGURED; 4 clstat missing or stale.
exit status of the daemon (-d): 0 clean shutdown; 1 it cannot start;
5 python-daemon or lockfile is missing (-b); 6 the cltab was refused.
See clinit(8) and cltab(5)."""


class Options:
    """What the command line asked for (the same attributes argparse gives)."""

    def __init__(self):
        self.daemon = self.background = self.kill = self.verbose = self.wait = self.check = False
        self.list = self.status = self.restart = False
        self.pidfile = self.timeout = self.socket = self.clstat = None
        self.cltab = DEFAULT_CLTAB
        self.words = []


_QUICK_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-w": "wait", "--wait": "wait", "-k": "kill", "--kill": "kill"}
_QUICK_VALUES = {"-c": "cltab", "--cltab": "cltab", "-s": "socket", "--socket": "socket", "-t": "timeout", "--timeout": "timeout"}


def quick_parse(argv):
    """Options for the common forms, or None: then argparse must decide."""
    options = Options()
    arguments = iter(argv)
    for word in arguments:
        if word in _QUICK_FLAGS:
            setattr(options, _QUICK_FLAGS[word], True)
        elif word in _QUICK_VALUES:
            value = next(arguments, None)
            if value is None or value.startswith("-"):
                return None
            if word in ("-t", "--timeout"):
                try:
                    value = float(value)
                except ValueError:
                    return None
            setattr(options, _QUICK_VALUES[word], value)
        elif word.startswith("-"):
            return None
        else:
            options.words.append(word)
    return options


def build_parser():
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.print_usage(sys.stderr)
            print(f"clinit: {message}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    parser = Parser(
        prog="clinit",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("-d", "--daemon", action="store_true", help="run the daemon (in the foreground)")
    add("-b", "--background", action="store_true", help="with -d: detach; return once the daemon accepts requests")
    add("-p", "--pidfile", metavar="PIDFILE", help=f"with -d -b: pid file (default {DEFAULT_PIDFILE})")
    add("-k", "--kill", action="store_true", help="shut down the daemon and all its children")
    add("-v", "--verbose", action="store_true", help="print the status after doing whatever else was asked")
    add("-w", "--wait", action="store_true", help="wait until the group settles at LEVEL and print its state (exit 1 if FAILED); with -k, until the daemon has exited")
    add("-t", "--timeout", metavar="SECONDS", type=float, help="with -w: give up after SECONDS (exit 124)")
    add("-c", "--cltab", metavar="CLTAB", default=DEFAULT_CLTAB, help=f"the cltab (default {DEFAULT_CLTAB})")
    add("-s", "--socket", metavar="SOCKET", help=f"the daemon's socket (default {DEFAULT_SOCKET})")
    add("-l", "--list", action="store_true", help="list every entry (of GROUP): state, pid, starts, last exit, time in state")
    add("-S", "--status", action="store_true", help="print the status from clstat, GROUP [LEVEL] filtered, and exit as an LSB status action (0 1 3 4)")
    add("--clstat", metavar="CLSTAT", help="with -S: read this clstat (another node's, say) instead of the cltab's")
    add("-r", "--restart", action="store_true", help="stop the entry GROUP TAG gracefully and start it again at its group's level")
    add("--check", action="store_true", help="check the cltab as the daemon would; exit 0, or 6 if it would be refused")
    add("--version", action="version", version=f"clinit {VERSION}")
    add("words", nargs="*", metavar="[GROUP] LEVEL", help="the group (default: the host name) and the level to move it to")
    return parser


def usage_problem(args):
    """What is wrong with the combination of options, or None."""
    modes = [
        flag
        for flag, on in (
            ("-d", args.daemon), ("-k", args.kill), ("--check", args.check),
            ("-l", args.list), ("-S", args.status), ("-r", args.restart),
        )
        if on
    ]
    if len(modes) > 1:
        return f"{' and '.join(modes)} do not go together"
    if args.clstat is not None and not args.status:
        return "--clstat goes with -S"
    if args.list and len(args.words) > 1:
        return "-l takes at most a GROUP"
    if args.restart and len(args.words) != 2:
        return "-r takes a GROUP and a TAG"
    if (args.list or args.status or args.restart) and (args.wait or args.verbose):
        return f"{modes[0]} takes no -w or -v"
    if len(args.words) > 2:
        return "too many arguments: expected [GROUP] LEVEL"
    if (args.daemon or args.check) and (args.words or args.wait):
        return f"{modes[0]} takes no GROUP, LEVEL or -w"
    if (args.background or args.pidfile) and not args.daemon:
        return "-b and -p go with -d"
    if args.wait and not (args.kill or args.words):
        return "-w goes with a GROUP LEVEL or with -k"
    if args.timeout is not None and not args.wait:
        return "-t goes with -w"
    if args.timeout is not None and not 0 <= args.timeout <= MAX_SECONDS:
        return f"-t wants a number of seconds, from 0 to {MAX_SECONDS:g}"
    for word in args.words:
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            return f"{word.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text"
    if args.kill and args.words:
        return "-k takes no GROUP or LEVEL"
    return None


def parse(argv):
    """The Options of a command line; exits 2 with the usage on a usage error."""
    args = quick_parse(argv)
    if args is None:
        args = build_parser().parse_args(argv)
    problem = usage_problem(args)
    if problem is not None:
        build_parser().error(problem)
    return args


def say(message):
    print(f"clinit: {message}", file=sys.stderr)


def _run_daemon(args):
    try:
        from .daemon import Daemon

        if args.background:
            from . import background

            background.check_dependencies()
        daemon = Daemon(
            cltab=args.cltab,
            socket=args.socket,
            pidfile=args.pidfile,
            log_to_stderr=not args.background,
            background=args.background,
        )
        if args.background:
            background.start(daemon)
        else:
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


def _check(args):
    from .cltab import load_trusted

    try:
        table, _signature = load_trusted(args.cltab)
    except CltabError as error:
        print(error, file=sys.stderr)
        _warn_unknown(args, error.warnings)
        return EXIT_CLTAB
    _warn_unknown(args, table.warnings)
    entries, groups = len(table.entries), len(table.groups())
    print(f"{args.cltab}: ok, {_count(entries, 'entry', 'entries')} in {_count(groups, 'group', 'groups')}")
    return EXIT_OK


def _count(number, one, many):
    return f"{number} {one if number == 1 else many}"


def _warn_unknown(args, warnings):
    if args.verbose:
        for line, message in warnings:
            say(f"warning: {args.cltab}:{line}: {message}")


def _wait_for_exit(client, timeout):
    """Until the daemon has exited (its socket lock is free); False on timeout."""
    from . import socketlock

    deadline = None if timeout is None else time.monotonic() + timeout
    path = client.socket_path
    while True:
        held = socketlock.held(path)
        if held is None:  # the lock cannot be looked at: go by the socket
            held = client.alive()
        if not held:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _print_warnings(answer_warnings):
    for text in answer_warnings:
        say(f"warning: {text}")


def _tell(client, args):
    level = args.words[-1]
    group = args.words[0] if len(args.words) == 2 else os.uname().nodename
    answer = client.request("tell", group, level)
    _print_warnings(answer.warnings)
    if not args.wait:
        print(answer.message)
        return EXIT_OK
    try:
        state = client.wait(group, level, timeout=args.timeout)
    except Timeout:
        say(f"{group} did not settle at level {level} within {args.timeout:g} s")
        return EXIT_TIMEOUT
    print(f"{group} {level} {state}")
    return EXIT_ERROR if state == "FAILED" else EXIT_OK


def _client_command(client, args):
    if args.list:
        return _list(client, args)
    if args.restart:
        print(client.request("restart", *args.words).message)
        return EXIT_OK
    if args.kill:
        client.shutdown()
        if args.wait and not _wait_for_exit(client, args.timeout):
            say(f"the daemon did not exit within {args.timeout:g} s")
            return EXIT_TIMEOUT
        return EXIT_OK
    if args.words:
        return _tell(client, args)
    _print_warnings(client.request("reread").warnings)
    return EXIT_OK


def _status(args):
    """clinit -S: the status from clstat alone, and an LSB status action's exit status."""
    from . import status

    path = args.clstat
    if path is None:
        client = Client(cltab=args.cltab, socket=args.socket)
        try:
            path = client.conf("clstat")
        except CltabError as error:  # the default clstat, then: -S works without a cltab
            say(f"warning: {error}; reading {DEFAULT_SETTINGS['clstat']}")
            path = DEFAULT_SETTINGS["clstat"]
    group = args.words[0] if args.words else None
    level = args.words[1] if len(args.words) == 2 else None
    try:
        rows, mtime = status.read_with_mtime(path)
    except (OSError, UnicodeDecodeError) as error:
        say(f"cannot read {path}: {getattr(error, 'strerror', None) or error}")
        return STATUS_UNKNOWN
    shown = [row for row in rows if group is None or row[0] == group]
    sys.stdout.write(status.render(shown))
    if mtime is None:
        say(f"{path}: no such file: no daemon writes it")
        return STATUS_UNKNOWN
    age = time.time() - mtime
    if age > STALE_AFTER:
        say(f"{path} is stale: written {age:.0f} s ago (a live daemon rewrites it every 30 to 45 s)")
        return STATUS_UNKNOWN
    if not shown:
        return STATUS_NOT_THERE  # not in clstat (or no group was ever told)
    if any(state == "FAILED" for _name, _level, state in shown):
        return STATUS_FAILED
    if any(state not in ("DONE", "PASSED") or level not in (None, at) for _name, at, state in shown):
        return STATUS_NOT_THERE
    return STATUS_OK


def _list(client, args):
    from .listing import render

    answer = client.request("list", *args.words)
    sys.stdout.write(render(answer.lines, table=sys.stdout.isatty()))
    return EXIT_OK


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.daemon:
        return _run_daemon(args)
    if args.check:
        return _check(args)
    if args.status:
        return _status(args)
    client = Client(cltab=args.cltab, socket=args.socket)
    try:
        client.conf("socket")
    except CltabError as error:
        say(error)
        return EXIT_CLTAB
    if client.cltab_problem is not None:
        say(f"warning: {client.cltab_problem}; using the socket {args.socket}")
    if args.verbose:
        for text in client.warnings:
            say(f"warning: {text}")
    try:
        code = _client_command(client, args)
    except CltabRefused as error:
        say(error)
        code = EXIT_CLTAB
    except PermissionDenied as error:
        say(error)
        return EXIT_DENIED
    except NotRunning as error:
        say(error)
        return EXIT_NOT_RUNNING
    except Timeout as error:
        say(error)
        return EXIT_TIMEOUT
    except (Busy, DaemonError) as error:
        say(error)
        code = EXIT_ERROR
    except Error as error:
        say(error)
        return EXIT_ERROR
    if args.verbose:
        clstat = client.conf("clstat")
        if not args.kill and not os.path.exists(clstat):
            say(f"warning: {clstat} does not exist: no daemon writes it")
        sys.stdout.write(client.status())
    return code
