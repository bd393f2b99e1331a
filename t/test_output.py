"""One entry's output: where it goes, clinit --output (-n, -f), and -l's last line.

Real daemons and children.  Without :::output:, a daemon whose standard
output is a terminal lets its children write there; otherwise each entry
writes to its own file %g.%t.log in the log's directory.  clinit --output
asks the daemon which file, and reads it; -f follows it through a pipe
and across logrotate's copytruncate until Ctrl-C.
"""

import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from cluster_init import cli
from cluster_init.cli_output import follow, tail_start
from cluster_init.outputs import clean, last_line
from daemon_rig import CLINIT, settings, wait_for

TICKER = 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'


def detach(node, *extra_settings, entries=""):
    node.write_cltab(settings(node, f":::pidfile:{node.dir}/pid", *extra_settings) + entries)
    result = node.clinit("-d", "-b")
    assert result.returncode == 0, result.stderr


def read(path):
    with open(path, encoding="utf-8") as stream:
        return stream.read()


class Lines:
    """The lines a process writes to a pipe, each waited for with a deadline."""

    def __init__(self, pipe, timeout=10.0):
        self.fd = pipe.fileno()
        self.timeout = timeout
        self.buffer = b""

    def next(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.fd], [], [], left)[0], "no line within the deadline"
            chunk = os.read(self.fd, 4096)
            assert chunk, "the pipe closed"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def tick(self):
        return int(self.next().split()[1])


def test_detached_without_output_setting_each_entry_has_its_file_and_output_prints_its_end(node):
    detach(node, entries="web:count:1:wait:seq 1 25; echo oops >&2\nweb:quiet:1:wait:true\n")
    assert node.clinit("-w", "web", "1").returncode == 0
    result = node.clinit("--output", "web", "count")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"{n}\n" for n in range(17, 26)) + "oops\n", "the last 10 lines, stderr too"
    assert node.clinit("--output", "-n", "2", "web", "count").stdout == "25\noops\n"
    assert node.clinit("--output", "-n", "0", "web", "count").stdout == ""
    assert node.clinit("--output", "-n", "100", "web", "count").stdout == read(f"{node.dir}/web.count.log")
    quiet = node.clinit("--output", "web", "quiet")
    assert (quiet.returncode, quiet.stdout) == (0, ""), "an entry that printed nothing: nothing"
    assert os.path.getsize(f"{node.dir}/web.quiet.log") == 0


def test_output_setting_is_where_output_reads(node):
    os.mkdir(f"{node.dir}/out")
    detach(node, f":::output:{node.dir}/out/%t-of-%g", entries="web:hello:1:wait:echo hello; echo there\n")
    assert node.clinit("-w", "web", "1").returncode == 0
    assert read(f"{node.dir}/out/hello-of-web") == "hello\nthere\n"
    assert not os.path.exists(f"{node.dir}/web.hello.log")
    assert node.clinit("--output", "-n", "1", "web", "hello").stdout == "there\n"


def test_output_of_what_does_not_exist(node):
    detach(node, entries="web:hello:1:wait:echo hello\n")
    result = node.clinit("--output", "web", "nosuch")
    assert (result.returncode, result.stderr) == (1, "clinit: no such entry: web:nosuch\n")
    result = node.clinit("--output", "nosuch", "hello")
    assert (result.returncode, result.stderr) == (1, "clinit: no such group: nosuch\n")
    result = node.clinit("--output", "web", "hello")
    assert result.returncode == 0 and "web:hello has printed nothing yet" in result.stderr, "never started"
    assert node.clinit("--output", "web").returncode == 2
    assert node.clinit("-n", "3", "web", "1").returncode == 2, "-n goes with --output"
    node.write_cltab(open(node.cltab).read() + f"web:fifo:1:wait:true\n:::output:{node.dir}/%t.out\n")
    os.mkfifo(f"{node.dir}/fifo.out")
    node.clinit("web", "1")
    result = node.clinit("--output", "web", "fifo")
    assert result.returncode == 1 and "is not a regular file" in result.stderr, "a FIFO is never waited on"


def test_follow_through_a_pipe_across_copytruncate_until_ctrl_c(node):
    detach(node, entries=f"tick:tock:1:respawn:{TICKER}\n")
    assert node.clinit("-w", "tick", "1").returncode == 0
    path = f"{node.dir}/tick.tock.log"
    wait_for(lambda: os.path.getsize(path) > 0, what="the first tick")
    follower = subprocess.Popen(
        [sys.executable, CLINIT, "-c", node.cltab, "--output", "-f", "-n", "1", "tick", "tock"],
        env=node.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        lines = Lines(follower.stdout)
        seen = [lines.tick() for _ in range(5)]
        assert seen == list(range(seen[0], seen[0] + 5)), "each line as it is written, through a pipe"
        while os.path.getsize(path) < 400:  # long enough that a follower lost at the old offset would skip
            seen.append(lines.tick())
        shutil.copyfile(path, path + ".1")  # logrotate's copytruncate
        with open(path, "r+b") as stream:
            stream.truncate(0)
        copied = int(read(path + ".1").split()[-1])
        while seen[-1] < copied + 20:  # the ticker goes on at the start of the emptied file, and so do we
            seen.append(lines.tick())
        gaps = [b - a for a, b in zip(seen, seen[1:])]
        assert max(gaps) <= 4 and min(gaps) == 1, f"lines skipped or repeated across the truncation: {seen}"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 130
        errors = follower.stderr.read().decode()
        assert errors.splitlines() == [
            f"clinit: {path} was truncated; following it from its start",
            "clinit: interrupted while following the output of tick:tock; the daemon goes on",
        ], errors
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        follower.stdout.close()
        follower.stderr.close()
    assert node.clinit("-S", "tick", "1").returncode == 0, "the daemon goes on"


def test_follow_ends_quietly_when_its_reader_goes(node):
    detach(node, entries=f"tick:tock:1:respawn:{TICKER}\n")
    assert node.clinit("-w", "tick", "1").returncode == 0
    result = subprocess.run(
        f"{sys.executable} {CLINIT} -c {node.cltab} --output -f tick tock | head -n 3",
        shell=True, env=node.env(), capture_output=True, text=True, timeout=30,
    )
    assert len(result.stdout.splitlines()) == 3 and result.stderr == "", result.stderr


def test_follow_waits_for_a_file_and_for_a_replaced_one(tmp_path):
    path = str(tmp_path / "out.log")
    written = []

    def write(data):
        written.append(data)

    steps = iter([
        lambda: open(path, "w").write("one\n"),
        lambda: open(path, "a").write("two\n"),
        lambda: (os.rename(path, path + ".1"), open(path, "w").write("three\n")),
        lambda: None,
    ])

    def sleep(_seconds):
        step = next(steps, None)
        if step is None:
            raise KeyboardInterrupt
        step()

    with pytest.raises(KeyboardInterrupt):
        follow(path, None, 0, write, sleep=sleep)
    assert b"".join(written) == b"one\ntwo\nthree\n"


def test_tail_start_finds_the_last_lines(tmp_path):
    path = tmp_path / "f"
    for content, count, expected in [
        (b"a\nb\nc\n", 2, b"b\nc\n"), (b"a\nb\nc", 2, b"b\nc"), (b"a\nb\n", 5, b"a\nb\n"),
        (b"", 3, b""), (b"\n\n\n", 2, b"\n\n"), (b"x" * 200000 + b"\ny\n", 1, b"y\n"),
        (b"x" * 200000 + b"\ny\n", 2, b"x" * 200000 + b"\ny\n"),
    ]:
        path.write_bytes(content)
        fd = os.open(path, os.O_RDONLY)
        try:
            start = tail_start(fd, len(content), count)
        finally:
            os.close(fd)
        assert content[start:] == expected, (content[:20], count)


def test_on_a_terminal_children_write_where_the_daemon_writes(node):
    node.write_cltab(settings(node) + "web:hello:1:wait:echo hello on the terminal\n")
    master, slave = os.openpty()
    try:
        node.daemon = subprocess.Popen(
            [sys.executable, CLINIT, "-d", "-c", node.cltab], cwd=node.dir, env=node.env(),
            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
        )
        os.close(slave)
        slave = None
        wait_for(lambda: node.client().alive(), what="the daemon")
        assert node.settle("web", "1") == "DONE"
        seen = b""
        deadline = time.monotonic() + 10
        while b"hello on the terminal" not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        assert b"hello on the terminal" in seen
        assert not os.path.exists(f"{node.dir}/web.hello.log")
        result = node.clinit("--output", "web", "hello")
        assert result.returncode == 1 and "writes where the daemon writes" in result.stderr
        assert "set :::output:" in result.stderr
        node.shutdown()
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


def test_list_shows_the_last_line_without_control_characters(node):
    detach(node, entries=(
        "show:color:1:wait:printf 'first\\nlast \\033[31mred\\033[0m\\tand tab\\n\\n'\n"
        "show:bar:1:wait:printf '10%%\\r50%%\\r100%% done\\n'\n"
        "show:none:1:wait:true\n"
    ))
    assert node.clinit("-w", "show", "1").returncode == 0
    rows = {line.split("\t")[1]: line.split("\t") for line in node.clinit("-l", "show").stdout.splitlines()}
    assert rows["color"][11] == "last red and tab"
    assert rows["bar"][11] == "100% done", "what the carriage returns left on the screen"
    assert rows["none"][11] == "-"
    assert rows["color"][10] == "-", "runs as the daemon's user"


def test_clean_and_last_line(tmp_path):
    assert clean("a\x1b]0;title\x07b\x00c\u202ed\x7f") == "abcd"
    assert clean("x" * 500).endswith("...") and len(clean("x" * 500)) == 160
    path = tmp_path / "out"
    path.write_bytes(b"one\n" + b"y" * 10000 + b"\n\n  \n")
    assert last_line(str(path)) == clean("y" * 4000), "the end of a line longer than what is read"
    path.write_bytes(b"\xff\xfeok\n")
    assert last_line(str(path)) == "\ufffd\ufffdok"
    assert last_line(str(tmp_path / "missing")) is None
    os.mkfifo(tmp_path / "fifo")
    assert last_line(str(tmp_path / "fifo")) is None, "never waits on a FIFO"


def public_dir():
    directory = tempfile.mkdtemp(prefix="clinit-output-", dir="/tmp")
    os.chmod(directory, 0o755)
    return directory


def test_the_socket_group_may_read_the_output(node):
    from as_user import nobody, run_as

    uid, gid = nobody()
    public = public_dir()
    try:
        cltab = os.path.join(public, "cltab")
        with open(cltab, "w", encoding="utf-8") as stream:
            stream.write(
                f":::socket:{public}/s\n:::clstat:{public}/clstat\n:::log:{public}/log\n"
                f":::pidfile:{public}/pid\n:::socket_group:{gid}\n"
                "web:hello:1:wait:echo hello, group\n"
            )
        os.chmod(cltab, 0o644)
        node.cltab = cltab
        result = node.clinit("-d", "-b")
        assert result.returncode == 0, result.stderr
        assert node.clinit("-w", "web", "1").returncode == 0
        info = os.stat(f"{public}/web.hello.log")
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o640)
        code, out, err = run_as(uid, gid, cli.main, ["-c", cltab, "--output", "web", "hello"])
        assert (code, out) == (0, "hello, group\n"), err
        code, out, err = run_as(uid, uid + 1 if uid + 1 != gid else uid + 2, cli.main,
                                ["-c", cltab, "--output", "web", "hello"])
        assert code == 4 and out == "", "another group may not even ask"
        assert node.clinit("-k", "-w", "-t", "30").returncode == 0
    finally:
        shutil.rmtree(public, ignore_errors=True)
