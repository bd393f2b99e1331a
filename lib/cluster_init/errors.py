"""The exceptions clinit raises; all derive from Error."""


class Error(Exception):
    """Anything clinit reports to its caller.  str() is the message."""


class CltabError(Error):
    """A cltab that cannot be used, with every problem found in it.

    ``problems`` is a list of ``(line, message)`` pairs, line 0 for a
    problem with the file as a whole.  str() gives one
    ``FILE:LINE: message`` line per problem, as compilers do.
    """

    def __init__(self, path, problems, warnings=()):
        self.path = path
        self.problems = list(problems)
        self.warnings = list(warnings)  # (line, message) of lines that were only ignored
        super().__init__(self.format())

    def format(self):
        return "\n".join(
            f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}"
            for line, message in self.problems
        )


class DaemonError(Error):
    """The daemon answered a request with an error; str() is its message."""


class CltabRefused(DaemonError):
    """The daemon refused its cltab (broken, unreadable or untrusted).

    It keeps running on the last good one; str() lists the problems.
    """


class PermissionDenied(Error):
    """The socket cannot be reached, or the daemon does not serve this user."""


class Busy(DaemonError):
    """The daemon is too busy to take the request now (too many clients)."""


class NotRunning(Error):
    """No daemon answers on the socket."""


class MissingDependency(Error):
    """A Python package that ``clinit -d -b`` needs is not installed."""


class SpawnError(Error):
    """A command could not be started (fork or exec failed)."""


class DaemonStartError(Error):
    """The daemon cannot start (socket in use, directory not writable, ...)."""


class Timeout(Error, TimeoutError):
    """No answer came within the time the caller allowed."""


class Interrupted(Error):
    """The command was interrupted (Ctrl-C) while it waited; str() says for what.

    The daemon is not affected: what it was asked to do goes on.
    """
