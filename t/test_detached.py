"""The detached daemon (clinit -d -b) and what its children get.

Children of a -b daemon have stdin on /dev/null and stdout and stderr
open (the log, or the :::output: file), run in the directory clinit -d
was started from, with the umask it was started with.
"""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

from daemon_rig import CHECKOUT, CLINIT, LIB, marked_pids, settings, wait_for
from realproc import alive


def detach(node, *args, cwd=None, umask=None):
    """clinit -d -b on the node's cltab; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, CLINIT, "-c", node.cltab, "-d", "-b", "-p", os.path.join(node.dir, "pid"), *args],
        cwd=cwd or node.dir, env=node.env(), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60, umask=-1 if umask is None else umask,
    )


def read(path):
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def test_a_detached_daemons_children_write_to_their_own_files_beside_the_log(node):
    fds = os.path.join(node.dir, "fds")
    node.write_cltab(settings(node) + (
        "printer:hello:1:test:echo hello from a test entry\n"
        f'printer:fds:1:wait:x=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); echo "$x" > {fds}; echo to stderr >&2\n'
    ))
    result = detach(node)
    assert result.returncode == 0, result.stderr
    assert node.clinit("-w", "printer", "1").stdout == "printer 1 DONE\n"
    own = os.path.join(node.dir, "printer.fds.log")
    assert read(fds).split() == ["/dev/null", own, own], "%g.%t.log in the log's directory"
    assert read(own) == "to stderr\n"
    assert read(os.path.join(node.dir, "printer.hello.log")) == "hello from a test entry\n"
    log = node.log_text()
    lines = log.splitlines()
    assert "hello from a test entry" not in lines and "to stderr" not in lines, "the log is the daemon's alone"
    assert "printer:hello: started pid" in log and "printer:hello: pid" in log, "it says when each started and ended"
    assert stat.S_IMODE(os.stat(node.log).st_mode) == 0o640, "the log lists every command line"
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o640


def test_a_test_entry_that_prints_passes_under_b(node):
    node.write_cltab(settings(node) + "printer:hello:t:test:echo hello\n")
    assert detach(node).returncode == 0
    result = node.clinit("-w", "printer", "t")
    assert (result.returncode, result.stdout) == (0, "printer t PASSED\n")


def test_output_setting_gives_each_entry_its_file(node):
    out = os.path.join(node.dir, "out.d")
    os.mkdir(out)
    node.write_cltab(settings(node, f":::output:{out}/%g.%t.log") + (
        "web:one:1:wait:echo one; echo oops >&2\n"
        "web:two:1:wait:echo two\n"
        "web:a/b:1:wait:echo slash\n"
    ))
    assert detach(node).returncode == 0
    assert node.clinit("-w", "web", "1").returncode == 0
    assert read(f"{out}/web.one.log") == "one\noops\n"
    assert read(f"{out}/web.two.log") == "two\n"
    assert read(f"{out}/web.a_b.log") == "slash\n", "a slash in a name never reaches another directory"
    assert "one\n" not in node.log_text()
    assert node.clinit("-w", "web", "1").returncode == 0  # nothing reruns; a new level appends
    node.write_cltab(settings(node, f":::output:{out}/%g.%t.log") + "web:one:2:wait:echo again\n")
    assert node.clinit("-w", "web", "2").returncode == 0
    assert read(f"{out}/web.one.log") == "one\noops\nagain\n", "opened for append"


def test_a_foreground_daemon_off_a_terminal_gives_each_entry_its_file(node):
    node.write_cltab(settings(node) + "printer:hello:1:wait:echo hello on stdout\n")
    node.start()  # its standard output is a file: as under systemd or init, not a terminal
    assert node.settle("printer", "1") == "DONE"
    assert read(os.path.join(node.dir, "printer.hello.log")) == "hello on stdout\n"
    assert "hello on stdout" not in node.daemon_stderr()


def test_entries_run_where_clinit_d_was_started_with_its_umask(node):
    elsewhere = os.path.join(node.dir, "elsewhere")
    os.mkdir(elsewhere)
    node.write_cltab(settings(node) + "where:pwd:1:wait:pwd > where.out; umask >> where.out\n")
    assert detach(node, cwd=elsewhere, umask=0o027).returncode == 0
    assert node.clinit("-w", "where", "1").returncode == 0
    assert read(os.path.join(elsewhere, "where.out")) == f"{elsewhere}\n0027\n"


def test_directory_setting_overrides(node):
    chosen = os.path.join(node.dir, "chosen")
    os.mkdir(chosen)
    node.write_cltab(settings(node, ":::directory:chosen") + "where:pwd:1:wait:pwd > where.out\n")
    assert detach(node).returncode == 0
    assert node.clinit("-w", "where", "1").returncode == 0
    assert read(os.path.join(chosen, "where.out")) == f"{chosen}\n", "relative to where clinit -d started"


def test_a_directory_that_is_missing_fails_the_entry_with_a_reason(node):
    node.write_cltab(settings(node, f":::directory:{node.dir}/nowhere") + "where:pwd:1:wait:pwd\n")
    assert detach(node).returncode == 0
    assert node.clinit("-w", "where", "1").stdout == "where 1 FAILED\n"
    assert f"cannot change to directory {node.dir}/nowhere: No such file or directory" in node.log_text()


def test_relative_settings_resolve_once(node):
    """Under -b the daemon sits in /: a reread must not take run/... as /run/..."""
    shutil.copy(node.cltab, node.cltab + ".orig")
    node.write_cltab(":::socket:clinit.s\n:::clstat:clstat\n:::log:clinitlog\ng:t:1:wait:true\n")
    assert detach(node).returncode == 0
    assert node.clinit("-w", "g", "1").returncode == 0
    with open(node.cltab, "a", encoding="utf-8") as stream:
        stream.write("g:u:1:wait:true\n")
    assert node.clinit("-w", "g", "1").returncode == 0
    assert "reread: 2 entries" in node.log_text()
    assert "changed to" not in node.log_text()


def test_readme_api_example_from_a_checkout(node, monkeypatch):
    """README: ClusterInit(cltab="cltab.example"), tell, wait -> DONE, run from the checkout's directory."""
    shutil.copy(os.path.join(CHECKOUT, "cltab.example"), os.path.join(node.dir, "cltab.example"))
    monkeypatch.chdir(node.dir)
    monkeypatch.setenv(*node.mark.split("=", 1))
    code = (
        "from cluster_init import ClusterInit\n"
        "client = ClusterInit(cltab='cltab.example')\n"
        "client.tell('demo', 'up')\n"
        "print(client.wait('demo', 'up'))\n"
        "print(client.status(group='demo'), end='')\n"
        "client.shutdown()\n"
    )
    env = {k: v for k, v in node.env().items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {LIB!r})\n" + code],
        cwd=node.dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "DONE\nup DONE\n"
    assert os.path.exists(os.path.join(node.dir, "run", "www", "started")), "relative to the caller's directory"
    wait_for(lambda: not marked_pids(node.mark), what="everything to stop")


def test_example_cltab_detached_from_a_checkout(node):
    shutil.copy(os.path.join(CHECKOUT, "cltab.example"), os.path.join(node.dir, "cltab.example"))
    node.cltab = os.path.join(node.dir, "cltab.example")
    result = detach(node)
    assert result.returncode == 0, result.stderr
    result = node.clinit("-w", "demo", "up")
    assert (result.returncode, result.stdout) == (0, "demo up DONE\n")
    assert node.clinit("-k", "-w", "-t", "30").returncode == 0
    wait_for(lambda: not marked_pids(node.mark), what="everything to stop")


def test_a_stale_pidfile_naming_another_program_is_replaced(node):
    pidfile = os.path.join(node.dir, "pid")
    other = subprocess.Popen(["sleep", "60"])
    try:
        with open(pidfile, "w") as stream:
            stream.write(f"{other.pid}\n")
        result = detach(node)
        assert result.returncode == 0, result.stderr
        assert int(read(pidfile)) != other.pid and alive(other.pid)
        again = detach(node)
        assert again.returncode == 1 and "already" in again.stderr, "a live clinit is still refused"
    finally:
        other.kill()
        other.wait()


def test_missing_python_daemon_says_so(node):
    env = dict(node.env(), PYTHONPATH=LIB)
    result = subprocess.run(
        [sys.executable, "-S", CLINIT, "-c", node.cltab, "-d", "-b"], env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 5, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "-b needs the Python package python-daemon" in result.stderr
    assert "pip install python-daemon" in result.stderr


def test_foreground_daemon_and_client_need_neither_package(node):
    env = dict(node.env(), PYTHONPATH=LIB)
    node.start([sys.executable, "-S", CLINIT, "-d", "-c", node.cltab])
    result = subprocess.run(
        [sys.executable, "-S", CLINIT, "-c", node.cltab, "-w", "scramjet", "1"], env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "scramjet 1 DONE\n"), result.stderr


def test_sighup_reopens_the_log(node):
    node.start()
    node.settle("scramjet", "1")
    os.rename(node.log, node.log + ".1")
    node.daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(node.log), what="a new log")
    assert stat.S_IMODE(os.stat(node.log).st_mode) == 0o640
    node.settle("hellogrp", "1")
    assert "hellogrp:hello1: started" in node.log_text()
    assert "hellogrp:hello1: started" not in read(node.log + ".1")


def test_b_says_why_it_cannot_have_its_pid_file(node):
    """As an ordinary user with the default pid file under /var/run: a message, not a traceback."""
    from as_user import nobody, run_as
    from cluster_init import cli

    uid, gid = nobody()
    public = tempfile.mkdtemp(prefix="clinit-public-")
    try:
        os.chmod(public, 0o755)
        os.chown(public, uid, gid)
        cltab = os.path.join(public, "cltab")
        with open(cltab, "w") as stream:
            stream.write(f":::socket:{public}/s\n:::clstat:{public}/clstat\n:::log:{public}/log\ng:t:1:wait:true\n")
        code, _out, err = run_as(uid, gid, cli.main, ["-c", cltab, "-d", "-b"])
        assert code == 1, err
        assert "Traceback" not in err
        assert "Permission denied (set -p or :::pidfile:)" in err, err
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_b_refuses_to_detach_when_its_log_cannot_be_written(node):
    """Under -b nobody sees what the daemon says later: a log it cannot open stops it now."""
    blocker = os.path.join(node.dir, "afile")
    open(blocker, "w").close()
    node.write_cltab(settings(node).replace(node.log, f"{blocker}/log") + "g:t:1:once:true\n")
    result = detach(node)
    assert result.returncode == 1
    assert f"cannot create {blocker} for the log: " in result.stderr or f"cannot open the log {blocker}/log" in result.stderr
    assert not os.path.exists(node.socket)


def test_a_start_failure_shows_in_the_listing(node):
    node.write_cltab(settings(node, f":::directory:{node.dir}/nowhere") + "where:pwd:1:wait:pwd\n")
    node.start()
    assert node.settle("where", "1") == "FAILED"
    (row,) = [line.split("\t") for line in node.clinit("-l").stdout.splitlines()]
    assert row[9] == f"cannot start: cannot change to directory {node.dir}/nowhere: No such file or directory"


def test_an_output_path_that_is_a_fifo_never_blocks_the_daemon(node):
    out = os.path.join(node.dir, "out.d")
    os.mkdir(out)
    os.mkfifo(os.path.join(out, "w.job.log"))  # what another user could plant in a shared directory
    node.write_cltab(settings(node, f":::output:{out}/%g.%t.log") + "w:job:up:wait:echo hello\n")
    node.start()
    assert node.settle("w", "up") == "FAILED"
    assert node.client().ping().startswith("clinit "), "still serving"
    assert "cannot open output" in node.log_text()


def test_an_output_file_someone_else_created_is_not_written(node):
    from as_user import nobody

    uid, gid = nobody()
    out = os.path.join(node.dir, "out.d")
    os.mkdir(out)
    planted = os.path.join(out, "w.job.log")
    with open(planted, "w"):
        pass
    os.chown(planted, uid, gid)
    os.chmod(planted, 0o666)
    node.write_cltab(settings(node, f":::output:{out}/%g.%t.log") + "w:job:up:wait:echo SECRET\n")
    node.start()
    assert node.settle("w", "up") == "FAILED"
    assert read(planted) == ""
    assert f"owned by uid {uid}, not by us" in node.log_text()


def test_dot_names_stay_in_the_output_directory(node):
    from cluster_init.cltab import Entry
    from cluster_init.context import output_path

    assert output_path("/o/%g/%t.log", Entry("..", ".", "1", "wait", "true")) == "/o/__/_.log"
    assert output_path("/o/%g.%t.log", Entry("..", "a/b", "1", "wait", "true")) == "/o/__.a_b.log"


def test_a_respawn_entry_whose_directory_went_away_fails_its_group_and_tries_again(node):
    workdir = os.path.join(node.dir, "wd")
    os.mkdir(workdir)
    node.write_cltab(settings(node, f":::directory:{workdir}", ":::respawn_hold:1",
                              # a service that exits every 0.3 s without crash-looping
                              ":::start_seconds:0.1", ":::respawn_window:0.1", ":::start_limit_burst:0")
                     + "r:svc:up:respawn:sleep 0.3\n")
    node.start()
    assert node.settle("r", "up") == "DONE"
    os.rmdir(workdir)
    node.wait_status("up FAILED\n", group="r")
    assert "r:svc: trying again in 1 seconds" in node.log_text()
    starts = node.log_text().count("r:svc: started pid")
    os.mkdir(workdir)
    wait_for(lambda: node.log_text().count("r:svc: started pid") > starts, what="the entry to run again")
    node.wait_status("up DONE\n", group="r")  # up again: this kind of FAILED heals (issue 18)
