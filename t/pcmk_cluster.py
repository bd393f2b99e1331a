"""A real Pacemaker + Corosync cluster of two nodes on this one machine.

Each node is one process tree in its own PID, mount, UTS and network
namespaces (see pcmk_node_init.py, its process 1).  A third network
namespace, held by one ``sleep`` process, is the switch: a bridge with
one veth link per node.  The namespaces are not named (no ``ip netns
add``), so they exist only as long as their processes do: killing the
processes is the whole teardown, a node's link disappears with it, and
nothing is ever mounted in the machine's own mount namespace.

Everything a node writes (its /run, /var/log, /var/lib/corosync,
/var/lib/pacemaker) lives in one temporary directory, removed at
teardown; ``Cluster.leftovers`` checks that no process, mount or file
of the cluster is left.  Commands reach a node through
``nsenter -t PID1 -n -m -u -p`` (Pacemaker's IPC uses abstract sockets,
which are per network namespace, and libqb's ring buffers, which live
in the node's /dev/shm).

Use the ``pcmk_cluster`` fixture factory, or Cluster directly under
try/finally.  Waits poll with deadlines.
"""

import contextlib
import ctypes
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from daemon_rig import wait_for  # noqa: F401 - the tests import it from here

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_INIT = os.path.join(HERE, "pcmk_node_init.py")
OCF_ROOT = "/usr/lib/ocf"
RESOURCE_D = os.path.join(OCF_ROOT, "resource.d")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

TOOLS = (
    "corosync", "corosync-cmapctl", "pacemakerd", "crm_mon", "crm_resource",
    "cibadmin", "nsenter", "unshare", "ip", "cp",
)
PACKAGES = "pacemaker, pacemaker-cli-utils, corosync, iproute2 and util-linux"

# The paths of the machine that a cluster run must leave as they were.
HOST_PATHS = (
    "/var/lib/pacemaker/**", "/var/lib/corosync/**", "/var/log/pacemaker/**",
    "/var/log/corosync*", "/var/log/cluster*", "/run/corosync*", "/run/crm*",
    "/run/pacemaker*", "/run/mount", "/run/mount/*", "/run/clinit", "/run/clinit/*",
    "/run/resource-agents/*", "/dev/shm/qb-*",
)
# Not /tmp/ocf-clinit.*: the nodes' TMPDIR is their own /run/tmp (in the cluster's
# directory), so the agent's work directories never reach the machine's /tmp; what is
# there is another test's, or another user's, and not this cluster's to answer for.

CIB_SEED = """\
<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="cib-bootstrap-options-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="cib-bootstrap-options-recheck" name="cluster-recheck-interval" value="1min"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"""
# No crm_feature_set attribute: one newer than the installed Pacemaker
# makes the controller reject its own node updates and restart forever.


def _corosync_conf(nodes):
    entries = "".join(
        f"    node {{\n        name: {node.name}\n        nodeid: {index}\n"
        f"        ring0_addr: {node.address}\n    }}\n"
        for index, node in enumerate(nodes, start=1)
    )
    return (
        "totem {\n    version: 2\n    cluster_name: clinit-test\n    transport: knet\n"
        "    crypto_cipher: none\n    crypto_hash: none\n    token: 1000\n}\n"
        f"nodelist {{\n{entries}}}\n"
        "quorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\n"
        "logging {\n    to_stderr: no\n    to_syslog: no\n    to_logfile: yes\n"
        "    logfile: /var/log/corosync.log\n    timestamp: on\n}\n"
    )


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _ns(pid, kind):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as stream:
            return [int(word) for word in stream.read().split()]
    except OSError:
        return []


def _run(argv, timeout=30, **kwargs):
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kwargs
    )


_REASON = []


def unavailable():
    """Why a cluster cannot run here, or None (the answer is cached)."""
    if not _REASON:
        _REASON.append(_find_unavailable())
    return _REASON[0]


def _find_unavailable():
    if os.geteuid() != 0:
        return "the cluster test needs root (namespaces, corosync, pacemaker)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages {PACKAGES})"
    if not os.path.isdir("/var/lib/pacemaker") or not os.path.isdir(RESOURCE_D):
        return "no /var/lib/pacemaker or /usr/lib/ocf/resource.d: pacemaker is not installed"
    try:
        import pwd

        pwd.getpwnam("hacluster")
    except KeyError:
        return "no user hacluster: pacemaker is not installed properly"
    probe = _run(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts",
         "--mount", "--propagation", "private", "sh", "-c",
         "ip link add b0 type bridge && ip link add v0 type veth peer name v1 "
         "&& ip link set v1 master b0 && hostname probe"],
        timeout=30,
    )
    if probe.returncode != 0:
        return ("namespaces, veth or bridge links are not available here: "
                + (probe.stderr.strip() or f"exit {probe.returncode}"))
    return None


def skip_unless_available():
    reason = unavailable()
    if reason:
        pytest.skip(reason)


def host_snapshot():
    """The machine's files that a cluster must not touch, and its mounts."""
    files = set()
    for pattern in HOST_PATHS:
        files.update(glob.glob(pattern, recursive=True))
    with open("/proc/self/mountinfo", encoding="utf-8") as stream:
        mounts = {" ".join(line.split()[3:5]) for line in stream}
    return files, mounts


class Node:
    """One node: its name, address, directory and process 1."""

    def __init__(self, cluster, name, address, index):
        self.cluster = cluster
        self.name = name
        self.address = address
        self.index = index
        self.dir = os.path.join(cluster.dir, name)
        self.popen = None  # unshare, in the machine's PID namespace
        self.pid = None  # process 1 of the node, as the machine numbers it
        self.pidns = None
        self.netns = None
        self.killed_at = None

    def path(self, *inside):
        """Where the machine sees the node's ``/run/...`` or ``/var/log/...`` path."""
        inside = os.path.join(*inside)
        for source, target in (("run", "/run"), ("log", "/var/log")):
            if inside == target or inside.startswith(target + "/"):
                return os.path.join(self.dir, source) + inside[len(target):]
        raise ValueError(f"{inside} is not under the node's /run or /var/log")

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def __repr__(self):
        return f"<node {self.name} pid {self.pid}>"


class Cluster:
    """Two (or more) Pacemaker nodes.  See the module docstring."""

    def __init__(self, names=("alpha", "bravo"), subnet="169.254.213", agents=None,
                 env=None, clinit=None):
        """``agents``: {"provider/type": path} made visible in every node's resource.d;
        ``env``: added to the nodes' environment (so to every resource agent);
        ``clinit``: argv of a command each node runs before corosync (its clinit daemon)."""
        self.dir = tempfile.mkdtemp(prefix="clinit-pcmk-")
        self.nodes = [Node(self, name, f"{subnet}.{index}", index)
                      for index, name in enumerate(names, start=1)]
        self.agents = dict(agents or {})
        self.env = dict(env or {})
        self.clinit = clinit
        self.switch = None
        self.switch_netns = None
        self.before = host_snapshot()
        self.started_at = None
        self.formed_after = None

    # set up
    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def _node_env(self):
        env = {
            "PATH": NODE_PATH, "LANG": "C.UTF-8", "HOME": "/root",
            "PCMK_logfile": "/var/log/pacemaker/pacemaker.log", "PCMK_logfacility": "none",
            "PCMK_debug": "no", "OCF_ROOT": OCF_ROOT, "TMPDIR": "/run/tmp",
        }
        env.update(self.env)
        return env

    def _prepare(self, node):
        os.makedirs(node.dir)
        for sub in ("run", "log", "corosync"):
            os.mkdir(os.path.join(node.dir, sub))
            os.chmod(os.path.join(node.dir, sub), 0o755)
        for sub in ("lock", "tmp"):  # /run/tmp is the node's TMPDIR
            os.mkdir(os.path.join(node.dir, "run", sub))
            os.chmod(os.path.join(node.dir, "run", sub), 0o1777)
        pcmk_log = os.path.join(node.dir, "log", "pacemaker")
        os.mkdir(pcmk_log)
        shutil.chown(pcmk_log, "hacluster", "haclient")
        os.chmod(pcmk_log, 0o770)
        # a copy of the package's /var/lib/pacemaker, hacluster:haclient kept
        pacemaker = os.path.join(node.dir, "pacemaker")
        subprocess.run(["cp", "-a", "/var/lib/pacemaker", pacemaker], check=True)
        cib = os.path.join(pacemaker, "cib", "cib.xml")
        with open(cib, "w", encoding="utf-8") as stream:
            stream.write(CIB_SEED)
        shutil.chown(cib, "hacluster", "haclient")
        os.chmod(cib, 0o600)
        # resource.d: the machine's providers (bound in by the node) and ours
        resource_d = os.path.join(node.dir, "resource.d")
        os.mkdir(resource_d)
        rbinds = []
        for provider in sorted(os.listdir(RESOURCE_D)):
            if os.path.isdir(os.path.join(RESOURCE_D, provider)):
                os.mkdir(os.path.join(resource_d, provider))
                rbinds.append([os.path.join(RESOURCE_D, provider),
                               os.path.join(resource_d, provider)])
        for name, path in self.agents.items():
            provider, kind = name.split("/")
            os.makedirs(os.path.join(resource_d, provider), exist_ok=True)
            os.symlink(os.path.abspath(path), os.path.join(resource_d, provider, kind))
        config = {
            "name": node.name,
            "binds": [
                [os.path.join(node.dir, "run"), "/run"],
                [os.path.join(node.dir, "log"), "/var/log"],
                [os.path.join(node.dir, "corosync"), "/var/lib/corosync"],
                [pacemaker, "/var/lib/pacemaker"],
            ] + rbinds,
            "rbinds": [[resource_d, RESOURCE_D]],
            "corosync_conf": os.path.join(self.dir, "corosync.conf"),
            "env": self._node_env(),
            "clinit": self.clinit,
        }
        with open(os.path.join(node.dir, "init.json"), "w", encoding="utf-8") as stream:
            json.dump(config, stream, indent=1)

    def _start_switch(self):
        self.switch = subprocess.Popen(
            ["unshare", "--net", "sleep", "infinity"], stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        mine = _ns("self", "net")
        self.switch_netns = wait_for(
            lambda: (_ns(self.switch.pid, "net") if _ns(self.switch.pid, "net") != mine else None),
            10, "the switch namespace",
        )
        self._sh(["nsenter", "-t", str(self.switch.pid), "-n", "sh", "-c",
                  "ip link set lo up && ip link add br0 type bridge forward_delay 0 "
                  "&& ip link set br0 up"])

    def _sh(self, argv):
        done = _run(argv)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
        return done

    def _start_node(self, node):
        log = open(os.path.join(node.dir, "init.log"), "ab")  # noqa: SIM115
        with log:
            node.popen = subprocess.Popen(
                ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts",
                 "--mount", "--propagation", "private",
                 sys.executable, NODE_INIT, os.path.join(node.dir, "init.json")],
                stdin=subprocess.PIPE, stdout=log, stderr=log, env=self._node_env(),
                preexec_fn=_die_with_parent,
            )
        mine = _ns("self", "pid")

        def process_1():
            for child in _children(node.popen.pid):
                if _ns(child, "pid") not in (None, mine):
                    return child
            if node.popen.poll() is not None:
                raise AssertionError(f"node {node.name} exited: {self.init_log(node)}")
            return None

        node.pid = wait_for(process_1, 10, f"process 1 of {node.name}", interval=0.02)
        node.pidns = _ns(node.pid, "pid")
        node.netns = _ns(node.pid, "net")
        peer = f"n{node.index}"
        self._sh(["ip", "link", "add", "name", "cl0", "netns", str(node.pid), "type", "veth",
                  "peer", "name", peer, "netns", str(self.switch.pid)])
        self._sh(["nsenter", "-t", str(self.switch.pid), "-n",
                  "ip", "link", "set", peer, "master", "br0", "up"])
        self._sh(["nsenter", "-t", str(node.pid), "-n", "sh", "-c",
                  f"ip link set lo up && ip addr add {node.address}/24 dev cl0 "
                  "&& ip link set cl0 up"])

    def start(self, timeout=60):
        """Form the cluster: every node online, a DC elected, seen from every node."""
        with self.explained():
            return self._start(timeout)

    def _start(self, timeout):
        self.started_at = time.monotonic()
        for node in self.nodes:
            self._prepare(node)
        with open(os.path.join(self.dir, "corosync.conf"), "w", encoding="utf-8") as stream:
            stream.write(_corosync_conf(self.nodes))
        self._start_switch()
        for node in self.nodes:
            self._start_node(node)
        for node in self.nodes:  # together: two_node implies wait_for_all
            node.popen.stdin.write(b"go\n")
            node.popen.stdin.close()
        names = {node.name for node in self.nodes}
        for node in self.nodes:
            wait_for(lambda node=node: self._formed(node, names), timeout,
                     f"the cluster to form, seen from {node.name}", interval=0.2)
        self.formed_after = time.monotonic() - self.started_at
        return self

    def _formed(self, via, names):
        if not via.alive():
            raise AssertionError(f"node {via.name} died: {self.init_log(via)}")
        mon = self.mon(via, check=False)
        return mon is not None and self.online(mon) == names and self.dc(mon) is not None

    # talking to nodes
    def run(self, node, *argv, timeout=30, check=False):
        """Run ``argv`` inside ``node``; the CompletedProcess."""
        node = self.node(node) if isinstance(node, str) else node
        if not node.alive():
            raise AssertionError(f"node {node.name} is not running")
        done = subprocess.run(
            ["nsenter", "-t", str(node.pid), "-n", "-m", "-u", "-p", "--", *argv],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            env=self._node_env(),
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{node.name}: {' '.join(argv)}: exit {done.returncode}\n"
                                 f"{done.stdout}{done.stderr}")
        return done

    def mon(self, via, check=True):
        """``crm_mon -1`` as XML, run on ``via``: the root element (None if it failed)."""
        done = self.run(via, "crm_mon", "-1", "--output-as=xml", "--include=all")
        if done.returncode != 0:
            if check:
                raise AssertionError(f"crm_mon failed: {done.stdout}{done.stderr}")
            return None
        return ET.fromstring(done.stdout)

    def mon_text(self, via):
        return self.run(via, "crm_mon", "-1", "-rf").stdout

    @staticmethod
    def online(mon):
        return {node.get("name") for node in mon.iter("node")
                if node.get("online") == "true" and node.get("type") == "member"}

    @staticmethod
    def dc(mon):
        current = mon.find("summary/current_dc")
        if current is None or current.get("present") != "true":
            return None
        return current.get("name")

    def locate(self, resource, via):
        """The nodes ``crm_resource --locate`` says run ``resource``."""
        done = self.run(via, "crm_resource", "--locate", "--resource", resource)
        if done.returncode != 0:
            return None
        text = done.stdout
        marker = "is running on:"
        return sorted(line.split(marker, 1)[1].split()[0]
                      for line in text.splitlines() if marker in line)

    def resource_state(self, resource, via):
        """(role, [nodes], failed) of ``resource`` from crm_mon, or None if unknown."""
        mon = self.mon(via, check=False)
        if mon is None:
            return None
        for element in mon.iter("resource"):
            if element.get("id") == resource:
                return (element.get("role"), sorted(n.get("name") for n in element.iter("node")),
                        element.get("failed") == "true")
        return None

    def failcount(self, resource, node, via):
        """The resource's fail count on ``node`` (all operations), from crm_mon."""
        total = 0
        for history in self.mon(via).iterfind("node_history/node"):
            if history.get("name") != node:
                continue
            for item in history.iterfind("resource_history"):
                count = item.get("fail-count")
                if item.get("id") == resource and count:
                    total += 1000000 if count == "INFINITY" else int(count)
        return total

    def cib_create(self, section, xml, via):
        return self.run(via, "cibadmin", "--create", "-o", section, "--xml-text", xml, check=True)

    # failure
    def kill(self, node):
        """SIGKILL the node's process 1: every process of the node dies at once."""
        node = self.node(node) if isinstance(node, str) else node
        node.killed_at = time.monotonic()
        os.kill(node.pid, signal.SIGKILL)
        node.popen.wait(10)
        return node.killed_at

    # diagnostics
    def init_log(self, node):
        return _tail(os.path.join(node.dir, "init.log"), 30)

    def diagnostics(self):
        """Tails of every node's logs and crm_mon, for a failed test's output."""
        parts = []
        for node in self.nodes:
            parts.append(f"===== {node.name} ({'up' if node.alive() else 'down'})")
            if node.alive():
                parts.append(self.run(node, "crm_mon", "-1", "-rf", timeout=10).stdout)
            for name in ("init.log", "log/corosync.log", "log/pacemaker/pacemaker.log",
                         "run/clinit/log", "run/clinit/clstat"):
                parts.append(f"--- {name}\n{_tail(os.path.join(node.dir, name), 40)}")
        return "\n".join(parts)

    @contextlib.contextmanager
    def explained(self):
        """Print the diagnostics when the block fails (pytest shows them)."""
        try:
            yield
        except BaseException:
            print(self.diagnostics())
            raise

    # teardown
    def stop(self):
        """Kill every process of the cluster and remove its directory; the leftovers."""
        for node in self.nodes:
            if node.pid is not None and node.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGKILL)
            if node.popen is not None and node.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.popen.kill()
        if self.switch is not None and self.switch.poll() is None:
            self.switch.kill()
        for process in [node.popen for node in self.nodes] + [self.switch]:
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not self._processes(), 15, "the cluster's processes to end")
        left = self.leftovers()
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.dir):
            left.append(f"directory {self.dir}")
        return left

    def _processes(self):
        """Processes still in one of the cluster's namespaces."""
        spaces = {node.pidns for node in self.nodes} | {node.netns for node in self.nodes}
        spaces |= {self.switch_netns}
        spaces.discard(None)
        found = []
        for pid in _pids():
            if _ns(pid, "pid") in spaces or _ns(pid, "net") in spaces:
                found.append(pid)
        return found

    def leftovers(self):
        """What of the cluster is still there: processes, mounts, files on the machine."""
        left = [f"process {pid}" for pid in self._processes()]
        files, mounts = host_snapshot()
        before_files, before_mounts = self.before
        left += [f"file {path}" for path in sorted(files - before_files)]
        left += [f"mount {mount}" for mount in sorted(mounts - before_mounts)
                 if self.dir in mount or "/run/netns" in mount]
        return left


def _tail(path, lines):
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return "".join(stream.readlines()[-lines:])
    except OSError as error:
        return f"({error.strerror})"


@pytest.fixture
def pcmk_cluster():
    """A factory: ``pcmk_cluster(**Cluster kwargs)`` forms a cluster; all torn down after.

    With ``start=False`` the cluster is only made (its directory exists,
    for files the nodes will need): call ``start()`` then.
    """
    skip_unless_available()
    made = []

    def make(start=True, **kwargs):
        cluster = Cluster(**kwargs)
        made.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    problems = []
    for cluster in made:
        problems += cluster.stop()
    assert not problems, f"the cluster left things behind: {problems}"
