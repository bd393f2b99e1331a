"""Entries run as a user: ``:::user:GROUP:TAG:USER[:UNIXGROUP]``.

The cltab's lines (one per entry, file:line errors), the lookup that
fails at start (NSS down), and, against real processes, a root daemon
that starts an entry as nobody (uid, gid, groups, HOME, USER, LOGNAME,
its own session, nothing inherited), stops it at a level change, and,
after kill -9, adopts it (not a second copy) while a stranger carrying
another entry's marks is left alone.  The real tests need root (CI runs
as root) and skip otherwise.
"""

import errno
import os
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest

from cluster_init import cltab, settings as _settings, users
from cluster_init.errors import CltabError, SpawnError
from cluster_init.process import Process
from cluster_init.states import ProcState
from cluster_init.sysapi import RealSystem
from daemon_rig import marked_pids, settings, tagged, wait_for
from machine_rig import Rig
from realproc import alive, environ_of, status_field


def parse(text, lookup=None):
    return cltab.parse(text, "cltab", lookup=lookup)


def needs_nobody():
    from as_user import nobody

    return nobody()


# ---- the cltab's lines ----------------------------------------------------------


def test_a_user_line_names_who_an_entry_runs_as():
    needs_nobody()
    table = parse(":::user:web:srv:nobody\nweb:srv:1:respawn:sleep 9\nweb:log:1:once:true\n"
                  ":::user:web:log:root:nogroup\n")
    srv, log = table.entries
    assert (srv.user, log.user) == ("nobody", "root:nogroup")
    assert table.uid_of("web", "srv") == pwd.getpwnam("nobody").pw_uid and table.uid_of("web", "x") is None
    assert [(line.line, line.user) for line in table.users] == [(1, "nobody"), (4, "root:nogroup")]
    assert table.warnings == () and "user" not in table.settings, "not a setting"
    assert not srv.same_process(srv.__class__(**{**srv.__dict__, "user": "root"})), "another user, another process"


def test_user_lines_that_are_wrong_are_file_line_errors():
    needs_nobody()
    with pytest.raises(CltabError) as caught:
        parse(
            "web:srv:1:respawn:sleep 9\n"
            ":::user:web:srv:nobody\n"
            ":::user:web:srv:root\n"
            ":::user:web:nosuch:nobody\n"
            ":::user:web\n"
            ":::user:db:main:no-such-user-here\n"
            "db:main:1:once:true\n"
            "db:other:1:once:true\n"
            ":::user:db:other:nobody:no-such-group-here\n"
        )
    assert str(caught.value).splitlines() == [
        "cltab:3: a second :::user: line for web:srv (the first is line 2)",
        "cltab:4: no such entry: web:nosuch",
        "cltab:5: expected :::user:GROUP:TAG:USER or :::user:GROUP:TAG:USER:UNIXGROUP, found 'web'",
        "cltab:6: no such user 'no-such-user-here' (the user database says so)",
        "cltab:9: no such group 'no-such-group-here' (the user database says so)",
    ]


def test_a_lookup_that_fails_is_a_warning_not_an_error():
    def down(text):
        raise users.LookupFailed(errno.ECONNREFUSED, f"cannot look up user {text!r}: Connection refused")

    table = parse("web:srv:1:respawn:sleep 9\n:::user:web:srv:ldapuser\n", lookup=down)
    assert table.entries[0].user == "ldapuser" and table.uid_of("web", "srv") is None
    assert table.warnings == (
        (2, "cannot look up user 'ldapuser': Connection refused; tried again at each start of the entry"),
    )


def test_the_client_does_not_take_user_lines_for_unknown_settings():
    found, unknown = _settings.scan(":::socket:/s\n:::user:web:srv:nobody\n", "cltab")
    assert found == {"socket": "/s"} and unknown == []


def test_a_daemon_that_is_not_root_may_name_only_its_own_user():
    from as_user import run_as

    uid, gid = needs_nobody()

    def check():
        for user in ("root", "nobody"):
            try:
                parse(f"web:srv:1:once:true\n:::user:web:srv:{user}\n")
                print(f"{user}: ok")
            except CltabError as error:
                print(error)
        return 0

    code, out, err = run_as(uid, gid, check)
    assert code == 0, err
    assert out.splitlines() == [
        f"cltab:2: clinit runs as uid {uid}, not root: it cannot start an entry as root (uid 0, gid 0)",
        "nobody: ok",
    ]


# ---- starting: the lookup at each start ---------------------------------------


def test_a_lookup_that_fails_at_start_fails_that_start_with_its_reason(monkeypatch):
    def down(text):
        raise users.LookupFailed(errno.EAGAIN, f"cannot look up user {text!r}: Resource temporarily unavailable")

    monkeypatch.setattr(users, "lookup", down)
    with pytest.raises(SpawnError, match=r"^cannot look up user 'nobody': Resource temporarily unavailable$"):
        RealSystem().spawn("true", {}, user="nobody")


def test_a_respawn_entry_whose_start_failed_is_tried_again_as_its_user():
    rig = Rig()
    (entry,) = parse("web:srv:1:respawn:sleep 9\n:::user:web:srv:root\n").entries
    proc = Process(entry, rig.ctx)
    rig.system.fail_spawns = 1
    proc.start("1")
    assert proc.state is ProcState.PAUSING and "cannot fork" in proc.failure
    rig.advance(rig.ctx.timing.respawn_hold)
    assert proc.state is ProcState.DONE and [s.user for s in rig.system.spawned] == ["root"]


# ---- a root daemon and real processes ----------------------------------------------


def ids(pid):
    return [status_field(pid, "Uid"), status_field(pid, "Gid")]


def groups_of(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        line = next(line for line in stream if line.startswith("Groups:"))
    return sorted(int(word) for word in line.split()[1:])


def environ(pid):
    return dict(item.decode().split("=", 1) for item in environ_of(pid))


def user_cltab(node, *lines, directory="/"):
    node.write_cltab(settings(node, f":::directory:{directory}", ":::term_delay:1", ":::kill_delay:1")
                     + "".join(line + "\n" for line in lines))


def test_a_root_daemon_runs_an_entry_as_nobody(node):
    uid, gid = needs_nobody()
    entry = pwd.getpwnam("nobody")
    user_cltab(
        node,
        "web:srv:run:respawn:exec sleep 1000",
        ":::user:web:srv:nobody",
        "web:plain:run:respawn:exec sleep 1001",
        f"web:who:run:wait:id -u > {node.dir}/who.out",
    )
    node.start()
    assert node.settle("web", "run") == "DONE"
    (pid,) = wait_for(lambda: tagged(node, "srv"), what="srv")
    assert ids(pid) == [str(uid), str(gid)]
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        text = stream.read()
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n" in text and f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\n" in text
    assert groups_of(pid) == sorted(os.getgrouplist("nobody", gid)), "supplementary groups initialised"
    env = environ(pid)
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == (entry.pw_dir, "nobody", "nobody")
    assert env["CLINIT_TAG"] == "srv" and env["CLINIT_DAEMON"] == node.socket, "the marks"
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid, "its own session and process group"
    assert status_field(pid, "SigIgn") == "0000000000000000" and status_field(pid, "SigBlk") == "0000000000000000"
    assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"], "no descriptor of the daemon's"
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    (plain,) = tagged(node, "plain")
    assert ids(plain) == ["0", "0"] and environ(plain).get("USER") == os.environ.get("USER"), "the others: ours"
    assert open(f"{node.dir}/who.out").read() == "0\n"
    listed = {row.split("\t")[1]: row.split("\t") for row in node.clinit("-l", "web").stdout.splitlines()}
    assert listed["srv"][10] == "nobody" and listed["plain"][10] == "-"
    check = node.clinit("--check")
    assert check.returncode == 0
    assert f"{node.cltab}:8: web:srv runs as nobody (uid {uid}, gid {gid})" in check.stdout

    node.tell("web", "down")  # a level change stops it, as any other
    wait_for(lambda: not alive(pid), what="nobody's entry to stop")
    assert node.client().wait("web", "down", timeout=20) == "DONE"
    assert "web:srv: stopping pid" in node.log_text()


def test_a_unix_group_gives_the_gid(node):
    uid, _gid = needs_nobody()
    user_cltab(node, "web:srv:run:respawn:exec sleep 1000", ":::user:web:srv:nobody:root")
    node.start()
    node.settle("web", "run")
    (pid,) = wait_for(lambda: tagged(node, "srv"), what="srv")
    assert ids(pid) == [str(uid), "0"], "the UNIXGROUP as its gid"
    assert groups_of(pid) == sorted(os.getgrouplist("nobody", 0))


def test_a_directory_the_user_may_not_enter_fails_the_start_with_its_reason(node):
    needs_nobody()
    user_cltab(
        node,
        "web:locked:run:respawn:exec sleep 1002",
        ":::user:web:locked:nobody",
        "web:root:run:respawn:exec sleep 1003",
        directory=node.dir,  # under /tmp/pytest-of-root, root's alone
    )
    node.start()
    assert node.settle("web", "run") == "FAILED"
    assert f"web:locked: cannot start: cannot change to directory {node.dir} as nobody: Permission denied" in (
        node.log_text()
    )
    rows = {row.split("\t")[1]: row.split("\t") for row in node.clinit("-l", "web").stdout.splitlines()}
    assert rows["locked"][4] == "PAUSING" and "Permission denied" in rows["locked"][9], "tried again later"
    assert tagged(node, "locked") == [] and len(tagged(node, "root")) == 1


def test_a_changed_user_restarts_the_entry_at_the_next_tell(node):
    uid, _gid = needs_nobody()
    user_cltab(node, "web:srv:run:respawn:exec sleep 1000", ":::user:web:srv:nobody")
    node.start()
    node.settle("web", "run")
    (first,) = wait_for(lambda: tagged(node, "srv"), what="srv")
    assert ids(first)[0] == str(uid)
    user_cltab(node, "web:srv:run:respawn:exec sleep 1000")
    assert node.settle("web", "run") == "DONE"
    wait_for(lambda: not alive(first), what="the old one to stop")
    (second,) = wait_for(lambda: tagged(node, "srv"), what="srv again")
    assert ids(second)[0] == "0"


def plant(node, group, tag):
    """A process of user nobody that carries the node's marks for ``group:tag``; its Popen."""
    env = {
        "CLINIT_DAEMON": node.socket, "CLINIT_GROUP": group, "CLINIT_TAG": tag, "CLINIT_LEVEL": "run",
        node.mark.split("=", 1)[0]: node.mark.split("=", 1)[1],
    }
    return subprocess.Popen(["sleep", "1003"], env=env, user="nobody", group="nogroup", cwd="/",
                            start_new_session=True)


def test_after_kill_9_the_users_entry_is_adopted_not_duplicated(node):
    uid, _gid = needs_nobody()
    user_cltab(
        node,
        "web:srv:run:respawn:exec sleep 1000",
        ":::user:web:srv:nobody",
        "web:mine:run:respawn:exec sleep 1001",
    )
    node.start()
    assert node.settle("web", "run") == "DONE"
    (srv,) = wait_for(lambda: tagged(node, "srv"), what="srv")
    (mine,) = wait_for(lambda: tagged(node, "mine"), what="mine")
    stranger = plant(node, "web", "mine")  # another user's process with root's entry's marks
    try:
        wait_for(lambda: len(tagged(node, "mine")) == 2, what="the stranger")
        node.daemon.kill()
        node.daemon.wait(10)
        node.start()
        assert node.client().wait("web", "run", timeout=20) == "DONE"
        log = node.log_text()
        assert f"adopting web:srv: {srv} " in log and f"adopting web:mine: {mine} " in log
        assert f"not adopting pid {stranger.pid} (web:mine): it runs as uid {uid}" in log
        assert tagged(node, "srv") == [srv] and ids(srv)[0] == str(uid), "adopted, not started twice"
        assert node.starts("srv") == 1
        rows = {row.split("\t")[1]: row.split("\t") for row in node.clinit("-l", "web").stdout.splitlines()}
        assert rows["srv"][5] == str(srv) and rows["srv"][9] == "adopted" and rows["srv"][10] == "nobody"
        node.tell("web", "down")
        wait_for(lambda: not alive(srv) and not alive(mine), what="what was adopted to stop")
        assert node.client().wait("web", "down", timeout=20) == "DONE"
        assert stranger.poll() is None, "the stranger was never signalled"
    finally:
        stranger.kill()
        stranger.wait()


def children_of_this_process():
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii") as stream:
                    fields = stream.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.append(int(name))
    return found


def test_the_fork_path_says_what_failed_and_leaves_no_child(tmp_path):
    from cluster_init import forkexec

    needs_nobody()
    identity = users.lookup("nobody")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    before = children_of_this_process()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        with pytest.raises(SpawnError, match=r"^cannot exec /nonexistent/sh: No such file or directory$"):
            forkexec.spawn_as(identity, "/nonexistent/sh", ["sh"], {}, (null, null, null), "/")
        with pytest.raises(SpawnError, match=rf"^cannot change to directory {private} as nobody: Permission denied$"):
            forkexec.spawn_as(identity, "/bin/sh", ["sh", "-c", "true"], {}, (null, null, null), str(private))
        too_many = users.Identity("nobody", identity.uid, identity.gid, range(100000, 170000), "/")
        with pytest.raises(SpawnError, match=r"^cannot become nobody: "):
            forkexec.spawn_as(too_many, "/bin/sh", ["sh", "-c", "true"], {}, (null, null, null), "/")
    finally:
        os.close(null)
    assert children_of_this_process() == before, "a child that failed before its exec is reaped at once"
