#!/usr/bin/env python3
"""Benchmark clinit against the fork/exec floor and supervisord; print one table.

    python3 bench/bench_daemon.py [--rounds N] [--only NAMES] [--smoke] [--json FILE]

Every figure is a ratio to a baseline measured in the same run, because
the machines this runs on are shared and noisy: each round measures the
implementations one after the other (their order rotating from round to
round), the table gives the median over the rounds with min and max,
and the ratio is the median of the per-round ratios.  supervisord is
measured side by side when the ``supervisor`` package can be imported
(``pip install '.[bench]'``); otherwise its rows say so.

A process counts as running once it has exec'd ``sleep``: the benchmark
watches /proc for processes whose /proc/PID/exe is sleep and whose
environment holds the mark of the implementation under test, the same
way for all of them (see rig.py).  Every process it starts is killed at
the end, even on Ctrl-C or failure.

The figures (``--only`` takes their names, comma-separated):

command  ``clinit -c CLTAB g0 1`` (a no-op tell) run as a command vs.
         ``python -c pass`` on the same interpreter (and ``supervisorctl
         start`` of a running program); the no-op tell, as a command and
         as an in-process round trip, and a reread of a changed cltab,
         with cltabs of 100, 1,000 and 10,000 entries (10 a group)
spawn    one group of N ``once`` entries ``exec sleep 1000`` told a level,
         until all N run, vs. a bare fork/exec loop doing the same (N =
         200 and 1,000), and supervisord starting N programs; with N =
         1,000 also the status round trips while the level starts
switch   a level switch: stop 20 entries and start 20 others
storm    500 ``respawn`` entries SIGKILLed at once, until every exit is
         reaped and every entry runs again
memory   resident memory with a 1,000-entry cltab and 200 processes
         running, and CPU time used while idle
user     the user path: N ``once`` entries that name a user (``:::user:``
         nobody: fork, change of ids, exec) told a level, until all N run,
         vs. the same entries on posix_spawn and the bare fork/exec loop
         (N = 200; needs root)
"""

import argparse
import compileall
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import rig
from rig import BenchError, ClinitDaemon, Floor, Prober, Supervisord, Watch

FIGURES = ("command", "spawn", "switch", "storm", "memory", "user")


@dataclasses.dataclass(frozen=True)
class Sizes:
    spawn: tuple = (200, 1000)  # level sizes of the spawn figure
    latency: int = 1000  # the spawn size during which status is probed
    scale: tuple = ((100, 10), (1000, 100), (10000, 1000))  # (entries, groups)
    storm: int = 500
    memory: tuple = (1000, 200)  # (entries in the cltab, processes running)
    switch: int = 20
    idle: float = 10.0  # seconds of idle CPU measured
    rounds: int = 3
    command_reps: int = 20  # command runs per implementation per round
    trip_reps: int = 20  # in-process no-op tells per cltab size per round
    reread_reps: int = 5  # rereads per cltab size per round
    interval: float = 0.005  # between two /proc scans
    probe_interval: float = 0.01  # between two status requests
    settle: float = 0.3  # pause after each measurement
    timeout: float = 300.0  # for any one wait


FULL = Sizes()
SMOKE = Sizes(
    spawn=(4, 8), latency=8, scale=((10, 2), (20, 4), (40, 8)), storm=4, memory=(20, 4),
    switch=2, idle=0.2, rounds=1, command_reps=2, trip_reps=3, reread_reps=2, interval=0.002,
    probe_interval=0.005, settle=0.0, timeout=60.0,
)


def say(message):
    print(message, file=sys.stderr, flush=True)


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(-(-fraction * len(ordered) // 1)) - 1))
    return ordered[index]


# ---- the table --------------------------------------------------------------


@dataclasses.dataclass
class Row:
    key: str
    figure: str
    impl: str
    unit: str  # "s", "ms", "MiB"
    base: object = None  # key of the baseline row; "" for a baseline; None for no ratio
    values: dict = dataclasses.field(default_factory=dict)  # round -> value (s, KiB...)
    errors: list = dataclasses.field(default_factory=list)

    def numbers(self):
        return [value for value in self.values.values() if value is not None]

    def median(self):
        numbers = self.numbers()
        return statistics.median(numbers) if numbers else None


SCALE = {"s": 1.0, "ms": 1e3, "MiB": 1 / 1024.0, "CPU ms": 1e3}


class Table:
    def __init__(self):
        self.rows = {}
        self.targets = []  # (text, function(table) -> (met, detail))

    def row(self, key, figure, impl, unit, base=None):
        self.rows[key] = Row(key, figure, impl, unit, base)
        return self.rows[key]

    def record(self, key, round_index, value):
        self.rows[key].values[round_index] = value

    def fail(self, keys, error):
        for key in keys:
            if key in self.rows:
                self.rows[key].errors.append(str(error))

    def ratio(self, key):
        """Median of the per-round ratios of a row to its baseline, or None."""
        row = self.rows[key]
        if row.base == "":
            return 1.0 if row.numbers() else None
        base = self.rows.get(row.base) if row.base else None
        if base is None:
            return None
        ratios = [
            value / base.values[index]
            for index, value in row.values.items()
            if value is not None and base.values.get(index)
        ]
        return statistics.median(ratios) if ratios else None

    def target(self, text, check):
        self.targets.append((text, check))

    def render(self):
        lines = []
        header = (f"{'figure':44} {'implementation':36} {'median':>9} {'min':>9} {'max':>9}"
                  f" {'unit':6} {'ratio':>6}  to")
        lines.append(header)
        lines.append("-" * len(header))
        figure = None
        for row in self.rows.values():
            shown = row.figure if row.figure != figure else ""
            figure = row.figure
            numbers = [value * SCALE[row.unit] for value in row.numbers()]
            if numbers:
                cells = [statistics.median(numbers), min(numbers), max(numbers)]
                values = " ".join(f"{_fmt(cell):>9}" for cell in cells)
            else:
                reason = row.errors[0] if row.errors else "not measured"
                values = f"{'–':>9} {'–':>9} {'–':>9}"
                shown_impl = f"{row.impl} ({reason})"
                lines.append(f"{shown:44} {shown_impl[:120]}")
                continue
            ratio = self.ratio(row.key)
            ratio_text = f"{ratio:6.2f}" if ratio is not None else f"{'–':>6}"
            if row.base == "":
                to = "(baseline)"
            elif row.base:
                to = self.rows[row.base].impl
            else:
                to = ""
            note = f"  [{len(row.errors)} failed: {row.errors[0][:60]}]" if row.errors else ""
            lines.append(
                f"{shown:44} {row.impl:36} {values} {row.unit:6} {ratio_text}  {to}{note}"
            )
        lines.append("")
        lines.append("targets")
        for text, check in self.targets:
            try:
                met, detail = check(self)
            except (KeyError, TypeError, ZeroDivisionError):
                met, detail = None, "not measured"
            verdict = {True: "MET", False: "NOT MET", None: "n/a"}[met]
            lines.append(f"  {verdict:8} {text}: {detail}")
        return "\n".join(lines)

    def as_json(self):
        return {
            "rows": [
                {
                    "figure": row.figure, "implementation": row.impl, "unit": row.unit,
                    "values": [None if v is None else v * SCALE[row.unit]
                               for _, v in sorted(row.values.items())],
                    "ratio": self.ratio(row.key),
                    "baseline": (self.rows[row.base].impl if row.base else
                                 ("self" if row.base == "" else None)),
                    "errors": row.errors,
                }
                for row in self.rows.values()
            ],
        }


def _fmt(value):
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def _median(table, key):
    value = table.rows[key].median()
    if value is None:
        raise KeyError(key)
    return value


def ratio_target(table, key, limit):
    ratio = table.ratio(key)
    if ratio is None:
        raise KeyError(key)
    return ratio <= limit, f"{ratio:.2f}x (limit {limit:g}x)"


def _n(number):
    return f"{number:,}"


# ---- running rounds ---------------------------------------------------------


class Bench:
    def __init__(self, sizes, directory, supervisor):
        self.sizes = sizes
        self.dir = directory
        self.supervisor = supervisor  # its version, or None
        self.table = Table()

    def interleave(self, name, measures):
        """Run each ``(keys, function)`` once a round, rotating the order; record values.

        A function returns a value, or a dict key -> value when it fills
        several rows; a BenchError is recorded against its rows.
        """
        sizes = self.sizes
        for index in range(sizes.rounds):
            say(f"  {name}: round {index + 1}/{sizes.rounds}")
            shift = index % len(measures)
            for keys, function in measures[shift:] + measures[:shift]:
                try:
                    value = function()
                except Exception as error:  # noqa: BLE001 - one failed measure, not the run
                    error = f"{type(error).__name__}: {error}"
                    say(f"    {keys[0]}: {error}")
                    self.table.fail(keys, error)
                    for key in keys:
                        self.table.record(key, index, None)
                else:
                    values = value if isinstance(value, dict) else {keys[0]: value}
                    for key, item in values.items():
                        self.table.record(key, index, item)
                time.sleep(sizes.settle)

    def until(self, watch, predicate, what):
        return watch.until(predicate, self.sizes.timeout, self.sizes.interval, what)

    # ---- command and scale ----------------------------------------------------

    def figure_command(self, stack):
        sizes, table = self.sizes, self.table
        scales = sizes.scale
        small = scales[0][0]
        fig = "command: no-op tell, wall time"
        table.row("cmd.pass", fig, "python -c pass", "ms", base="")
        table.row("cmd.clinit", fig, f"clinit -c CLTAB g0 1 ({_n(small)} entries)", "ms",
                  base="cmd.pass")
        table.row("cmd.sup", fig, "supervisorctl start p0 (running)", "ms", base="cmd.pass")
        figs = {
            "cmdscale": "scale: clinit g0 1 command, wall time",
            "trip": "scale: no-op tell round trip (in-process)",
            "reread": "scale: reread round trip, cltab changed",
        }
        reread_base = scales[1][0] if len(scales) > 1 else small
        for name in ("cmdscale", "trip", "reread"):
            base = reread_base if name == "reread" else small
            for entries, groups in scales:
                label = f"cltab {_n(entries)} entries, {_n(groups)} groups"
                table.row(f"{name}.{entries}", figs[name], label, "ms",
                          base="" if entries == base else f"{name}.{base}")
        large = scales[-1][0]
        table.target(
            "the command: clinit -c CLTAB GROUP LEVEL (no-op) within 2x of python -c pass",
            lambda t: ratio_target(t, "cmd.clinit", 2.0),
        )
        table.target(
            f"scale: no-op tell command at {_n(large)} entries within 2x of {_n(small)}",
            lambda t: ratio_target(t, f"cmdscale.{large}", 2.0),
        )
        table.target(
            f"scale: no-op tell round trip at {_n(large)} entries within 2x of {_n(small)}",
            lambda t: ratio_target(t, f"trip.{large}", 2.0),
        )
        def reread_check(t):
            met, detail = ratio_target(t, f"reread.{large}", 12.0)
            absolute = ", ".join(
                f"{_n(e)}: {_fmt(_median(t, f'reread.{e}') * 1e3)} ms" for e, _ in scales
            )
            return met, f"{detail}; absolute: {absolute}"

        table.target(
            f"scale: reread at {_n(large)} entries within 12x of {_n(reread_base)}",
            reread_check,
        )

        daemons = {}
        for entries, groups in scales:
            per = max(1, entries // groups)
            lines = []
            for group in range(groups):
                lines.append(f"g{group}:g{group}t0:1:wait:true")
                lines += [f"g{group}:g{group}t{j}:2:once:exec sleep 1000" for j in range(1, per)]
            say(f"  command: a daemon with {_n(entries)} entries in {_n(groups)} groups")
            daemon = ClinitDaemon(self.dir, f"clinit-scale{entries}", lines)
            stack.callback(daemon.stop)
            for group in range(groups):
                daemon.tell(f"g{group}", "1")
            for group in range(groups):
                daemon.client.wait(f"g{group}", "1", timeout=sizes.timeout)
            daemons[entries] = daemon
        commands = [("cmd.pass", [sys.executable, "-c", "pass"])]
        for entries, daemon in daemons.items():
            commands.append((f"cmdscale.{entries}",
                             [sys.executable, rig.CLINIT, "-c", daemon.cltab, "g0", "1"]))
        if self.supervisor:
            sup = Supervisord(self.dir, "sup-command", [(f"p{i}", 1000) for i in range(small)])
            stack.callback(sup.stop)
            sup.rpc.startProcess("p0", False)
            commands.append(("cmd.sup", sup.ctl("start", "p0")))
        else:
            table.fail(["cmd.sup"], "supervisor not installed")
        for key, argv in commands:  # once each, untimed: warm caches, check they work
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, check=False)
            works = result.returncode == 0 and "started" in result.stdout
            if key.startswith("cmdscale") and not works:
                raise BenchError(f"{argv} failed: {result.stdout}{result.stderr}")

        def run_commands():
            samples = {key: [] for key, _ in commands}
            for rep in range(sizes.command_reps):
                shift = rep % len(commands)
                for key, argv in commands[shift:] + commands[:shift]:
                    started = time.perf_counter()
                    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, check=False)
                    samples[key].append(time.perf_counter() - started)
            values = {key: statistics.median(times) for key, times in samples.items()}
            values["cmd.clinit"] = values[f"cmdscale.{small}"]
            return values

        def run_trips():
            samples = {entries: [] for entries in daemons}
            order = list(daemons.items())
            for rep in range(sizes.trip_reps):
                shift = rep % len(order)
                for entries, daemon in order[shift:] + order[:shift]:
                    started = time.perf_counter()
                    daemon.tell("g0", "1")
                    samples[entries].append(time.perf_counter() - started)
            return {f"trip.{e}": statistics.median(times) for e, times in samples.items()}

        def run_rereads():
            samples = {entries: [] for entries in daemons}
            order = list(daemons.items())
            for rep in range(sizes.reread_reps):
                shift = rep % len(order)
                for entries, daemon in order[shift:] + order[:shift]:
                    daemon.write_cltab(comment="reread" + "." * (rep % 2))
                    started = time.perf_counter()
                    message = daemon.client.reread()
                    samples[entries].append(time.perf_counter() - started)
                    if message != "cltab reread":
                        raise BenchError(f"reread answered {message!r}")
            return {f"reread.{e}": statistics.median(times) for e, times in samples.items()}

        command_keys = ["cmd.pass", "cmd.clinit", "cmd.sup"] + [f"cmdscale.{e}" for e in daemons]
        self.interleave("command", [
            (command_keys, run_commands),
            ([f"trip.{e}" for e in daemons], run_trips),
            ([f"reread.{e}" for e in daemons], run_rereads),
        ])

    # ---- spawn, and status latency while spawning -------------------------------

    def figure_spawn(self, stack, count):
        sizes, table = self.sizes, self.table
        fig = f"spawn: {_n(count)} once entries until all run"
        table.row(f"spawn{count}.floor", fig, Floor.label, "s", base="")
        table.row(f"spawn{count}.clinit", fig, "clinit", "s", base=f"spawn{count}.floor")
        table.row(f"spawn{count}.sup", fig, "supervisord", "s", base=f"spawn{count}.floor")
        table.target(
            f"spawn {_n(count)}: clinit within 1.3x of the bare fork/exec floor",
            lambda t: ratio_target(t, f"spawn{count}.clinit", 1.3),
        )
        if self.supervisor:
            table.target(
                f"spawn {_n(count)}: clinit ahead of supervisord",
                lambda t: (
                    _median(t, f"spawn{count}.clinit") < _median(t, f"spawn{count}.sup"),
                    (f"clinit {_fmt(_median(t, f'spawn{count}.clinit'))} s, supervisord "
                    f"{_fmt(_median(t, f'spawn{count}.sup'))} s"),
                ),
            )
        probing = count == sizes.latency
        if probing:
            lfig = f"status round trips, {_n(count)} entries starting"
            table.row("lat.clinit.idle", lfig, "clinit status, idle: p50", "ms", base="")
            for name in ("p50", "p99", "max"):
                table.row(f"lat.clinit.{name}", lfig, f"clinit status, starting: {name}", "ms",
                          base="lat.clinit.idle")
            table.row("lat.sup.idle", lfig, "supervisord getState, idle: p50", "ms", base="")
            for name in ("p50", "p99", "max"):
                table.row(f"lat.sup.{name}", lfig, f"supervisord getState, starting: {name}",
                          "ms", base="lat.sup.idle")
            table.target(
                f"status latency: p99 of status round trips while {_n(count)} entries start"
                " under 50 ms",
                lambda t: (_median(t, "lat.clinit.p99") < 0.050,
                           (f"p99 {_fmt(_median(t, 'lat.clinit.p99') * 1e3)} ms, p50 "
                           f"{_fmt(_median(t, 'lat.clinit.p50') * 1e3)} ms, max "
                           f"{_fmt(_median(t, 'lat.clinit.max') * 1e3)} ms")),
            )

        floor = Floor(f"floor-spawn{count}")
        stack.callback(floor.stop)
        clinit = ClinitDaemon(
            self.dir, f"clinit-spawn{count}",
            [f"s:e{i}:1:once:exec sleep 1000" for i in range(count)],
        )
        stack.callback(clinit.stop)
        sup = None
        if self.supervisor:
            sup = Supervisord(self.dir, f"sup-spawn{count}",
                              [(f"p{i}", 1000) for i in range(count)])
            stack.callback(sup.stop)
        else:
            table.fail([f"spawn{count}.sup"] + (
                ["lat.sup.idle", "lat.sup.p50", "lat.sup.p99", "lat.sup.max"] if probing else []
            ), "supervisor not installed")
        every = lambda watch: watch.count() >= count

        def run_floor():
            watch = Watch(floor.instance)
            started = time.perf_counter()
            floor.send(f"spawn {count} 1000")
            ended = self.until(watch, every, f"{count} floor sleeps")
            floor.answer()
            floor.command("kill")
            rig.wait_no_sleeps(floor.instance)
            return ended - started

        def run_clinit():
            watch = Watch(clinit.instance)
            started = time.perf_counter()
            clinit.tell("s", "1")
            ended = self.until(watch, every, f"{count} clinit sleeps")
            clinit.tell_and_wait("s", "0", timeout=sizes.timeout)
            rig.wait_no_sleeps(clinit.instance)
            return ended - started

        def run_sup():
            watch = Watch(sup.instance)
            started = time.perf_counter()
            sup.start_all()
            ended = self.until(watch, every, f"{count} supervisord sleeps")
            sup.stop_all(sizes.timeout)
            return ended - started

        def probed(key, instance, socket_path, request, start, reset):
            def measure():
                idle = Prober(socket_path, request, sizes.probe_interval)
                idle.start()
                time.sleep(max(0.1, 20 * sizes.probe_interval))
                idle.stop()
                watch = Watch(instance)
                prober = Prober(socket_path, request, sizes.probe_interval)
                prober.start()
                try:
                    start()
                    self.until(watch, every, f"{count} {key} sleeps")
                finally:
                    prober.stop()
                reset()
                if not prober.latencies or not idle.latencies:
                    raise BenchError("no status answer at all")
                if prober.errors:
                    say(f"    {key}: {prober.errors} status requests got no answer")
                    table.fail([f"lat.{key}.max"],
                               f"{prober.errors} of {prober.errors + len(prober.latencies)}"
                               " requests got no answer")
                times = prober.latencies
                return {
                    f"lat.{key}.idle": statistics.median(idle.latencies),
                    f"lat.{key}.p50": percentile(times, 0.50),
                    f"lat.{key}.p99": percentile(times, 0.99),
                    f"lat.{key}.max": max(times),
                }
            return measure

        measures = [([f"spawn{count}.floor"], run_floor), ([f"spawn{count}.clinit"], run_clinit)]
        if sup is not None:
            measures.append(([f"spawn{count}.sup"], run_sup))
        self.interleave(f"spawn {count}", measures)
        if probing:
            def clinit_reset():
                clinit.tell_and_wait("s", "0", timeout=sizes.timeout)
                rig.wait_no_sleeps(clinit.instance)

            probes = [(["lat.clinit.idle", "lat.clinit.p50", "lat.clinit.p99", "lat.clinit.max"],
                       probed("clinit", clinit.instance, clinit.socket, b"status\n",
                              lambda: clinit.tell("s", "1"), clinit_reset))]
            if sup is not None:
                probes.append((["lat.sup.idle", "lat.sup.p50", "lat.sup.p99", "lat.sup.max"],
                               probed("sup", sup.instance, sup.socket,
                                      rig.supervisor_state_request(),
                                      sup.start_all, lambda: sup.stop_all(sizes.timeout))))
            self.interleave(f"status while {count} start", probes)

    # ---- the user path -------------------------------------------------------------

    def figure_user(self, stack):
        sizes, table = self.sizes, self.table
        count = sizes.spawn[0]
        fig = f"user path: {_n(count)} once entries until all run"
        table.row("user.floor", fig, Floor.label, "s", base="")
        table.row("user.clinit", fig, "clinit, posix_spawn (its own user)", "s", base="user.floor")
        table.row("user.nobody", fig, "clinit, fork path (:::user: nobody)", "s", base="user.clinit")
        if os.geteuid() != 0:
            table.fail(["user.floor", "user.clinit", "user.nobody"], "needs root (entries run as nobody)")
            return
        entries = [":::directory:/"] + [f"u:e{i}:1:once:exec sleep 1000" for i in range(count)]
        floor = Floor("floor-user")
        stack.callback(floor.stop)
        plain = ClinitDaemon(self.dir, "clinit-user-plain", entries)
        stack.callback(plain.stop)
        nobody = ClinitDaemon(self.dir, "clinit-user-nobody",
                              entries + [f":::user:u:e{i}:nobody" for i in range(count)])
        stack.callback(nobody.stop)
        every = lambda watch: watch.count() >= count

        def run_floor():
            watch = Watch(floor.instance)
            started = time.perf_counter()
            floor.send(f"spawn {count} 1000")
            ended = self.until(watch, every, f"{count} floor sleeps")
            floor.answer()
            floor.command("kill")
            rig.wait_no_sleeps(floor.instance)
            return ended - started

        def run(daemon):
            def measure():
                watch = Watch(daemon.instance)
                started = time.perf_counter()
                daemon.tell("u", "1")
                ended = self.until(watch, every, f"{count} sleeps of {daemon.instance}")
                daemon.tell_and_wait("u", "0", timeout=sizes.timeout)
                rig.wait_no_sleeps(daemon.instance)
                return ended - started

            return measure

        self.interleave("user", [
            (["user.floor"], run_floor), (["user.clinit"], run(plain)), (["user.nobody"], run(nobody)),
        ])

    # ---- level switch -----------------------------------------------------------

    def figure_switch(self, stack):
        sizes, table = self.sizes, self.table
        count = sizes.switch
        fig = f"level switch: stop {count}, start {count} others"
        table.row("switch.floor", fig, Floor.label, "s", base="")
        table.row("switch.clinit", fig, "clinit", "s", base="switch.floor")
        floor = Floor("floor-switch")
        stack.callback(floor.stop)
        floor.command(f"spawn {count} 1000")
        lines = [f"sw:a{i}:1:once:exec sleep 1000" for i in range(count)]
        lines += [f"sw:b{i}:2:once:exec sleep 1001" for i in range(count)]
        clinit = ClinitDaemon(self.dir, "clinit-switch", lines)
        stack.callback(clinit.stop)
        clinit.tell_and_wait("sw", "1", timeout=sizes.timeout)
        state = {"floor": "1000", "clinit": "1000"}

        def switched(arg):
            return lambda watch: watch.count(arg) >= count and not watch.old

        def run_floor():
            arg = "1001" if state["floor"] == "1000" else "1000"
            watch = Watch(floor.instance, exclude_current=True)
            started = time.perf_counter()
            floor.send(f"switch {arg}")
            ended = self.until(watch, switched(arg), "the floor's switch")
            floor.answer()
            watch.close()
            state["floor"] = arg
            return ended - started

        def run_clinit():
            arg = "1001" if state["clinit"] == "1000" else "1000"
            watch = Watch(clinit.instance, exclude_current=True)
            started = time.perf_counter()
            clinit.tell("sw", "2" if arg == "1001" else "1")
            ended = self.until(watch, switched(arg), "clinit's switch")
            watch.close()
            state["clinit"] = arg
            return ended - started

        self.interleave("switch", [(["switch.floor"], run_floor), (["switch.clinit"], run_clinit)])

    # ---- respawn storm ------------------------------------------------------------

    def figure_storm(self, stack):
        sizes, table = self.sizes, self.table
        count = sizes.storm
        fig = f"storm: {_n(count)} respawn entries killed at once"
        table.row("storm.floor", fig, "floor: bare reap+fork/exec loop", "s", base="")
        table.row("storm.clinit", fig, "clinit", "s", base="storm.floor")
        table.row("storm.sup", fig, "supervisord (autorestart)", "s", base="storm.floor")
        table.target(
            f"storm: {_n(count)} respawn entries killed at once: all reaped, all running again",
            lambda t: (True, (f"{_fmt(_median(t, 'storm.clinit'))} s (floor "
                             f"{_fmt(_median(t, 'storm.floor'))} s)")),
        )
        every = lambda watch: watch.count() >= count
        floor = Floor("floor-storm")
        stack.callback(floor.stop)
        floor.send(f"spawn {count} 1000")
        self.until(Watch(floor.instance), every, "the floor's sleeps")
        floor.answer()
        clinit = ClinitDaemon(self.dir, "clinit-storm",
                              [f"st:r{i}:1:respawn:exec sleep 1000" for i in range(count)])
        stack.callback(clinit.stop)
        clinit.tell("st", "1")
        self.until(Watch(clinit.instance), every, "clinit's sleeps")
        sup = None
        if self.supervisor:
            sup = Supervisord(self.dir, "sup-storm", [(f"p{i}", 1000) for i in range(count)],
                              autorestart=True)
            stack.callback(sup.stop)
            sup.start_all()
            self.until(Watch(sup.instance), every, "supervisord's sleeps")
        else:
            table.fail(["storm.sup"], "supervisor not installed")

        def storm(instance, before=None, after=None):
            def measure():
                watch = Watch(instance, exclude_current=True)
                if len(watch.old) < count:
                    raise BenchError(f"only {len(watch.old)} of {count} running before the storm")
                if before:
                    before()
                started = time.perf_counter()
                for fd in watch.old.values():
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                ended = self.until(
                    watch, lambda w: w.count() >= count and not w.old, f"{instance} storm"
                )
                watch.close()
                if after:
                    after()
                if sizes.rounds > 4:  # past the respawn window: no entry counts as too rapid
                    time.sleep(1.0)
                return ended - started
            return measure

        def floor_ready():
            if floor.command("respawn") != "ready":
                raise BenchError("the floor is not ready")

        measures = [
            (["storm.floor"], storm(floor.instance, floor_ready, floor.answer)),
            (["storm.clinit"], storm(clinit.instance)),
        ]
        if sup is not None:
            measures.append((["storm.sup"], storm(sup.instance)))
        self.interleave("storm", measures)

    # ---- memory and idle CPU --------------------------------------------------

    def figure_memory(self, stack):
        sizes, table = self.sizes, self.table
        entries, running = sizes.memory
        fig = f"memory: RSS, {_n(entries)}-entry cltab, {_n(running)} running"
        table.row("rss.bare", fig, "python, idle interpreter", "MiB", base="")
        table.row("rss.clinit", fig, "clinit daemon", "MiB", base="rss.bare")
        table.row("rss.sup", fig, "supervisord", "MiB", base="rss.bare")
        ifig = f"idle CPU over {sizes.idle:g} s, same daemons"
        table.row("idle.sup", ifig, "supervisord", "CPU ms", base="")
        table.row("idle.clinit", ifig, "clinit daemon", "CPU ms",
                  base="idle.sup" if self.supervisor else None)
        table.row("idle.bare", ifig, "python, idle interpreter", "CPU ms")
        table.target(
            f"memory: clinit RSS with {_n(entries)} entries and {_n(running)} running under 25 MiB",
            lambda t: (_median(t, "rss.clinit") < 25 * 1024,
                       f"{_fmt(_median(t, 'rss.clinit') / 1024)} MiB"),
        )
        if self.supervisor:
            table.target(
                "memory: clinit RSS below supervisord's",
                lambda t: (_median(t, "rss.clinit") < _median(t, "rss.sup"),
                           (f"clinit {_fmt(_median(t, 'rss.clinit') / 1024)} MiB, supervisord "
                           f"{_fmt(_median(t, 'rss.sup') / 1024)} MiB")),
            )
        else:
            table.fail(["rss.sup", "idle.sup"], "supervisor not installed")
        per = 100 if entries >= 1000 else max(1, entries // 10)
        rounds = iter(range(sizes.rounds))

        def measure():
            index = next(rounds)
            with contextlib.ExitStack() as inner:
                bare = subprocess.Popen(
                    [sys.executable, "-c", "import sys; sys.stdin.read()"],
                    env=rig.instance_env(f"bare-mem{index}"), stdin=subprocess.PIPE,
                )
                inner.callback(lambda: (bare.stdin.close(), bare.wait(10)))
                lines = [f"run:r{i}:1:once:exec sleep 1000" for i in range(running)]
                lines += [f"idle{i // per}:i{i}:1:once:exec sleep 1000"
                          for i in range(entries - running)]
                clinit = ClinitDaemon(self.dir, f"clinit-mem{index}", lines)
                inner.callback(clinit.stop)
                clinit.tell("run", "1")
                daemons = {"clinit": clinit}
                if self.supervisor:
                    names = [f"p{i}" for i in range(entries)]
                    sup = Supervisord(self.dir, f"sup-mem{index}", [(n, 1000) for n in names],
                                      groups={"run": names[:running]})
                    inner.callback(sup.stop)
                    sup.start_group("run")
                    daemons["sup"] = sup
                for name, daemon in daemons.items():
                    self.until(Watch(daemon.instance), lambda w: w.count() >= running,
                               f"{name}'s sleeps")
                time.sleep(sizes.settle)
                pids = {"bare": bare.pid, **{name: d.pid for name, d in daemons.items()}}
                values = {f"rss.{name}": rig.rss_kib(pid) for name, pid in pids.items()}
                before = {name: rig.cpu_seconds(pid) for name, pid in pids.items()}
                time.sleep(sizes.idle)
                for name, pid in pids.items():
                    values[f"idle.{name}"] = rig.cpu_seconds(pid) - before[name]
                return values

        keys = ["rss.bare", "rss.clinit", "rss.sup", "idle.sup", "idle.clinit", "idle.bare"]
        self.interleave("memory", [(keys, measure)])


def machine_line(supervisor, sizes):
    try:
        commit = subprocess.run(
            ["git", "-C", rig.CHECKOUT, "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    utc = datetime.timezone.utc  # noqa: UP017 - datetime.UTC is 3.11's
    when = datetime.datetime.now(utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"clinit benchmark, commit {commit}, {when}; {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()} "
        f"({sys.executable}); supervisor {supervisor or 'not installed'}; "
        f"{sizes.rounds} round(s); load average {os.getloadavg()[0]:.2f} at the start"
    )


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds of every figure (default 3)")
    parser.add_argument("--only", help=f"comma-separated figures among {', '.join(FIGURES)}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: a test")
    parser.add_argument("--idle", type=float, help="seconds of idle CPU measured (default 10)")
    parser.add_argument("--no-supervisord", action="store_true", help="leave supervisord out")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    if args.idle is not None:
        sizes = dataclasses.replace(sizes, idle=args.idle)
    figures = FIGURES if not args.only else tuple(args.only.split(","))
    unknown = set(figures) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    supervisor = None if args.no_supervisord else rig.supervisor_version()

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    rig.become_subreaper()
    rig.raise_fd_limit()
    # the checkout's modules compiled to bytecode, as pip install leaves them
    # (without it, a PYTHONDONTWRITEBYTECODE environment compiles them at every command)
    compileall.compile_dir(rig.LIB, quiet=1)
    directory = tempfile.mkdtemp(prefix="clinit-bench-")
    bench = Bench(sizes, directory, supervisor)
    title = machine_line(supervisor, sizes)
    say(title)
    plan = []
    for name in figures:
        if name == "spawn":
            plan += [(f"spawn {n}", lambda stack, n=n: bench.figure_spawn(stack, n))
                     for n in sizes.spawn]
        else:
            plan.append((name, getattr(bench, f"figure_{name}")))
    failed = False
    interrupted = False
    try:
        for name, figure in plan:
            say(f"{name}:")
            started = time.monotonic()
            try:
                with contextlib.ExitStack() as stack:
                    figure(stack)
            except Exception as error:  # noqa: BLE001 - report it, go on with the next figure
                failed = True
                error = f"{type(error).__name__}: {error}"
                say(f"  {name} failed: {error}")
                bench.table.fail([k for k, r in bench.table.rows.items() if not r.values], error)
            finally:
                if not rig.kill_run():
                    say("  warning: some processes of this run would not die")
            say(f"  {name}: {time.monotonic() - started:.1f} s")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: cleaning up")
    finally:
        rig.kill_run()
        if args.keep:
            say(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    if interrupted:
        return 130
    print(f"{title}, {os.getloadavg()[0]:.2f} at the end")
    print(bench.table.render())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump({"title": title, **bench.table.as_json()}, stream, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
