"""The client side: find the daemon's socket, send one request, read the answer.

Imports only what the clinit command needs to answer at interpreter
start-up speed: ``_socket`` (not ``socket``, which pulls in enum and
selectors), and the light settings, protocol and status modules.
"""

import os
import _socket

from . import settings as _settings
from . import status as _status
from .errors import (
    Busy,
    CltabError,
    CltabRefused,
    DaemonError,
    Error,
    NotRunning,
    PermissionDenied,
    Timeout,
)
from .protocol import (
    BUSY,
    CLTAB_REFUSED,
    PERMISSION_DENIED,
    TIMEOUT,
    WAIT_DEFAULT,
    Request,
    format_seconds,
    parse_answer,
)

DEFAULT_CLTAB = _settings.DEFAULT_CLTAB
ANSWER_TIMEOUT = 30.0  # seconds to wait for any answer but a wait request's
WAIT_SLACK = 10.0  # how much longer than its own deadline we give a wait answer

# the Perl Cluster::Init's tell() conventions: tell(":::ALL:::", ":::REREAD:::")
PERL_REREAD = (":::REREAD:::", "::REREAD::")
PERL_SHUTDOWN = (":::SHUTDOWN:::", "::SHUTDOWN::")

_ERRORS = {CLTAB_REFUSED: CltabRefused, PERMISSION_DENIED: PermissionDenied, BUSY: Busy, TIMEOUT: Timeout}


def _connect(connection, path, timeout):
    """Connect, waiting (up to ``timeout``) while the daemon's listen queue is full."""
    import time

    deadline = None
    while True:
        try:
            connection.connect(path)
            return
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as error:
            raise NotRunning(f"no clinit daemon answers on {path}: {error.strerror}") from None
        except PermissionError as error:
            raise PermissionDenied(f"cannot connect to {path}: {error.strerror}") from None
        except BlockingIOError:  # the listen queue is full: the daemon is accepting
            now = time.monotonic()
            deadline = deadline or now + (timeout if timeout is not None else ANSWER_TIMEOUT)
            if now >= deadline:
                raise Busy(f"busy: the daemon on {path} did not accept within {timeout:g} s") from None
            time.sleep(0.005)
        except OSError as error:
            raise Error(f"cannot connect to {path}: {error.strerror or error}") from None


def lock_held(socket_path):
    """True while a daemon holds the lock beside ``socket_path``; False when
    none does (the daemon is gone, even killed with SIGKILL); None when it
    cannot be told (the lock file cannot be opened, or is not a regular file).

    Never blocks: the lock file is opened O_NONBLOCK (a FIFO planted there
    is refused) and probed with a shared flock that is not waited for.
    socketlock.held does it, for the daemon and the client alike.
    """
    from .socketlock import held

    return held(socket_path)


class ClinitWarning(UserWarning):
    """A warning the daemon gave with an answer (the request was done)."""


class Client:
    """Talks to the daemon named by a cltab (or by explicit paths).

    ``cltab`` None is $CLINIT_CLTAB, else /etc/cltab.  Settings in the
    cltab win over the arguments, as in the Perl module.  A cltab that
    cannot be read, or whose settings are bad, raises CltabError, unless
    ``socket`` was given: then it is only a warning (in ``warnings``) and
    the arguments and defaults are used.  Warnings that came with the last
    answer are in ``last_warnings``.
    """

    def __init__(self, cltab=None, socket=None, clstat=None, log=None, pidfile=None):
        self.cltab = _settings.default_cltab() if cltab is None else os.fspath(cltab)
        self._given = {"socket": socket, "clstat": clstat, "log": log, "pidfile": pidfile}
        self._read = (None, None)  # (file signature, settings)
        self.warnings = []  # unknown setting names in the cltab, as "FILE:LINE: message"
        self.cltab_problem = None  # why the cltab could not be used (only with socket=)
        self.last_warnings = ()
        self.last_answer = None  # the last Answer (its lines: why a group is FAILED)

    def _settings(self):
        """The cltab's settings, read again only when the file changed."""
        signature = _settings.file_signature(self.cltab)
        if self._read[1] is None or signature is None or signature != self._read[0]:
            try:
                text, info = _settings.read_text(self.cltab)
                found, unknown = _settings.scan(text, self.cltab)
                signature = _settings.signature(info)
            except CltabError as error:
                if self._given["socket"] is None:
                    raise
                self.cltab_problem = str(error)
                self.warnings = []
                found = {}
            else:
                self.cltab_problem = None
                self.warnings = [f"{self.cltab}:{line}: {message}" for line, message in unknown]
            self._read = (signature, found)
        return self._read[1]

    def conf(self, name):
        """The effective value of a setting (``cltab``, ``socket``, ``clstat``, ...)."""
        if name == "cltab":
            return self.cltab
        found = self._settings()
        if name in found:
            return found[name]
        given = self._given.get(name)
        return given if given is not None else _settings.DEFAULT_SETTINGS.get(name)

    @property
    def socket_path(self):
        return self.conf("socket")

    def request(self, verb, *args, timeout=ANSWER_TIMEOUT):
        """Send one request; the Answer.

        NotRunning if no daemon answers, PermissionDenied if this user may
        not reach it, DaemonError (or the subclass its kind names:
        CltabRefused, Busy) on an error answer, Timeout when no answer
        comes within ``timeout`` seconds.
        """
        path = self.socket_path
        self.last_answer, self.last_warnings = None, ()
        connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            connection.settimeout(timeout)
            _connect(connection, path, timeout)
            line = Request(verb, (str(arg) for arg in args)).line().encode("utf-8")
            chunks = []
            try:
                connection.sendall(line)
            except (ConnectionResetError, BrokenPipeError):
                pass  # refused at accept: the daemon answered and closed before we sent
            try:
                while True:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except TimeoutError:
                raise Timeout(f"no answer from the daemon on {path} within {timeout:g} s") from None
            except (ConnectionResetError, BrokenPipeError):
                pass  # an answer may have come before the reset
        finally:
            connection.close()
        data = b"".join(chunks)
        if not data:
            raise NotRunning(f"the daemon on {path} closed the connection without answering (did it exit?)")
        answer = parse_answer(data)
        self.last_answer = answer
        self.last_warnings = answer.warnings
        if not answer.ok:
            error = _ERRORS.get(answer.kind, DaemonError)
            raise error("\n".join((answer.message,) + answer.lines))
        return answer

    def _warn(self):
        if self.last_warnings:
            import warnings

            for text in self.last_warnings:
                warnings.warn(text, ClinitWarning, stacklevel=3)

    def tell(self, group, level):
        """Tell ``group`` to move to ``level``; the daemon's message.

        As in the Perl module, a level of ``:::REREAD:::`` (or
        ``::REREAD::``) rereads the cltab and ``:::SHUTDOWN:::`` (or
        ``::SHUTDOWN::``) shuts the daemon down, whatever the group.
        Warnings the daemon gave are issued as ClinitWarning.
        """
        level = str(level)
        if level in PERL_REREAD:
            return self.reread()
        if level in PERL_SHUTDOWN:
            return self.shutdown()
        message = self.request("tell", str(group), level).message
        self._warn()
        return message

    def wait(self, group, level, timeout=None):
        """Block until ``group`` settles at ``level``; its state word.

        For FAILED, ``last_answer.lines`` says why (one ``GROUP:TAG: why``
        line per entry that fails it); ``last_warnings`` names the wait and
        once entries of the level that exited non-zero since it was told.
        DaemonError if it settles at another level (told another level
        meanwhile) or is halted; Timeout after ``timeout`` seconds (None:
        wait as long as it takes, asking again whenever the daemon's own
        limit for one wait runs out); ValueError for a timeout outside 0
        to protocol.MAX_SECONDS.  A KeyboardInterrupt (Ctrl-C) goes
        through, with the connection closed: the daemon forgets the wait
        and the group goes on moving.
        """
        while True:
            if timeout is None:
                args, seconds = (), WAIT_DEFAULT
            else:
                args, seconds = (format_seconds(timeout),), timeout
            try:
                answer = self.request("wait", str(group), str(level), *args, timeout=seconds + WAIT_SLACK)
            except Timeout:
                if timeout is None:
                    continue
                raise
            return answer.message.rsplit(" ", 1)[-1]

    def reread(self):
        return self.request("reread").message

    def output_file(self, group, tag):
        """The file entry ``group:tag`` writes its standard output and error to (read it
        with your own rights); DaemonError when it writes where the daemon writes."""
        answer = self.request("output", str(group), str(tag))
        if not answer.lines or not answer.lines[0]:
            raise DaemonError(f"the daemon named no output file for {group}:{tag}")
        return answer.lines[0]

    def shutdown(self):
        return self.request("shutdown").message

    def ping(self):
        return self.request("ping").message

    def lock_held(self):
        """Whether a daemon holds the lock beside the socket (see ``lock_held``)."""
        return lock_held(self.socket_path)

    def alive(self):
        """True when a daemon answers on the socket."""
        try:
            self.ping()
        except (NotRunning, DaemonError, PermissionDenied, OSError):
            return False
        return True

    def status(self, group=None, level=None, clstat=None):
        """The Perl ``status()`` text, read from clstat (see status.render)."""
        return status(group=group, level=level, clstat=clstat or self.conf("clstat"))


def status(group=None, level=None, clstat=None):
    """Read and filter a clstat; "" when the file does not exist."""
    if clstat is None:
        raise TypeError("status() needs clstat= when called without a client")
    return _status.render(_status.read(os.fspath(clstat)), group=group, level=level)
