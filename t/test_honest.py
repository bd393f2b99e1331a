"""Honest status (issue 18), through a real daemon and the clinit command.

A crash loop reads FAILED in clstat, -S and -w, and -w says why; a crash
loop that ends heals the group; wait entries that exited non-zero are
warnings.  (test_crashloop.py has the machines on the fake clock.)
"""

import os
import re

from daemon_rig import settings, wait_for


def crash_looping(node, *extra):
    node.write_cltab(settings(node, *extra) + "web:bad:run:respawn:exec /usr/bin/does-not-exist\n")
    node.start()
    return node.clinit("-w", "web", "run")


def test_w_fails_a_crash_loop_and_says_why(node):
    result = crash_looping(node)
    assert result.returncode == 1, result.stderr
    assert result.stdout == "web run FAILED\n"
    # FAILED at the fifth exit within 10 s; the guard holds it back at the sixth: which
    # one the answer tells depends on when the wait came
    assert re.fullmatch(r"clinit: web:bad: crash loop: (exited 5 times within 10 s"
                        r"|started 6 times in 0\.\d\d s), last exit 127(; held back, \d+ s left)?"
                        r"; last output: /bin/sh: 1: exec: /usr/bin/does-not-exist: not found\n", result.stderr), (
        result.stderr  # and the last line it printed, from its own output file (issue 19)
    )
    status = node.clinit("-S", "web", "run")
    assert (status.returncode, status.stdout) == (1, "web run FAILED\n")
    wait_for(lambda: "respawning too rapidly" in node.log_text(), what="the hold-back")
    (row,) = [line.split("\t") for line in node.clinit("-l", "web").stdout.splitlines()]
    assert row[4] == "PAUSING" and row[7] == "127"
    assert row[9].startswith("crash loop: started 6 times in ") and row[9].endswith(" s left"), row


def test_echo_and_exit_1_is_a_crash_loop_too(node):
    node.write_cltab(settings(node) + "web:bad:run:respawn:echo x; exit 1\n")
    node.start()
    result = node.clinit("-w", "web", "run")
    assert (result.returncode, result.stdout) == (1, "web run FAILED\n")
    assert re.search(r"web:bad: crash loop: (exited 5 times within 10 s|started 6 times in 0\.\d\d s), "
                     r"last exit 1", result.stderr), result.stderr


def test_a_crash_loop_that_ends_heals_the_group(node):
    need = os.path.join(node.dir, "need")
    node.write_cltab(settings(node, ":::respawn_hold:2")
                     + f"web:svc:run:respawn:test -e {need} || exit 2; exec sleep 100\n")
    node.start()
    result = node.clinit("-w", "web", "run")
    assert result.returncode == 1 and "last exit 2" in result.stderr
    open(need, "w").close()  # the cause is fixed: after the hold-back it stays up
    node.wait_status("web run DONE\n", timeout=10)
    status = node.clinit("-S", "web", "run")
    assert (status.returncode, status.stdout) == (0, "web run DONE\n")
    assert "web:svc: up for 1 s: no longer crash-looping" in node.log_text()


def test_restart_forgets_the_crash_loop(node):
    need = os.path.join(node.dir, "need")
    node.write_cltab(settings(node) + f"web:svc:run:respawn:test -e {need} || exit 2; exec sleep 100\n")
    node.start()
    assert node.clinit("-w", "web", "run").returncode == 1
    open(need, "w").close()
    result = node.clinit("-r", "web", "svc")
    assert result.returncode == 0, result.stderr
    node.wait_status("web run DONE\n", timeout=5)  # not 60 s of hold-back


def test_a_wait_entry_that_exits_non_zero_is_a_warning(node):
    node.write_cltab(settings(node) + "web:setup:run:wait:/usr/bin/does-not-exist\nweb:svc:run:respawn:exec sleep 100\n")
    node.start()
    result = node.clinit("-w", "web", "run")
    assert (result.returncode, result.stdout) == (0, "web run DONE\n"), result.stderr
    assert result.stderr == (
        "clinit: warning: web:setup: wait entry exited (exit 127)"
        "; last output: /bin/sh: 1: /usr/bin/does-not-exist: not found\n"  # its own file's last line
    )


def test_a_failed_test_says_its_exit(node):
    node.write_cltab(settings(node) + "web:chk:run:test:exit 3\n")
    node.start()
    result = node.clinit("-w", "web", "run")
    assert (result.returncode, result.stdout) == (1, "web run FAILED\n")
    assert result.stderr == "clinit: web:chk: test failed: exit 3\n"


def test_output_directories_are_made_at_each_spawn(node):
    """%g and %t may stand in a directory's name; each is made (0755) when an entry starts."""
    node.write_cltab(settings(node, ":::output:run/out/%g/%t.log") + "app:hello:run:wait:echo hello\n")
    node.start()
    result = node.clinit("-w", "app", "run")
    assert (result.returncode, result.stdout, result.stderr) == (0, "app run DONE\n", "")
    out = os.path.join(node.dir, "run", "out", "app")
    assert open(os.path.join(out, "hello.log")).read() == "hello\n"
    for directory in (os.path.dirname(out), out):
        assert os.stat(directory).st_mode & 0o7777 == 0o755
    assert os.stat(os.path.join(out, "hello.log")).st_mode & 0o777 == 0o640


def test_an_output_directory_that_cannot_be_made_fails_the_start_and_says_why(node):
    blocker = os.path.join(node.dir, "run")
    open(blocker, "w").close()  # a file where a directory should be
    node.write_cltab(settings(node, ":::output:run/out/%g.%t.log") + "app:hello:run:wait:echo hello\n")
    node.start()
    result = node.clinit("-w", "app", "run")
    assert (result.returncode, result.stdout) == (1, "app run FAILED\n")
    why = f"cannot start: cannot open output {node.dir}/run/out/app.hello.log: "
    assert result.stderr.startswith(f"clinit: app:hello: {why}"), result.stderr
    assert result.stderr.endswith(f"{blocker} is a regular file, not a directory\n")
    (row,) = [line.split("\t") for line in node.clinit("-l", "app").stdout.splitlines()]
    assert row[9].startswith(why)


def test_check_says_which_output_directories_do_not_exist_yet(node):
    node.write_cltab(settings(node, ":::output:run/out/%g/%t.log")
                     + "app:hello:run:wait:echo hello\napp:bye:run:wait:echo bye\ndb:main:run:once:true\n")
    os.makedirs(os.path.join(node.dir, "run", "out", "db"))
    result = node.clinit("--check")
    assert result.returncode == 0
    assert result.stderr == (
        f"clinit: note: output directory {node.dir}/run/out/app does not exist yet"
        " (the daemon makes it, mode 0755, when an entry starts)\n"
    )


# ---- a broken cltab never blocks: the last good copy beside clstat ----

def test_the_daemon_keeps_a_copy_of_the_last_cltab_it_applied(node):
    node.start()
    copy = node.clstat + ".cltab"
    assert open(copy).read() == open(node.cltab).read()
    assert os.stat(copy).st_mode & 0o777 == 0o600
    node.write_cltab(open(node.cltab).read() + "newgrp:new1:1:wait:true\n")
    assert node.clinit().returncode == 0  # a reread
    assert "newgrp:new1:1:wait:true" in open(copy).read()
    node.write_cltab(open(node.cltab).read() + "newgrp:new2:1:sometimes:true\n")
    assert node.clinit().returncode == 6
    assert "new2" not in open(copy).read(), "a refused cltab is never the last good one"


def test_a_daemon_started_on_a_refused_cltab_runs_on_the_copy_and_adopts(node):
    import signal

    from daemon_rig import tagged

    node.start()
    assert node.settle("pidgrp", "1") == "DONE"
    pids = wait_for(lambda: tagged(node, "pid1"), what="pid1")  # its shell and its sleep
    node.daemon.send_signal(signal.SIGKILL)  # a crash, while someone edits the cltab
    node.daemon.wait(10)
    good = open(node.cltab).read()
    node.write_cltab(good + "g:t:1:sometimes:true\n")
    node.start()
    first = f"{node.cltab}:{good.count(chr(10)) + 1}: unknown mode 'sometimes'"
    warning = f"cltab {node.cltab} refused ({first}"
    wait_for(lambda: warning in node.log_text(), what="the warning")
    assert f"running on the last good one, {node.clstat}.cltab" in node.daemon_stderr()
    assert "adopting pidgrp:pid1" in node.log_text()
    assert tagged(node, "pid1") == pids, "adopted, not started twice"
    result = node.clinit("-w", "pidgrp", "1")
    assert (result.returncode, result.stdout) == (0, "pidgrp 1 DONE\n")
    assert f"refused, acting on the last good one: {first}" in result.stderr
    assert node.clinit().returncode == 6
    node.write_cltab(good)
    assert node.clinit().returncode == 0, "the fixed file is taken again"


def test_without_a_usable_copy_a_refused_cltab_is_exit_6(node):
    node.start()
    node.shutdown()
    copy = node.clstat + ".cltab"
    assert os.path.exists(copy), "the copy outlives the daemon"
    good = open(node.cltab).read()
    node.write_cltab(good + "g:t:1:sometimes:true\n")
    if os.geteuid() == 0:  # as root, a copy others may write is not trusted
        os.chmod(copy, 0o620)
        result = node.clinit("-d")
        assert result.returncode == 6 and "unknown mode 'sometimes'" in result.stderr
        os.chmod(copy, 0o600)
    os.unlink(node.cltab)
    result = node.clinit("-d")
    assert result.returncode == 6 and "No such file" in result.stderr, "not configured: no old copy"


# ---- nothing marked is left behind ----

def test_k_w_leaves_nothing_an_entry_detached(node):
    """setsid sleep 3001 & in a respawn entry: one copy per start, all outside its process
    group; the default kill mode's stop does not reach them, the shutdown does."""
    import time

    from daemon_rig import tagged

    node.write_cltab(settings(node, ":::term_delay:1", ":::kill_delay:1")
                     + "web:daemonish:run:respawn:setsid sleep 3001 &\n"
                     + "web:stubborn:run:once:setsid sh -c 'trap \"\" INT TERM; sleep 3002' &\n")
    node.start()
    result = node.clinit("-w", "web", "run")
    assert result.returncode == 1 and "it detaches: run it in the foreground, or set :::kill_mode:all" in result.stderr
    copies = wait_for(lambda: len(tagged(node, "daemonish")) >= 6 and tagged(node, "daemonish"), what="the copies")
    assert "web:daemonish exits at once, and processes it started live on (pids " in node.log_text()
    stubborn = wait_for(lambda: tagged(node, "stubborn"), what="the stubborn one")
    began = time.monotonic()
    result = node.clinit("-k", "-w", "-t", "30")
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert tagged(node, "daemonish") == [] and tagged(node, "stubborn") == []
    assert took < 1 + 1 + 1 + 1.5, f"-k -w took {took:.1f} s: more than term_delay + kill_delay + 1 s"
    log = node.log_text()
    assert "which no entry's stop reaches, with SIGINT" in log
    assert f"{copies[0]} (web:daemonish)" in log and f"{stubborn[-1]} (web:stubborn)" in log
    assert "which no entry's stop reaches, with SIGKILL" in log, "the stubborn one took SIGKILL"
    node.daemon.wait(10)


def test_sigterm_sweeps_too(node):
    import signal

    from daemon_rig import tagged

    node.write_cltab(settings(node, ":::term_delay:1", ":::kill_delay:1")
                     + "web:bg:run:once:setsid sleep 3003 &\n")
    node.start()
    assert node.settle("web", "run") == "DONE"
    wait_for(lambda: tagged(node, "bg"), what="the detached sleep")
    node.daemon.send_signal(signal.SIGTERM)
    assert node.daemon.wait(10) == 0
    assert tagged(node, "bg") == []


def test_a_refused_cltab_is_said_also_when_the_tell_fails(node):
    """A group added with a typo: the daemon does not know it, and says why."""
    import warnings

    from cluster_init import ClinitWarning

    node.start()
    node.write_cltab(open(node.cltab).read() + "newgrp:new1:run:sometimes:true\n")
    result = node.clinit("newgrp", "run")
    assert result.returncode == 1
    assert result.stderr.startswith(f"clinit: warning: cltab {node.cltab} refused, acting on the last good one: ")
    assert result.stderr.endswith("clinit: no such group: newgrp\n")
    with warnings.catch_warnings(record=True) as caught:  # the API issues it too
        warnings.simplefilter("always")
        assert node.client().tell("pidgrp", "1") == "level transition started"
    assert [w.category for w in caught] == [ClinitWarning]
    assert "refused, acting on the last good one" in str(caught[0].message)


def test_a_detached_daemon_says_it_runs_on_the_copy(node):
    node.start()
    node.shutdown()
    node.write_cltab(open(node.cltab).read() + "g:t:1:sometimes:true\n")
    result = node.clinit("-d", "-b", "-p", os.path.join(node.dir, "pid"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"clinit: warning: {node.cltab} refused: running on the last good one,"
                                    f" {node.clstat}.cltab:\n")
    assert "unknown mode 'sometimes'" in result.stderr
    assert node.clinit("-k", "-w", "-t", "30").returncode == 0
