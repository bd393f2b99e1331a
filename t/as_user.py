"""Run a function of this test process as another user, in a forked child.

A test that needs another uid (a client the daemon must refuse) drops
privileges in a child of the test process itself: no interpreter has to
be started by that user, so where the checkout and the interpreter live
does not matter.  Only root can do this; tests skip otherwise.
"""

import io
import os
import pwd
import sys

import pytest


def nobody():
    """The (uid, gid) of user nobody; skips the test unless we are root and nobody exists."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as another user (nobody)")
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody on this machine")
    return entry.pw_uid, entry.pw_gid


def run_as(uid, gid, function, *args, groups=()):
    """``function(*args)`` as ``uid``/``gid``: ``(its int result, stdout, stderr)``."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.dup2(out_write, 1)
            os.dup2(err_write, 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            code = function(*args)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException as error:  # noqa: B036 - report it, never return into pytest
            os.write(2, f"{type(error).__name__}: {error}\n".encode())
        finally:
            os._exit(code if isinstance(code, int) else 0)
    os.close(out_write)
    os.close(err_write)
    chunks = {out_read: [], err_read: []}
    for fd in chunks:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks[fd].append(data)
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = {fd: b"".join(parts).decode() for fd, parts in chunks.items()}
    return os.waitstatus_to_exitcode(status), text[out_read], text[err_read]
