"""Port of 47reread.t: the cltab rewritten while the daemon runs."""

import os

from cltab_master import master_cltab
from daemon_rig import alive, settings, wait_for


def test_reread(node):
    node.start()
    node.tell("pidgrp", "1")
    pid = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]), what="pid1")
    assert alive(pid)

    node.write_cltab(settings(node) + "scram:scram2:1:wait:sleep 1\n")
    assert node.settle("scram", "1") == "DONE"
    wait_for(lambda: not alive(pid), what="pidgrp, gone from the cltab, to stop")
    wait_for(lambda: "pidgrp" not in node.status(), what="pidgrp to leave clstat")
    assert node.status() == "scram 1 DONE\n"
    assert "group pidgrp left the cltab: halting it" in node.log_text()
    assert "pidgrp:pid1: stopping pid" in node.log_text() and "with SIGINT" in node.log_text()
    assert node.starts("pid1") == 1, "not restarted"

    node.write_cltab(master_cltab(node.dir))
    node.tell("pidgrp", "1")
    new = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]) != pid and int(node.out_lines()[-1]), what="a new pid1")
    assert alive(new)


def test_reread_on_sighup_and_on_request(node):
    import signal

    node.start()
    text = open(node.cltab).read()
    node.write_cltab(text + "newgrp:new1:1:wait:true\n")
    node.daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "reread: 23 entries" in node.log_text(), what="the SIGHUP reread")
    node.write_cltab(text + "newgrp:new1:1:wait:true\nnewgrp:new2:1:wait:true\n")
    result = node.clinit()  # no arguments: reread
    assert result.returncode == 0, result.stderr
    assert "reread: 24 entries" in node.log_text()
    assert node.client().reread() == "cltab unchanged"
    assert node.settle("newgrp", "1") == "DONE"
    assert node.starts("new2") == 1


def test_broken_cltab_is_refused_and_the_last_good_one_kept(node):
    node.start()
    good = open(node.cltab).read()
    node.write_cltab(good + "badgrp:bad1:1:sometimes:true\nbadgrp:hello1:1:wait:true\n")
    first_bad = good.count("\n") + 1
    result = node.clinit()  # a reread: refused, every problem named
    assert result.returncode == 6, "the cltab was refused"
    assert "cltab refused; still using the last good one" in result.stderr
    assert f"{node.cltab}:{first_bad}: unknown mode 'sometimes'" in result.stderr
    assert f"{node.cltab}:{first_bad + 1}: duplicate tag 'hello1'" in result.stderr
    # a broken cltab never blocks a tell (issue 18): the last good one is acted on
    result = node.clinit("hellogrp", "1")
    assert result.returncode == 0
    assert f"cltab {node.cltab} refused, acting on the last good one: {node.cltab}:{first_bad}: unknown mode" in result.stderr
    node.wait_status("hellogrp 1 DONE\n")
    assert node.log_text().count("cltab refused") == 1
    os.replace(node.cltab, node.cltab + ".broken")
    node.write_cltab(good)
    assert node.settle("hellogrp", "1") == "DONE", "the daemon went on, and takes the fixed cltab"
