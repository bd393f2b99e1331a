"""The cltab's settings and the safe reading of a cltab file.

Settings are cltab lines ``:::NAME:VALUE`` (or the old spelling
``::override:NAME:VALUE``), starting in the first column.  This module
knows their names, defaults and value checks, and reads a cltab file
without ever blocking or reading without bound: anything but a regular
file is refused, and so is a file over MAX_CLTAB_BYTES.

It imports nothing heavy, because the clinit command's client path
uses it: ``scan`` finds the setting lines of a cltab without parsing
its entries.
"""

import errno
import os

from .errors import CltabError

DEFAULT_CLTAB = "/etc/cltab"
CLTAB_VARIABLE = "CLINIT_CLTAB"  # names the cltab when none is given (-c, cltab=)
MAX_CLTAB_BYTES = 16 * 1024 * 1024
PREFIXES = (":::", "::override:")

# Every setting, with its default (None: no default, see cltab(5)).
# The Perl clinit knew socket, clstat and log.
DEFAULT_SETTINGS = {
    "socket": "/var/run/clinit/clinit.s",
    "clstat": "/var/run/clinit/clstat",
    "log": "/var/log/clinit/clinit.log",  # the Perl clinit's /var/run/clinit/log is a tmpfs
    "pidfile": "/var/run/clinit/clinit.pid",
    "output": None,  # children's stdout and stderr; %g group, %t tag (see context.child_settings)
    "directory": None,  # children's working directory: where clinit -d started
    "socket_group": None,  # a group whose members may use the socket too
    "kill_mode": "group",  # how far a stop reaches: group, or all (every marked process)
    "term_delay": 5.0,  # SIGINT ... SIGTERM
    "kill_delay": 10.0,  # SIGTERM ... SIGKILL
    "respawn_limit": 5,  # rapid restarts allowed before holding back
    "respawn_window": 1.0,  # a restart this soon after the last one is rapid
    "respawn_hold": 60.0,  # how long a too rapid entry is held back
    "start_seconds": 1.0,  # a respawn entry counts as started once up this long (0: at once)
    "start_limit_burst": 5,  # exits within start_limit_interval that make a crash loop (0: off)
    "start_limit_interval": 10.0,  # seconds
}
# names of ``:::NAME:...`` lines that are not settings: each line names what it is
# about, and has a meaning and checks of its own (cltab.py); ``boot`` is
# ``:::boot:GROUP:LEVEL``, the level a group is told when the daemon starts;
# ``user`` is ``:::user:GROUP:TAG:USER[:UNIXGROUP]``, who an entry runs as (users.py)
LINE_KINDS = ("boot", "user")
# paths relative to the directory clinit -d was started from
PATH_SETTINGS = ("socket", "clstat", "log", "pidfile")
CLIENT_SETTINGS = ("socket", "clstat")  # what the clinit command reads of a cltab
KILL_MODES = ("group", "all")
_NUMBERS = {
    "term_delay": float,
    "kill_delay": float,
    "respawn_limit": int,
    "respawn_window": float,
    "respawn_hold": float,
    "start_seconds": float,
    "start_limit_burst": int,
    "start_limit_interval": float,
}


def default_cltab(environ=None):
    """The cltab to use when none is named: $CLINIT_CLTAB when it is set and not
    empty (as /etc/default/clinit sets it for the service), else /etc/cltab."""
    environ = os.environ if environ is None else environ
    return environ.get(CLTAB_VARIABLE) or DEFAULT_CLTAB


def parse_setting(line):
    """``(name, value)`` for a setting line, or None for any other line."""
    for prefix in PREFIXES:
        if line.startswith(prefix):
            name, sep, value = line[len(prefix):].partition(":")
            if sep and name and value:
                return name, value
    return None


def check_value(name, value):
    """The setting's value converted, or raise ValueError saying why not."""
    convert = _NUMBERS.get(name)
    if convert is not None:
        try:
            number = convert(value)
        except ValueError:
            kind = "a whole number" if convert is int else "a number of seconds"
            raise ValueError(f"setting {name} wants {kind}, not {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"setting {name} wants a finite number, not {value!r}")
        if number < 0:
            raise ValueError(f"setting {name} must not be negative")
        return number
    if name == "kill_mode" and value not in KILL_MODES:
        raise ValueError(f"setting kill_mode is {' or '.join(KILL_MODES)}, not {value!r}")
    return value


def unknown_name_message(name):
    """What to say about a setting name clinit does not know."""
    import difflib  # only on this rare path: it is slow to import

    close = difflib.get_close_matches(name, DEFAULT_SETTINGS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown setting {name!r} ignored{hint}"


def read_text(path, opener=None):
    """The text of the cltab at ``path``, and the ``os.stat_result`` of the file read.

    Raises CltabError (line 0) if it cannot be read, is not a regular
    file (a FIFO is never waited on), or is larger than MAX_CLTAB_BYTES.
    ``opener(path)`` opens it (a root daemon's: safepath, whose refusals
    are said "not trusted"); else it is opened by path, without blocking.
    """
    try:
        if opener is not None:
            fd = opener(path)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        refused = opener is not None and error.errno in (errno.EPERM, errno.ELOOP)
        why = "not trusted" if refused else "cannot read"
        raise CltabError(path, [(0, f"{why}: {error.strerror or error}")]) from None
    try:
        info = os.fstat(fd)
        if not _is_regular(info.st_mode):
            raise CltabError(path, [(0, "not a regular file")])
        if info.st_size > MAX_CLTAB_BYTES:
            raise CltabError(path, [(0, f"larger than {MAX_CLTAB_BYTES >> 20} MiB")])
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_CLTAB_BYTES:
                raise CltabError(path, [(0, f"larger than {MAX_CLTAB_BYTES >> 20} MiB")])
            chunks.append(chunk)
    except OSError as error:
        raise CltabError(path, [(0, f"cannot read: {error.strerror or error}")]) from None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape"), info


def _is_regular(mode):
    return mode & 0o170000 == 0o100000


def signature(info):
    """What tells us a cltab file changed, from its stat result."""
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev, info.st_ctime_ns)


def file_signature(path):
    """``signature`` of the file at ``path`` now, or None if it cannot be stat'ed."""
    try:
        return signature(os.stat(path))
    except OSError:
        return None


def scan(text, path, check=CLIENT_SETTINGS):
    """The settings of cltab ``text`` and the unknown names, without parsing entries.

    Returns ``(settings, unknown)``: ``settings`` maps each known name to
    its value, ``unknown`` lists ``(line, message)`` for names clinit does
    not know.  Raises CltabError (with ``path``) for a bad value of a
    setting named in ``check`` (by default those a client uses: a bad
    kill_delay is the daemon's to refuse, and must not keep ``clinit -k``
    or ``clinit -S`` from working).  Only lines that start with a colon
    are looked at, so this is fast on a cltab of any size.
    """
    settings = {}
    unknown = []
    problems = []
    position = 0 if text.startswith(":") else text.find("\n:")
    while position >= 0:
        start = position + 1 if text[position] == "\n" else position
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.endswith("\r"):
            line = line[:-1]
        setting = parse_setting(line)
        if setting is not None:
            name, value = setting
            number = text.count("\n", 0, start) + 1
            if name in LINE_KINDS:
                pass  # not a setting: the daemon's and --check's (cltab.py)
            elif name not in DEFAULT_SETTINGS:
                unknown.append((number, unknown_name_message(name)))
            elif name in check:
                try:
                    settings[name] = check_value(name, value)
                except ValueError as error:
                    problems.append((number, str(error)))
            else:
                settings[name] = value
        if end < 0:
            break
        position = text.find("\n:", end)
    if problems:
        raise CltabError(path, problems)
    return settings, unknown
