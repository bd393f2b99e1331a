"""One entry stopped and started by hand (``clinit --stop``, ``--start``): the
process machine's side.

``stop_by_hand`` stops an entry gracefully (the SIGINT, SIGTERM, SIGKILL
schedule of any stop) and keeps it stopped: it rests in CONFIGURED with
``stopped_by_hand`` set, and nothing starts it again by itself, until
``start_by_hand``, a restart (``clinit -r``) or its group's next tell
(which forgets the machine of every stopped entry, and makes a new one
for each entry of the level).  A respawn entry held back after a crash
loop has no process: the stop ends its crash loop at once.
``start_by_hand`` starts an entry that is not running (stopped by hand,
or it could not be started), or runs a finished ``once``, ``wait`` or
``test`` entry again; its past exits are forgotten, as by ``clinit -r``
(the respawn guard's count and the crash loop start over).  Any start
clears ``stopped_by_hand`` (Process._check_mode).

The group decides when either may be asked (group.py: only while it is at
rest, and only for an entry of its level); this module is the Process's
part: ``HandControl`` (a base of Process) and ``HAND_ROWS``, its rows of the
Process table.  Every row is ours (+): the Perl clinit had no such thing.
"""

import logging

from .states import ProcEvent, ProcState

log = logging.getLogger("cluster_init")

# the states in which an entry has, or is about to have, a process of its own
_ACTIVE = frozenset(ProcState) - {ProcState.CONFIGURED, ProcState.DONE, ProcState.PASS, ProcState.FAIL}


class HandControl:
    """The by-hand part of a Process (see the module docstring)."""

    stopped_by_hand = False  # stopped by clinit --stop, and kept stopped

    def stop_by_hand(self):
        """Stop gracefully and stay stopped (clinit --stop)."""
        self.post(ProcEvent.HAND_STOP)

    def start_by_hand(self, level):
        """Start at ``level`` (the group's), as ``can_start_by_hand`` allows (clinit --start)."""
        self.post(ProcEvent.HAND_START, level)

    @property
    def running(self):
        """True while the entry has a process (or a start, a respawn or a stop under way)."""
        return self.pid is not None or self.state in _ACTIVE or self.remains.any(None)

    @property
    def can_start_by_hand(self):
        """True when nothing of it runs: stopped (by hand or not), or finished."""
        return self.state in (ProcState.CONFIGURED, ProcState.DONE, ProcState.PASS, ProcState.FAIL) and not self.running

    # actions
    def _hand_stop(self, _arg):
        self.stopped_by_hand = True
        self.restarting = False  # a stop wins over a restart under way
        self.respawns.forget()  # a crash loop ends: it is stopped, deliberately
        log.info("%s: stopping by hand; it stays stopped until clinit --start or a tell", self.describe())
        return self._begin_stop(None)

    def _hand_stop_under_way(self, _arg):
        self.stopped_by_hand = True
        self.restarting = False

    def _hand_start(self, level):
        self.respawns.forget()  # a fresh start: its past exits are forgotten (crashloop.py)
        log.info("%s: starting by hand", self.describe())
        return self._check_mode(level)


_STOPPABLE = (
    ProcState.RUNFG,
    ProcState.RUNNING,
    ProcState.RUNTEST,
    ProcState.RUNBG,
    ProcState.DONE,
    ProcState.PAUSING,
    ProcState.PASS,
    ProcState.FAIL,
)
_STARTABLE = (ProcState.CONFIGURED, ProcState.DONE, ProcState.PASS, ProcState.FAIL)

# (+) the Process rows for stops and starts by hand
HAND_ROWS = {
    **{(state, ProcEvent.HAND_STOP): (ProcState.STOPPING, HandControl._hand_stop) for state in _STOPPABLE},
    (ProcState.STOPPING, ProcEvent.HAND_STOP): (ProcState.STOPPING, HandControl._hand_stop_under_way),
    (ProcState.LINGERING, ProcEvent.HAND_STOP): (ProcState.LINGERING, HandControl._hand_stop_under_way),
    **{(state, ProcEvent.HAND_START): (ProcState.SETUP, HandControl._hand_start) for state in _STARTABLE},
}
