"""A real daemon in a per-test directory, and the helpers to wait on it.

Every process the daemon starts inherits CLINIT_TEST_MARK from it, so
``Node.cleanup`` can find and kill whatever is left, even when a test
failed half-way.  Waits poll with a deadline; none sleeps and hopes.
The helpers tests share: ``settings`` (the cltab lines that keep a
node's files in its directory), ``raw``/``ask``/``connect`` (requests
without the client library), ``marked_pids``/``tagged`` (processes by
their marks, from realproc.py).
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid

from cluster_init.client import Client

from cltab_master import master_cltab
from realproc import alive, marked_pids  # noqa: F401 - tests import both from here

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
CLINIT = os.path.join(CHECKOUT, "clinit")
LIB = os.path.join(CHECKOUT, "lib")


def wait_for(predicate, timeout=10.0, what="condition", interval=0.02):
    """Poll ``predicate`` until it is true; its value.  AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def clinit_wrapper(path):
    """An executable ``clinit`` at ``path`` that runs this checkout's clinit with this
    Python (which has python-daemon and lockfile, as ``clinit -d -b`` needs)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(CLINIT)} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def stays(getter, seconds, what="value"):
    """Assert that ``getter()`` keeps its value for ``seconds``; the value."""
    first = getter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = getter()
        assert now == first, f"{what} changed from {first!r} to {now!r}"
        time.sleep(0.05)
    return first


def settings(node, *extra):
    """The cltab lines that keep ``node``'s socket, clstat and log in its directory,
    then ``extra`` lines; as text ending in a newline."""
    lines = [f":::socket:{node.socket}", f":::clstat:{node.clstat}", f":::log:{node.log}", *extra]
    return "\n".join(lines) + "\n"


def connect(node, timeout=30):
    """A raw connection to the node's socket (the connect blocks while the listen
    queue is full; then reads and writes time out after ``timeout`` seconds)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(node.socket)
    sock.settimeout(timeout)
    return sock


def raw(node, data, shut=False, timeout=30):
    """Send raw bytes on a fresh connection (``shut``: then close our writing side);
    the answer's bytes, once the daemon has closed the connection."""
    with connect(node, timeout) as conn:
        conn.sendall(data)
        if shut:
            conn.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def tagged(node, tag):
    """The node's live processes (they carry its mark) that run the cltab entry ``tag``, sorted."""
    return sorted(marked_pids(node.mark, f"CLINIT_TAG={tag}"))


def ask(node, line):
    """One request line on a fresh connection, without the client library; the answer's text."""
    return raw(node, line.encode() + b"\n").decode()


class Node:
    """One clinit node: a directory, its cltab, and maybe a running daemon."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.cltab = os.path.join(self.dir, "cltab")
        self.socket = os.path.join(self.dir, "clinit.s")
        self.clstat = os.path.join(self.dir, "clstat")
        self.log = os.path.join(self.dir, "clinitlog")
        self.out = os.path.join(self.dir, "out")
        self.mark = f"CLINIT_TEST_MARK={uuid.uuid4().hex}"
        self.daemon = None
        self.stderr_path = os.path.join(self.dir, "daemon.stderr")
        self.write_cltab(master_cltab(self.dir))

    # files
    def write_cltab(self, text):
        """Replace the cltab atomically (a new inode, so a reread sees it)."""
        temporary = self.cltab + ".new"
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, self.cltab)

    def out_lines(self):
        try:
            with open(self.out, encoding="utf-8") as stream:
                return stream.read().splitlines()
        except FileNotFoundError:
            return []

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8") as stream:
                return stream.read()
        except FileNotFoundError:
            return ""

    def daemon_stderr(self):
        with open(self.stderr_path, encoding="utf-8") as stream:
            return stream.read()

    def starts(self, tag):
        """How many times the daemon has started ``tag``'s command."""
        return self.log_text().count(f":{tag}: started pid")

    def exits(self, tag, since=""):
        """How many exits of ``tag``'s command the log shows (after ``since``)."""
        text = self.log_text()
        if since:
            text = text.split(since, 1)[-1]
        return sum(1 for line in text.splitlines() if f":{tag}: pid " in line and " exited (" in line)

    # processes
    def env(self):
        name, value = self.mark.split("=", 1)
        env = dict(os.environ)
        env[name] = value
        env["PYTHONPATH"] = LIB
        return env

    def start(self, argv=None, preexec_fn=None, env=None):
        """Start a daemon in the foreground (``clinit -d``); wait until it answers.

        ``preexec_fn`` runs in the daemon's process before its exec (to set limits);
        ``env`` is added to its environment."""
        argv = argv or [sys.executable, CLINIT, "-d", "-c", self.cltab]
        with open(self.stderr_path, "w") as stderr:
            self.daemon = subprocess.Popen(
                argv, cwd=self.dir, env=dict(self.env(), **(env or {})), stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, preexec_fn=preexec_fn,
            )
        wait_for(lambda: self.client().alive() or self.daemon.poll() is not None, what="daemon")
        assert self.daemon.poll() is None, f"daemon exited: {self.daemon_stderr()}"
        return self.daemon

    def clinit(self, *args, timeout=60):
        """Run the clinit command against this node; the CompletedProcess."""
        return subprocess.run(
            [sys.executable, CLINIT, "-c", self.cltab, *args],
            cwd=self.dir, env=self.env(), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout,
        )

    def client(self):
        return Client(cltab=self.cltab)

    def wrapper(self):
        """A ``clinit`` command in the node's directory (see clinit_wrapper)."""
        return clinit_wrapper(os.path.join(self.dir, "clinit-wrapper"))

    def tell(self, group, level):
        """Tell through the protocol (a warning the daemon gives is not raised)."""
        return self.client().request("tell", group, level).message

    def settle(self, group, level, timeout=20):
        """Tell and wait until the group settles at the level; its state."""
        client = self.client()
        client.request("tell", group, level)
        return client.wait(group, level, timeout=timeout)

    def status(self, **filters):
        return self.client().status(**filters)

    def wait_status(self, expected, timeout=20, **filters):
        wait_for(lambda: self.status(**filters) == expected, timeout, f"status {expected!r}")

    def shutdown(self, timeout=30):
        """Shut the daemon down through a client and wait until it exits."""
        answer = self.client().shutdown()
        self.daemon.wait(timeout)
        return answer

    def cleanup(self):
        """Kill what is left: the daemon, then every process with our mark."""
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        for _ in range(5):
            pids = marked_pids(self.mark)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
