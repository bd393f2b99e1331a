"""The floor: a bare Python loop that forks and execs ``/bin/sh -c 'exec sleep ARG'``.

bench_daemon.py runs this with its own interpreter and drives it over
stdin, one command a line; the floor answers each with one line on
stdout once it is done (the benchmark does not time by these answers:
it watches /proc, as it does for clinit and supervisord).

    spawn N ARG   fork and exec N children, nothing else in the child
    switch ARG    SIGINT every child, reap them all, then spawn as many with ARG
    respawn       answer "ready", then reap each child as it exits and fork
                  a replacement at once, until every child was replaced
    kill          SIGKILL every child and reap them
"""

import os
import signal
import sys

SHELL = "/bin/sh"
children = {}  # pid -> sleep argument


def spawn(count, arg):
    argv = [SHELL, "-c", f"exec sleep {arg}"]
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(SHELL, argv)
            finally:
                os._exit(127)
        children[pid] = arg


def reap(pids):
    for pid in pids:
        os.waitpid(pid, 0)
        children.pop(pid, None)


def main():
    # a child must die of SIGINT even if we were started with it ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "spawn":
            spawn(int(words[1]), words[2])
        elif words[0] == "switch":
            old = list(children)
            for pid in old:
                os.kill(pid, signal.SIGINT)
            reap(old)
            spawn(len(old), words[1])
        elif words[0] == "respawn":
            print("ready", flush=True)
            todo = set(children)
            while todo:
                pid, _status = os.wait()
                arg = children.pop(pid, None)
                if pid in todo:
                    todo.discard(pid)
                    spawn(1, arg)
        elif words[0] == "kill":
            old = list(children)
            for pid in old:
                os.kill(pid, signal.SIGKILL)
            reap(old)
        print("ok", flush=True)


if __name__ == "__main__":
    main()
