"""Helpers for tests that run real processes through the real seam."""

import os
import signal
import time

from cluster_init.process import Context, Timing
from cluster_init.registry import Registry
from cluster_init.sysapi import RealSystem


def alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False


def status_field(pid, name):
    """One field of /proc/PID/status, as text (``SigIgn`` -> ``0000000000000000``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith(name + ":"):
                return line.split()[1]
    raise KeyError(name)


class RealRig:
    """A RealSystem with a Registry; ``drive_until`` reaps and fires timers."""

    def __init__(self, timing=None):
        self.system = RealSystem()
        self.registry = Registry()
        self.ctx = Context(self.system, self.registry, timing or Timing(), dict(os.environ))
        self.started_pids = set()

    def drive_until(self, predicate, timeout=10.0):
        """Reap exits and fire deadlines until ``predicate()`` holds; fail at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            self.started_pids.update(self.registry.live_pids())
            self.registry.deliver(self.system.reap())
            self.registry.fire_due(self.system.now())
            if predicate():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.01)

    def cleanup(self):
        """Kill every process group this rig started and reap them."""
        self.started_pids.update(self.registry.live_pids())
        for pid in self.started_pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.system.reap()
