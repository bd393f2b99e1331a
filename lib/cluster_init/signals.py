"""The daemon's signals: recorded by their handlers, never lost, never fatal.

A handler only adds its signal to a pending set; ``signal.set_wakeup_fd``
writes a byte to a socketpair the selector watches, and that byte only
wakes the loop.  The bytes may overflow the socketpair's buffer (a storm
of SIGCHLD while hundreds of children start); the set cannot, so a
SIGTERM is acted on however many SIGCHLDs came with it.  The loop calls
``take()`` after every wake-up and handles what it returns.

Every signal a daemon may be sent is either handled (recorded) or
ignored; none is fatal but SIGKILL and the fault signals (FAULTS), which
mean the daemon itself is broken.  Children get the default disposition of every
signal back before they exec (launcher.changed_signals).  A handover blocks
every handled signal across the daemon's own exec (``block_for_exec``), so
that one sent meanwhile waits for the new image's handlers.
"""

import os
import signal
import socket

# handled by the loop: what each one does (clinit(8), SIGNALS)
HANDLED = {
    signal.SIGTERM: "halt every group, then exit",
    signal.SIGINT: "halt every group, then exit (as SIGTERM)",
    # children's output files need no reopening: each start opens its file anew
    signal.SIGHUP: "reread the cltab, reopen the log, take the socket and lock again if removed",
    signal.SIGUSR1: "write the state of every group and entry to the log",
    signal.SIGCHLD: "reap the children that exited",
    signal.SIGUSR2: "logged and otherwise ignored",
    signal.SIGQUIT: "logged and otherwise ignored",
    signal.SIGALRM: "logged and otherwise ignored",
    signal.SIGVTALRM: "logged and otherwise ignored",
    signal.SIGPROF: "logged and otherwise ignored",
    signal.SIGXCPU: "logged and otherwise ignored",
    signal.SIGIO: "logged and otherwise ignored",
    signal.SIGPWR: "logged and otherwise ignored",
    signal.SIGSTKFLT: "logged and otherwise ignored",
    signal.SIGSYS: "logged and otherwise ignored",
    signal.SIGTRAP: "logged and otherwise ignored",
}
# the real-time signals: each would end the daemon by default
REALTIME = tuple(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
# left at their defaults: a real fault must end the daemon, not loop in a handler
FAULTS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT)
# ignored outright: job control and broken pipes must not stop the daemon
IGNORED = {
    signal.SIGPIPE: "ignored (a client that went away is noticed on its socket)",
    signal.SIGTSTP: "ignored (the daemon is not stopped from a terminal)",
    signal.SIGTTIN: "ignored",
    signal.SIGTTOU: "ignored",
}


class SignalBox:
    """The pending set, the wake-up socketpair, and the dispositions to restore."""

    def __init__(self):
        self.pending = set()
        self.receiver = None
        self._sender = None
        self._saved = None

    def install(self):
        """Install the handlers; the receiving end is what the selector watches."""
        self.receiver, self._sender = socket.socketpair()
        self.receiver.setblocking(False)
        self._sender.setblocking(False)
        old_fd = signal.set_wakeup_fd(self._sender.fileno(), warn_on_full_buffer=False)
        old = {}
        for signum in (*HANDLED, *REALTIME):
            old[signum] = signal.signal(signum, self._record)
        for signum in IGNORED:
            old[signum] = signal.signal(signum, signal.SIG_IGN)
        self._saved = (old_fd, old)
        return self.receiver

    def _record(self, signum, _frame):
        self.pending.add(signum)

    def take(self):
        """The signals that arrived since the last call (and drain the wake-up bytes)."""
        while True:
            try:
                if not self.receiver.recv(65536):
                    break
            except (BlockingIOError, InterruptedError):
                break
        # a handler running now adds to the set we keep or to the new one: none is lost
        pending, self.pending = self.pending, set()
        return pending

    def block_for_exec(self):
        """Before the daemon re-executes itself (a handover): block every handled signal,
        so that one sent from now on waits, pending across the exec, for the new image's
        handlers, and send those recorded but not acted on yet to ourselves again, to wait
        the same way.  The signals blocked (``unblock`` them, in either image)."""
        blocked = sorted((*HANDLED, *REALTIME))
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        for signum in sorted(self.take()):
            os.kill(os.getpid(), signum)
        return blocked

    def restore(self):
        if self._saved is not None:
            old_fd, old = self._saved
            signal.set_wakeup_fd(old_fd)
            for signum, handler in old.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            self._saved = None
        for end in (self.receiver, self._sender):
            if end is not None:
                end.close()
        self.receiver = self._sender = None


def unblock(signums):
    """Unblock ``signums`` (``block_for_exec``'s): those pending are handled now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signums)
