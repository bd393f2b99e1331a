"""Run the OCF agent ocf/clinit against a real clinit daemon in a per-test directory.

The agent starts its own daemon (``clinit -d -b``) as it would under
Pacemaker.  Everything it starts inherits the daemon_rig mark, so
``AgentRig.cleanup`` finds and kills whatever is left even when a test
failed half-way.  The agent's TMPDIR (its work directories) is the
rig's own ``tmp``, never the machine's /tmp; cleanup checks it is empty.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

from daemon_rig import CHECKOUT, Node, clinit_wrapper, tagged, wait_for
from realproc import alive

from cluster_init.status import read as read_clstat

AGENT = os.path.join(CHECKOUT, "ocf", "clinit")
OCF_ROOT = "/usr/lib/ocf"

CLTAB = """\
:::socket:{d}/clinit.s
:::clstat:{d}/clstat
:::log:{d}/clinitlog
:::pidfile:{d}/clinit.pid
:::term_delay:1
:::kill_delay:1
web:fit:run:test:test ! -e {d}/broken
web:svc:run:respawn:exec sleep 1000
web:side:side:once:exec sleep 1000
slow:nap:run:wait:exec sleep 30
"""


def write_clinit_wrapper(path):
    """A ``clinit`` command that runs this checkout's clinit with this Python."""
    return clinit_wrapper(path)


class AgentRig:
    """A cltab, a clinit wrapper, and the agent run with OCF's environment."""

    def __init__(self, directory, agent=AGENT):
        self.node = Node(directory)
        self.dir = self.node.dir
        self.agent_path = agent
        self.flag = os.path.join(self.dir, "broken")
        self.pidfile = os.path.join(self.dir, "clinit.pid")
        self.wrapper = write_clinit_wrapper(os.path.join(self.dir, "bin", "clinit"))
        self.tmp = os.path.join(self.dir, "tmp")  # the agent's TMPDIR: its work directories
        os.mkdir(self.tmp)
        self.node.write_cltab(CLTAB.format(d=self.dir))
        self.params = {"group": "web", "level": "run", "cltab": self.node.cltab,
                       "clinit": self.wrapper}

    def env(self, params=None, interval=10000, depth=None):
        env = self.node.env()
        env.pop("PYTHONPATH", None)
        env.update({
            "TMPDIR": self.tmp,
            "OCF_ROOT": OCF_ROOT, "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "0",
            "OCF_RESOURCE_INSTANCE": "web-rsc", "OCF_RESOURCE_TYPE": "group",
            "OCF_RESOURCE_PROVIDER": "clinit",
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_CRM_meta_interval": str(interval),
        })
        if depth is not None:
            env["OCF_CHECK_LEVEL"] = str(depth)
        merged = dict(self.params)
        merged.update(params or {})
        for name, value in merged.items():
            if value is not None:
                env[f"OCF_RESKEY_{name}"] = value
        return env

    def agent(self, action, probe=False, depth=None, run_timeout=60, extra_env=None, **params):
        """Run ``agent ACTION`` with OCF_RESKEY_* from ``params`` (None: unset);
        the CompletedProcess (returncode, stdout, stderr)."""
        env = self.env(params, 0 if probe else 10000, depth)
        env.update(extra_env or {})
        return subprocess.run(
            [self.agent_path, action], env=env,
            cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=run_timeout,
        )

    def rc(self, action, **kwargs):
        return self.agent(action, **kwargs).returncode

    def clinit(self, *args, timeout=60):
        return self.node.clinit(*args, timeout=timeout)

    def clstat(self, group="web"):
        """(level, state) of ``group`` in clstat, or None."""
        return next((tuple(row[1:]) for row in read_clstat(self.node.clstat) if row[0] == group), None)

    def daemon_pid(self):
        try:
            with open(self.pidfile, encoding="ascii") as stream:
                return int(stream.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def tagged_pids(self, tag):
        """Live processes of this rig that run the cltab entry ``tag``."""
        return tagged(self.node, tag)

    def crash_daemon(self):
        """SIGKILL the daemon, as a crash would; its children live on."""
        pid = self.daemon_pid()
        assert pid, "no daemon pid file"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), what="the daemon to die")

    def cleanup(self):
        """Shut the daemon down, then kill whatever of ours is left; AssertionError if
        the agent left a work directory behind (it removes its own on every exit)."""
        try:
            self.clinit("-k", "-w", "-t", "20", timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.node.cleanup()
        left = sorted(os.listdir(self.tmp))
        assert not left, f"the agent left {left} in its TMPDIR {self.tmp}"


def public_copy(path):
    """A copy of ``path`` in a new world-readable directory (for uid nobody); its path."""
    directory = tempfile.mkdtemp(prefix="clinit-ocf-")
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, os.path.basename(path))
    shutil.copy2(path, copy)
    os.chmod(copy, 0o755)
    return copy
