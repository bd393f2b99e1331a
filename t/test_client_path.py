"""The command's client path stays light: it answers at interpreter start-up speed.

The speed itself is measured in bench/ (a ratio to ``python -c pass``);
here the test is that the client path imports nothing heavy, and that
the hand-written parse of the common forms agrees with argparse.
"""

import json
import subprocess
import sys

import pytest

from cluster_init import cli
from daemon_rig import LIB

HEAVY = {
    "argparse", "subprocess", "logging", "dataclasses", "daemon", "lockfile", "socket",
    "selectors", "enum", "re", "tempfile", "json", "ctypes", "difflib", "signal", "threading",
    "decimal", "cluster_init.cltab", "cluster_init.daemon",
}
# the only modules of the package the common forms may load: none of the daemon's
CLIENT_MODULES = {
    "cluster_init", "cluster_init.cli", "cluster_init.cli_args", "cluster_init.cli_client",
    "cluster_init.cli_status", "cluster_init.client", "cluster_init.errors", "cluster_init.protocol",
    "cluster_init.settings", "cluster_init.status", "cluster_init.stdfds", "cluster_init.socketlock",
    "cluster_init.version", "cluster_init.listing", "cluster_init.waitstatus", "cluster_init.cli_output",
}

PROBE = """
import json, sys
sys.path.insert(0, {lib!r})
before = set(sys.modules)
from cluster_init import cli
try:
    code = cli.main({argv!r})
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
print(json.dumps(sorted(set(sys.modules) - before)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["hellogrp", "1"], ["-w", "scramjet", "1"], ["-v"], ["-v", "-w", "-t", "10", "hellogrp", "1"],
        ["-S"], ["-S", "scramjet", "1"], ["-l"], ["-l", "hellogrp"], ["-k", "-w"],
        ["--stop", "hellogrp", "hello1"], ["--start", "hellogrp", "hello1"],
        ["--output", "-n", "3", "scramjet", "scram1"], ["--reexec"],
    ],
)
def test_the_client_path_imports_nothing_heavy(node, argv):
    node.start()
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(lib=LIB, argv=["-c", node.cltab, *argv])],
        env=node.env(), capture_output=True, text=True, timeout=60,
    )
    imported = set(json.loads(result.stderr.strip().splitlines()[-1]))
    assert imported & HEAVY == set(), f"{argv}: the client path imported {sorted(imported & HEAVY)}"
    ours = {name for name in imported if name.split(".")[0] == "cluster_init"}
    assert ours <= CLIENT_MODULES, f"{argv}: the client path imported {sorted(ours - CLIENT_MODULES)}"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["g", "1"],
        ["1"],
        [],
        ["-v"],
        ["-k"],
        ["-k", "-w", "-t", "5"],
        ["-w", "-t", "2.5", "g", "1"],
        ["-c", "/etc/other", "-s", "/run/x.s", "-v", "g", "1"],
        ["--cltab", "/x", "--socket", "/y", "--verbose", "--wait", "--timeout", "3", "g", "1"],
        ["-S"],
        ["-S", "--clstat", "/x", "g", "1"],
        ["--status", "-c", "/x", "g"],
        ["-l"],
        ["--list", "g"],
        ["-r", "g", "t"],
        ["--restart", "-s", "/y", "g", "t"],
        ["--stop", "g", "t"],
        ["--start", "-c", "/x", "g", "t"],
        ["--output", "g", "t"],
        ["--output", "-n", "5", "-f", "g", "t"],
        ["--output", "--lines", "0", "--follow", "-c", "/x", "g", "t"],
        ["--reexec"],
        ["--reexec", "-t", "5", "-c", "/x"],
    ],
)
def test_the_quick_parse_agrees_with_argparse(argv):
    quick = cli.quick_parse(argv)
    full = cli.build_parser().parse_args(argv)
    assert quick is not None, "a common form goes the quick way"
    assert vars(quick) == {name: value for name, value in vars(full).items() if name in vars(quick)}


@pytest.mark.parametrize("argv", [["-h"], ["-d"], ["--check"], ["-vw", "g", "1"], ["-t", "soon", "g", "1"], ["-c"]])
def test_the_rest_goes_to_argparse(argv):
    assert cli.quick_parse(argv) is None
