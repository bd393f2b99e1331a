"""Decoding a wait status (what waitpid reports), once for the whole daemon.

A wait status says either how a process exited (its exit code) or which
signal killed it.  ``exit_code`` folds both into one number, as the
shell's ``$?`` nearly does: the exit code, or minus the signal number.
The log says ``exit 3`` or ``signal 9 (SIGKILL)`` (``describe_status``);
``clinit -l`` says ``3`` or ``SIGKILL`` (``last_exit``).
"""

import os


def exit_code(wait_status):
    """The exit code of a wait status; minus the signal number if killed."""
    return os.waitstatus_to_exitcode(wait_status)


def signal_name(signum):
    """``SIGKILL`` for 9; None for a number that names no signal."""
    import signal  # here, not at the top: clinit -l stays on the light client path

    try:
        return signal.Signals(signum).name
    except ValueError:
        return None


def describe_status(wait_status):
    """``exit 3`` or ``signal 9 (SIGKILL)``, for logs."""
    code = exit_code(wait_status)
    if code >= 0:
        return f"exit {code}"
    return f"signal {-code} ({signal_name(-code) or 'unknown'})"


def last_exit(wait_status):
    """An exit code ("0", "127"), a signal name ("SIGTERM"), or "-" for None (``clinit -l``)."""
    if wait_status is None:
        return "-"
    code = exit_code(wait_status)
    if code >= 0:
        return str(code)
    return signal_name(-code) or f"signal {-code}"
