"""contrib/inittab: one well-formed line that runs clinit -d in the foreground.

The line's process field is run the way init(8) runs it (it holds shell
characters, so /bin/sh -c "exec ..."), with the checkout's clinit and a
temporary cltab and output file put in for the installed paths.
"""

import os
import re
import shlex
import signal
import sys

from daemon_rig import CHECKOUT, CLINIT, wait_for
from realproc import alive

INITTAB = os.path.join(CHECKOUT, "contrib", "inittab")
INSTALLED = "/usr/local/bin/clinit"
OUTPUT = "/var/log/clinit/clinit.out"


def entries():
    with open(INITTAB, encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream if line.strip() and not line.startswith("#")]


def the_entry():
    lines = entries()
    assert len(lines) == 1, lines
    ident, levels, action, process = lines[0].split(":", 3)
    return ident, levels, action, process


def test_inittab_line():
    ident, levels, action, process = the_entry()
    assert re.fullmatch(r"[A-Za-z0-9]{1,4}", ident), "inittab ids are 1 to 4 characters"
    assert levels and set(levels) <= set("0123456789ABCabcSs")
    assert not set(levels) & set("016"), "not in halt, single user or reboot"
    assert action == "respawn"
    words = shlex.split(process)
    assert words[0] == INSTALLED and words[1] == "-d" and "-b" not in words, words
    assert OUTPUT in process


def init_argv(process):
    """What init(8) execs for a process field with shell characters in it."""
    assert re.search(r"[~`!$^&*()=|\\{}\[\];\"'<>?]", process), "init would exec it directly"
    return ["/bin/sh", "-c", "exec " + process]


def test_inittab_line_runs_the_daemon_in_the_foreground(node):
    output = os.path.join(node.dir, "clinit.out")
    wrapper = os.path.join(node.dir, "clinit-wrapper")
    with open(wrapper, "w", encoding="utf-8") as stream:
        stream.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(CLINIT)} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    node.write_cltab("\n".join([
        f":::socket:{node.socket}",
        f":::clstat:{node.clstat}",
        f":::log:{node.log}",
        ":::term_delay:1",
        ":::kill_delay:1",
        "hello:say:run:wait:echo hello from $CLINIT_TAG",
        f"hello:stay:run:once:echo $$ > {node.dir}/stay.pid; exec sleep 300",
    ]) + "\n")
    _, _, _, process = the_entry()
    assert process.count(f"{INSTALLED} -d") == 1 and process.count(OUTPUT) == 1
    process = process.replace(f"{INSTALLED} -d", f"{wrapper} -d -c {node.cltab}")
    process = process.replace(OUTPUT, output)

    for _ in range(2):  # init starts it, it dies, init starts it again
        daemon = node.start(init_argv(process))
        assert f"pid {daemon.pid}" in node.client().ping(), "the process init started is the daemon"
        assert node.clinit("-w", "-t", "20", "hello", "run").returncode == 0
        said = os.path.join(node.dir, "hello.say.log")  # its own file, in the log's directory
        wait_for(lambda: os.path.exists(said) and "hello from say" in open(said).read(), what="the child's output")
        assert "hello from say" not in open(output).read(), "the daemon's own output is its own"
        daemon.kill()
        daemon.wait(10)

    # at a runlevel change init sends SIGTERM: every group halts, the daemon exits
    daemon = node.start(init_argv(process))
    assert node.clinit("-w", "-t", "20", "hello", "run").returncode == 0
    stay = int(open(os.path.join(node.dir, "stay.pid")).read())
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert not alive(stay)


def test_with_a_boot_line_the_inittab_line_brings_the_group_up_and_sigterm_down(node):
    output = os.path.join(node.dir, "clinit.out")
    wrapper = os.path.join(node.dir, "clinit-wrapper")
    with open(wrapper, "w", encoding="utf-8") as stream:
        stream.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(CLINIT)} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    node.write_cltab("\n".join([
        f":::socket:{node.socket}",
        f":::clstat:{node.clstat}",
        f":::log:{node.log}",
        ":::term_delay:1",
        ":::kill_delay:1",
        ":::boot:hello:run",
        f"hello:stay:run:respawn:echo $$ > {node.dir}/stay.pid; exec sleep 300",
    ]) + "\n")
    _, _, _, process = the_entry()
    process = process.replace(f"{INSTALLED} -d", f"{wrapper} -d -c {node.cltab}").replace(OUTPUT, output)
    daemon = node.start(init_argv(process))
    assert node.client().wait("hello", "run", timeout=20) == "DONE", "no tell: its boot level"
    path = os.path.join(node.dir, "stay.pid")
    stay = int(wait_for(lambda: os.path.exists(path) and open(path).read().strip(), what="stay.pid"))
    daemon.send_signal(signal.SIGTERM)  # init's stop
    assert daemon.wait(15) == 0
    assert not alive(stay)
