"""The seam for side effects: every fork, exec, kill, wait and clock read.

The machines never call ``os`` or ``time`` themselves; they call a
System.  RealSystem does the real thing; FakeSystem records what was
asked, lets a test say "pid 1234 exited with status 3", and has a clock
the test advances, so machine tests run without processes or sleeps.

A System has these operations:

``spawn(command, env, directory=None, output=None)``
    Fork a child that runs ``/bin/sh -c command`` in a new session and
    process group with default signal dispositions, an empty signal
    mask, stdin from /dev/null, stdout and stderr appended to the file
    ``output`` (or, when None, those of the daemon), in ``directory``
    (or the daemon's), with the umask and the open-file limit the daemon
    was started with, and no other descriptor of ours.  Returns at once,
    without waiting for the exec: ``(pid, report)``, where ``report`` is
    the read end of the child's close-on-exec report pipe (a descriptor
    the loop watches), or None when the outcome is already known to be
    a success.  Raises SpawnError if the fork or the output file failed.
``read_report(report)``
    The exec's outcome, without blocking: ``b""`` (it succeeded), the
    reason it failed, or None (not known yet: ask again when the
    descriptor is readable).
``discard_report(report)``
    Close a report pipe whose outcome no longer matters.
``reopen_outputs()``
    Forget the output files opened so far (after a log rotation): the
    next children open them again.
``signal_group(pgid, signum)``
    Send a signal to a process group; a group that is gone is no error.
``reap()``
    Collect every child that has exited, without blocking: a list of
    ``(pid, wait_status)``.
``now()``
    A monotonic clock, in seconds.
"""

import dataclasses
import os
import resource
import select
import signal
import time

from .errors import SpawnError
from .trust import open_append

SHELL = "/bin/sh"
MAX_FD = 1 << 30  # closerange stops at the real limit


@dataclasses.dataclass
class ChildSetup:
    """How one child is set up between fork and exec (computed in the parent)."""

    reset_signals: tuple = ()
    umask: int = None
    nofile: tuple = None
    directory: str = None
    output_fd: int = None


def exit_code(wait_status):
    """The exit code of a wait status; minus the signal number if killed."""
    return os.waitstatus_to_exitcode(wait_status)


def describe_status(wait_status):
    """``exit 3`` or ``signal 9 (SIGKILL)``, for logs."""
    code = exit_code(wait_status)
    if code >= 0:
        return f"exit {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown"
    return f"signal {-code} ({name})"


def read_to_eof(fd, timeout=None):
    """Everything read from ``fd`` until every writer has closed it.

    TimeoutError if a read waits longer than ``timeout`` seconds.
    """
    data = bytearray()
    while True:
        if timeout is not None:
            readable, _, _ = select.select([fd], [], [], timeout)
            if not readable:
                raise TimeoutError(f"nothing to read within {timeout} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            return bytes(data)
        data += chunk


def changed_signals():
    """The signals whose disposition is not the default (Python's own included)."""
    changed = []
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if handler not in (signal.SIG_DFL, None):
            changed.append(signum)
    return changed


def _child_after_fork(command, env, error_pipe, setup):
    """In the child: set up the process and exec the shell.  Never returns."""
    step = "set up the child"
    try:
        os.setsid()
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
        for signum in setup.reset_signals:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        if setup.umask is not None:
            os.umask(setup.umask)
        if setup.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, setup.nofile)
        if setup.directory is not None:
            step = f"change to directory {setup.directory}"
            os.chdir(setup.directory)
        step = "set up stdin, stdout and stderr"
        devnull = os.open(os.devnull, os.O_RDONLY)
        if devnull != 0:
            os.dup2(devnull, 0)
            os.close(devnull)
        if setup.output_fd is not None:
            os.dup2(setup.output_fd, 1)
            os.dup2(setup.output_fd, 2)
        else:
            for fd in (1, 2):
                try:
                    os.set_inheritable(fd, True)
                except OSError:
                    pass  # closed in the daemon: closed in the child
        # error_pipe is close-on-exec: keep it until the exec succeeds
        os.closerange(3, error_pipe)
        os.closerange(error_pipe + 1, MAX_FD)
        step = f"exec {SHELL}"
        os.execve(SHELL, [SHELL, "-c", command], env)
    except BaseException as error:  # noqa: B036 - nothing may escape a forked child
        try:
            reason = getattr(error, "strerror", None) or error
            message = f"cannot {step}: {reason}"
            os.write(error_pipe, message.encode("utf-8", "replace"))
            os.write(2, f"clinit: {message}\n".encode("utf-8", "replace"))
        except BaseException:  # noqa: B036
            pass
    finally:
        os._exit(127)


class RealSystem:
    """The operating system, as the daemon uses it.

    ``umask`` and ``nofile`` (a ``(soft, hard)`` RLIMIT_NOFILE) are given
    to every child when set: the daemon sets them to what it was started
    with, before it changes its own.
    """

    def __init__(self):
        self.umask = None
        self.nofile = None
        self._outputs = {}  # path -> fd opened for append
        self._reset_signals = None

    def signals_changed(self):
        """The daemon changed signal dispositions: look again at the next spawn."""
        self._reset_signals = None

    def _output_fd(self, path):
        fd = self._outputs.get(path)
        if fd is None:
            try:
                fd = open_append(path)
            except OSError as error:
                raise SpawnError(f"cannot open output {path}: {error.strerror or error}") from None
            self._outputs[path] = fd
        return fd

    def reopen_outputs(self):
        outputs, self._outputs = self._outputs, {}
        for fd in outputs.values():
            os.close(fd)

    def spawn(self, command, env, directory=None, output=None):
        if self._reset_signals is None:
            self._reset_signals = tuple(changed_signals())
        setup = ChildSetup(
            reset_signals=self._reset_signals,
            umask=self.umask,
            nofile=self.nofile,
            directory=directory,
            output_fd=None if output is None else self._output_fd(output),
        )
        try:
            read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as error:
            raise SpawnError(f"cannot make a pipe: {error.strerror}") from None
        try:
            pid = os.fork()
        except OSError as error:
            os.close(read_end)
            os.close(write_end)
            raise SpawnError(f"cannot fork: {error.strerror}") from None
        if pid == 0:
            os.close(read_end)
            _child_after_fork(command, env, write_end, setup)
        os.close(write_end)
        return pid, read_end

    def read_report(self, report):
        """What a child wrote on its report pipe before its exec: ``b""`` when the
        exec succeeded, the reason when it failed, None when it cannot be told yet.
        The pipe is closed once its outcome is known."""
        try:
            # the child writes its reason in one write (shorter than PIPE_BUF), or nothing
            data = os.read(report, 4096)
        except BlockingIOError:
            return None  # the child (or a sibling being forked) still holds the write end
        os.close(report)
        return data

    def discard_report(self, report):
        os.close(report)

    def signal_group(self, pgid, signum):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    def reap(self):
        reaped = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped.append((pid, status))
        return reaped

    def now(self):
        return time.monotonic()


@dataclasses.dataclass
class Spawned:
    """What a FakeSystem was asked to run."""

    pid: int
    command: str
    env: dict
    directory: str = None
    output: str = None


class FakeSystem:
    """A System for tests: nothing runs, everything is recorded.

    ``spawned`` and ``signals`` list what was asked, in order.
    ``exit(pid, code)`` (or ``exit(pid, signum=9)``) makes the next
    ``reap()`` report that pid; ``advance(seconds)`` moves the clock;
    ``fail_spawns`` makes the next spawns raise SpawnError.
    """

    def __init__(self, first_pid=1000, clock=1000.0):
        self.clock = clock
        self.next_pid = first_pid
        self.spawned = []
        self.signals = []
        self.live = set()
        self.fail_spawns = 0
        self.defer_reports = False  # True: execs succeed or fail when the test says
        self.reports = {}  # pid -> outcome (b"" or reason), once the test said
        self._exited = []

    def spawn(self, command, env, directory=None, output=None):
        if self.fail_spawns:
            self.fail_spawns -= 1
            raise SpawnError("cannot fork: Resource temporarily unavailable")
        pid = self.next_pid
        self.next_pid += 1
        self.spawned.append(Spawned(pid, command, dict(env), directory, output))
        self.live.add(pid)
        return pid, (pid if self.defer_reports else None)

    def read_report(self, report):
        return self.reports.pop(report, None)

    def discard_report(self, report):
        self.reports.pop(report, None)

    def report(self, pid, reason=""):
        """With ``defer_reports``: the child ``pid`` has exec'ed ("") or failed (reason)."""
        self.reports[pid] = reason.encode()

    def signal_group(self, pgid, signum):
        self.signals.append((pgid, signum))

    def reopen_outputs(self):
        pass

    def reap(self):
        reaped, self._exited = self._exited, []
        return reaped

    def now(self):
        return self.clock

    # what tests call
    def exit(self, pid, code=0, signum=None):
        """Make ``pid`` exit, with ``code`` or killed by ``signum``."""
        assert pid in self.live, f"pid {pid} is not running"
        self.live.discard(pid)
        status = signum if signum is not None else (code & 0xFF) << 8
        self._exited.append((pid, status))

    def advance(self, seconds):
        self.clock += seconds

    def pid_of(self, tag):
        """The pid of the newest process started for ``tag``."""
        for spawned in reversed(self.spawned):
            if spawned.env.get("CLINIT_TAG") == tag:
                return spawned.pid
        raise KeyError(tag)

    def running_tags(self):
        """The tags whose newest process is still running, sorted."""
        return sorted(
            spawned.env.get("CLINIT_TAG") for spawned in self.spawned if spawned.pid in self.live
        )
