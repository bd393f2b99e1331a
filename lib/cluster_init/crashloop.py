"""A respawn entry's starts and exits: the respawn guard, the crash loop, detaching.

``Respawns`` belongs to one process machine, which tells it each start
(``started``), each exit that was not a stop (``exited``) and each time
the entry has stayed up ``start_seconds`` (``up``).  From that it
decides, on the System's clock:

* the respawn guard (``too_rapid``): more than ``respawn_limit``
  restarts in a row, each less than ``respawn_window`` seconds after the
  start before, hold the entry back for ``respawn_hold`` seconds;
* the crash loop (``looping``): the entry is crash-looping from the
  moment the guard holds it back, or from the exit that makes
  ``start_limit_burst`` exits within ``start_limit_interval`` seconds
  (with the defaults, a service that dies every 2 s is); it stops
  crash-looping once it has stayed up ``start_seconds`` and an exit now
  would not reach the burst again: fewer than ``start_limit_burst - 1``
  exits (at least one) within the interval (``up``, then ``heal_at``).
  That margin of one exit keeps a service that dies at a steady pace
  crash-looping steadily instead of flapping;
* detaching: a command that exits at once while processes it started
  (found by their marks) live on detaches, and is told what to do;
* ``forget``: ``clinit -r`` forgets the past exits, as ``systemctl
  reset-failed`` does.

``describe`` says it in words (for ``-w``, ``-l``, the log and the OCF
agent).  ``RespawnActions`` are the process machine's actions for all
this (process.py's table names them); ``trouble`` is why an entry fails
its group.
"""

import collections
import logging

from .states import ProcEvent, ProcState
from .waitstatus import describe_status, last_exit

log = logging.getLogger("cluster_init")


class Respawns:
    """One entry's starts and exits, read through ``ctx.timing`` and the System's clock."""

    def __init__(self, ctx, entry):
        self.ctx = ctx
        self.entry = entry
        self.last_start = None
        self.rapid = 0  # restarts in a row, each soon after the start before
        self.run_began = None  # the first start of that run
        self.held_run = None  # (starts, seconds) of the run the guard held back last
        self.exits = collections.deque()  # times of exits within start_limit_interval
        self.looping = False
        self.detaches = False
        self.status = None  # wait status of the last exit

    def _now(self):
        return self.ctx.system.now()

    def started(self):
        """The entry's command was started."""
        now = self._now()
        if self.last_start is None or now - self.last_start >= self.ctx.timing.respawn_window:
            self.run_began = now
        self.last_start = now

    def exited(self, status, who):
        """The command exited by itself (``who`` names the entry in the log)."""
        timing = self.ctx.timing
        now = self._now()
        at_once = self.last_start is not None and now - self.last_start < (
            timing.start_seconds or timing.respawn_window
        )
        self.status = status
        self.exits.append(now)
        self._prune(now)
        if timing.start_limit_burst and timing.start_limit_interval and len(self.exits) >= timing.start_limit_burst:
            if not self.looping:
                self.looping = True
                log.warning("%s: %s", who, self.describe())
        if at_once and not self.detaches:
            self._look_for_detached(who)

    def _look_for_detached(self, who):
        daemon_id = self.ctx.daemon_id
        if daemon_id is None:
            return
        left = self.ctx.system.marked(daemon_id, self.entry.group, self.entry.tag)
        if left:
            self.detaches = True
            log.warning(
                "%s exits at once, and processes it started live on (pids %s): %s",
                who,
                " ".join(map(str, left)),
                self.hint(),
            )

    def hint(self):
        """What to do about an entry that detaches."""
        if self.ctx.kill_mode == "all":
            return "it detaches: run it in the foreground"
        return "it detaches: run it in the foreground, or set :::kill_mode:all"

    def too_rapid(self, who):
        """The respawn guard, asked before a restart: True to hold the entry back now."""
        timing = self.ctx.timing
        now = self._now()
        if self.last_start is not None and now - self.last_start < timing.respawn_window:
            self.rapid += 1
        else:
            self.rapid = 0
        if self.rapid <= timing.respawn_limit:
            return False
        self.held_run = (self.rapid, now - self.run_began)  # each of them exited soon
        self.rapid = 0
        self.looping = True
        log.warning("%s respawning too rapidly: holding back %g seconds", who, timing.respawn_hold)
        return True

    def _prune(self, now):
        interval = self.ctx.timing.start_limit_interval
        while self.exits and self.exits[0] <= now - interval:
            self.exits.popleft()

    def up(self, who):
        """The entry has stayed up start_seconds: True if that ends a crash loop."""
        if not self.looping or self.heal_at() is not None:
            return False
        self.looping = False
        self.held_run = None
        log.warning("%s: up for %g s: no longer crash-looping", who, self.ctx.timing.start_seconds)
        return True

    def heal_at(self):
        """When a crash loop of an entry that stays up may end; None: now."""
        timing = self.ctx.timing
        if not (timing.start_limit_burst and timing.start_limit_interval):
            return None
        self._prune(self._now())
        extra = len(self.exits) - max(timing.start_limit_burst - 1, 1) + 1
        if extra <= 0:
            return None
        return self.exits[extra - 1] + timing.start_limit_interval

    def carried(self):
        """All of it, as plain data (a handover carries it across the exec: the times
        are on the monotonic clock, which an exec does not reset)."""
        return {
            "last_start": self.last_start, "rapid": self.rapid, "run_began": self.run_began,
            "held_run": self.held_run, "exits": list(self.exits), "looping": self.looping,
            "detaches": self.detaches, "status": self.status,
        }

    def take(self, carried):
        """Be what ``carried`` (``carried()``'s, before the exec) says."""
        self.last_start, self.rapid = carried["last_start"], int(carried["rapid"])
        self.run_began, self.status = carried["run_began"], carried["status"]
        self.held_run = tuple(carried["held_run"]) if carried["held_run"] is not None else None
        self.exits = collections.deque(carried["exits"])
        self.looping, self.detaches = bool(carried["looping"]), bool(carried["detaches"])

    def forget(self):
        """Forget the past exits and any crash loop (clinit -r)."""
        self.exits.clear()
        self.looping = self.detaches = False
        self.rapid = 0
        self.run_began = self.last_start = self.held_run = None

    def describe(self, held_for=None):
        """The crash loop in words (how many starts in how long, the last exit), or None."""
        if not self.looping:
            return None
        timing = self.ctx.timing
        exit_text = f"last exit {last_exit(self.status)}" if self.status is not None else "no exit seen"
        if self.held_run is not None:
            starts, span = self.held_run
            text = f"crash loop: started {starts} times in {span:.2f} s, {exit_text}"
        else:
            self._prune(self._now())
            text = f"crash loop: exited {len(self.exits)} times within {timing.start_limit_interval:g} s, {exit_text}"
        if held_for is not None:
            text += f"; held back, {held_for:.0f} s left"
        if self.detaches:
            text += f"; {self.hint()}"
        return text


class RespawnActions:
    """The process machine's actions for starts and exits (a mixin of process.Process)."""

    @property
    def crash_looping(self):
        return self.respawns.looping

    @property
    def trouble(self):
        """Why this entry fails its group, in words: a failed test (its exit), a start
        that failed (why), a crash loop (how many starts in how long); else None."""
        if self.state is ProcState.FAIL:
            status = self.history.status
            return "test failed: " + ("result unknown after adoption" if status is None else describe_status(status))
        if self.failure is not None:
            return f"cannot start: {self.failure}"
        return self.respawns.describe(self.held_back_for)

    def _check_start(self, _arg):
        """Started: a respawn entry must stay up start_seconds (UP at once when 0)."""
        seconds = self.ctx.timing.start_seconds
        if self.entry.mode != "respawn" or not seconds:
            return ProcEvent.UP
        self.deadline = self.ctx.system.now() + seconds
        return None

    def _up(self, _arg):
        """Started for good; a crash loop ends when the exits allow (``heal_at``)."""
        self.deadline = None
        if self.respawns.up(self.describe()):
            self.news = True
        elif self.respawns.looping:
            self.deadline = self.respawns.heal_at()

    def _exited_by_mode(self, status):
        if self.entry.mode == "respawn":
            return self._exited_respawning(status)
        return self._exited_check_mode(status)

    def _exited_respawning(self, status):
        """A respawn entry's command exited by itself (before start_seconds: a failed start)."""
        self.deadline = None
        self._record_exit(status)
        self.respawns.exited(status, self.describe())
        return self._check_mode(None)

    def _check_rate(self, _arg):
        if self.respawns.too_rapid(self.describe()):
            self.deadline = self.ctx.system.now() + self.ctx.timing.respawn_hold
            return ProcEvent.TOO_RAPID
        return ProcEvent.CONTINUE
