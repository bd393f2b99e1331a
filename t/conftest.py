"""Shared fixtures: the package is imported from lib/ of this checkout."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import pytest  # noqa: E402


@pytest.fixture
def node(tmp_path):
    """A clinit node in a temporary directory; whatever it started is killed after."""
    from daemon_rig import Node

    node = Node(tmp_path)
    yield node
    node.cleanup()


@pytest.fixture
def logged():
    """The daemon's log lines while the test runs (node_rig.captured_log)."""
    from node_rig import captured_log

    with captured_log() as handler:
        yield handler
