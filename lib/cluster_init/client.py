"""The client side: find the daemon's socket, send one request, read the answer."""

import os
import socket as _socket

from . import cltab as _cltab
from . import status as _status
from .errors import CltabError, DaemonError, NotRunning, Timeout
from .protocol import Request, parse_answer

DEFAULT_CLTAB = _cltab.DEFAULT_CLTAB
ANSWER_TIMEOUT = 30.0  # seconds to wait for any answer but a wait request's


class Client:
    """Talks to the daemon named by a cltab (or by explicit paths).

    Settings in the cltab win over the arguments, as in the Perl
    module; a cltab that does not exist or cannot be read leaves the
    arguments and the defaults.
    """

    def __init__(self, cltab=DEFAULT_CLTAB, socket=None, clstat=None, log=None, pidfile=None):
        self.cltab = cltab
        self._given = {"socket": socket, "clstat": clstat, "log": log, "pidfile": pidfile}
        self._read = (None, None)  # (file signature, settings-only Cltab)

    def _settings(self):
        """The cltab's settings, read again only when the file changed."""
        signature = _cltab.file_signature(self.cltab)
        if self._read[1] is None or signature != self._read[0]:
            try:
                table = _cltab.load(self.cltab, entries=False)
            except CltabError:
                table = _cltab.parse("", self.cltab)
            self._read = (signature, table)
        return self._read[1]

    def conf(self, name):
        """The effective value of a setting (``cltab``, ``socket``, ``clstat``, ...)."""
        if name == "cltab":
            return self.cltab
        return self._settings().setting(name, self._given.get(name))

    @property
    def socket_path(self):
        return self.conf("socket")

    def request(self, verb, *args, timeout=ANSWER_TIMEOUT):
        """Send one request; the Answer.  NotRunning if no daemon answers,
        DaemonError (with the daemon's text) on an error answer."""
        path = self.socket_path
        connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            connection.settimeout(timeout)
            try:
                connection.connect(path)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as error:
                raise NotRunning(f"no clinit daemon answers on {path}: {error.strerror}") from None
            except PermissionError as error:
                raise NotRunning(f"cannot connect to {path}: {error.strerror}") from None
            connection.sendall(Request(verb, args).line().encode("utf-8"))
            chunks = []
            while True:
                try:
                    chunk = connection.recv(65536)
                except _socket.timeout:
                    raise Timeout(f"no answer from the daemon on {path} within {timeout:g} s") from None
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            connection.close()
        data = b"".join(chunks)
        if not data:
            raise NotRunning(f"the daemon on {path} closed the connection without answering")
        answer = parse_answer(data)
        if not answer.ok:
            raise DaemonError("\n".join((answer.message,) + answer.lines))
        return answer

    def tell(self, group, level):
        """Tell ``group`` to move to ``level``; the daemon's message."""
        return self.request("tell", str(group), str(level)).message

    def wait(self, group, level, timeout=None):
        """Block until ``group`` settles at ``level``; its state word.

        DaemonError if it settles at another level (told another level
        meanwhile) or is halted; Timeout after ``timeout`` seconds.
        """
        answer = self.request("wait", str(group), str(level), timeout=timeout)
        return answer.message.rsplit(" ", 1)[-1]

    def reread(self):
        return self.request("reread").message

    def shutdown(self):
        return self.request("shutdown").message

    def ping(self):
        return self.request("ping").message

    def alive(self):
        """True when a daemon answers on the socket."""
        try:
            self.ping()
        except (NotRunning, OSError):
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
