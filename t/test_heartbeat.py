"""The clstat heartbeat, on a daemon run in this very process.

The daemon must own the main thread (signals); a helper thread plays
the client: it watches what the heartbeat does (clstat rewritten, a
removed socket and lock file taken again), then shuts the daemon down.
"""

import os
import shutil
import signal
import threading
import time

from cluster_init import daemon as daemon_module
from cluster_init import socketlock, statusfile
from cluster_init.client import Client

from daemon_rig import wait_for


def test_clstat_is_rewritten_while_idle(tmp_path, monkeypatch):
    monkeypatch.setattr(statusfile, "HEARTBEAT", (0.2, 0.3))
    cltab = tmp_path / "cltab"
    clstat = tmp_path / "clstat"
    cltab.write_text(f":::socket:{tmp_path}/s\n:::clstat:{clstat}\n:::log:{tmp_path}/log\ng:t:1:wait:true\n")
    daemon = daemon_module.Daemon(cltab=str(cltab), log_to_stderr=False)
    rewrites = []
    errors = []

    def client_side():
        try:
            client = Client(cltab=str(cltab))
            wait_for(client.alive, what="daemon")
            client.tell("g", "1")
            assert client.wait("g", "1", timeout=10) == "DONE"
            first = os.stat(clstat).st_ino
            deadline = time.monotonic() + 10
            while len(rewrites) < 3 and time.monotonic() < deadline:
                inode = os.stat(clstat).st_ino  # each rewrite is a new file renamed in
                if inode != (rewrites[-1] if rewrites else first):
                    rewrites.append(inode)
                time.sleep(0.02)
            assert clstat.read_text() == "Cluster::Init::Group g 1 DONE\n"
        except BaseException as error:  # report in the main thread
            errors.append(error)
        finally:
            Client(cltab=str(cltab)).shutdown()

    helper = threading.Thread(target=client_side)
    helper.start()
    daemon.run()
    helper.join(10)
    assert not errors, errors
    assert len(rewrites) == 3, "clstat rewritten by the heartbeat while nothing changed"
    assert not clstat.exists()


def test_the_heartbeat_takes_a_removed_socket_and_lock_file_again(tmp_path, monkeypatch):
    """No SIGHUP: the heartbeat alone finds the socket's directory gone, makes it,
    locks a new lock file and listens again, so that no second daemon can start."""
    monkeypatch.setattr(statusfile, "HEARTBEAT", (0.2, 0.3))
    run = tmp_path / "run"
    socket_path = run / "clinit.s"
    cltab = tmp_path / "cltab"
    log = tmp_path / "log"
    cltab.write_text(f":::socket:{socket_path}\n:::clstat:{tmp_path}/clstat\n:::log:{log}\ng:t:1:wait:true\n")
    daemon = daemon_module.Daemon(cltab=str(cltab), log_to_stderr=False)
    errors = []

    def client_side():
        try:
            client = Client(cltab=str(cltab))
            wait_for(client.alive, what="daemon")
            shutil.rmtree(run)  # the socket, its lock file and their directory
            assert not client.alive()
            wait_for(client.alive, timeout=10, what="the socket bound again by the heartbeat")
            assert socketlock.held(str(socket_path)) is True, "the new lock file is locked"
            client.tell("g", "1")
            assert client.wait("g", "1", timeout=10) == "DONE"
            text = log.read_text()
            assert "was deleted or replaced: locking it again" in text
            assert "was deleted or replaced: listening on it again" in text
        except BaseException as error:  # report in the main thread
            errors.append(error)
        finally:
            try:
                Client(cltab=str(cltab)).shutdown()
            except Exception as error:  # noqa: BLE001 - the daemon must still be stopped
                errors.append(error)
                os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=client_side)
    helper.start()
    daemon.run()
    helper.join(10)
    assert not errors, errors
    assert not socket_path.exists(), "the socket is removed at shutdown"
