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

``cltab`` left out (None) is $CLINIT_CLTAB, else /etc/cltab, as for
the clinit command.

An error answer from the daemon raises DaemonError (CltabRefused when
it refused its cltab, Busy when it has too many clients); no daemon on
the socket raises NotRunning; a socket this user may not use raises
PermissionDenied; a cltab that cannot be read raises CltabError.  All
are cluster_init.Error.  Warnings the daemon gives with an answer (a
level at which the group has no entries) are issued as ClinitWarning
through the warnings module, and kept in ``client.last_warnings``.
As in the Perl module, ``tell(GROUP, ":::REREAD:::")`` rereads the
cltab and ``tell(GROUP, ":::SHUTDOWN:::")`` shuts the daemon down.
"""

import sys

from . import client as _client
from .client import ClinitWarning, Client
from .errors import (
    Busy,
    CltabError,
    CltabRefused,
    DaemonError,
    DaemonStartError,
    Error,
    Interrupted,
    MissingDependency,
    NotRunning,
    PermissionDenied,
    SpawnError,
    Timeout,
)
from .version import VERSION

__version__ = VERSION


class ClusterInit:
    """The Perl Cluster::Init, as class-level calls.

    ``ClusterInit(**paths)`` returns a Client, first starting a
    detached daemon (as ``clinit -d -b``) if none answers on the socket.
    """

    def __new__(cls, cltab=None, socket=None, clstat=None):
        client = Client(cltab=cltab, socket=socket, clstat=clstat)
        if not client.alive():
            import os
            import subprocess

            command = [sys.executable, "-m", "cluster_init", "-d", "-b", "-c", client.cltab]
            if socket is not None:
                command += ["-s", os.fspath(socket)]
            env = dict(os.environ)  # this very package, also when it runs from a checkout
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env
            )
            if done.returncode != 0:
                raise DaemonStartError(done.stderr.strip() or f"clinit -d -b exited {done.returncode}")
        return client

    @staticmethod
    def daemon(cltab=None, socket=None, clstat=None, log=None):
        """Run a daemon in this process until it is shut down.

        Standard descriptors 0, 1 and 2 that are closed are first opened on
        /dev/null (stdfds.py), so that none of the daemon's takes their place.
        """
        from . import stdfds

        stdfds.ensure()
        from .daemon import Daemon

        Daemon(cltab=cltab, socket_path=socket, clstat_path=clstat, log_path=log).run()
        return True

    @staticmethod
    def client(cltab=None, socket=None, clstat=None):
        """A Client for the daemon that ``cltab`` (or ``socket``) names."""
        return Client(cltab=cltab, socket=socket, clstat=clstat)

    @staticmethod
    def status(group=None, level=None, clstat=None):
        """Read a clstat (``clstat=`` required); "" if it does not exist."""
        return _client.status(group=group, level=level, clstat=clstat)


__all__ = [
    "Busy",
    "ClinitWarning",
    "ClusterInit",
    "Client",
    "CltabError",
    "CltabRefused",
    "DaemonError",
    "DaemonStartError",
    "Error",
    "Interrupted",
    "MissingDependency",
    "NotRunning",
    "PermissionDenied",
    "SpawnError",
    "Timeout",
    "__version__",
]
