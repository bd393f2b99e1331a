"""The seam: RealSystem and the tests' FakeSystem both are a seam.System.

Each provides every member of the Protocol with the Protocol's
parameters, and neither grows public members the Protocol does not
list (the fake's own test helpers aside), so the two cannot drift
apart again.
"""

import inspect
import resource
import time

import pytest

from cluster_init import seam, waitstatus
from cluster_init.sysapi import RealSystem

from fake_system import FakeSystem

# what tests call on the fake, beside the seam
FAKE_HELPERS = {"exit", "member", "escapee", "advance", "pid_of", "running_tags"}


def public_methods(cls):
    return {name for name, value in inspect.getmembers(cls, callable) if not name.startswith("_")}


def test_the_protocol_lists_what_the_daemon_and_machines_call():
    assert {"spawn", "spawning", "signals_changed", "seal_descriptors", "raise_open_files_limit",
            "open_files_limit", "reap", "now", "booted_at", "watch_process"} <= set(seam.MEMBERS)


@pytest.mark.parametrize("system", [RealSystem, FakeSystem])
def test_a_system_provides_every_member_of_the_protocol(system):
    missing = set(seam.MEMBERS) - public_methods(system)
    assert not missing, f"{system.__name__} lacks {sorted(missing)}"


@pytest.mark.parametrize("system", [RealSystem, FakeSystem])
def test_a_system_takes_the_protocols_parameters(system):
    for name in seam.MEMBERS:
        wanted = list(inspect.signature(getattr(seam.System, name)).parameters)
        got = list(inspect.signature(getattr(system, name)).parameters)
        if isinstance(inspect.getattr_static(system, name), staticmethod):
            got = ["self", *got]
        assert got == wanted, f"{system.__name__}.{name}{tuple(got)} is not the Protocol's {tuple(wanted)}"


@pytest.mark.parametrize("system, own", [(RealSystem, set()), (FakeSystem, FAKE_HELPERS)])
def test_no_system_has_members_the_protocol_does_not_list(system, own):
    extra = public_methods(system) - set(seam.MEMBERS) - own
    assert not extra, f"{system.__name__} has {sorted(extra)}: add them to seam.System (or to the fake's helpers)"


def test_the_real_open_files_limit_is_remembered_for_children():
    system = RealSystem()
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert system.open_files_limit() is None
    try:
        assert system.raise_open_files_limit() == before
        assert system.open_files_limit() == before
        with system.spawning():
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == before
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_the_fake_open_files_limit_is_remembered():
    system = FakeSystem()
    assert system.open_files_limit() is None
    assert system.raise_open_files_limit() == system.open_files_limit() == system.limits


def test_the_machine_booted_before_now():
    booted = RealSystem().booted_at()
    assert 0 < booted <= time.time()
    assert FakeSystem().booted_at() == 0


@pytest.mark.parametrize(
    "status, log, listed",
    [(0, "exit 0", "0"), (3 << 8, "exit 3", "3"), (9, "signal 9 (SIGKILL)", "SIGKILL"),
     (15 | 0x80, "signal 15 (SIGTERM)", "SIGTERM"), (70, "signal 70 (unknown)", "signal 70"),
     (None, None, "-")],
)
def test_a_wait_status_is_decoded_once(status, log, listed):
    if status is not None:
        assert waitstatus.describe_status(status) == log
    assert waitstatus.last_exit(status) == listed
