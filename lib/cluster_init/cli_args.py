"""The clinit command line: its forms, its flags and its exit statuses.

The common forms (``GROUP LEVEL``, ``-k``, ``-v``, ``-w``, ``-l``, ``-S``,
``-r``, ``--stop``, ``--start``, ``--output``, ``--reexec``, with ``-c``, ``-s``,
``-t``, ``--clstat``, ``-n``, ``-f``) are parsed by hand (``quick_parse``), so
that a tell costs little more than the interpreter's start-up; anything
else (``-h``, ``-d``, the rarer flags, a usage error) goes through
argparse, imported only then.  ``parse`` gives an Options either way, or exits 2
with the usage.

Each mode of the command (``-d``, ``-k``, ``-l``, ...) is a row of
MODES: a new verb is a new row, a flag in ``build_parser`` and a line
in ``usage_problem`` if it takes arguments.
"""

import sys

from .protocol import MAX_SECONDS
from .settings import CLTAB_VARIABLE, DEFAULT_CLTAB, DEFAULT_SETTINGS, default_cltab
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
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports it)

# clinit -S: the statuses of an LSB init script's status action
STATUS_OK = 0  # every group shown is DONE or PASSED (at LEVEL, when given)
STATUS_FAILED = 1  # a group shown is FAILED
STATUS_NOT_THERE = 3  # not in clstat, at another level, on its way, or CONFIGURED
STATUS_UNKNOWN = 4  # clstat missing, unreadable or stale, or no daemon holds it

DEFAULT_SOCKET = DEFAULT_SETTINGS["socket"]
DEFAULT_PIDFILE = DEFAULT_SETTINGS["pidfile"]

USAGE = """\
clinit [-v] [-w [-t SECONDS]] [-c CLTAB] [-s SOCKET] [GROUP] LEVEL
       clinit [-v] [-c CLTAB] [-s SOCKET]
       clinit -k [-w [-t SECONDS]] [-c CLTAB] [-s SOCKET]
       clinit -l [-c CLTAB] [-s SOCKET] [GROUP]
       clinit -S [-c CLTAB | --clstat CLSTAT] [GROUP [LEVEL]]
       clinit -r [-c CLTAB] [-s SOCKET] GROUP TAG
       clinit --stop|--start [-c CLTAB] [-s SOCKET] GROUP TAG
       clinit --output [-n LINES] [-f] [-c CLTAB] [-s SOCKET] GROUP TAG
       clinit -d [-b] [-p PIDFILE] [-c CLTAB] [-s SOCKET]
       clinit --reexec [-t SECONDS] [-c CLTAB] [-s SOCKET]
       clinit --check [-c CLTAB]
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
4 permission denied; 6 the cltab was refused; 124 a -w wait timed out;
130 interrupted (Ctrl-C during -w or --output -f; the daemon goes on).
exit status of -S (as an LSB status action): 0 every group shown is DONE
or PASSED (at LEVEL); 1 one is FAILED; 3 not in clstat, at another level,
on its way or CONFIGURED; 4 clstat missing, unreadable or stale, or no
daemon holds it.
exit status of the daemon (-d): 0 clean shutdown; 1 it cannot start;
5 python-daemon or lockfile is missing (-b); 6 the cltab was refused.
See clinit(8) and cltab(5)."""

# the modes of the command: (flag, attribute of Options); at most one per command line
MODES = (
    ("-d", "daemon"),
    ("-k", "kill"),
    ("--check", "check"),
    ("-l", "list"),
    ("-S", "status"),
    ("-r", "restart"),
    ("--stop", "stop"),
    ("--start", "start"),
    ("--output", "output"),
    ("--reexec", "reexec"),
)
DEFAULT_LINES = 10  # --output: how many lines


class Options:
    """What the command line asked for (the same attributes argparse gives)."""

    def __init__(self):
        self.background = self.verbose = self.wait = self.follow = False
        for _flag, name in MODES:
            setattr(self, name, False)
        self.pidfile = self.timeout = self.socket = self.clstat = None
        self.cltab = default_cltab()
        self.lines = None  # --output: DEFAULT_LINES
        self.words = []


_QUICK_FLAGS = {
    "-v": "verbose", "--verbose": "verbose", "-w": "wait", "--wait": "wait", "-k": "kill", "--kill": "kill",
    "-l": "list", "--list": "list", "-S": "status", "--status": "status", "-r": "restart", "--restart": "restart",
    "--stop": "stop", "--start": "start", "--output": "output", "-f": "follow", "--follow": "follow",
    "--reexec": "reexec",
}
_QUICK_VALUES = {
    "-c": "cltab", "--cltab": "cltab", "-s": "socket", "--socket": "socket", "-t": "timeout", "--timeout": "timeout",
    "--clstat": "clstat", "-n": "lines", "--lines": "lines",
}


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
            elif word in ("-n", "--lines"):
                if not value.isdigit():
                    return None
                value = int(value)
            setattr(options, _QUICK_VALUES[word], value)
        elif word.startswith("-"):
            return None
        else:
            options.words.append(word)
    return options


def build_parser():
    """The argparse parser of every form (imported only when needed)."""
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
    add("-t", "--timeout", metavar="SECONDS", type=float, help="with -w: give up after SECONDS (exit 124); with --reexec: how long the groups may take to be at rest")
    add("-c", "--cltab", metavar="CLTAB", default=default_cltab(), help=f"the cltab (default ${CLTAB_VARIABLE}, else {DEFAULT_CLTAB})")
    add("-s", "--socket", metavar="SOCKET", help=f"the daemon's socket (default {DEFAULT_SOCKET})")
    add("-l", "--list", action="store_true", help="list every entry (of GROUP): state, pid, starts, last exit, time in state, note, user, last output line")
    add("-S", "--status", action="store_true", help="print the status from clstat, GROUP [LEVEL] filtered, and exit as an LSB status action (0 1 3 4)")
    add("--clstat", metavar="CLSTAT", help="with -S: read this clstat (another node's, say) instead of the cltab's")
    add("-r", "--restart", action="store_true", help="stop the entry GROUP TAG gracefully and start it again at its group's level")
    add("--stop", action="store_true", help="stop the entry GROUP TAG gracefully and keep it stopped (until --start, -r or a tell of its group)")
    add("--start", action="store_true", help="start the entry GROUP TAG (stopped by hand), or run a finished once, wait or test entry again")
    add("--output", action="store_true", help="print the last lines the entry GROUP TAG wrote (its stdout and stderr)")
    add("-n", "--lines", metavar="LINES", type=int, help=f"with --output: how many lines (default {DEFAULT_LINES})")
    add("-f", "--follow", action="store_true", help="with --output: go on printing what it writes, as tail -f, until Ctrl-C")
    add("--reexec", action="store_true", help="have the running daemon re-execute itself in place as the version installed, keeping its pid, its children and every group's state (a handover); -t bounds the wait for its groups to be at rest (default 60 s)")
    add("--check", action="store_true", help="check the cltab as the daemon would; print its warnings and who entries run as; exit 0, or 6 if it would be refused")
    add("--version", action="version", version=f"clinit {VERSION}")
    add("words", nargs="*", metavar="[GROUP] LEVEL", help="the group (default: the host name) and the level to move it to")
    return parser


def usage_problem(args):
    """What is wrong with the combination of options, or None."""
    modes = [flag for flag, name in MODES if getattr(args, name)]
    if len(modes) > 1:
        return f"{' and '.join(modes)} do not go together"
    if args.clstat is not None and not args.status:
        return "--clstat goes with -S"
    if args.list and len(args.words) > 1:
        return "-l takes at most a GROUP"
    if args.restart and len(args.words) != 2:
        return "-r takes a GROUP and a TAG"
    if (args.stop or args.start) and len(args.words) != 2:
        return f"{modes[0]} takes a GROUP and a TAG"
    if args.output and len(args.words) != 2:
        return "--output takes a GROUP and a TAG"
    if (args.follow or args.lines is not None) and not args.output:
        return "-n and -f go with --output"
    if args.lines is not None and args.lines < 0:
        return "-n wants a number of lines, 0 or more"
    if (args.list or args.status or args.restart or args.stop or args.start or args.output or args.reexec) and (
        args.wait or args.verbose
    ):
        return f"{modes[0]} takes no -w or -v"
    if len(args.words) > 2:
        return "too many arguments: expected [GROUP] LEVEL"
    if (args.daemon or args.check) and (args.words or args.wait):
        return f"{modes[0]} takes no GROUP, LEVEL or -w"
    if (args.background or args.pidfile) and not args.daemon:
        return "-b and -p go with -d"
    if args.wait and not (args.kill or args.words):
        return "-w goes with a GROUP LEVEL or with -k"
    if args.reexec and args.words:
        return "--reexec takes no GROUP or LEVEL"
    if args.timeout is not None and not (args.wait or args.reexec):
        return "-t goes with -w or --reexec"
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
    """One line on standard error, as the command says everything but its answers."""
    print(f"clinit: {message}", file=sys.stderr)
