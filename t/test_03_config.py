"""Port of 03_config.t (and the old 90override.t): configuration paths.

A daemon started through the API with a cltab and a socket path; a
client made with the same arguments reports those paths back.
"""

import os
import subprocess
import sys
import textwrap

from cluster_init import ClusterInit

from daemon_rig import LIB, wait_for


def api_daemon(node, **paths):
    """Run ClusterInit.daemon(**paths) in a child Python, as the Perl test did."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {LIB!r})
        from cluster_init import ClusterInit
        ClusterInit.daemon(**{paths!r})
        """
    )
    with open(node.stderr_path, "w") as stderr:
        node.daemon = subprocess.Popen(
            [sys.executable, "-c", code], cwd=node.dir, env=node.env(),
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
        )
    return node.daemon


def test_paths_from_constructor(node):
    socket = os.path.join(node.dir, "given.s")
    node.write_cltab("hellogrp:hello1:1:wait:true\n")
    api_daemon(node, cltab=node.cltab, socket=socket, clstat=node.clstat, log=node.log)
    client = ClusterInit.client(cltab=node.cltab, socket=socket)
    wait_for(client.alive, what="daemon")
    assert client.conf("cltab") == node.cltab
    assert client.conf("socket") == socket
    assert client.conf("clstat") == "/var/run/clinit/clstat", "default when neither says"
    assert client.shutdown() == "all groups halting"
    node.daemon.wait(20)
    assert node.daemon.returncode == 0
    assert not os.path.exists(socket)


def test_cltab_settings_win_over_constructor(node):
    api_daemon(node, cltab=node.cltab, socket=os.path.join(node.dir, "ignored.s"))
    client = ClusterInit.client(cltab=node.cltab, socket=os.path.join(node.dir, "ignored.s"))
    assert client.conf("socket") == node.socket
    wait_for(client.alive, what="daemon on the cltab's socket")
    assert not os.path.exists(os.path.join(node.dir, "ignored.s"))
    client.shutdown()
    node.daemon.wait(20)


def test_override_spelling(node):
    """90override: ::override:NAME:VALUE is the same as :::NAME:VALUE."""
    override = os.path.join(node.dir, "init.s.override")
    clstat = os.path.join(node.dir, "clstat.override")
    node.write_cltab(
        f"::override:socket:{override}\n::override:clstat:{clstat}\n"
        f":::log:{node.log}\nhellogrp:hello1:1:wait:true\n"
    )
    api_daemon(node, cltab=node.cltab)
    client = ClusterInit.client(cltab=node.cltab)
    assert client.conf("socket") == override and client.conf("clstat") == clstat
    wait_for(client.alive, what="daemon on the override socket")
    client.tell("hellogrp", "1")
    wait_for(lambda: client.status() == "hellogrp 1 DONE\n", what="DONE")
    assert open(clstat).read() == "Cluster::Init::Group hellogrp 1 DONE\n"
    client.shutdown()
    node.daemon.wait(20)


def test_relative_paths_are_relative_to_the_daemon(node, monkeypatch):
    node.write_cltab(":::socket:rel/clinit.s\n:::clstat:rel/clstat\n:::log:rel/log\ng:t:1:wait:true\n")
    api_daemon(node, cltab="cltab")
    socket = os.path.join(node.dir, "rel", "clinit.s")
    wait_for(lambda: os.path.exists(socket), what="socket in rel/")
    monkeypatch.chdir(node.dir)  # a client resolves them from its own directory too
    client = ClusterInit.client(cltab="cltab")
    client.tell("g", "1")
    assert client.wait("g", "1", timeout=10) == "DONE"
    assert os.path.exists(os.path.join(node.dir, "rel", "clstat"))
    client.shutdown()
    node.daemon.wait(20)
