"""Honest status (issue 18), through a real daemon and the clinit command.

A crash loop reads FAILED in clstat, -S and -w, and -w says why; a crash
loop that ends heals the group; wait entries that exited non-zero are
warnings.  (test_crashloop.py has the machines on the fake clock.)
"""

import os

from daemon_rig import settings, wait_for


def crash_looping(node, *extra):
    node.write_cltab(settings(node, *extra) + "web:bad:run:respawn:exec /usr/bin/does-not-exist\n")
    node.start()
    return node.clinit("-w", "web", "run")


def test_w_fails_a_crash_loop_and_says_why(node):
    result = crash_looping(node)
    assert result.returncode == 1, result.stderr
    assert result.stdout == "web run FAILED\n"
    assert result.stderr == "clinit: web:bad: crash loop: exited 5 times within 10 s, last exit 127\n"
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
    assert "web:bad: crash loop: exited 5 times within 10 s, last exit 1" in result.stderr


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
    assert result.stderr == "clinit: warning: web:setup: wait entry exited (exit 127)\n"


def test_a_failed_test_says_its_exit(node):
    node.write_cltab(settings(node) + "web:chk:run:test:exit 3\n")
    node.start()
    result = node.clinit("-w", "web", "run")
    assert (result.returncode, result.stdout) == (1, "web run FAILED\n")
    assert result.stderr == "clinit: web:chk: test failed: exit 3\n"
