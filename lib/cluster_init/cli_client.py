"""The forms of the command that talk to a running daemon.

A tell (``GROUP LEVEL``, with ``-w``: and wait), a reread (no words),
``-k`` (with ``-w``: until the daemon has exited), ``-l``, ``-r``,
``--stop``, ``--start``, ``--output`` (cli_output.py) and ``--reexec``
(the daemon re-executes itself: handover.py).
``run`` finds the socket, does what was asked and turns every error
into the command's exit status (clinit(8), EXIT STATUS).  Each mode is
a row of VERBS; the next verbs join there.

Ctrl-C while waiting is an Interrupted error: one line saying what was
waited for, and that the daemon goes on; exit 130.  KeyboardInterrupt
is caught, no signal handler is set: this is the client path, which
imports no ``signal`` (and nothing heavy: t/test_client_path.py).
"""

import os
import sys
import time

from .cli_args import (
    EXIT_CLTAB,
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_TIMEOUT,
    say,
)
from .client import Client
from .errors import (
    Busy,
    CltabError,
    CltabRefused,
    DaemonError,
    Error,
    Interrupted,
    NotRunning,
    PermissionDenied,
    Timeout,
)
from .protocol import REEXEC_DEFAULT, format_seconds
from .settings import CLTAB_VARIABLE, DEFAULT_CLTAB

POLL = 0.02  # seconds between looks at the daemon's lock while -k -w waits
REEXEC_SLACK = 45.0  # seconds --reexec waits beyond -t: the new image's check and start

# an error -> (exit status, whether -v still prints the status), first match wins
_EXITS = (
    (CltabRefused, EXIT_CLTAB, True),
    (PermissionDenied, EXIT_DENIED, False),
    (NotRunning, EXIT_NOT_RUNNING, False),
    (Timeout, EXIT_TIMEOUT, False),
    (Interrupted, EXIT_INTERRUPTED, False),
    (Busy, EXIT_ERROR, True),
    (DaemonError, EXIT_ERROR, True),
    (Error, EXIT_ERROR, False),
)


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
        say(f"{group} did not settle at level {level} within {format_seconds(args.timeout)} s")
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted while waiting for {group} to settle at level {level}; "
            "the daemon goes on moving it"
        ) from None
    print(f"{group} {level} {state}")
    _print_warnings(client.last_warnings)
    for line in client.last_answer.lines:  # what fails it, and why
        say(line)
    return EXIT_ERROR if state == "FAILED" else EXIT_OK


def _wait_for_exit(client, timeout):
    """Until the daemon has exited (its socket lock is free); False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        held = client.lock_held()
        if held is None:  # the lock cannot be looked at: go by the socket
            held = client.alive()
        if not held:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


def _kill(client, args):
    client.shutdown()
    if not args.wait:
        return EXIT_OK
    try:
        exited = _wait_for_exit(client, args.timeout)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while waiting for the daemon to exit; "
            "it goes on halting its groups and exits when they are down"
        ) from None
    if not exited:
        say(f"the daemon did not exit within {format_seconds(args.timeout)} s")
        return EXIT_TIMEOUT
    return EXIT_OK


def _list(client, args):
    from .listing import render

    answer = client.request("list", *args.words)
    sys.stdout.write(render(answer.lines, table=sys.stdout.isatty()))
    return EXIT_OK


def _restart(client, args):
    print(client.request("restart", *args.words).message)
    return EXIT_OK


def _stop(client, args):
    print(client.request("stop", *args.words).message)
    return EXIT_OK


def _start(client, args):
    print(client.request("start", *args.words).message)
    return EXIT_OK


def _output(client, args):
    from . import cli_output

    return cli_output.show(client, args)


def _image(answer):
    """``(pid, started)`` of a ping Answer (started None from a daemon before 0.4.1)."""
    words = answer.message.split()
    pid = words[words.index("pid") + 1] if "pid" in words[:-1] else None
    started = next((line.split()[1] for line in answer.lines if line.startswith("started ")), None)
    return pid, started


def _says(answer):
    return " ".join((answer.message,) + answer.lines)


def _reexec(client, args):
    """--reexec: the daemon re-executes itself in place; the new image answers, and a
    ping then shows the same pid with a new start."""
    first = client.request("ping")  # no daemon: NotRunning, exit 3 (nothing to hand over)
    before = first.message
    seconds = REEXEC_DEFAULT if args.timeout is None else args.timeout
    try:
        answer = client.request("reexec", format_seconds(seconds), timeout=seconds + REEXEC_SLACK)
    except NotRunning:
        raise Error(
            f"the daemon ({before}) closed the connection during the handover without answering:"
            " the new image may have failed to start (see the daemon's log)"
        ) from None
    except Timeout as error:  # the daemon's (its groups were not at rest in time), or ours
        raise Error(str(error)) from None
    except DaemonError as error:
        if str(error).startswith("unknown request 'reexec'"):  # clinit 0.4.0 and before
            raise Error(
                f"the running daemon ({before}) cannot hand over: it predates --reexec;"
                " restart it when that suits (a restart halts its groups)"
            ) from None
        raise
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while waiting for the handover; the daemon does not hand over unless it has already"
        ) from None
    after = client.request("ping")
    (pid, started), (new_pid, new_started) = _image(first), _image(after)
    if new_pid != pid or new_started is None or new_started == started:
        raise Error(f"the daemon answered {answer.message!r}, but it was {_says(first)!r} and is {_says(after)!r}")
    print(answer.message)
    return EXIT_OK


def _reread(client, _args):
    _print_warnings(client.request("reread").warnings)
    return EXIT_OK


# the modes that ask the daemon: (attribute of Options, what does it); else a tell or a reread
VERBS = (
    ("list", _list),
    ("restart", _restart),
    ("stop", _stop),
    ("start", _start),
    ("output", _output),
    ("kill", _kill),
    ("reexec", _reexec),
)


def _command(client, args):
    for name, verb in VERBS:
        if getattr(args, name):
            return verb(client, args)
    if args.words:
        return _tell(client, args)
    return _reread(client, args)


def _print_status(client, args):
    """-v: the status from clstat, after whatever else was done."""
    try:
        clstat = client.conf("clstat")
        if not args.kill and not os.path.exists(clstat):
            say(f"warning: {clstat} does not exist: no daemon writes it")
        sys.stdout.write(client.status())
    except CltabError as error:
        say(error)
    except (OSError, UnicodeDecodeError) as error:
        say(f"cannot read {clstat}: {getattr(error, 'strerror', None) or error}")


def run(args):
    """Do what ``args`` ask of the daemon; the command's exit status."""
    client = Client(cltab=args.cltab, socket=args.socket)
    try:
        client.conf("socket")
    except CltabError as error:
        say(error)
        if args.cltab == DEFAULT_CLTAB and not os.path.exists(DEFAULT_CLTAB):
            say(f"name the node's cltab with -c CLTAB, or in ${CLTAB_VARIABLE} (set -a; . /etc/default/clinit; set +a)")
        return EXIT_CLTAB
    if client.cltab_problem is not None:
        say(f"warning: {client.cltab_problem}; using the socket {args.socket}")
    if args.verbose:
        for text in client.warnings:
            say(f"warning: {text}")
    try:
        code = _command(client, args)
    except Error as error:
        if isinstance(error, DaemonError):
            _print_warnings(client.last_warnings)  # a refused cltab's, say: why no such group
        say(error)
        code, go_on = next((status, go_on) for kind, status, go_on in _EXITS if isinstance(error, kind))
        if not go_on:
            return code
    if args.verbose:
        _print_status(client, args)
    return code
