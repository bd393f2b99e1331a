"""The protocol's verbs (requests.py) without a socket: a Node over the fake seam.

A connection is any object; a wait that cannot be answered yet comes back
as a Park (the server's business), and its answer later through the
reply the rig collects.
"""

import signal

import pytest

from cluster_init.connections import Park
from cluster_init.version import VERSION

from node_rig import Connection, NodeRig, said

CLTAB = """\
:::start_seconds:0
web:prep:1:wait:prepare
web:srv:1:respawn:serve
web:chk:t:test:check
db:main:1:once:dbserver
"""


@pytest.fixture
def rig(tmp_path):
    return NodeRig(tmp_path, CLTAB)


def test_tell_moves_one_group_and_says_what_is_odd(rig, logged):
    assert said(rig.ask("tell", "web", "1")) == "ok level transition started\n"
    assert rig.system.running_tags() == ["prep"] and rig.node.group("db") is None
    assert said(rig.ask("tell", "nosuch", "1")) == "error no such group: nosuch\n"
    assert logged.count("client error: no such group: nosuch") == 1
    answer = rig.ask("tell", "db", "9")
    assert answer.ok and answer.warnings == (
        "group db has no entries at level 9: all of its entries stop (its levels: 1; did you mean 1?)",
    )


def test_the_levels_named_are_those_meant(tmp_path):
    rig = NodeRig(tmp_path, "web:a:run:respawn:a\nweb:b:stopped:wait:b\nweb:c:12:once:c\nweb:d:x,long:once:d\n")
    (warning,) = rig.ask("tell", "web", "status").warnings
    assert warning.endswith("(its levels: run, stopped, 1, 2, x, long; did you mean stopped?)")
    (warning,) = rig.ask("tell", "web", "rnu").warnings
    assert warning.endswith("did you mean run?)")


def test_a_verb_typed_as_a_level_stops_all_and_names_the_levels(rig):
    """clinit web status: the Perl way to stop a group, kept; the warning says what was meant."""
    answer = rig.ask("tell", "web", "status")
    assert answer.ok and answer.warnings == (
        "group web has no entries at level status: all of its entries stop (its levels: 1, t; did you mean t?)",
    )
    assert rig.state("web") == ("status", "DONE")


def test_a_wait_is_parked_until_its_group_settles(rig, tmp_path):
    rig.ask("tell", "web", "1")
    client = Connection("waiter")
    parked = rig.ask("wait", "web", "1", "5", connection=client)
    assert isinstance(parked, Park) and parked.deadline == rig.system.now() + 5
    assert rig.requests.waiting("web") == 1
    seen = []
    rig.requests.answer_through(lambda connection, answer: seen.append((connection, said(answer), rig.clstat_text())))
    rig.exit("prep")
    assert seen == [(client, "ok web 1 DONE\n", "Cluster::Init::Group web 1 DONE\n")], "clstat written before"
    assert rig.requests.waiting() == 0


def test_a_wait_with_a_deadline_times_out_and_is_forgotten(rig):
    rig.ask("tell", "web", "1")
    client = Connection()
    parked = rig.ask("wait", "web", "1", "0.5", connection=client)
    assert parked.deadline == rig.system.now() + 0.5
    rig.system.advance(0.5)  # the server finds the deadline passed and asks for the answer
    assert said(rig.requests.expired(client)) == "error timeout: web did not settle at level 1 within 0.5 s\n"
    rig.exit("prep")
    assert rig.replies == [] and rig.requests.waiting() == 0, "nobody is answered twice"
    default = rig.ask("wait", "db", "1")
    assert default.deadline == rig.system.now() + 300, "WAIT_DEFAULT when none is named"


def test_waits_answered_at_once(rig):
    assert said(rig.ask("wait", "nosuch", "1")) == "error no such group: nosuch\n"
    rig.ask("tell", "web", "1")
    rig.exit("prep")
    assert said(rig.ask("wait", "web", "1")) == "ok web 1 DONE\n"
    assert said(rig.ask("wait", "web", "2")) == "error web settled at level 1 DONE\n"


def test_a_waiting_client_that_went_away_is_forgotten(rig):
    rig.ask("tell", "web", "1")
    client = Connection()
    rig.ask("wait", "web", "1", connection=client)
    rig.requests.gone(client)
    rig.exit("prep")
    assert rig.replies == [] and rig.requests.waiting() == 0


def test_reread_with_a_refused_cltab(rig):
    assert said(rig.ask("reread")) == "ok cltab unchanged\n"
    rig.write(CLTAB + "web:bad:1:sometimes:x\n")
    answer = rig.ask("reread")
    assert not answer.ok and answer.message == "cltab refused; still using the last good one"
    assert any(":6: " in line and "sometimes" in line for line in answer.lines), answer.lines
    told = rig.ask("tell", "web", "1")
    assert told.ok, "a broken cltab never blocks a tell: it acts on the last good one"
    assert told.warnings == (
        f"cltab {rig.cltab} refused, acting on the last good one: {rig.cltab}:6: unknown mode 'sometimes'"
        " (known: wait, once, respawn, test, off)",
    )
    assert rig.state("web") == ("1", "STARTING")
    rig.write(CLTAB + "web:bad:1:sometimes:x\nweb:worse:1\n")
    (warning,) = rig.ask("tell", "db", "1").warnings
    assert warning.endswith("(and 1 more: clinit --check lists them)")
    rig.write(CLTAB)
    assert said(rig.ask("reread")) == "ok cltab reread\n"


def test_list_every_entry_or_one_group(rig):
    answer = rig.ask("list")
    assert answer.message == "4 entries"
    assert [line.split("\t")[:5] for line in answer.lines] == [
        ["web", "prep", "1", "wait", "CONFIGURED"],
        ["web", "srv", "1", "respawn", "CONFIGURED"],
        ["web", "chk", "t", "test", "CONFIGURED"],
        ["db", "main", "1", "once", "CONFIGURED"],
    ]
    assert all(len(line.split("\t")) == 12 for line in answer.lines)
    assert rig.ask("list", "db").lines == ("db\tmain\t1\tonce\tCONFIGURED\t-\t0\t-\t-\t-\t-\t-",)
    assert said(rig.ask("list", "nosuch")) == "error no such group: nosuch\n"


def test_restart_one_entry(rig):
    assert said(rig.ask("restart", "nosuch", "x")) == "error no such group: nosuch\n"
    assert said(rig.ask("restart", "web", "x")) == "error no such entry: web:x\n"
    assert said(rig.ask("restart", "web", "srv")) == "error web:srv is not part of the level of group web (never told)\n"
    rig.ask("tell", "web", "1")
    moving = "error group web is moving (STARTING, to level 1): try again once it has settled"
    assert said(rig.ask("restart", "web", "srv")).startswith(moving), "the wait entry prep runs"
    rig.exit("prep")
    assert said(rig.ask("restart", "web", "chk")) == "error web:chk is not part of the level of group web (1)\n"
    srv = rig.system.pid_of("srv")
    assert said(rig.ask("restart", "web", "srv")) == "ok restarting web:srv\n"
    assert (srv, signal.SIGINT) in rig.system.signals, "stopped gracefully"
    rig.exit("srv", signum=signal.SIGINT)
    assert rig.system.pid_of("srv") != srv and rig.system.running_tags() == ["srv"], "started again"


def test_shutdown_halts_everything_and_refuses_what_would_start(rig):
    rig.ask("tell", "web", "1")
    client = Connection()
    assert isinstance(rig.ask("wait", "web", "1", connection=client), Park)
    assert said(rig.ask("shutdown")) == "ok all groups halting\n"
    assert said(rig.ask("tell", "db", "1")) == "error the daemon is shutting down\n"
    assert said(rig.ask("restart", "web", "prep")) == "error the daemon is shutting down\n"
    assert rig.replies == [] and not rig.node.finished(), "prep is still stopping"
    rig.exit("prep", signum=signal.SIGINT)
    assert rig.node.finished()
    assert [(connection, said(answer)) for connection, answer in rig.replies] == [(client, "error web was halted\n")]


def test_status_and_ping(rig):
    assert said(rig.ask("status")) == "ok 0 group(s)\n"
    rig.ask("tell", "web", "1")
    rig.exit("prep")
    assert said(rig.ask("status")) == "ok 1 group(s)\nweb 1 DONE\n"
    assert said(rig.ask("ping")).startswith(f"ok clinit {VERSION} pid ")


def test_a_bug_in_a_verb_is_an_internal_error(rig, logged, monkeypatch):
    def broken(_connection):
        raise RuntimeError("boom")

    monkeypatch.setitem(rig.requests.verbs, "status", broken)
    assert said(rig.ask("status")) == "error internal error: boom\n"
    assert logged.count("internal error handling 'status'") == 1


MOVING = """\
:::start_seconds:0
g:a:1:respawn:serve
g:w:2:wait:prepare
g:b:2:respawn:serve2
"""


@pytest.mark.parametrize("then", ["exit", "tell"])
def test_restart_is_refused_while_the_group_moves_and_never_wedges_it(tmp_path, then):
    """Issue 17, item 5: -r of an entry being stopped on the way from 1 to 2 restarted it
    at level 1, and the group stayed STOPPING for good."""
    rig = NodeRig(tmp_path, MOVING)
    rig.ask("tell", "g", "1")
    assert rig.state("g") == ("1", "DONE")
    rig.ask("tell", "g", "2")
    assert rig.state("g") == ("1", "STOPPING")
    answer = rig.ask("restart", "g", "a")
    assert said(answer) == "error group g is moving (STOPPING, to level 2): try again once it has settled (clinit -w g 2)\n"
    if then == "tell":
        rig.ask("tell", "g", "2")
    rig.exit("a", signum=signal.SIGINT)
    assert rig.state("g") == ("2", "STARTING"), "the group moves on"
    assert said(rig.ask("restart", "g", "w")).startswith(
        "error group g is moving (STARTING, to level 2)"
    ), "a long wait entry delays it"
    rig.exit("w")
    assert rig.state("g") == ("2", "DONE")
    assert rig.system.running_tags() == ["b"], "a was never started again"
    assert said(rig.ask("restart", "g", "b")) == "ok restarting g:b\n", "at rest: restarted"
    rig.ask("tell", "g", "1")
    assert said(rig.ask("restart", "g", "b")).startswith("error group g is moving (STOPPING, to level 1)")
