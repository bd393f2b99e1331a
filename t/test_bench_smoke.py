"""The benchmark still runs: every figure at tiny sizes, one round.

This checks that bench/bench_daemon.py prints its whole table, not how
fast anything is (the full benchmark is not a test).  supervisord's rows
are measured where the supervisor package is installed and say
"supervisor not installed" elsewhere; either way they are there.
"""

import os
import signal
import subprocess
import sys
import time

from realproc import environ_pids

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(os.path.dirname(HERE), "bench", "bench_daemon.py")

ROWS = [
    ("command: no-op tell, wall time", "python -c pass"),
    ("", "clinit -c CLTAB g0 1"),
    ("", "supervisorctl start p0"),
    ("scale: clinit g0 1 command, wall time", "cltab 10 entries, 2 groups"),
    ("scale: no-op tell round trip (in-process)", "cltab 40 entries, 8 groups"),
    ("scale: reread round trip, cltab changed", "cltab 20 entries, 4 groups"),
    ("spawn: 4 once entries until all run", "floor: bare fork/exec loop"),
    ("spawn: 8 once entries until all run", "clinit"),
    ("status round trips, 8 entries starting", "clinit status, idle: p50"),
    ("", "clinit status, starting: p99"),
    ("", "supervisord getState, starting: max"),
    ("level switch: stop 2, start 2 others", "clinit"),
    ("storm: 4 respawn entries killed at once", "floor: bare reap+fork/exec loop"),
    ("", "supervisord (autorestart)"),
    ("memory: RSS, 20-entry cltab, 4 running", "clinit daemon"),
    ("idle CPU over 0.2 s, same daemons", "supervisord"),
]


def test_smoke_run_prints_every_row(tmp_path):
    result = subprocess.run(
        [sys.executable, BENCH, "--smoke", "--json", str(tmp_path / "bench.json")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=110, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for figure, implementation in ROWS:
        assert figure in out, f"no figure {figure!r} in\n{out}"
        assert implementation in out, f"no row {implementation!r} in\n{out}"
    assert "targets" in out
    for target in ("the command:", "scale: reread", "spawn 8:", "status latency:", "storm:",
                   "memory:"):
        assert target in out.split("targets", 1)[1], f"no target {target!r} in\n{out}"
    clinit_rows = [line for line in out.splitlines() if "clinit" in line and "ms" in line]
    assert clinit_rows and all("failed" not in line for line in clinit_rows), out
    assert (tmp_path / "bench.json").exists()


def test_ctrl_c_leaves_no_process():
    """Interrupted while its daemons and their children run, it kills them all."""
    run_id = f"smoke{os.getpid()}"
    env = dict(os.environ, CLINIT_BENCH_RUN_ID=run_id)
    process = subprocess.Popen(
        [sys.executable, BENCH, "--smoke", "--only", "storm,memory", "--idle", "30"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_marked(run_id)) < 8:  # the storm's processes run
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the benchmark started nothing"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert _marked(run_id) == set(), "processes of the interrupted run are still there"


def _marked(run_id):
    needle = f"CLINIT_BENCH_RUN={run_id}-".encode()
    return set(environ_pids(lambda items: any(item.startswith(needle) for item in items)))
