"""The shutdown's sweep (sweep.py) over the fake seam: what no entry's stop reaches is
stopped on the entries' schedule, whatever the kill mode, and the shutdown ends in
term_delay + kill_delay + 1 s whatever is left."""

import signal

import pytest

from node_rig import NodeRig, captured_log

CLTAB = """\
:::term_delay:2
:::kill_delay:3
web:srv:1:respawn:serve
web:bg:1:once:setsid helper &
"""


@pytest.fixture
def rig(tmp_path):
    return NodeRig(tmp_path, CLTAB)


@pytest.fixture
def logged():
    with captured_log() as handler:
        yield handler


def sent(rig, pid):
    return [signum for what, *rest in rig.system.signals if what == "pid" and rest[0] == pid for signum in rest[1:]]


def test_a_detached_process_is_stopped_gracefully_at_shutdown(rig, logged):
    rig.node.tell("web", "1")
    rig.exit("bg", 0)
    helper = rig.system.escapee("web", "bg")  # it called setsid: outside every process group of ours
    rig.node.shutdown("a test")
    assert sent(rig, helper) == [signal.SIGINT]
    assert f"shutdown: stopping pid(s) {helper} (web:bg), which no entry's stop reaches, with SIGINT" in logged.text()
    rig.exit("srv", signum=signal.SIGINT)
    assert not rig.node.finished(), "the helper is still there"
    rig.system.exit(helper, signum=signal.SIGINT)
    rig.registry.deliver(rig.system.reap())  # it was our child (we are its subreaper)
    assert rig.node.finished()


def test_what_ignores_signals_is_given_up_on_within_the_budget(rig, logged):
    rig.node.tell("web", "1")
    rig.exit("bg", 0)
    helper = rig.system.escapee("web", "bg")
    rig.node.shutdown("a test")
    rig.exit("srv", signum=signal.SIGINT)
    rig.advance(2)
    assert sent(rig, helper) == [signal.SIGINT, signal.SIGTERM]
    rig.advance(3)
    assert sent(rig, helper) == [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    assert not rig.node.finished()
    rig.advance(1)  # term_delay + kill_delay + 1 s: it gives up, and says so
    assert rig.node.finished()
    assert f"shutdown: giving up on pid(s) {helper} (web:bg), still there after SIGKILL" in logged.text()


def test_what_an_entry_stops_itself_is_not_signalled_twice(rig):
    rig.node.ctx.kill_mode = "all"  # the entry's stop reaches its marked processes itself
    rig.node.tell("web", "1")
    helper = rig.system.escapee("web", "bg")
    rig.node.shutdown("a test")
    assert sent(rig, helper) == [signal.SIGINT], "once, by the entry's stop"


def test_a_shutdown_with_nothing_left_over_finishes_at_once(rig):
    rig.node.tell("web", "1")
    rig.exit("bg", 0)
    rig.node.shutdown("a test")
    rig.exit("srv", signum=signal.SIGINT)
    assert rig.node.finished()
    assert rig.node.sweep.next_deadline() is None


def test_no_sweep_without_a_daemon_identity(tmp_path):
    rig = NodeRig(tmp_path, CLTAB)
    rig.node.ctx.daemon_id = None
    rig.node.shutdown("a test")
    assert rig.node.finished()
