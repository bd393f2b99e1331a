"""What the benchmark drives and how it watches: /proc, the floor, clinit, supervisord.

Every process the benchmark starts carries ``CLINIT_BENCH_RUN=<run>-<instance>``
in its environment, and every child of it inherits that, so

* a Watch counts the ``sleep`` processes of one instance (the floor, one
  clinit daemon, one supervisord) by scanning /proc: a process counts
  as running once /proc/PID/exe is sleep (the exec has happened) and
  its environment holds the instance's mark;
* ``kill_run`` finds and kills whatever of this run is left, even after
  Ctrl-C or a failure.
"""

import ctypes
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
LIB = os.path.join(CHECKOUT, "lib")
CLINIT = os.path.join(CHECKOUT, "clinit")
FLOOR = os.path.join(HERE, "floor.py")
SLEEP = os.path.realpath(shutil.which("sleep") or "/bin/sleep")
MARK_NAME = "CLINIT_BENCH_RUN"
RUN = os.environ.get("CLINIT_BENCH_RUN_ID") or uuid.uuid4().hex[:16]  # the id: for tests
CLK_TCK = os.sysconf("SC_CLK_TCK")

if LIB not in sys.path:
    sys.path.insert(0, LIB)

# level 0, where the benchmark's groups have no entries, is how it stops them: no warning
warnings.filterwarnings("ignore", message=r".*has no entries at level")


class BenchError(Exception):
    """A measurement could not be taken (a timeout, a process that died)."""


def instance_env(instance):
    """The environment for one instance's processes: ours plus its mark."""
    env = dict(os.environ)
    env[MARK_NAME] = f"{RUN}-{instance}"
    return env


def _mark_bytes(instance):
    return f"{MARK_NAME}={RUN}-{instance}\0".encode()


# ---- /proc ------------------------------------------------------------------


def read_proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as stream:
            return stream.read()
    except OSError:
        return b""


def rss_kib(pid):
    for line in read_proc(pid, "status").splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid):
    """User plus system CPU time of ``pid`` so far."""
    stat = read_proc(pid, "stat")
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def count_sleeps(instance):
    """How many marked sleeps of ``instance`` run now (a full scan, no caches)."""
    needle = _mark_bytes(instance)
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/exe") != SLEEP:
                continue
        except OSError:
            continue
        if needle in read_proc(name, "environ"):
            count += 1
    return count


class Watch:
    """The marked sleeps of one instance, found by scanning /proc.

    ``sleeps`` maps the pid of each running sleep found since the watch
    began to its argument.  With ``exclude_current`` the sleeps running
    when the watch began are the ``old`` ones instead: they are held by
    pidfds, so ``old`` shrinks as each is reaped (not merely dead) and a
    reused pid is never mistaken for an old process.

    A scan reads /proc/PID/exe of the pids it has not classified yet and
    the environment of each pid once; pids found not to be ours are
    skipped until the kernel's pid counter wraps.
    """

    def __init__(self, instance, exclude_current=False):
        self.needle = _mark_bytes(instance)
        self.sleeps = {}
        self.old = {}
        self._foreign = set()
        self._pending = set()
        self._last_pid = self._read_last_pid()
        self.scan()
        if exclude_current:
            for pid in self.sleeps:
                try:
                    self.old[pid] = os.pidfd_open(pid)
                except ProcessLookupError:
                    pass
            self.sleeps = {}

    @staticmethod
    def _read_last_pid():
        with open("/proc/loadavg", "rb") as stream:
            return int(stream.read().split()[-1])

    def scan(self):
        newest = self._read_last_pid()
        if newest < self._last_pid:  # pids wrapped: a foreign pid may be ours now
            self._foreign.clear()
        self._last_pid = newest
        for pid, fd in list(self.old.items()):
            try:
                signal.pidfd_send_signal(fd, 0)
            except ProcessLookupError:  # reaped
                os.close(fd)
                del self.old[pid]
        sleeps, foreign, pending, old = self.sleeps, self._foreign, self._pending, self.old
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in sleeps or pid in foreign or pid in old:
                continue
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = None
            if exe is None:  # a kernel thread, a zombie, gone: never a running sleep
                foreign.add(pid)
                continue
            if exe != SLEEP and pid in pending:
                continue
            # an environment read in the middle of an exec comes back empty: ask again
            environ = read_proc(pid, "environ")
            if not environ:
                continue
            if self.needle not in environ:
                foreign.add(pid)
            elif exe != SLEEP:
                pending.add(pid)  # ours; may exec sleep yet
            else:
                argv = read_proc(pid, "cmdline").rstrip(b"\0").split(b"\0")
                sleeps[pid] = argv[-1].decode()
                pending.discard(pid)

    def count(self, arg=None):
        if arg is None:
            return len(self.sleeps)
        return sum(1 for value in self.sleeps.values() if value == arg)

    def until(self, predicate, timeout, interval, what="condition"):
        """Scan until ``predicate(self)``; the perf_counter of that scan."""
        deadline = time.perf_counter() + timeout
        while True:
            self.scan()
            now = time.perf_counter()
            if predicate(self):
                return now
            if now > deadline:
                raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def close(self):
        for fd in self.old.values():
            os.close(fd)
        self.old = {}


def wait_no_sleeps(instance, timeout=120.0):
    deadline = time.monotonic() + timeout
    while count_sleeps(instance):
        if time.monotonic() > deadline:
            raise BenchError(f"{instance}: its processes did not go away in {timeout:g} s")
        time.sleep(0.02)


# ---- cleaning up ------------------------------------------------------------


def become_subreaper():
    """Orphans of the daemons we kill become our children, for us to reap."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_children():
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_pids(instance=None):
    """Pids of every live process of this run, or of one instance of it."""
    needle = f"{MARK_NAME}={RUN}-".encode() if instance is None else _mark_bytes(instance)
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and needle in read_proc(name, "environ"):
            found.append(int(name))
    return found


def kill_run(timeout=15.0, instance=None):
    """SIGKILL every process of this run (or instance) until none is left; reap ours."""
    deadline = time.monotonic() + timeout
    while True:
        reap_children()
        pids = run_pids(instance)
        if not pids or time.monotonic() > deadline:
            return not pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def raise_fd_limit():
    """Pidfds and probe connections may need more than the default descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- the three implementations ---------------------------------------------


class Floor:
    """The bare fork/exec loop (floor.py), driven over a pipe."""

    label = "floor: bare fork/exec loop"

    def __init__(self, instance):
        self.instance = instance
        self.process = subprocess.Popen(
            [sys.executable, FLOOR], env=instance_env(instance), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    @property
    def pid(self):
        return self.process.pid

    def send(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def answer(self):
        line = self.process.stdout.readline()
        if not line:
            raise BenchError("the floor process died")
        return line.strip()

    def command(self, line):
        self.send(line)
        return self.answer()

    def stop(self):
        self.process.kill()
        self.process.wait()
        kill_run(instance=self.instance)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class ClinitDaemon:
    """A clinit daemon of this checkout, run by this interpreter, in its own directory."""

    label = "clinit"

    def __init__(self, directory, instance, entries, timeout=120.0):
        from cluster_init.client import Client

        self.instance = instance
        self.dir = os.path.join(directory, instance)
        os.makedirs(self.dir, exist_ok=True)
        self.cltab = os.path.join(self.dir, "cltab")
        self.entries = list(entries)
        self.write_cltab()
        self.output = open(os.path.join(self.dir, "output"), "wb")  # noqa: SIM115 - closed by stop
        self.process = subprocess.Popen(
            [sys.executable, CLINIT, "-d", "-c", self.cltab], env=instance_env(instance),
            stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
        )
        self.client = Client(cltab=self.cltab)
        deadline = time.monotonic() + timeout
        while not self.client.alive():
            if self.process.poll() is not None:
                raise BenchError(f"clinit daemon {instance} exited: {self.read_output()}")
            if time.monotonic() > deadline:
                raise BenchError(f"clinit daemon {instance} did not answer in {timeout:g} s")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.process.pid

    @property
    def socket(self):
        return os.path.join(self.dir, "s")

    def write_cltab(self, comment=""):
        lines = [
            f":::socket:{self.dir}/s", f":::clstat:{self.dir}/clstat", f":::log:{self.dir}/log"
        ]
        if comment:
            lines.append(f"# {comment}")
        with open(self.cltab, "w", encoding="utf-8") as stream:
            stream.write("\n".join(lines + self.entries) + "\n")

    def read_output(self):
        with open(os.path.join(self.dir, "output"), encoding="utf-8", errors="replace") as stream:
            return stream.read()[-2000:]

    def tell(self, group, level):
        return self.client.tell(group, level)

    def tell_and_wait(self, group, level, timeout=300.0):
        self.client.tell(group, level)
        return self.client.wait(group, level, timeout=timeout)

    def stop(self):
        """Kill the daemon and its children (a teardown, not a test of shutdown)."""
        self.process.kill()
        self.process.wait()
        kill_run(instance=self.instance)
        self.output.close()


def supervisor_version():
    """supervisor's version if it can be imported here, else None."""
    try:
        from importlib import metadata

        import supervisor  # noqa: F401
    except ImportError:
        return None
    try:
        return metadata.version("supervisor")
    except metadata.PackageNotFoundError:
        return "?"


class Supervisord:
    """supervisord with one program per entry, ``/bin/sh -c 'exec sleep ARG'`` each.

    Programs do not start by themselves (autostart=false) and count as
    running as soon as they are started (startsecs=0); their output goes
    nowhere, like clinit's children under the benchmark.
    """

    label = "supervisord"

    def __init__(self, directory, instance, programs, autorestart=False, groups=None,
                 timeout=120.0):
        import http.client
        import xmlrpc.client

        self.instance = instance
        self.dir = os.path.join(directory, instance)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "supervisord.conf")
        self.socket = os.path.join(self.dir, "supervisor.sock")
        self.programs = list(programs)
        count = len(self.programs)
        lines = [
            "[unix_http_server]", f"file={self.socket}", "",
            "[supervisord]", f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid", f"childlogdir={self.dir}", "nodaemon=true",
            f"minfds={max(1024, 2 * count + 256)}", f"minprocs={max(200, count + 100)}", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.socket}", "",
        ]
        for name, arg in self.programs:
            lines += [
                f"[program:{name}]", f"command=/bin/sh -c \"exec sleep {arg}\"",
                "autostart=false", f"autorestart={'true' if autorestart else 'false'}",
                "startsecs=0", "stopsignal=INT", "redirect_stderr=true", "stdout_logfile=NONE", "",
            ]
        for group, names in (groups or {}).items():
            lines += [f"[group:{group}]", "programs=" + ",".join(names), ""]
        with open(self.conf, "w", encoding="utf-8") as stream:
            stream.write("\n".join(lines))
        self.output = open(os.path.join(self.dir, "output"), "wb")  # noqa: SIM115 - closed by stop
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", self.conf],
            env=instance_env(instance), cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=self.output, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"supervisord {instance} exited: {self.read_output()}")
            self.rpc = self.proxy()
            try:
                if self.rpc.getState()["statename"] == "RUNNING":
                    break
            except (OSError, xmlrpc.client.Error, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"supervisord {instance} did not answer in {timeout:g} s")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.process.pid

    def proxy(self):
        """A new XML-RPC proxy on the unix socket (one per thread)."""
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def read_output(self):
        with open(os.path.join(self.dir, "output"), encoding="utf-8", errors="replace") as stream:
            return stream.read()[-2000:]

    def start_all(self):
        return self.rpc.startAllProcesses(False)

    def start_group(self, group):
        return self.rpc.startProcessGroup(group, False)

    def stop_all(self, timeout=120.0):
        """Stop every program and wait until supervisord has seen them all exit."""
        self.rpc.stopAllProcesses(False)
        deadline = time.monotonic() + timeout
        while True:
            states = {info["statename"] for info in self.rpc.getAllProcessInfo()}
            if states <= {"STOPPED", "EXITED", "FATAL"}:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"supervisord {self.instance}: still {sorted(states)}")
            time.sleep(0.05)
        wait_no_sleeps(self.instance, timeout)

    def ctl(self, *words):
        return [sys.executable, "-m", "supervisor.supervisorctl", "-c", self.conf, *words]

    def stop(self):
        """Kill supervisord and its children (a teardown, not a test of shutdown)."""
        self.process.kill()
        self.process.wait()
        kill_run(instance=self.instance)
        self.output.close()


# ---- status round trips while the daemon works ------------------------------


def supervisor_state_request():
    """A raw HTTP/1.0 XML-RPC request for supervisor.getState (closed after the answer)."""
    import xmlrpc.client

    body = xmlrpc.client.dumps((), "supervisor.getState").encode()
    head = (
        "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class Prober(threading.Thread):
    """Sends ``request`` on a new connection to ``path`` every ``interval`` seconds.

    Open loop: a request is due at its scheduled time whether or not the
    ones before it were answered, and its latency is counted from that
    time to the end of its answer (the daemon closing the connection),
    so a daemon that stalls shows every request it kept waiting.  A
    connect refused because the listen queue is full is retried, its
    clock still running.
    """

    def __init__(self, path, request, interval):
        super().__init__(daemon=True)
        self.path = path
        self.request = request
        self.interval = interval
        self.latencies = []
        self.errors = 0
        self._stopping = False

    def stop(self, timeout=120.0):
        self._stopping = True
        self.join(timeout)

    def run(self):
        selector = selectors.DefaultSelector()
        due = []  # scheduled times not yet connected
        inflight = {}
        next_at = time.perf_counter()
        give_up = None
        while True:
            now = time.perf_counter()
            if self._stopping:
                if not due and not inflight:
                    break
                give_up = give_up or now + 60.0
                if now > give_up:
                    self.errors += len(due) + len(inflight)
                    break
            else:
                while next_at <= now:
                    due.append(next_at)
                    next_at += self.interval
            while due:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    sock.connect(self.path)
                    sock.send(self.request)
                except BlockingIOError:  # listen queue full: retry later
                    sock.close()
                    break
                except OSError:
                    sock.close()
                    due.pop(0)
                    self.errors += 1
                    continue
                inflight[sock] = [due.pop(0), False]  # when due, whether it answered
                selector.register(sock, selectors.EVENT_READ)
            if due:
                timeout = 0.002
            elif self._stopping:
                timeout = 0.05
            else:
                timeout = max(0.0, next_at - time.perf_counter())
            for key, _mask in selector.select(timeout):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    inflight[sock][1] = True
                    continue
                due_at, answered = inflight.pop(sock)
                if answered:
                    self.latencies.append(time.perf_counter() - due_at)
                else:  # closed without an answer (too many clients?): no round trip
                    self.errors += 1
                selector.unregister(sock)
                sock.close()
        for sock in inflight:
            sock.close()
        selector.close()
