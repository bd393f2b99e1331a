"""Helpers for tests that look at real processes: /proc, and the real seam.

``environ_of`` and ``marked_pids`` are the tests' one way to read the
marks in /proc/PID/environ (the daemon's own reading is marks.scan: it
looks for its CLINIT_DAEMON identity, these look for anything, a test's
CLINIT_TEST_MARK say).
"""

import os
import signal
import time

from cluster_init.context import Context, Timing
from cluster_init.registry import Registry
from cluster_init.sysapi import RealSystem


def alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False


def environ_of(pid):
    """The items of ``pid``'s environment, as bytes (``b"CLINIT_TAG=t1"``); [] when it
    is gone, not ours to read, or has no environment yet (a vfork'ed child before its exec)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as stream:
            data = stream.read()
    except OSError:
        return []
    return [item for item in data.split(b"\0") if item]


def environ_pids(match):
    """The pids (this process's aside) whose environment items satisfy ``match(items)``."""
    me = os.getpid()
    return [
        int(name) for name in os.listdir("/proc")
        if name.isdigit() and int(name) != me and match(environ_of(name))
    ]


def marked_pids(*marks):
    """Live pids (no zombies) whose environment holds every one of ``marks``
    (``"NAME=value"`` strings: a test's mark, ``CLINIT_TAG=t1``, ...)."""
    needles = [mark.encode() for mark in marks]
    found = environ_pids(lambda items: all(needle in items for needle in needles))
    return [pid for pid in found if alive(pid)]


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
        self.registry = Registry(self.system)
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
