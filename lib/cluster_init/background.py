"""Start the daemon detached (``clinit -d -b``), the classic way.

The calling process forks a child that becomes the daemon through
python-daemon's DaemonContext (umask, working directory /, descriptors
closed but the ones listed, double fork and setsid, pidfile held with
lockfile, reached through safepath: pidfile.py), then waits on a pipe until the daemon says it accepts
requests, or why it could not start.  So the command returns only once
the socket answers, and fails loudly otherwise.  The daemon itself sits
in /; its entries run in the directory ``clinit -d -b`` was started from
(see Daemon), with their stdout and stderr on the log or the
``:::output:`` file, never closed.
"""

import os

from .errors import DaemonStartError, MissingDependency
from .safepath import reason
from .sysapi import read_to_eof

READY_TIMEOUT = 30.0
DEPENDENCIES = (("daemon", "python-daemon"), ("lockfile", "lockfile"))


def check_dependencies():
    """MissingDependency naming the first package -b needs that cannot be imported."""
    import importlib

    for module, package in DEPENDENCIES:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise MissingDependency(
                f"-b needs the Python package {package}, which is not installed ({error});"
                f" install it with: pip install {package} (on Debian: apt install python3-daemon"
                " python3-lockfile), or run the clinit of the virtual environment that has it"
            ) from None


def is_clinit(pid):
    """True when ``pid`` lives and its command line is a clinit daemon's (clinit or
    cluster_init, with -d: ``vi /etc/default/clinit`` is not one)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            words = stream.read().split(b"\0")
    except OSError:
        return False
    named = any(os.path.basename(word) == b"clinit" or word.startswith(b"cluster_init") for word in words)
    daemon = any(
        word in (b"-d", b"--daemon") or word[:1] == b"-" and word[1:2] != b"-" and b"d" in word[1:]
        for word in words
    )
    return named and daemon


def _pidlock(path):
    """The daemon's pid file lock (pidfile.SafePIDLockFile: read, made and removed
    through safepath, never blocking on a FIFO).

    A stale one is broken: its pid is gone, or is some other program's
    (after a reboot the old pid is often taken).  One naming a live
    clinit refuses the start.  OSError when what is at the path is not a
    regular file, or cannot be reached.
    """
    from .pidfile import SafePIDLockFile

    lock = SafePIDLockFile(path, timeout=0)
    pid = lock.read_pid()
    if pid is not None and pid != os.getpid() and is_clinit(pid):
        raise DaemonStartError(f"{path} says clinit already runs as pid {pid}")
    if pid is not None or lock.is_locked():
        lock.break_lock()
    return lock


def _become_daemon(daemon, pidlock, report):
    """In the forked child: detach, run the daemon, never return."""
    import daemon as python_daemon

    code = 1
    premises = daemon.premises
    context = python_daemon.DaemonContext(
        working_directory="/",
        umask=premises.umask,  # the children's: spawned children inherit the daemon's
        pidfile=pidlock,
        detach_process=True,
        files_preserve=[report],
    )
    premises.keep_lock()  # until this process exits, after the pidfile is gone
    try:
        context.open()

        def ready():
            os.write(report, f"ok {os.getpid()}\n".encode())
            os.close(report)

        daemon.run(ready=ready)
        code = 0
    except BaseException as error:  # noqa: B036 - report everything, then exit
        try:
            os.write(report, f"error {error}\n".encode("utf-8", "replace"))
        except OSError:
            pass
    finally:
        try:
            context.close()
        finally:
            os._exit(code)


def run_detached(daemon):
    """After a handover under ``-d -b`` (handover.py): the process is the detached
    daemon already, and its pid file names it.  Run ``daemon`` as ``_become_daemon``
    does, and remove the pid file at the end, as the DaemonContext would have."""
    daemon.premises.keep_lock()  # until this process exits, after the pid file is gone
    try:
        daemon.run()
    finally:
        path = daemon.premises.paths["pidfile"]
        try:
            with open(path, encoding="ascii", errors="replace") as stream:
                ours = stream.read(64).split()[:1] == [str(os.getpid())]
            if ours:
                os.unlink(path)
        except OSError:
            pass


def start(daemon, timeout=READY_TIMEOUT):
    """Run ``daemon`` (a constructed daemon.Daemon) detached; its pid.

    Before it detaches, its premises (premises.py) are checked where the
    caller still sees what goes wrong: the socket, the directories, the
    log, clstat's directory and the pid file.  Returns once the daemon
    accepts requests; DaemonStartError if it cannot.
    """
    premises = daemon.premises
    premises.check_socket()
    premises.check_files()
    path = premises.paths["pidfile"]
    try:
        pidlock = _pidlock(path)
    except OSError as error:
        why = reason(error, path)
        raise DaemonStartError(f"cannot use the pid file {path}: {why} (set -p or :::pidfile:)") from None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _become_daemon(daemon, pidlock, write_end)
    os.close(write_end)
    try:
        report = read_to_eof(read_end, timeout)
    except TimeoutError:
        raise DaemonStartError(f"the daemon did not start within {timeout} s") from None
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)  # the first child exits as soon as it has forked
    text = report.decode("utf-8", "replace").strip()
    if text.startswith("ok "):
        return int(text.split()[1])
    if text.startswith("error "):
        raise DaemonStartError(text[len("error "):])
    raise DaemonStartError("the daemon exited before it was ready")
