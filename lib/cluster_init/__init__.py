"""clinit: a cluster-wide application-level init (successor of Perl's Cluster::Init).

The API mirrors the Perl module::

    from cluster_init import ClusterInit

    ClusterInit.daemon(cltab="/etc/cltab")      # serve until shut down
    client = ClusterInit.client(cltab="/etc/cltab")
    client.tell("foo", "run")                   # the daemon's message
    client.status()                             # "foo run DONE\\n"
    client.status(group="foo", level="run")     # "DONE"
    ClusterInit.status(clstat="/var/run/clinit/clstat")
    client.shutdown()

    client = ClusterInit(cltab="/etc/cltab")    # starts a detached daemon if none answers

An error answer from the daemon raises DaemonError; no daemon on the
socket raises NotRunning; both are cluster_init.Error.
"""

import subprocess
import sys

from . import client as _client
from .client import Client
from .errors import CltabError, DaemonError, DaemonStartError, Error, NotRunning, SpawnError, Timeout
from .version import VERSION

__version__ = VERSION


class ClusterInit:
    """The Perl Cluster::Init, as class-level calls.

    ``ClusterInit(**paths)`` returns a Client, first starting a
    detached daemon (as ``clinit -d -b``) if none answers on the socket.
    """

    def __new__(cls, cltab=_client.DEFAULT_CLTAB, socket=None, clstat=None):
        client = Client(cltab=cltab, socket=socket, clstat=clstat)
        if not client.alive():
            command = [sys.executable, "-m", "cluster_init", "-d", "-b", "-c", cltab]
            if socket is not None:
                command += ["-s", socket]
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if done.returncode != 0:
                raise DaemonStartError(done.stderr.strip() or f"clinit -d -b exited {done.returncode}")
        return client

    @staticmethod
    def daemon(cltab=_client.DEFAULT_CLTAB, socket=None, clstat=None, log=None):
        """Run a daemon in this process until it is shut down."""
        from .daemon import Daemon

        Daemon(cltab=cltab, socket=socket, clstat=clstat, log=log).run()
        return True

    @staticmethod
    def client(cltab=_client.DEFAULT_CLTAB, socket=None, clstat=None):
        """A Client for the daemon that ``cltab`` (or ``socket``) names."""
        return Client(cltab=cltab, socket=socket, clstat=clstat)

    @staticmethod
    def status(group=None, level=None, clstat=None):
        """Read a clstat (``clstat=`` required); "" if it does not exist."""
        return _client.status(group=group, level=level, clstat=clstat)


__all__ = [
    "ClusterInit",
    "Client",
    "CltabError",
    "DaemonError",
    "DaemonStartError",
    "Error",
    "NotRunning",
    "SpawnError",
    "Timeout",
    "__version__",
]
