#!/usr/bin/env python3
"""Benchmark the clinit daemon; print a table of ratios to same-run baselines.

    python3 bench/bench_daemon.py [--rounds N] [--entries N]

Measured, each against a baseline taken in the same run (these machines
are shared and noisy, so ratios mean more than seconds):

* tell round trip (tell a group a level it is at: parse, reread check,
  group machine, clstat write, answer) vs. a ping round trip;
* status round trip vs. ping;
* starting a level of N ``true`` wait entries, one after the other, per
  entry, vs. fork+exec+wait of ``/bin/sh -c true`` from Python;
* the daemon's resident memory holding N entries vs. holding one.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(CHECKOUT, "lib"))

from cluster_init.client import Client  # noqa: E402

CLINIT = os.path.join(CHECKOUT, "clinit")


def median_seconds(function, rounds):
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise KeyError("VmRSS")


class Daemon:
    def __init__(self, directory, entries):
        self.cltab = os.path.join(directory, "cltab")
        lines = [f":::socket:{directory}/s", f":::clstat:{directory}/clstat", f":::log:{directory}/log"]
        lines += ["small:one:1:wait:true"]
        lines += [f"big:e{i}:1:wait:true" for i in range(entries)]
        with open(self.cltab, "w", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [sys.executable, CLINIT, "-d", "-c", self.cltab], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.client = Client(cltab=self.cltab)
        deadline = time.monotonic() + 20
        while not self.client.alive():
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not start")
            time.sleep(0.02)

    def stop(self):
        self.client.shutdown()
        self.process.wait(60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--entries", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="clinit-bench-") as directory:
        daemon = Daemon(directory, args.entries)
        try:
            client = daemon.client
            client.tell("small", "1")
            client.wait("small", "1", timeout=30)
            rss_small = rss_kib(daemon.process.pid)
            ping = median_seconds(client.ping, args.rounds)
            tell = median_seconds(lambda: client.tell("small", "1"), args.rounds)
            status = median_seconds(lambda: client.request("status"), args.rounds)
            rows.append(("tell round trip", tell * 1e3, "ms", "ping", ping * 1e3, tell / ping))
            rows.append(("status round trip", status * 1e3, "ms", "ping", ping * 1e3, status / ping))

            bare = median_seconds(lambda: subprocess.run(["/bin/sh", "-c", "true"]), 50)
            started = time.perf_counter()
            client.tell("big", "1")
            client.wait("big", "1", timeout=600)
            per_entry = (time.perf_counter() - started) / args.entries
            rows.append(
                (f"level of {args.entries} wait entries, per entry", per_entry * 1e3, "ms",
                 "sh -c true from Python", bare * 1e3, per_entry / bare)
            )
            rss_big = rss_kib(daemon.process.pid)
            rows.append(
                (f"daemon RSS with {args.entries} entries run", rss_big / 1024, "MiB",
                 "RSS with 1 entry", rss_small / 1024, rss_big / rss_small)
            )
        finally:
            daemon.stop()
    print(f"{'measure':44} {'value':>10}     {'baseline':24} {'value':>10} {'ratio':>7}")
    for name, value, unit, base_name, base, ratio in rows:
        print(f"{name:44} {value:10.3f} {unit:4} {base_name:24} {base:10.3f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
