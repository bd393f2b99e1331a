"""What a cltab's settings mean for the daemon that reads it.

Pure functions of a parsed cltab, the paths given on the command line
(or to the constructor) and the directory the daemon was started from:
where its files are, where its children run and write, which group may
use its socket.
"""

import os

from . import cltab as _cltab
from .errors import CltabError


def resolve_paths(table, given, base):
    """Absolute paths of socket, clstat, log and pidfile.

    A cltab setting wins over ``given`` (constructor arguments, command
    line flags), which wins over the defaults; relative paths are taken
    from ``base``, the directory the daemon was started from (as the
    Perl daemon did), also after ``clinit -d -b`` has moved to /.
    """
    return {
        name: os.path.normpath(os.path.join(base, table.setting(name, given.get(name))))
        for name in _cltab.PATH_SETTINGS
    }


def child_settings(table, base, paths, background):
    """``(directory, output)`` for children: see Context."""
    directory = table.setting("directory")
    directory = base if directory is None else os.path.normpath(os.path.join(base, directory))
    output = table.setting("output")
    if output is not None:
        output = os.path.normpath(os.path.join(base, output))
    elif background:
        output = paths["log"]
    return directory, output


def socket_group_id(table):
    """The gid of the ``socket_group`` setting (looked up once, at start), or None."""
    name = table.setting("socket_group")
    if name is None:
        return None
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise CltabError(table.path, [(0, f"setting socket_group: no such group {name!r}")]) from None
