"""clinit --stop and --start on the fake seam: the stop and start verbs (requests.py),
the group's rows for them (group.py) and the process machine's (byhand.py).

A stopped entry stays stopped until --start, -r or a tell of its group (the
same level included); a deliberate stop changes nothing of the group's state;
--start runs a finished once, wait or test entry again; both are refused for an
entry not at the group's level, and while the group moves.
"""

import signal

import pytest

from cluster_init.states import ProcState

from node_rig import Connection, NodeRig, said

CLTAB = """\
:::start_seconds:0
:::term_delay:5
:::kill_delay:10
web:prep:1:wait:prepare
web:srv:1:respawn:serve
web:job:1:once:batch
web:fit:t:test:check
web:other:2:respawn:elsewhere
db:main:1:once:dbserver
"""


@pytest.fixture
def rig(tmp_path):
    return NodeRig(tmp_path, CLTAB)


def settle_web(rig):
    rig.ask("tell", "web", "1")
    rig.exit("prep")
    assert rig.state("web") == ("1", "DONE")
    return rig.node.group("web")


def note(rig, tag):
    (row,) = [row for row in rig.node.rows(["web"]) if row[1] == tag]
    return row[4], row[9]


def test_stop_keeps_a_respawn_entry_stopped_and_the_group_done(rig, logged):
    group = settle_web(rig)
    pid = rig.system.pid_of("srv")
    assert said(rig.ask("stop", "web", "srv", connection=Connection("pid 77"))) == "ok stopping web:srv\n"
    assert "web:srv: stop by hand, asked by uid 4242 (pid 77)" in logged.text()
    assert rig.system.signals[-1] == (pid, signal.SIGINT), "the graceful schedule: SIGINT first"
    rig.advance(5)
    assert rig.system.signals[-1] == (pid, signal.SIGTERM)
    rig.exit("srv", signum=signal.SIGTERM)
    assert note(rig, "srv") == ("CONFIGURED", "stopped by hand")
    assert rig.state("web") == ("1", "DONE") and "web 1 DONE" in rig.clstat_text()
    rig.advance(3600)
    assert "srv" not in rig.system.running_tags(), "nothing starts it again by itself"
    assert group.state.value == "DONE"
    assert said(rig.ask("stop", "web", "srv")) == "ok web:srv is stopped by hand already\n"


def test_start_starts_it_again_and_clears_the_note(rig, logged):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    rig.exit("srv")
    starts = len(rig.system.spawned)
    assert said(rig.ask("start", "web", "srv", connection=Connection("pid 78"))) == "ok starting web:srv\n"
    assert "web:srv: start by hand, asked by uid 4242 (pid 78)" in logged.text()
    assert len(rig.system.spawned) == starts + 1 and rig.system.spawned[-1].env["CLINIT_LEVEL"] == "1"
    assert note(rig, "srv") == ("DONE", "-")
    assert said(rig.ask("start", "web", "srv")).startswith("ok web:srv is running already (pid ")
    assert rig.state("web") == ("1", "DONE")


def test_a_tell_of_the_same_level_starts_a_stopped_entry(rig):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    rig.exit("srv")
    rig.ask("tell", "web", "1")
    assert "srv" in rig.system.running_tags()
    assert note(rig, "srv")[1] == "-"


def test_restart_starts_a_stopped_entry(rig):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    rig.exit("srv")
    assert said(rig.ask("restart", "web", "srv")) == "ok restarting web:srv\n"
    assert "srv" in rig.system.running_tags() and note(rig, "srv") == ("DONE", "-")


def test_stop_ends_a_crash_loop(rig):
    settle_web(rig)
    proc = rig.node.group("web").machine("srv")
    while proc.held_back_for is None:  # each exit right after its start: soon held back
        rig.exit("srv", code=1)
    assert note(rig, "srv")[0] == "PAUSING" and "held back" in note(rig, "srv")[1]
    assert said(rig.ask("start", "web", "srv")).startswith("error web:srv is held back (respawning too rapidly; ")
    assert said(rig.ask("stop", "web", "srv")) == "ok stopping web:srv\n"
    assert note(rig, "srv") == ("CONFIGURED", "stopped by hand"), "no process: stopped at once"
    spawned = len(rig.system.spawned)
    rig.advance(120)
    assert len(rig.system.spawned) == spawned, "the hold-back's end starts nothing"
    rig.ask("start", "web", "srv")
    rig.exit("srv", code=1)
    assert proc.held_back_for is None and proc.state is ProcState.DONE, (
        "a start by hand is a fresh start: the rapid count starts over"
    )


def test_start_reruns_a_finished_once_or_wait_entry(rig):
    settle_web(rig)
    rig.exit("job")
    spawned = len(rig.system.spawned)
    assert said(rig.ask("start", "web", "job")) == "ok starting web:job\n"
    assert [s.command for s in rig.system.spawned[spawned:]] == ["batch"]
    assert said(rig.ask("start", "web", "job")).startswith("ok web:job is running already (pid ")
    assert said(rig.ask("start", "web", "prep")) == "ok starting web:prep\n"
    assert note(rig, "prep")[0] == "RUNNING" and rig.state("web") == ("1", "DONE")
    rig.exit("prep", code=3)
    assert note(rig, "prep")[0] == "DONE" and rig.state("web") == ("1", "DONE")


def test_a_test_run_again_that_fails_makes_the_group_failed(rig):
    rig.ask("tell", "web", "t")
    rig.exit("fit")
    assert rig.state("web") == ("t", "PASSED")
    assert said(rig.ask("start", "web", "fit")) == "ok starting web:fit\n"
    assert rig.state("web") == ("t", "PASSED")
    rig.exit("fit", code=1)
    assert rig.state("web") == ("t", "FAILED"), "status never flatters"
    rig.ask("start", "web", "fit")
    rig.exit("fit")
    assert rig.state("web") == ("t", "FAILED"), "a pass by hand does not clear it: tell the level again"


def test_stop_of_what_does_not_run(rig):
    settle_web(rig)
    rig.exit("job")
    assert said(rig.ask("stop", "web", "job")) == "ok web:job is not running\n"
    assert note(rig, "job")[1] == "-"


def test_refusals(rig):
    for verb in ("stop", "start"):
        assert said(rig.ask(verb, "nosuch", "x")) == "error no such group: nosuch\n"
        assert said(rig.ask(verb, "web", "x")) == "error no such entry: web:x\n"
        assert said(rig.ask(verb, "web", "srv")) == "error web:srv is not part of the level of group web (not told)\n"
    rig.ask("tell", "web", "1")  # prep runs: the group is STARTING
    for verb in ("stop", "start"):
        assert said(rig.ask(verb, "web", "srv")) == (
            "error group web is moving (STARTING, to level 1): try again once it has settled (clinit -w web 1)\n"
        )
    rig.exit("prep")
    for verb in ("stop", "start"):
        assert said(rig.ask(verb, "web", "other")) == "error web:other is not part of the level of group web (1)\n"
        assert said(rig.ask(verb, "web", "fit")) == "error web:fit is not part of the level of group web (1)\n"
    rig.ask("tell", "web", "2")  # srv is being stopped
    assert said(rig.ask("stop", "web", "other")).startswith("error group web is moving (STOPPING, to level 2)")
    rig.node.shutdown("test")
    assert said(rig.ask("stop", "web", "srv")) == "error the daemon is shutting down\n"


def test_start_while_it_is_being_stopped(rig):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    assert said(rig.ask("start", "web", "srv")) == "error web:srv is being stopped (STOPPING): try again once it has stopped\n"


def test_halt_and_tell_with_an_entry_stopped(rig):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    rig.exit("srv")
    rig.ask("tell", "web", "2")
    rig.exit("job")  # stopped: not at level 2
    assert rig.state("web") == ("2", "DONE")
    assert rig.node.group("web").machine("srv") is None, "the stopped entry's machine is forgotten"
    rig.node.shutdown("test")
    assert rig.node.group("web").state.value in ("HALTING", "CONFIGURED")


def test_a_test_restarted_that_fails_makes_the_group_failed(rig):
    rig.ask("tell", "web", "t")
    rig.exit("fit")
    assert said(rig.ask("restart", "web", "fit")) == "ok restarting web:fit\n"
    rig.exit("fit", code=2)
    assert rig.state("web") == ("t", "FAILED"), "clinit -r of a test: its failure is the group's"


def test_a_start_by_hand_runs_the_command_the_cltab_has_now(rig):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    rig.exit("srv")
    rig.write(CLTAB.replace("web:srv:1:respawn:serve", "web:srv:1:respawn:serve --new"))
    assert said(rig.ask("reread")) == "ok cltab reread\n"
    rig.ask("start", "web", "srv")
    assert rig.system.spawned[-1].command == "serve --new"


def test_a_stop_by_hand_wins_over_a_restart_under_way(rig):
    settle_web(rig)
    rig.ask("restart", "web", "srv")
    assert note(rig, "srv") == ("STOPPING", "restarting")
    rig.ask("stop", "web", "srv")
    assert note(rig, "srv") == ("STOPPING", "stopped by hand")
    rig.exit("srv")
    assert note(rig, "srv") == ("CONFIGURED", "stopped by hand") and "srv" not in rig.system.running_tags()


def test_a_tell_while_a_stop_by_hand_goes_on_starts_it_once_stopped(rig):
    settle_web(rig)
    rig.ask("stop", "web", "srv")
    rig.ask("tell", "web", "1")
    assert rig.state("web") == ("1", "STARTING"), "it waits for the entry being stopped"
    rig.exit("srv")
    assert "srv" in rig.system.running_tags() and note(rig, "srv") == ("DONE", "-")
    assert rig.state("web") == ("1", "DONE")
