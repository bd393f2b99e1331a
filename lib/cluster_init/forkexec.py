"""The user path: start a child as another user, by fork, a change of ids, and exec.

glibc's posix_spawn (spawn.py) cannot change a child's uid, gid or
groups, so the entries that name a user (``:::user:``) are started here,
and only they: every other entry stays on posix_spawn, which costs less
(bench/ measures both).  The parent blocks every signal around the
fork, so that no handler of the daemon's runs in the child; the child

1. sets every signal whose disposition is not the default to the default
   (``not_default``, computed in the parent: a handler the daemon set would
   be reset by exec anyway, an ignored signal would not be; the others
   are at their default already), with the mask still full;
2. starts a new session and process group (setsid);
3. sets its supplementary groups, then its gid, then its uid (real,
   effective and saved), the identity the parent looked up;
4. puts standard input, output and error in place and closes every other
   descriptor but the report pipe (close-on-exec);
5. changes to the working directory, as the user (a directory the user
   may not enter fails the start, with the reason);
6. empties its signal mask and executes the command.

What fails before the exec is written to the report pipe as
``STAGE ERRNO``; the parent reads the pipe until it closes (at the
exec, or at the child's exit), so, as with posix_spawn, the pid is
returned once the child has executed its shell, and a failure is known
at once with its reason.  The child never returns into the daemon's
code: it ends in the exec or in ``os._exit``.
"""

import gc
import os
import resource
import signal

from .errors import SpawnError

FAILED_CHILD = 127
_STAGES = {
    b"ids": "cannot become {user}",
    b"directory": "cannot change to directory {directory} as {user}",
    b"exec": "cannot exec {path}",
    b"setup": "cannot set up the child",
}


def not_default():
    """The signals whose disposition is not known to be the default: a handler, SIG_IGN,
    or one Python did not set (``getsignal`` says None)."""
    found = []
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(signum) != signal.SIG_DFL:
                found.append(signum)
        except (OSError, ValueError):
            found.append(signum)
    return found


def spawn_as(identity, path, argv, env, fds, directory=None, signals=None):
    """Start ``path`` with ``argv`` and ``env`` as ``identity`` (users.Identity): its pid,
    once it has been exec'ed.  ``fds`` are the child's (stdin, stdout, stderr);
    ``signals`` those to set to their default (``not_default()`` when None: a caller
    that starts many children computes it once, and again when it changes one).
    SpawnError saying why when it could not be started."""
    signals = not_default() if signals is None else signals
    last_fd = _last_fd()
    report_read, report_write = os.pipe2(os.O_CLOEXEC)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
        if pid == 0:
            _child(identity, path, argv, env, fds, directory, signals, report_write, last_fd)  # never returns
    except OSError as error:
        os.close(report_read)
        raise SpawnError(f"cannot fork: {error.strerror or error}") from None
    finally:
        os.close(report_write)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        report = _read_all(report_read)
    finally:
        os.close(report_read)
    if not report:
        return pid
    _reap(pid)
    stage, _, code = report.partition(b" ")
    try:
        reason = os.strerror(int(code))
    except ValueError:
        reason = code.decode("ascii", "replace")
    what = _STAGES.get(stage, _STAGES[b"setup"]).format(user=identity.name, directory=directory, path=path)
    raise SpawnError(f"{what}: {reason}")


def _last_fd():
    """The highest descriptor number the daemon can have (its hard limit, at most 2**20)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY or hard > 1 << 20 else hard


def _read_all(fd):
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 512)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid):
    """The child failed before its exec and exits at once: collect it here, so that
    the daemon's reaper never sees a pid no machine owns."""
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _child(identity, path, argv, env, fds, directory, signals, report, last_fd):
    """In the forked child: become ``identity`` and exec, or report why not and exit."""
    stage = b"setup"
    try:
        gc.disable()  # nothing of the daemon's is to be collected (or copied) here
        for signum in signals:
            try:
                signal.signal(signum, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        os.setsid()
        stage = b"ids"
        os.setgroups(list(identity.groups))
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
        stage = b"setup"
        for target, fd in enumerate(fds):
            os.dup2(fd, target)  # inheritable
        os.closerange(3, report)
        os.closerange(report + 1, last_fd)
        if directory is not None:
            stage = b"directory"
            os.chdir(directory)
        stage = b"exec"
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execve(path, argv, env)
    except BaseException as error:  # noqa: B036 - the child reports everything, and ends here
        code = getattr(error, "errno", None) or 0
        try:
            os.write(report, stage + b" " + str(code).encode())
        except BaseException:  # noqa: B036
            pass
    finally:
        os._exit(FAILED_CHILD)

