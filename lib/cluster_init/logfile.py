"""The daemon's log: a file opened for append, reopened on SIGHUP, never noisy.

Each record is one ``write`` to a descriptor opened with O_APPEND, so
lines from the daemon and from children writing to the same file (their
default output under ``clinit -d -b``) never overwrite each other.  The
file is created mode 0640: it lists every command line.  A write that
fails (a full disk) costs one line on stderr for the whole burst of
failures, never a traceback.

DaemonLog is the daemon's whole log: that file and, unless told
otherwise, stderr for warnings, added to the "cluster_init" logger at
start and taken off it at the end.
"""

import logging
import os
import sys

from .safepath import open_append

LOG_FORMAT = "%(asctime)s clinit[%(process)d] %(levelname)s %(message)s"

log = logging.getLogger("cluster_init")


def _complain(what, error):
    try:
        sys.stderr.write(f"clinit: cannot write {what}: {error}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


class LogFile(logging.Handler):
    """A logging handler that appends to ``path`` and can reopen it."""

    def __init__(self, path, mode=0o640):
        super().__init__()
        self.path = path
        self.mode = mode
        self.fd = None
        self.failing = False
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.reopen()

    def reopen(self):
        """Open the path again (after logrotate renamed the file).  OSError if it cannot."""
        fd = open_append(self.path, self.mode)
        old, self.fd = self.fd, fd
        if old is not None:
            os.close(old)

    def emit(self, record):
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            if self.fd is None:
                raise OSError("the log is not open")
            os.write(self.fd, data)
        except Exception as error:  # noqa: BLE001 - logging must never take the daemon down
            if not self.failing:
                _complain(f"log {self.path}", getattr(error, "strerror", None) or error)
            self.failing = True
        else:
            self.failing = False

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        super().close()


class QuietStreamHandler(logging.StreamHandler):
    """A StreamHandler whose failures (a closed stderr) are silent."""

    def handleError(self, record):
        pass


class DaemonLog:
    """The daemon's log: the file at ``path`` (a LogFile) and, when ``to_stderr``,
    stderr for warnings; ``open`` at start, ``reopen`` on SIGHUP, ``close`` at the end."""

    def __init__(self, path, to_stderr=True):
        self.path = path
        self.to_stderr = to_stderr
        self.logfile = None
        self._handlers = []

    def open(self):
        """The log file (a failure is said on stderr: the daemon runs on without it),
        and stderr for warnings unless ``to_stderr`` is off."""
        logger = logging.getLogger("cluster_init")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            self.logfile = LogFile(self.path)
        except OSError as error:
            print(f"clinit: cannot open log {self.path}: {error.strerror or error}", file=sys.stderr)
        else:
            self._handlers.append(self.logfile)
        if self.to_stderr:
            handler = QuietStreamHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            handler.setFormatter(logging.Formatter("clinit: %(message)s"))
            self._handlers.append(handler)
        for handler in self._handlers:
            logger.addHandler(handler)

    def reopen(self):
        """SIGHUP: reopen the log (logrotate); children open their output files anew anyway."""
        if self.logfile is None:
            return
        try:
            self.logfile.reopen()
        except OSError as error:
            log.error("cannot reopen log %s: %s", self.logfile.path, error.strerror or error)
        else:
            log.info("log reopened")

    def close(self):
        logger = logging.getLogger("cluster_init")
        for handler in self._handlers:
            logger.removeHandler(handler)
            handler.close()
        self._handlers = []
        self.logfile = None
