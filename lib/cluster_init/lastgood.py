"""The last good cltab: a copy of the last cltab the daemon applied, beside clstat.

The daemon keeps it at ``CLSTAT.cltab`` (``path_for``): written whole
(``save``) when the daemon starts and whenever it applies a reread
cltab, to a temporary file renamed over the old one, mode 0600, through
safepath (as root, clstat's directory must be trusted, and nothing on
the way is followed unless trusted).  It stays after the daemon exits.

A daemon that starts on a cltab it refuses (systemd restarting it after
a crash while someone edits the file, say) runs on that copy instead,
with a warning, and adopts what its predecessor left as usual
(``start_on``, ``fall_back``); only without a usable copy does it refuse
the cltab (exit 6).  The copy is found beside the clstat the refused file names
(the given or default clstat when its settings cannot be read, or, as
root, cannot be trusted), and is used only if its own settings name the
same clstat.  As root it is used only if it is a regular file owned by
root and writable by nobody else, reached through trusted directories:
the rules of the cltab itself.  A missing cltab is not refused but
absent: a node that is not configured does not start on an old copy.
"""

import logging
import os

from . import cltab as _cltab
from . import safepath
from . import settings as _settings
from .errors import CltabError
from .trust import cltab_problems, file_problems, running_as_root

log = logging.getLogger("cluster_init")

SUFFIX = ".cltab"


def path_for(clstat):
    """Where the copy beside ``clstat`` is."""
    return clstat + SUFFIX


def save(clstat, table):
    """Keep ``table``'s text as the last good cltab beside ``clstat``; False (logged) if
    it cannot be written."""
    path = path_for(clstat)
    try:
        safepath.replace_file(path, table.text.encode("utf-8", "surrogateescape"), mode=0o600)
    except OSError as error:
        log.error("cannot keep a copy of the cltab as %s: %s", path, error.strerror or error)
        return False
    return True


def load(clstat):
    """The Cltab of the copy beside ``clstat``; CltabError (naming it) if there is none
    that may be used."""
    path = path_for(clstat)
    try:
        fd = safepath.open_read(path)
    except OSError as error:
        raise CltabError(path, [(0, f"no last good cltab: {error.strerror or error}")]) from None
    try:
        info = os.fstat(fd)
        problems = file_problems(path, info) if running_as_root() else []
        if problems:
            raise CltabError(path, [(0, f"not trusted: {problem}") for problem in problems])
        if info.st_size > _settings.MAX_CLTAB_BYTES:
            raise CltabError(path, [(0, "too large")])
        data = os.read(fd, info.st_size + 1)
    finally:
        os.close(fd)
    return _cltab.parse(data.decode("utf-8", "surrogateescape"), path)


def _settings_of(path):
    """The refused file's settings, when they may be read and trusted; else none."""
    try:
        text, info = _settings.read_text(path)
        if running_as_root() and cltab_problems(path, info):
            raise CltabError(path, [])
        return _cltab.parse(text, path, entries=False)
    except CltabError:
        return _cltab.Cltab(path)


def fall_back(path, error, given, base):
    """The Cltab of the last good copy to run on, the cltab at ``path`` having been
    refused with CltabError ``error``; raises ``error`` when there is no usable copy.

    ``given`` are the paths the daemon was given (clstat among them), ``base``
    the directory relative paths start from.
    """
    from .premises import resolve_paths

    if not os.path.lexists(path):
        raise error  # not configured: no cltab at all
    clstat = resolve_paths(_settings_of(path), given, base)["clstat"]
    try:
        table = load(clstat)
    except CltabError as problem:
        log.debug("no last good cltab to fall back on: %s", problem)
        raise error from None
    if resolve_paths(table, given, base)["clstat"] != clstat:
        raise error  # a copy that is not this daemon's
    return table


def start_on(cltab, given, start_dir=None):
    """``(path, Cltab, signature, refused)``: the cltab a daemon starts with, at its
    absolute ``path`` (``cltab`` None: cltab.default_cltab).  When that file is refused,
    ``refused`` is its CltabError, the Cltab the last good copy (``fall_back``: relative
    paths from ``start_dir``, else the working directory) and ``signature`` None;
    CltabError when there is no usable copy."""
    path = os.path.abspath(_cltab.default_cltab() if cltab is None else cltab)
    try:
        table, signature = _cltab.load_trusted(path)
    except CltabError as error:  # the last good copy, if there is one; else refused
        return path, fall_back(path, error, given, start_dir or os.getcwd()), None, error
    return path, table, signature, None


def warn_running_on(path, error, table):
    """Log that the cltab at ``path`` was refused (CltabError ``error``) and the daemon
    runs on the last good copy ``table``."""
    log.warning(
        "cltab %s refused (%s): running on the last good one, %s; fix the file and reread",
        path,
        str(error).splitlines()[0],
        table.path,
    )
