"""The node (node.py) without a daemon: its cltab and groups, over the fake seam.

No socket and no process: the FakeSystem records what would be spawned and
signalled, and the tests say which pid exits.
"""

import os
import signal

import pytest

from cluster_init.errors import CltabError
from cluster_init.marks import Found
from cluster_init.protocol import LIST_FIELDS

from node_rig import NodeRig

CLTAB = """\
web:prep:1:wait:prepare
web:srv:1:respawn:serve
web:chk:t:test:check
db:main:1:once:dbserver
"""


@pytest.fixture
def rig(tmp_path):
    return NodeRig(tmp_path, CLTAB)


def fields(row):
    return dict(zip(LIST_FIELDS, row))


def test_a_tell_starts_the_level_in_file_order_and_settles(rig):
    rig.node.tell("web", "1")
    assert rig.system.running_tags() == ["prep"], "the wait entry first, alone"
    assert rig.state("web") == ("1", "STARTING")
    rig.exit("prep")
    assert rig.system.running_tags() == ["srv"]
    assert rig.state("web") == ("1", "CHECKING"), "a respawn entry must stay up start_seconds"
    rig.advance(1)
    assert rig.state("web") == ("1", "DONE")
    assert rig.changes[-1] == ("web", "1", "DONE", False), "the listeners hear each change"
    rig.clstat.flush()
    assert rig.clstat_text() == "Cluster::Init::Group web 1 DONE\n"
    assert rig.node.group("db") is None, "no other group is touched"


def test_a_refused_cltab_is_kept_out_whole_and_parsed_once(rig, logged):
    rig.write(CLTAB + "web:bad:1:sometimes:x\nnew:n:1:once:y\n")
    with pytest.raises(CltabError) as first:
        rig.node.reread()
    with pytest.raises(CltabError) as second:
        rig.node.reread()
    assert second.value is first.value, "a refused file is not parsed again until it changes"
    assert logged.count("cltab refused; still using the last good one") == 1
    assert not rig.node.knows("new") and len(rig.node.table.entries) == 4, "the last good cltab stays"
    rig.write(CLTAB + "new:n:1:once:y\n")
    assert rig.node.reread() is True
    assert rig.node.knows("new")
    assert rig.node.reread() is False, "unchanged"


def test_a_group_that_left_the_cltab_is_halted_then_forgotten(rig, logged):
    rig.node.tell("web", "1")
    rig.exit("prep")
    srv = rig.system.pid_of("srv")
    rig.write("db:main:1:once:dbserver\n")
    assert rig.node.reread() is True
    assert rig.state("web") == ("1", "HALTING")
    assert (srv, signal.SIGINT) in rig.system.signals, "stopped gracefully, not killed"
    rig.exit("srv", signum=signal.SIGINT)
    assert rig.node.group("web") is None and not rig.node.knows("web")
    assert rig.changes[-1][3] is True, "the listeners hear that it is gone"
    assert rig.clstat.rows() == []
    assert logged.count("group web left the cltab and is halted") == 1


def test_restore_adopts_what_a_dead_predecessor_left(rig, logged):
    rig.system.found = [
        Found(500, 500, "web", "srv", "1"),
        Found(600, 600, "gone", "x", "2"),
    ]
    rig.system.live.update({500, 600})  # they run, as far as the fake can tell
    rig.node.restore([("web", "1", "DONE"), ("gone", "2", "DONE")])
    assert rig.state("web") == ("1", "DONE")
    rows = {fields(row)["tag"]: fields(row) for row in rig.node.rows(["web"])}
    assert rows["srv"]["pid"] == "500" and rows["srv"]["note"] == "adopted"
    assert rows["prep"]["state"] == "DONE", "the level's wait entry had run: not run again"
    assert rig.system.spawned == [], "nothing duplicated"
    assert (600, signal.SIGINT) in rig.system.signals, "a group that left the cltab is stopped"
    assert rig.state("gone") == ("2", "HALTING")
    assert "the previous daemon on" in logged.text() and "left 2 process(es): adopting them" in logged.text()
    assert logged.count("group gone left the cltab: halting it") == 1


STALE = """\
s:svc:12:respawn:serve
s:one:1:wait:prepare
s:two:2:wait:prepare2
"""


def test_after_a_crash_the_level_of_a_trusted_clstat_wins_over_a_stale_mark(tmp_path, logged):
    """Issue 17, item 7: svc started at level 1 (its mark) and kept at 2; clstat said s 2 DONE."""
    rig = NodeRig(tmp_path, STALE)
    rig.system.found = [Found(500, 500, "s", "svc", "1")]
    rig.system.live.add(500)
    rig.node.restore([("s", "2", "DONE")])
    assert rig.state("s") == ("2", "DONE")
    rows = {fields(row)["tag"]: fields(row) for row in rig.node.rows(["s"])}
    assert rows["svc"]["pid"] == "500" and rows["svc"]["note"] == "adopted"
    assert rows["two"]["state"] == "DONE", "the level's wait entry had run"
    assert rig.system.signals == [] and rig.system.spawned == [], "nothing stopped, nothing started"


def test_after_a_crash_without_clstat_the_marks_decide_the_level(tmp_path):
    rig = NodeRig(tmp_path, STALE)
    rig.system.found = [Found(500, 500, "s", "svc", "1")]
    rig.system.live.add(500)
    rig.node.restore([])
    assert rig.state("s") == ("1", "DONE")


def test_after_a_crash_a_clstat_level_none_of_the_processes_belongs_to_is_not_taken(tmp_path):
    """The processes are newer than clstat (the daemon died before writing it): halted, told again."""
    rig = NodeRig(tmp_path, STALE)
    rig.system.found = [Found(500, 500, "s", "one", "1")]
    rig.system.live.add(500)
    rig.node.restore([("s", "2", "DONE")])
    assert rig.state("s") == ("1", "HALTING")
    assert (500, signal.SIGINT) in rig.system.signals


def test_rows_list_every_entry_and_those_that_left(rig):
    rows = [fields(row) for row in rig.node.rows()]
    assert [(r["group"], r["tag"], r["state"], r["pid"]) for r in rows] == [
        ("web", "prep", "CONFIGURED", "-"),
        ("web", "srv", "CONFIGURED", "-"),
        ("web", "chk", "CONFIGURED", "-"),
        ("db", "main", "CONFIGURED", "-"),
    ]
    rig.node.tell("web", "1")
    rig.exit("prep")
    rig.write("web:prep:1:wait:prepare\nweb:chk:t:test:check\ndb:main:1:once:dbserver\n")
    rig.node.reread()
    rows = [fields(row) for row in rig.node.rows(["web"])]
    assert [(r["tag"], r["note"]) for r in rows] == [("prep", "-"), ("chk", "-"), ("srv", "left the cltab")]
    assert rows[0]["last_exit"] == "0" and rows[0]["starts"] == "1"


def test_the_dump_names_every_group_and_entry(rig, logged):
    rig.node.tell("web", "1")
    rig.exit("prep", code=0)
    rig.advance(1)  # srv has stayed up start_seconds
    rig.node.dump()
    text = logged.text()
    assert "state dump: 1 group(s), 1 process(es) running" in text
    assert "group web: level 1 DONE" in text
    assert "group db: never told" in text
    srv = rig.system.pid_of("srv")
    assert f"  web:srv: DONE, pid {srv}, started 1 time(s), last exit -, 0s in its state" in text
    assert "  web:prep: DONE, pid -, started 1 time(s), last exit 0, 1s in its state" in text
    assert "  db:main: CONFIGURED, pid -, started 0 time(s), last exit -" in logged.messages


def test_shutdown_halts_every_group_and_finishes(rig, logged):
    rig.node.tell("web", "1")
    rig.node.tell("db", "1")
    rig.exit("prep")
    assert not rig.node.finished(), "no shutdown asked"
    rig.node.shutdown("a test")
    rig.node.shutdown("a test")
    assert logged.count("shutting down (a test): halting all groups") == 1
    assert rig.node.halting and not rig.node.finished()
    assert rig.state("web") == ("1", "HALTING") and rig.state("db") == ("1", "HALTING")
    rig.exit("srv", signum=signal.SIGINT)
    assert not rig.node.finished()
    rig.exit("main", signum=signal.SIGINT)
    assert rig.node.finished()
    assert rig.state("web") == (rig.node.group("web").level, "CONFIGURED")


USERS = """\
web:prep:1:wait:prepare
web:srv:1:respawn:serve
web:svc:1:respawn:service
:::user:web:svc:root
"""


def test_restore_adopts_a_process_only_as_its_entrys_user(tmp_path, logged):
    rig = NodeRig(tmp_path, USERS)
    rig.node.ctx.uid = 1234  # the daemon's uid, say; web:svc runs as root (uid 0)
    rig.system.found = [
        Found(500, 500, "web", "srv", "1", uid=1234),
        Found(501, 501, "web", "srv", "1", uid=0),  # root's, with a 1234 entry's marks
        Found(600, 600, "web", "svc", "1", uid=0),
        Found(601, 601, "web", "svc", "1", uid=1234),  # ours, with root's entry's marks
    ]
    rig.system.live.update({500, 501, 600, 601})
    rig.node.restore([("web", "1", "DONE")])
    assert rig.system.marked_uids == [[0]], "the uids of the entries' users are looked at, besides ours"
    rows = {fields(row)["tag"]: fields(row) for row in rig.node.rows(["web"])}
    assert (rows["srv"]["pid"], rows["svc"]["pid"]) == ("500", "600")
    assert rows["svc"]["user"] == "root" and rows["srv"]["user"] == "-"
    assert rig.system.spawned == [] and rig.system.signals == [], "strangers are left alone"
    for pid, tag, uid in ((501, "srv", 0), (601, "svc", 1234)):
        assert f"not adopting pid {pid} (web:{tag}): it runs as uid {uid}, not as its entry's user" in logged.text()


def test_rows_show_the_user_and_the_last_output_line(tmp_path):
    rig = NodeRig(tmp_path, USERS)
    ctx = rig.node.ctx
    ctx.log_path = "/l/clinit.log"  # not a terminal: each entry's file beside the log
    ctx.reconfigure(rig.node.table)
    rig.node.tell("web", "1")
    rig.exit("prep")
    assert [spawned.user for spawned in rig.system.spawned] == [None, None, "root"]
    rig.system.lines["/l/web.svc.log"] = "listening on :80"
    rows = {fields(row)["tag"]: fields(row) for row in rig.node.rows()}
    assert (rows["svc"]["user"], rows["svc"]["output"]) == ("root", "listening on :80")
    assert (rows["prep"]["user"], rows["prep"]["output"]) == ("-", "-")
    answer = rig.ask("output", "web", "svc")
    assert (answer.ok, answer.message, answer.lines) == (True, "output of web:svc", ("/l/web.svc.log",))
    ctx.log_path = "/elsewhere/log"
    ctx.reconfigure(rig.node.table)
    assert rig.ask("output", "web", "svc").lines == ("/l/web.svc.log",), "the file its running process got"
    assert rig.ask("output", "web", "nosuch").message == "no such entry: web:nosuch"
    os.mkdir(tmp_path / "terminal")
    fresh = NodeRig(tmp_path / "terminal", USERS)
    fresh.node.ctx.terminal = True
    fresh.node.ctx.reconfigure(fresh.node.table)
    answer = fresh.ask("output", "web", "svc")
    assert not answer.ok and answer.message.startswith("web:svc writes where the daemon writes (its terminal)")


BOOT_CLTAB = """\
:::boot:web:1
:::boot:db:1
web:prep:1:wait:prepare
web:srv:1:respawn:serve
db:main:1:once:dbserver
"""


def test_boot_tells_each_boot_group_its_level(tmp_path, logged):
    rig = NodeRig(tmp_path, BOOT_CLTAB)
    rig.node.boot(rig.node.restore([]))
    assert rig.state("web") == ("1", "STARTING") and rig.state("db") == ("1", "DONE")
    assert [spawned.command for spawned in rig.system.spawned] == ["prepare", "dbserver"], "in the boot lines' order"
    assert "boot: telling web level 1" in logged.text()


def test_after_a_crash_restored_groups_keep_their_state_and_the_others_boot(tmp_path, logged):
    rig = NodeRig(tmp_path, BOOT_CLTAB)
    rig.system.found = [Found(500, 500, "web", "srv", "1")]
    rig.system.live.add(500)
    restored = rig.node.restore([("web", "1", "DONE")])
    assert restored == {"web"}
    rig.node.boot(restored)
    assert rig.state("web") == ("1", "DONE")
    assert [spawned.command for spawned in rig.system.spawned] == ["dbserver"], "web: nothing run again"
    assert "group web was restored: not told its boot level 1" in logged.text()


def test_a_group_restored_from_clstat_alone_is_not_booted(tmp_path):
    rig = NodeRig(tmp_path, BOOT_CLTAB)
    restored = rig.node.restore([("db", "1", "DONE")])  # no process left; its level needs none
    rig.node.boot(restored)
    assert rig.state("db") == ("1", "DONE") and rig.state("web") == ("1", "STARTING")
    assert [spawned.command for spawned in rig.system.spawned] == ["prepare"]


def test_boot_lines_changed_by_a_reread_wait_for_the_next_start(tmp_path, logged):
    rig = NodeRig(tmp_path, BOOT_CLTAB)
    rig.write(BOOT_CLTAB.replace(":::boot:db:1\n", ""))
    assert rig.node.reread()
    assert rig.node.group("db") is None and rig.node.group("web") is None, "a reread tells nothing"
    assert "the cltab's boot lines changed: they take effect at the next daemon start" in logged.text()


def test_a_failure_report_gives_the_entrys_last_output_line(tmp_path):
    from cluster_init import why

    rig = NodeRig(tmp_path, "web:chk:1:test:check\nweb:prep:1:wait:prepare\n")
    ctx = rig.node.ctx
    ctx.log_path = "/l/clinit.log"
    ctx.reconfigure(rig.node.table)
    rig.node.tell("web", "1")
    rig.exit("chk", 2)
    rig.exit("prep", 3)
    rig.system.lines["/l/web.chk.log"] = "disk /srv is full"
    assert rig.state("web") == ("1", "FAILED")
    assert why.lines(rig.node.group("web")) == (
        ("web:chk: test failed: exit 2; last output: disk /srv is full",),
        ("web:prep: wait entry exited (exit 3)",),  # it printed nothing
    )


def test_restore_keeps_a_group_whose_service_outlived_a_level_change(tmp_path, logged):
    """A respawn entry of levels 1 and 2, started at 1, goes on running at 2: after a
    kill -9 of the daemon, the group is restored at 2 as clstat says, not stopped."""
    rig = NodeRig(tmp_path, "web:srv:1,2:respawn:serve\nweb:chk:2:test:check\n")
    rig.system.found = [Found(500, 500, "web", "srv", "1")]
    rig.system.live.add(500)
    rig.node.restore([("web", "2", "DONE")])
    assert rig.state("web") == ("2", "DONE")
    assert rig.system.signals == [], "the service is not stopped"
    assert rig.system.spawned == [], "nothing duplicated"
    rows = {fields(row)["tag"]: fields(row) for row in rig.node.rows(["web"])}
    assert rows["srv"]["pid"] == "500" and rows["chk"]["state"] == "PASS"
    assert "to a level nothing records" not in logged.text()
