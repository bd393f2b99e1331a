"""What the daemon does with each signal it is sent: one table, signal -> action.

The signal box (signals.py) only records what arrived; after every
wake-up the loop hands each recorded signal, in order, to ``act``:

* SIGTERM, SIGINT: halt every group (Node.shutdown); the daemon exits
  once all are halted;
* SIGHUP: reopen the log, take the socket and its lock file again if
  someone removed them, reread the cltab (a refused one is logged, and
  the last good one stays);
* SIGUSR1: the state of every group and entry to the log (Node.dump);
* SIGCHLD: nothing here (every pass of the loop reaps);
* any other handled signal: logged, and otherwise ignored.

signals.HANDLED says the same in words, and clinit(8) after it.
"""

import logging
import signal

from .errors import CltabError

log = logging.getLogger("cluster_init")


class SignalActions:
    """The table over a Node ``node``, the daemon's Premises ``premises`` and
    ``keep_premises()`` (the socket and lock file taken again if removed)."""

    def __init__(self, node, premises, keep_premises):
        self.node = node
        self.premises = premises
        self.keep_premises = keep_premises
        self.table = {
            signal.SIGTERM: self._halt,
            signal.SIGINT: self._halt,
            signal.SIGHUP: self._hang_up,
            signal.SIGUSR1: lambda _signum: self.node.dump(),
            signal.SIGCHLD: lambda _signum: None,  # every pass of the loop reaps
        }

    def act(self, signum):
        """Do what ``signum`` asks; log one the table does not have."""
        self.table.get(signum, _ignore)(signum)

    def _halt(self, signum):
        self.node.shutdown(f"signal {signal.Signals(signum).name}")

    def _hang_up(self, _signum):
        """Reopen the log, take the socket and lock file again if removed, reread the cltab."""
        self.premises.reopen_log()
        self.keep_premises()
        try:
            self.node.reread()
        except CltabError:
            pass  # logged; the last good cltab stays


def _ignore(signum):
    log.info("ignoring signal %s", _signal_name(signum))


def _signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"
