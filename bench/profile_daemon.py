#!/usr/bin/env python3
"""Profile the clinit daemon with cProfile: where a level start, a no-op tell and a reread spend.

    python3 bench/profile_daemon.py [--spawn N] [--scale N] [--tells N] [--rereads N]
                                    [--top N] [--dump DIR]

The daemon of this checkout runs in this very process (the main thread,
which it needs for its signals), a helper thread plays the client, and
only the phases below are profiled: the helper switches the profiler on
and off by pinging the daemon (a hook on its ping verb, requests.py).

spawn   a level of N (1,000) ``once`` entries ``exec sleep 1000`` told,
        until the daemon answers that the group is DONE (every exec done)
tell    no-op tells (``tell g0 1``, the group at level 1) with a cltab of
        N (10,000) entries in N/10 groups, every group told level 1
reread  rereads of that cltab, changed before each (the change is not
        profiled)

Then, unprofiled: what the ``clinit`` command spends on imports
(-X importtime) against ``python -c pass``, and the time per spawn of
the daemon's spawn path (and, as root, its user path) against a bare
fork/exec and os.posix_spawn.

For each phase: its wall time, then the functions with the most
cumulative time and the most own time.  cProfile slows Python code
(not the system calls), so compare the numbers with each other, not
with bench_daemon.py's.  --dump writes PHASE.prof files for pstats.
"""

import argparse
import cProfile
import os
import pstats
import queue
import statistics
import sys
import threading
import time
import traceback

import rig

from cluster_init.client import Client  # rig put lib/ on sys.path
from cluster_init.daemon import Daemon

INSTANCE = "profile"


class Switch:
    """Turns a profiler on and off inside the daemon's thread, at a ping."""

    def __init__(self):
        self.commands = queue.Queue()
        self.current = None
        self.profiles = {}

    def install(self, daemon):
        handlers = getattr(getattr(daemon, "requests", None), "verbs", None)
        if not isinstance(handlers, dict) or "ping" not in handlers:
            return False
        original = handlers["ping"]

        def on_ping(*args):
            try:
                kind, name = self.commands.get_nowait()
            except queue.Empty:
                kind = None
            if kind == "start":
                self.current = (name, cProfile.Profile())
                self.current[1].enable()
            elif kind == "stop" and self.current is not None:
                self.current[1].disable()
                self.profiles[self.current[0]] = self.current[1]
                self.current = None
            return original(*args)

        handlers["ping"] = on_ping
        return True

    def start(self, client, name):
        self.commands.put(("start", name))
        client.ping()

    def stop(self, client):
        self.commands.put(("stop", None))
        client.ping()


def run_daemon(directory, name, lines, helper):
    """Run a daemon on ``lines`` in the main thread while ``helper(client, switch)`` runs."""
    path = os.path.join(directory, name)
    os.makedirs(path, exist_ok=True)
    cltab = os.path.join(path, "cltab")

    def write(comment=""):
        head = [f":::socket:{path}/s", f":::clstat:{path}/clstat", f":::log:{path}/log"]
        with open(cltab, "w", encoding="utf-8") as stream:
            stream.write("\n".join(head + ([f"# {comment}"] if comment else []) + lines) + "\n")

    write()
    daemon = Daemon(cltab=cltab, log_to_stderr=False)
    switch = Switch()
    whole = None
    if not switch.install(daemon):
        print(f"{name}: the daemon has no ping handler to hook: profiling its whole run",
              file=sys.stderr)
        whole = cProfile.Profile()
    client = Client(cltab=cltab)
    errors = []
    results = {}

    def side():
        try:
            deadline = time.monotonic() + 60
            while not client.alive():
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon does not answer")
                time.sleep(0.01)
            results.update(helper(client, switch, write))
        except BaseException:  # noqa: BLE001 - reported from the main thread
            errors.append(traceback.format_exc())
        finally:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001, S110 - the daemon may be gone already
                pass

    thread = threading.Thread(target=side)
    thread.start()
    if whole is not None:
        whole.runcall(daemon.run)
        switch.profiles[name] = whole
    else:
        daemon.run()
    thread.join(60)
    if errors:
        raise RuntimeError(errors[0])
    return switch.profiles, results


def spawn_phase(count, timeout):
    def helper(client, switch, _write):
        switch.start(client, "spawn")
        started = time.perf_counter()
        client.tell("s", "1")
        client.wait("s", "1", timeout=timeout)  # not a /proc watch: that would take the GIL
        ended = time.perf_counter()
        switch.stop(client)
        deadline = time.monotonic() + 30
        while rig.count_sleeps(INSTANCE) < count:  # each sh has yet to exec sleep
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {count} entries run")
            time.sleep(0.05)
        client.tell("s", "0")
        client.wait("s", "0", timeout=timeout)
        return {"spawn": f"{count:,} once entries until the group is DONE: "
                         f"{ended - started:.3f} s wall"}

    lines = [f"s:e{i}:1:once:exec sleep 1000" for i in range(count)]
    return lines, helper


def scale_phases(entries, tells, rereads, timeout):
    groups = max(1, entries // 10)
    per = max(1, entries // groups)
    lines = []
    for group in range(groups):
        lines.append(f"g{group}:g{group}t0:1:wait:true")
        lines += [f"g{group}:g{group}t{j}:2:once:exec sleep 1000" for j in range(1, per)]

    def helper(client, switch, write):
        for group in range(groups):
            client.tell(f"g{group}", "1")
        for group in range(groups):
            client.wait(f"g{group}", "1", timeout=timeout)
        switch.start(client, "tell")
        times = []
        for _ in range(tells):
            started = time.perf_counter()
            client.tell("g0", "1")
            times.append(time.perf_counter() - started)
        switch.stop(client)
        reread_times = []
        switch.start(client, "reread")
        for index in range(rereads):
            write("changed" + "." * (index % 2))
            started = time.perf_counter()
            if client.reread() != "cltab reread":
                raise RuntimeError("the cltab was not reread")
            reread_times.append(time.perf_counter() - started)
        switch.stop(client)
        return {
            "tell": f"{tells} no-op tells, {entries:,} entries in {groups:,} groups: median "
                    f"{statistics.median(times) * 1e3:.2f} ms a round trip",
            "reread": f"{rereads} rereads, {entries:,} entries in {groups:,} groups: median "
                      f"{statistics.median(reread_times) * 1e3:.1f} ms a round trip",
        }

    return lines, helper


def spawn_paths(count, rounds):
    """Per-spawn wall time of ways to start ``/bin/sh -c 'exec sleep 1000'``, unprofiled.

    Each returns once the exec has happened (a close-on-exec pipe hits
    EOF, or posix_spawn returns), as the daemon's spawn does, and the
    children are killed between rounds.  Medians of ``rounds``.
    """
    import signal
    import subprocess

    from cluster_init import sysapi

    shell, argv = "/bin/sh", ["/bin/sh", "-c", "exec sleep 1000"]
    env = dict(os.environ)

    def bare():
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.execve(shell, argv, env)
            finally:
                os._exit(127)
        os.close(write_end)
        while os.read(read_end, 4096):
            pass
        os.close(read_end)
        return pid

    sigdef = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]

    def posix_spawn():
        return os.posix_spawn(
            shell, argv, env, setsid=True, setsigdef=sigdef, setsigmask=(),
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
        )

    ways = [("bare fork + exec, wait for the exec (the floor)", bare)]
    system = getattr(sysapi, "RealSystem", None)
    if system is not None and hasattr(system, "spawn"):
        real = system()
        ways.append(("sysapi.RealSystem().spawn (the daemon's)",
                     lambda: real.spawn("exec sleep 1000", env)))
        if os.geteuid() == 0:  # the user path (:::user:), root only
            ways.append(("sysapi.RealSystem().spawn as nobody (the user path: fork)",
                         lambda: real.spawn("exec sleep 1000", env, directory="/", user="nobody")))
    ways.append(("os.posix_spawn, setsid, setsigdef, stdin /dev/null", posix_spawn))

    def popen():
        # subprocess forks with vfork here (no preexec_fn) and reports a failed exec
        return subprocess.Popen(
            argv, executable=shell, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd="/", umask=0o022, close_fds=True, restore_signals=True,
        ).pid

    ways.append(("subprocess.Popen, new session, cwd, umask, stdin /dev/null", popen))
    times = {name: [] for name, _ in ways}
    for index in range(rounds):
        shift = index % len(ways)
        for name, way in ways[shift:] + ways[:shift]:
            pids = []
            started = time.perf_counter()
            for _ in range(count):
                pids.append(way())
            times[name].append((time.perf_counter() - started) / count)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                os.waitpid(pid, 0)
    print(f"== spawn paths: {count} spawns each, returning once the exec has happened; "
          f"median of {rounds} rounds, unprofiled")
    base = statistics.median(times[ways[0][0]])
    for name, _ in ways:
        median = statistics.median(times[name])
        print(f"  {median * 1e3:7.3f} ms a spawn  {median / base:5.2f}x  {name}")
    print()


def command_imports(directory, top, reps=10):
    """Where the ``clinit -c CLTAB g0 1`` command spends: wall time and -X importtime."""
    import subprocess

    daemon = rig.ClinitDaemon(directory, "command", ["g0:t0:1:wait:true"])
    try:
        daemon.tell_and_wait("g0", "1")
        command = [rig.CLINIT, "-c", daemon.cltab, "g0", "1"]
        walls = {"python -c pass": [], "clinit -c CLTAB g0 1": []}
        for _ in range(reps):
            for name, argv in (("python -c pass", ["-c", "pass"]),
                               ("clinit -c CLTAB g0 1", command)):
                started = time.perf_counter()
                subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, check=True)
                walls[name].append(time.perf_counter() - started)
        result = subprocess.run([sys.executable, "-X", "importtime", *command],
                                capture_output=True, text=True, check=True)
    finally:
        daemon.stop()
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        rows.append((int(cumulative), int(own), name.rstrip()))
    top_level = sum(cumulative for cumulative, _own, name in rows if not name.startswith("  "))
    pass_ms = statistics.median(walls["python -c pass"]) * 1e3
    command_ms = statistics.median(walls["clinit -c CLTAB g0 1"]) * 1e3
    print(f"== command: clinit -c CLTAB g0 1 (no-op tell) {command_ms:.1f} ms, python -c pass "
          f"{pass_ms:.1f} ms (medians of {reps}); all imports, site's included, take "
          f"{top_level / 1e3:.1f} ms "
          f"(-X importtime, {len(rows)} modules)")
    print(f"  {'cumul ms':>9} {'own ms':>9}  module (indented: imported by the one above)")
    for cumulative, own, name in sorted(rows, key=lambda r: -r[0])[:top]:
        print(f"  {cumulative / 1e3:9.2f} {own / 1e3:9.2f}  {name}")
    print()


def report(name, profile, title, top, dump):
    stats = pstats.Stats(profile)
    if dump:
        os.makedirs(dump, exist_ok=True)
        stats.dump_stats(os.path.join(dump, f"{name}.prof"))
    total = stats.total_tt
    print(f"== {name}: {title}; {total:.3f} s profiled in the daemon's thread")
    rows = [
        (cumulative, own, calls, f"{os.path.basename(file)}:{line} {function}")
        for (file, line, function), (_cc, calls, own, cumulative, _callers) in stats.stats.items()
    ]
    for label, index in (("cumulative", 0), ("own time", 1)):
        print(f"  by {label}:")
        print(f"  {'cumul s':>9} {'own s':>9} {'calls':>9}  function")
        for cumulative, own, calls, where in sorted(rows, key=lambda r: -r[index])[:top]:
            print(f"  {cumulative:9.3f} {own:9.3f} {calls:9d}  {where}")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spawn", type=int, default=1000, help="entries in the level started")
    parser.add_argument("--scale", type=int, default=10000, help="entries in the cltab told")
    parser.add_argument("--tells", type=int, default=50)
    parser.add_argument("--rereads", type=int, default=5)
    parser.add_argument("--paths", type=int, default=200, help="spawns per way in the spawn-path"
                        " comparison (0: skip it)")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--dump", metavar="DIR", help="write PHASE.prof files to DIR")
    args = parser.parse_args(argv)

    import shutil
    import tempfile

    os.environ[rig.MARK_NAME] = f"{rig.RUN}-{INSTANCE}"  # the daemon's children inherit it
    rig.become_subreaper()
    rig.raise_fd_limit()
    directory = tempfile.mkdtemp(prefix="clinit-profile-")
    try:
        for name, (lines, helper) in (
            ("spawn", spawn_phase(args.spawn, args.timeout)),
            ("scale", scale_phases(args.scale, args.tells, args.rereads, args.timeout)),
        ):
            print(f"{name}: running", file=sys.stderr)
            profiles, titles = run_daemon(directory, name, lines, helper)
            for phase, profile in profiles.items():
                report(phase, profile, titles.get(phase, "whole run"), args.top, args.dump)
        print("command: running", file=sys.stderr)
        command_imports(directory, args.top)
        if args.paths:
            print("spawn paths: running", file=sys.stderr)
            spawn_paths(args.paths, 5)
    finally:
        del os.environ[rig.MARK_NAME]
        rig.kill_run()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
