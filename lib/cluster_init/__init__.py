"""clinit: a cluster-wide application-level init (successor of Perl's Cluster::Init)."""

from .errors import CltabError, DaemonError, Error, NotRunning, SpawnError

__version__ = "0.3.0"

__all__ = ["CltabError", "DaemonError", "Error", "NotRunning", "SpawnError", "__version__"]
