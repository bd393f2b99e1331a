"""Trust and process trees: only the right users, only a trusted cltab,
every descendant accounted for, nothing duplicated after a crash."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

from as_user import nobody, run_as
from cluster_init import cli
from daemon_rig import CLINIT, marked_pids, settings, tagged, wait_for
from realproc import alive, environ_of


@pytest.fixture
def public_node(node):
    """A node whose socket lives where user nobody can reach it."""
    where = tempfile.mkdtemp(prefix="clinit-public-")
    os.chmod(where, 0o755)
    node.socket = os.path.join(where, "clinit.s")
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    yield node
    shutil.rmtree(where, ignore_errors=True)


# ---- peer credentials ----


def test_another_user_is_refused_whatever_the_socket_mode(public_node):
    node = public_node
    uid, gid = nobody()
    node.start()
    os.chmod(node.socket, 0o777)  # file modes are not an access list
    code, _out, err = run_as(uid, gid, cli.main, ["-c", "/nonexistent", "-s", node.socket, "g", "1"])
    assert code == 4, err
    assert f"permission denied: uid {uid} may not use this clinit daemon" in err
    wait_for(lambda: f"refused a client: uid {uid}" in node.log_text(), what="the log line")
    assert node.status() == "", "the tell was not done"
    assert node.settle("g", "1") == "DONE", "the daemon's own user is served"


def test_socket_group_members_are_served(public_node):
    node = public_node
    uid, gid = nobody()
    import grp

    try:
        users = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no group users on this machine")
    node.write_cltab(settings(node, ":::socket_group:users") + "g:t:1:wait:true\n")
    node.start()
    info = os.stat(node.socket)
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, users)
    code, out, err = run_as(uid, gid, cli.main, ["-s", node.socket, "-c", "/nonexistent", "g", "1"], groups=[users])
    assert (code, out) == (0, "level transition started\n"), err
    code, out, err = run_as(uid, users, cli.main, ["-s", node.socket, "-c", "/nonexistent", "g", "1"])
    assert code == 0, "as the primary group too"


def test_an_unknown_socket_group_refuses_the_cltab(node):
    node.write_cltab(settings(node, ":::socket_group:no-such-group-here") + "g:t:1:wait:true\n")
    result = node.clinit("-d")
    assert result.returncode == 6
    assert "setting socket_group: no such group 'no-such-group-here'" in result.stderr


# ---- a trusted cltab (as root) ----


def root_only():
    if os.geteuid() != 0:
        pytest.skip("the cltab ownership rules apply to a daemon run as root")


def test_root_refuses_a_world_writable_cltab(node):
    root_only()
    os.chmod(node.cltab, 0o666)
    result = node.clinit("-d")
    assert result.returncode == 6
    assert f"{node.cltab}: not trusted: writable by group or others (fix: chmod go-w {node.cltab})" in result.stderr
    assert node.clinit("--check").returncode == 6


def test_root_refuses_a_cltab_owned_by_another_user(node):
    root_only()
    uid, _gid = nobody()
    os.chown(node.cltab, uid, -1)
    result = node.clinit("-d")
    assert result.returncode == 6
    assert f"owned by uid {uid}, not root (fix: chown root {node.cltab})" in result.stderr


def test_root_refuses_a_cltab_in_a_directory_others_can_write(node, tmp_path):
    root_only()
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    cltab = shared / "cltab"
    shutil.copy(node.cltab, cltab)
    result = node.clinit("--check", "-c", str(cltab))
    assert result.returncode == 6
    assert f"directory {shared} is writable by group or others without the sticky bit" in result.stderr
    os.chmod(shared, 0o1777)  # as /tmp: the sticky bit keeps others from replacing our file
    assert node.clinit("--check", "-c", str(cltab)).returncode == 0


def test_root_rereads_no_cltab_others_could_write(node):
    root_only()
    node.start()
    node.write_cltab(open(node.cltab).read() + "evil:evil1:1:wait:touch pwned\n")
    os.chmod(node.cltab, 0o666)
    result = node.clinit("evil", "1")  # the tell acts on the last good cltab, which has no evil
    assert result.returncode == 1 and "no such group: evil" in result.stderr
    assert f"warning: cltab {node.cltab} refused, acting on the last good one: " in result.stderr
    assert "not trusted" in result.stderr
    assert node.clinit().returncode == 6, "a reread is refused"
    assert not os.path.exists(os.path.join(node.dir, "pwned"))
    os.chmod(node.cltab, 0o644)
    assert node.clinit("-w", "evil", "1").returncode == 0, "fixed: taken"


def test_root_does_not_follow_a_symlinked_log(node, tmp_path):
    root_only()
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    os.symlink(target, node.log)
    node.start()
    assert node.settle("scramjet", "1") == "DONE"
    assert target.read_text() == "precious\n"
    assert "Too many levels of symbolic links" in node.daemon_stderr()


# ---- every descendant accounted for ----

TREES = {
    "bg": "sleep 1001 & sleep 1002",
    "amp": "sleep 1003 &",
    "sub": "(sleep 1007 &) ; sleep 1008",
    "two": "sleep 1009 & sleep 1010 & wait",
}


def tree_cltab(node, mode="once", extra=()):
    lines = [f"trees:{tag}:1:{mode}:{command}" for tag, command in TREES.items()]
    return settings(node, ":::term_delay:0.5", ":::kill_delay:0.5", *extra) + "\n".join(lines) + "\n"


def test_a_level_change_stops_every_process_of_every_entry(node):
    node.write_cltab(tree_cltab(node) + "trees:other:2:wait:true\n")
    node.start()
    assert node.settle("trees", "1") == "DONE"
    expected = {"bg": 2, "amp": 1, "sub": 2, "two": 3}
    for tag, count in expected.items():
        wait_for(lambda tag=tag, count=count: len(tagged(node, tag)) >= count, what=f"{tag}'s processes")
    assert node.settle("trees", "2") == "DONE"
    for tag in TREES:
        assert tagged(node, tag) == [], f"{tag}: {TREES[tag]} left processes"
    assert "stopping what its leader left" in node.log_text()


def test_shutdown_stops_every_process_of_every_entry(node):
    node.write_cltab(tree_cltab(node))
    node.start()
    assert node.settle("trees", "1") == "DONE"
    wait_for(lambda: len(tagged(node, "two")) >= 3, what="the processes")
    result = node.clinit("-k", "-w", "-t", "30")
    assert result.returncode == 0, result.stderr
    assert marked_pids(node.mark) == []


def test_orphans_come_back_to_the_daemon_and_are_reaped(node):
    node.write_cltab(settings(node) + "orphans:o1:1:once:(sleep 1.5 &) ; sleep 30\n")
    node.start()
    assert node.settle("orphans", "1") == "DONE"

    def stat(pid):
        with open(f"/proc/{pid}/stat") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[2])  # state, parent, process group

    def orphan():
        for pid in tagged(node, "o1"):
            state, parent, group = stat(pid)
            if pid != group and parent == node.daemon.pid:
                return pid
        return None

    pid = wait_for(orphan, what="sleep 1.5, its subshell gone, to come back to the daemon (subreaper)")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the orphan to be reaped, not left a zombie")


def test_kill_mode_all_stops_a_process_that_called_setsid(node):
    node.write_cltab(settings(node, ":::kill_mode:all", ":::term_delay:0.5", ":::kill_delay:0.5")
                     + "escape:s1:1:once:setsid sleep 1004\nescape:other:2:wait:true\n")
    node.start()
    assert node.settle("escape", "1") == "DONE"
    def sleeper():
        for pid in tagged(node, "s1"):
            try:
                if os.readlink(f"/proc/{pid}/exe").endswith("/sleep"):
                    return pid
            except OSError:
                pass
        return None

    escaped = wait_for(sleeper, what="sleep 1004")
    assert os.getsid(escaped) == escaped, "it left the entry's session"
    assert node.settle("escape", "2") == "DONE"
    assert not alive(escaped)


def test_perl_style_start_and_stop_entries_under_the_default_mode(node):
    """A wait entry starts a daemon that detaches (setsid); another level's entry stops it."""
    pidfile = os.path.join(node.dir, "foo.pid")
    out = os.path.join(node.dir, "out")
    node.write_cltab(settings(node, ":::term_delay:0.5", ":::kill_delay:0.5") + (
        f"foo:start:run:wait:setsid sh -c 'echo $$ > {pidfile}; exec sleep 1006' &\n"
        f"foo:stop:halt:wait:kill -0 $(cat {pidfile}) && echo alive >> {out}; kill $(cat {pidfile})\n"
    ))
    node.start()
    assert node.settle("foo", "run") == "DONE"
    pid = wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip() and int(open(pidfile).read()), what="foo's pid")
    assert node.settle("foo", "halt") == "DONE"
    assert node.out_lines() == ["alive"], "its own stop entry found it running, as in the Perl clinit"
    wait_for(lambda: not alive(pid), what="foo to stop")


# ---- adoption after a crash ----


def crash_cltab(node):
    return settings(node) + (
        "web:server:1:respawn:exec sleep 1000\n"
        "web:helper:1:once:sleep 1003 &\n"
        "web:prepare:1:wait:true\n"
        "web:check:1:test:true\n"
        "batch:job:x:wait:true\n"
    )


def test_a_new_daemon_adopts_what_a_killed_one_left(node):
    node.write_cltab(crash_cltab(node))
    node.start()
    assert node.settle("web", "1") == "DONE"
    assert node.settle("batch", "x") == "DONE"
    (server,) = wait_for(lambda: tagged(node, "server"), what="the server")
    (helper,) = wait_for(lambda: tagged(node, "helper"), what="the helper's sleep")
    clstat = open(node.clstat).read()
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)
    assert alive(server) and alive(helper), "a daemon that dies leaves its services running"
    starts = node.log_text().count(": started pid")

    node.start()
    wait_for(lambda: "adopting web:server" in node.log_text(), what="the adoption")
    assert open(node.clstat).read() == clstat, "clstat is right without any tell"
    assert node.settle("web", "1") == "DONE"
    assert node.log_text().count(": started pid") == starts, "a tell of the same level starts nothing twice"
    assert tagged(node, "server") == [server] and tagged(node, "helper") == [helper]
    result = node.clinit("-k", "-w", "-t", "30")
    assert result.returncode == 0, result.stderr
    assert marked_pids(node.mark) == [], "-k stops what was adopted"


def test_an_adopted_respawn_entry_is_respawned_when_it_exits(node):
    node.write_cltab(crash_cltab(node))
    node.start()
    node.settle("web", "1")
    (server,) = wait_for(lambda: tagged(node, "server"), what="the server")
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)
    node.start()
    wait_for(lambda: "adopting web:server" in node.log_text(), what="the adoption")
    os.kill(server, signal.SIGTERM)
    # one look at the processes: two could see the old server, then none (it died, the new
    # one not started yet), and take that for a new server before the daemon saw the exit
    wait_for(lambda: [pid for pid in tagged(node, "server") if pid != server], what="a new server")
    assert "web:server: pid %d exited (result unknown after adoption)" % server in node.log_text()


def test_only_processes_of_our_own_uid_are_adopted(node):
    """A process another user planted with our marks is not taken for ours."""
    uid, gid = nobody()
    node.write_cltab(crash_cltab(node))
    env = dict(os.environ, CLINIT_DAEMON=node.socket, CLINIT_GROUP="web", CLINIT_TAG="server",
               CLINIT_LEVEL="1", **dict([node.mark.split("=", 1)]))
    planted = subprocess.Popen(["sleep", "60"], env=env, user=uid, group=gid, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: environ_of(planted.pid), what="its environment")
        node.start()
        assert node.settle("web", "1") == "DONE"
        assert "adopting" not in node.log_text()
        assert len(tagged(node, "server")) == 2, "ours was started; the planted one is not ours"
    finally:
        planted.kill()
        planted.wait()


def kill_daemon(node):
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)


def test_a_group_whose_services_died_with_the_daemon_is_failed_not_restarted(node):
    mounted = os.path.join(node.dir, "MOUNTED")
    node.write_cltab(settings(node) + (
        f"web:mount:run:wait:touch {mounted}\n"
        f"web:check:run:test:test -e {mounted}\n"
        "web:app:run:respawn:exec sleep 2012\n"
    ))
    node.start()
    assert node.settle("web", "run") == "DONE"
    (app,) = wait_for(lambda: tagged(node, "app"), what="the app")
    kill_daemon(node)
    os.kill(app, signal.SIGKILL)  # everything dies with it (a node that lost power, say)
    wait_for(lambda: not alive(app), what="the app to die")
    os.unlink(mounted)
    node.start()
    wait_for(lambda: "its services died with the previous daemon" in node.log_text(), what="the restore")
    assert node.status(group="web") == "run FAILED\n"
    assert tagged(node, "app") == [], "nothing is started behind anybody's back"
    assert node.clinit("-S", "web", "run").returncode == 1
    assert node.settle("web", "down") == "DONE"
    assert node.settle("web", "run") == "DONE", "stop and start: the mount and the check run again"
    assert os.path.exists(mounted)


def test_a_crash_while_starting_goes_on_in_file_order(node):
    ran = os.path.join(node.dir, "ran")
    node.write_cltab(settings(node) + (
        f"b:slow1:up:wait:echo slow1 >> {ran}\n"
        f"b:slow2:up:wait:echo slow2 >> {ran}; exec sleep 2003\n"
        f"b:after:up:wait:echo after >> {ran}\n"
    ))
    node.start()
    node.tell("b", "up")
    (slow2,) = wait_for(lambda: tagged(node, "slow2"), what="slow2 to run")
    kill_daemon(node)
    node.start()
    wait_for(lambda: "adopting b:slow2" in node.log_text(), what="the adoption")
    assert node.status(group="b") in ("up STARTING\n", "up CHECKING\n")
    assert open(ran).read() == "slow1\nslow2\n", "what had run does not run again"
    os.kill(slow2, signal.SIGTERM)
    assert node.client().wait("b", "up", timeout=20) == "DONE"
    assert open(ran).read() == "slow1\nslow2\nafter\n", "the rest, in file order, after slow2"


def test_a_crash_while_moving_away_stops_what_is_left(node):
    ran = os.path.join(node.dir, "ran")
    node.write_cltab(settings(node, ":::term_delay:30") + (
        f"a:prep:up:wait:echo prep >> {ran}\n"
        "a:svc:up:respawn:trap '' INT; exec sleep 2001\n"
        f"a:stopper:down:wait:echo stopper >> {ran}\n"
    ))
    node.start()
    assert node.settle("a", "up") == "DONE"
    wait_for(lambda: tagged(node, "svc"), what="svc")
    node.tell("a", "down")
    node.wait_status("up STOPPING\n", group="a")
    kill_daemon(node)
    node.write_cltab(open(node.cltab).read().replace(":::term_delay:30", ":::term_delay:0.5"))
    node.start()
    wait_for(lambda: "to a level nothing records" in node.log_text(), what="the restore")
    wait_for(lambda: tagged(node, "svc") == [], timeout=60, what="svc to be stopped")
    assert open(ran).read() == "prep\n", "nothing reran, and nothing ran that was not told"
    node.wait_status("up CONFIGURED\n", group="a")
    assert node.settle("a", "down") == "DONE"
    assert open(ran).read() == "prep\nstopper\n"


def test_root_refuses_a_cltab_reached_through_a_directory_others_own(node, tmp_path):
    """The symlink on the way can be replaced by whoever owns its directory."""
    root_only()
    uid, gid = nobody()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, uid, gid)
    os.symlink(node.cltab, theirs / "cltab")
    result = node.clinit("--check", "-c", str(theirs / "cltab"))
    assert result.returncode == 6
    assert f"directory {theirs} is owned by uid {uid}, not root" in result.stderr


def test_root_refuses_a_cltab_in_a_group_writable_directory(node, tmp_path):
    root_only()
    shared = tmp_path / "gw"
    shared.mkdir()
    os.chmod(shared, 0o775)
    shutil.copy(node.cltab, shared / "cltab")
    result = node.clinit("--check", "-c", str(shared / "cltab"))
    assert result.returncode == 6 and "writable by group or others" in result.stderr


def test_refusals_are_logged_without_flooding_the_log(public_node):
    node = public_node
    uid, gid = nobody()
    node.start()
    os.chmod(node.socket, 0o777)

    def knock(times):
        for _ in range(times):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(node.socket)
        return 0

    code, _out, err = run_as(uid, gid, knock, 300)
    assert code == 0, err
    wait_for(lambda: f"refused a client: uid {uid}" in node.log_text(), what="the refusal")
    assert node.client().ping()
    assert node.log_text().count("refused a client") == 1, "one line a minute, not one a connection"
