"""The operator's view: clinit -l, clinit -S and clinit -r."""

import os
import re
import shutil
import subprocess
import sys
import time

from daemon_rig import CLINIT, settings, wait_for
from realproc import alive


OPS = (
    "ops:server:run:respawn:exec sleep 1000\n"
    "ops:setup:run,other:wait:exit 3\n"
    "ops:probe:run:test:true\n"
    "ops:later:other:once:sleep 5\n"
    "ops:never:run:off:true\n"
    "misc:one:1:wait:true\n"
)


def rows(node, *args):
    result = node.clinit("-l", *args)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_list_shows_every_entry_with_its_columns(node):
    node.write_cltab(settings(node) + OPS)
    node.start()
    assert node.settle("ops", "run") == "DONE"
    listed = {row[1]: row for row in rows(node, "ops")}
    assert list(listed) == ["server", "setup", "probe", "later", "never"], "file order, one group"
    server = listed["server"]
    assert server[:5] == ["ops", "server", "run", "respawn", "DONE"]
    assert alive(int(server[5])) and server[6] == "1" and server[7] == "-"
    assert int(server[8]) >= 0 and server[9] == "-"
    assert listed["setup"][4:8] == ["DONE", "-", "1", "3"], "the last exit code"
    assert listed["probe"][4:8] == ["PASS", "-", "1", "0"]
    assert listed["later"][4:9] == ["CONFIGURED", "-", "0", "-", "-"], "not of this level"
    assert listed["never"][3:5] == ["off", "CONFIGURED"]
    assert "ops:setup: pid" in node.log_text() and "WARNING ops:setup: pid" in node.log_text()
    os.kill(int(server[5]), 15)
    wait_for(lambda: {r[1]: r for r in rows(node, "ops")}["server"][6] == "2", what="the respawn")
    again = {r[1]: r for r in rows(node, "ops")}["server"]
    assert again[7] == "SIGTERM", "the signal that ended it"
    everything = rows(node)
    assert [row[0] for row in everything] == ["ops"] * 5 + ["misc"]


def test_list_on_a_terminal_is_an_aligned_table(node):
    node.write_cltab(settings(node) + OPS)
    node.start()
    node.settle("ops", "run")
    master, slave = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, CLINIT, "-c", node.cltab, "-l", "ops"], env=node.env(),
            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, timeout=30,
        )
        os.close(slave)
        slave = None
        text = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            text += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert result.returncode == 0
    lines = text.decode().replace("\r\n", "\n").splitlines()
    assert re.match(r"GROUP +TAG +LEVELS +MODE +STATE +PID +STARTS +LAST +SINCE +NOTE +USER +OUTPUT$", lines[0])
    assert len(lines) == 6 and "\t" not in text.decode()
    starts = lines[0].index("STATE")
    assert all(line[starts:].split()[0] in ("DONE", "PASS", "CONFIGURED") for line in lines[1:])
    assert re.search(r"\b\d+s\b", lines[1]), "the time in its state, for people"


def test_list_shows_a_respawn_held_back(node):
    node.write_cltab(settings(node, ":::respawn_limit:1", ":::respawn_window:5", ":::respawn_hold:60")
                     + "flap:flap1:1:respawn:exit 1\n")
    node.start()
    node.tell("flap", "1")
    wait_for(lambda: rows(node, "flap")[0][4] == "PAUSING", what="the hold-back")
    row = rows(node, "flap")[0]
    assert re.fullmatch(r"crash loop: started 2 times in 0\.\d\d s, last exit 1; held back, (59|60) s left", row[9]), row
    assert "respawning too rapidly" in node.log_text()


def test_restart_stops_gracefully_and_starts_again(node):
    node.write_cltab(settings(node, ":::respawn_limit:1", ":::respawn_window:5", ":::respawn_hold:60") + OPS
                     + "flap:flap1:1:respawn:exit 1\n")
    node.start()
    node.settle("ops", "run")
    before = {r[1]: r for r in rows(node, "ops")}["server"]
    result = node.clinit("-r", "ops", "server")
    assert (result.returncode, result.stdout) == (0, "restarting ops:server\n")
    wait_for(lambda: {r[1]: r for r in rows(node, "ops")}["server"][6] == "2", what="the restart")
    after = {r[1]: r for r in rows(node, "ops")}["server"]
    assert after[5] != before[5] and not alive(int(before[5]))
    assert after[7] == "SIGINT", "stopped gracefully: SIGINT first"
    assert node.status(group="ops") == "run DONE\n"
    result = node.clinit("-r", "ops", "later")
    assert result.returncode == 1 and "ops:later is not part of the level of group ops (run)" in result.stderr
    assert node.clinit("-r", "ops", "nosuch").stderr == "clinit: no such entry: ops:nosuch\n"
    node.tell("flap", "1")
    wait_for(lambda: rows(node, "flap")[0][4] == "PAUSING", what="the hold-back")
    starts = int(rows(node, "flap")[0][6])
    assert node.clinit("-r", "flap", "flap1").returncode == 0
    wait_for(lambda: int(rows(node, "flap")[0][6]) > starts, what="a start without waiting out the hold-back")


def test_restart_is_refused_while_the_group_moves(node):
    """Issue 17, item 5: exit 1, saying the group is moving and where; the group settles."""
    node.write_cltab(settings(node) + "m:a:1:respawn:exec sleep 1000\nm:w:2:wait:exec sleep 1000\n")
    node.start()
    assert node.settle("m", "1") == "DONE"
    node.tell("m", "2")
    wait_for(lambda: node.status(group="m") == "2 STARTING\n", what="the long wait entry")
    result = node.clinit("-r", "m", "w")
    assert result.returncode == 1
    assert result.stderr == "clinit: group m is moving (STARTING, to level 2): try again once it has settled (clinit -w m 2)\n"
    assert {r[1]: r for r in rows(node, "m")}["w"][6] == "1", "not restarted"


def status(node, *args):
    result = node.clinit("-S", *args)
    return result.returncode, result.stdout


def test_status_exit_codes(node):
    node.write_cltab(settings(node) + OPS + "slow:s1:1:wait:sleep 30\nbad:t1:1:test:false\n")
    assert status(node) == (4, ""), "no clstat: no daemon writes it"
    node.start()
    assert status(node) == (3, ""), "no group told yet: none is running"
    node.settle("ops", "run")
    assert status(node, "ops") == (0, "ops run DONE\n")
    assert status(node, "ops", "run") == (0, "ops run DONE\n")
    assert status(node, "ops", "other") == (3, "ops run DONE\n"), "at another level"
    assert status(node, "misc") == (3, ""), "not in clstat"
    assert node.settle("bad", "1") == "FAILED"
    assert status(node, "bad", "1") == (1, "bad 1 FAILED\n")
    node.tell("slow", "1")
    node.wait_status("1 STARTING\n", group="slow")
    assert status(node, "slow", "1")[0] == 3, "on its way"
    code, out = status(node)
    assert code == 1 and "bad 1 FAILED\n" in out, "one FAILED among all"
    old = time.time() - 200
    os.utime(node.clstat, (old, old))
    assert status(node, "ops") == (4, ""), "stale: no live daemon rewrites it, and stdout says nothing"


def test_status_of_another_nodes_clstat(node, tmp_path):
    node.write_cltab(settings(node) + OPS)
    node.start()
    node.settle("ops", "run")
    copy = tmp_path / "node2.clstat"
    shutil.copy(node.clstat, copy)
    result = subprocess.run(
        [sys.executable, CLINIT, "-S", "--clstat", str(copy), "ops", "run"], env=node.env(),
        cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "ops run DONE\n"), "no cltab, no daemon needed"


def test_status_asks_nothing_of_the_daemon(node):
    node.write_cltab(settings(node) + OPS)
    node.start()
    node.settle("ops", "run")
    requests = node.log_text().count("telling")
    node.write_cltab(settings(node) + OPS + "new:n1:1:wait:true\n")
    assert status(node, "ops")[0] == 0
    assert node.log_text().count("telling") == requests and "reread" not in node.log_text()


def test_a_bad_setting_the_client_does_not_use_keeps_no_command_out(node):
    """kill_delay is the daemon's to refuse: -S, -l and -k still work."""
    node.write_cltab(settings(node) + OPS)
    node.start()
    node.settle("ops", "run")
    node.write_cltab(":::kill_delay:-1\n" + settings(node) + OPS)
    assert status(node, "ops") == (0, "ops run DONE\n")
    assert node.clinit("-l", "ops").returncode == 0
    result = node.clinit("ops", "run")
    assert result.returncode == 0, "a tell acts on the last good cltab"
    assert "cltab:1: setting kill_delay must not be negative" in result.stderr
    assert node.clinit().returncode == 6, "a reread is refused"
    assert node.clinit("-k", "-w", "-t", "30").returncode == 0


def test_status_without_a_cltab_reads_the_default_clstat(node, tmp_path):
    result = node.clinit("-S", "-c", str(tmp_path / "nonexistent"))
    assert result.returncode == 4, "the default clstat is not there either"
    assert "warning: " in result.stderr and "reading /var/run/clinit/clstat" in result.stderr


def test_status_of_a_clstat_that_cannot_be_read_is_unknown(node, tmp_path):
    result = node.clinit("-S", "--clstat", str(tmp_path))
    assert result.returncode == 4 and "cannot read" in result.stderr and "Traceback" not in result.stderr
