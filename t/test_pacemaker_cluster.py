"""A real two-node Pacemaker + Corosync cluster on this machine (pcmk_cluster.py).

test_harness_fails_over_a_dummy proves the harness with Pacemaker's own
ocf:pacemaker:Dummy; test_clinit_group_fails_over puts a clinit group
under ocf:clinit:group (ocf/clinit), in a Pacemaker group after a
floating address (ocf:heartbeat:IPaddr2) as the README configures it,
and checks placement, recovery of a failing group (a test entry that
starts failing, then a respawn entry that starts crash-looping: the
group reads FAILED, monitor sees it, with the reason in Pacemaker's
ocf-exit-reason, and it moves), failover after a node is killed, and
that deleting the resource stops the group.  Both
are skipped, with the reason, where root, the packages or namespaces
are missing.
"""

import os
import signal
import time

from cluster_init.status import read as read_clstat
from ocf_rig import AGENT, write_clinit_wrapper
from pcmk_cluster import pcmk_cluster, wait_for  # noqa: F401 - pcmk_cluster is a fixture
from realproc import environ_pids

DUMMY = (
    '<primitive id="dummy" class="ocf" provider="pacemaker" type="Dummy">'
    '<operations><op id="dummy-monitor" name="monitor" interval="2s" timeout="20s"/></operations>'
    "</primitive>"
)


def other(cluster, name):
    return next(node for node in cluster.nodes if node.name != name)


def test_harness_fails_over_a_dummy(pcmk_cluster):  # noqa: F811
    cluster = pcmk_cluster()
    with cluster.explained():
        print(f"cluster formed in {cluster.formed_after:.1f} s")
        first = cluster.nodes[0]
        cluster.cib_create("resources", DUMMY, first)
        where = wait_for(lambda: cluster.locate("dummy", first), 30, "dummy to start")
        assert len(where) == 1
        victim = cluster.node(where[0])
        survivor = other(cluster, victim.name)
        # the survivor's copy of the status follows the first node's a moment later
        wait_for(lambda: (cluster.resource_state("dummy", survivor) or ())[:2] == ("Started", [victim.name]),
                 30, f"{survivor.name} to see dummy Started on {victim.name}")

        killed = cluster.kill(victim)
        wait_for(lambda: cluster.locate("dummy", survivor) == [survivor.name]
                 and cluster.resource_state("dummy", survivor)[0] == "Started",
                 30, "dummy to fail over", interval=0.05)
        print(f"Dummy failed over in {time.monotonic() - killed:.1f} s")
        assert cluster.online(cluster.mon(survivor)) == {survivor.name}


# A clinit group under ocf:clinit:group.  Both nodes share the cltab;
# each node's socket, clstat and log are under its own private /run, and
# so are the flag file that makes the group's test entry fail and the
# file its respawn entry needs (without it, it crash-loops).
CLTAB = """\
:::socket:/run/clinit/clinit.s
:::clstat:/run/clinit/clstat
:::log:/run/clinit/log
:::pidfile:/run/clinit/clinit.pid
:::term_delay:1
:::kill_delay:2
web:fit:run:test:test ! -e /run/clinit-test/broken
web:svc:run:respawn:test -e /run/clinit-test/needed || exit 3; exec sleep 100000
"""
FLAG = "/run/clinit-test/broken"
NEEDED = "/run/clinit-test/needed"


VIP = "169.254.213.100"


def web_group(cltab, clinit):
    """The README's configuration: a floating address (IPaddr2), then the
    clinit group, in one Pacemaker group; fast monitors for the test."""
    return f"""\
<group id="web-group">
  <primitive id="web-ip" class="ocf" provider="heartbeat" type="IPaddr2">
    <instance_attributes id="web-ip-params">
      <nvpair id="web-ip-ip" name="ip" value="{VIP}"/>
      <nvpair id="web-ip-cidr" name="cidr_netmask" value="24"/>
      <nvpair id="web-ip-nic" name="nic" value="cl0"/>
    </instance_attributes>
    <operations>
      <op id="web-ip-monitor" name="monitor" interval="5s" timeout="20s"/>
    </operations>
  </primitive>
  <primitive id="web" class="ocf" provider="clinit" type="group">
    <instance_attributes id="web-params">
      <nvpair id="web-param-group" name="group" value="web"/>
      <nvpair id="web-param-level" name="level" value="run"/>
      <nvpair id="web-param-cltab" name="cltab" value="{cltab}"/>
      <nvpair id="web-param-clinit" name="clinit" value="{clinit}"/>
    </instance_attributes>
    <meta_attributes id="web-meta">
      <nvpair id="web-migration-threshold" name="migration-threshold" value="1"/>
      <nvpair id="web-resource-stickiness" name="resource-stickiness" value="100"/>
    </meta_attributes>
    <operations>
      <op id="web-start" name="start" interval="0s" timeout="30s"/>
      <op id="web-stop" name="stop" interval="0s" timeout="30s"/>
      <op id="web-monitor" name="monitor" interval="2s" timeout="20s">
        <instance_attributes id="web-monitor-params">
          <nvpair id="web-monitor-depth" name="OCF_CHECK_LEVEL" value="10"/>
        </instance_attributes>
      </op>
    </operations>
  </primitive>
</group>"""


def has_vip(cluster, node):
    done = cluster.run(node, "ip", "-o", "-4", "addr", "show", "dev", "cl0")
    return f" {VIP}/" in done.stdout


def clstat(node, group="web"):
    """(level, state) of ``group`` in the node's clstat, or None."""
    rows = read_clstat(node.path("/run/clinit/clstat"))
    return next((tuple(row[1:]) for row in rows if row[0] == group), None)


def svc_pids(cluster):
    """{node name: [pids]} of the group's respawn entry, by PID namespace (as the machine
    numbers them)."""
    by_ns = {node.pidns: node.name for node in cluster.nodes if node.alive()}
    found = {}
    for pid in environ_pids(lambda env: b"CLINIT_GROUP=web" in env and b"CLINIT_TAG=svc" in env):
        try:
            space = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            continue
        if space in by_ns:
            found.setdefault(by_ns[space], []).append(pid)
    return found


def svc_nodes(cluster):
    """The nodes where the group's respawn entry runs."""
    return sorted(svc_pids(cluster))


def exit_reasons(cluster, via, resource="web"):
    """``(node, operation, exit reason)`` of the resource's failed actions, as Pacemaker
    recorded them (crm_mon's failures)."""
    return [(failure.get("node"), failure.get("op_key"), failure.get("exitreason"))
            for failure in cluster.mon(via).iter("failure")
            if (failure.get("op_key") or "").startswith(resource + "_")]


def runs_on(cluster, node, via=None):
    """True once Pacemaker and clinit agree the group runs on ``node`` only."""
    via = via or node
    state = cluster.resource_state("web", via)
    return (
        state is not None and state[0] == "Started" and state[1] == [node.name]
        and cluster.locate("web", via) == [node.name]
        and clstat(node) == ("run", "DONE")
        and svc_nodes(cluster) == [node.name]
        and [n.name for n in cluster.nodes if n.alive() and has_vip(cluster, n)] == [node.name]
    )


def test_clinit_group_fails_over(pcmk_cluster, capsys):  # noqa: F811
    cluster = pcmk_cluster(start=False)
    cltab = os.path.join(cluster.dir, "cltab")
    with open(cltab, "w", encoding="utf-8") as stream:
        stream.write(CLTAB)
    wrapper = write_clinit_wrapper(os.path.join(cluster.dir, "bin", "clinit"))
    cluster.agents = {"clinit/group": AGENT}
    cluster.clinit = [wrapper, "-c", cltab, "-d", "-b"]  # each node's own daemon
    began = time.monotonic()
    cluster.start()
    timings = {"form": cluster.formed_after}
    with cluster.explained():
        first = cluster.nodes[0]
        for node in cluster.nodes:
            assert cluster.run(node, wrapper, "-c", cltab, "-v").returncode == 0, "no daemon"
            os.makedirs(os.path.dirname(node.path(NEEDED)))
            open(node.path(NEEDED), "w").close()

        # (a) the group reaches its level on one node, Started there (with the
        # floating address), not on the other
        cluster.cib_create("resources", web_group(cltab, wrapper), first)
        placed = wait_for(lambda: cluster.locate("web", first), 30, "web to start")
        home = cluster.node(placed[0])
        away = other(cluster, home.name)
        wait_for(lambda: runs_on(cluster, home), 30, f"web to run on {home.name}")
        assert clstat(away) in (None, ("stopped", "DONE"))

        # (b) the test entry starts failing: the depth-10 monitor sees it, the
        # fail count rises, Pacemaker recovers the group (migration-threshold 1:
        # on the other node)
        open(home.path(FLAG), "w").close()
        flipped = time.monotonic()
        wait_for(lambda: cluster.failcount("web", home.name, away) >= 1, 30,
                 f"a fail count for web on {home.name}")
        wait_for(lambda: runs_on(cluster, away), 30, f"web to recover on {away.name}")
        timings["recover"] = time.monotonic() - flipped
        assert clstat(home) == ("stopped", "DONE")
        # repair the node and forget the failure; stickiness keeps web where it is
        os.unlink(home.path(FLAG))
        cluster.run(away, "crm_resource", "--cleanup", "--resource", "web", check=True)
        wait_for(lambda: cluster.failcount("web", home.name, away) == 0, 30, "the cleanup")
        wait_for(lambda: runs_on(cluster, away), 30, f"web to stay on {away.name}")

        # (c) the respawn entry starts crash-looping where the group runs (a
        # file it needs is gone there only): the group reads FAILED, monitor
        # sees it, and Pacemaker brings the group up on the other node
        os.unlink(away.path(NEEDED))
        looped = time.monotonic()
        for pid in svc_pids(cluster)[away.name]:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: cluster.failcount("web", away.name, home) >= 1, 30,
                 f"a fail count for web on {away.name}")
        recorded = exit_reasons(cluster, home)
        failed_text = cluster.mon_text(home)
        wait_for(lambda: runs_on(cluster, home), 30, f"web to move to {home.name}")
        timings["crashloop"] = time.monotonic() - looped
        assert clstat(away) == ("stopped", "DONE")
        (node, op, why), = recorded
        assert (node, op) == (away.name, "web_monitor_2000"), recorded
        assert why.startswith("clinit group web is FAILED at level run: web:svc: crash loop: "), why
        assert "last exit 3" in why, why
        with capsys.disabled():
            print(f"\nthe exit reason Pacemaker recorded: {why}\n"
                  + "".join(line + "\n" for line in failed_text.splitlines()
                            if "web" in line and ("monitor" in line or "exitreason" in line)))
        open(away.path(NEEDED), "w").close()
        cluster.run(home, "crm_resource", "--cleanup", "--resource", "web", check=True)
        wait_for(lambda: cluster.failcount("web", away.name, home) == 0, 30, "the cleanup")

        # (d) the node running the group is killed outright: the group comes
        # up at its level on the other node
        killed = cluster.kill(home)
        wait_for(lambda: runs_on(cluster, away), 60, f"web to fail over to {away.name}",
                 interval=0.05)
        timings["failover"] = time.monotonic() - killed
        assert cluster.online(cluster.mon(away)) == {away.name}

        # (e) deleting the resource stops the group (the address stays)
        cluster.run(away, "cibadmin", "--delete", "-o", "resources",
                    "--xml-text", '<primitive id="web"/>', check=True)
        wait_for(lambda: clstat(away) == ("stopped", "DONE") and not svc_nodes(cluster), 30,
                 "the group to stop")
        wait_for(lambda: cluster.resource_state("web", away) is None, 30,
                 "web to leave the cluster")
        assert has_vip(cluster, away)
    timings["total"] = time.monotonic() - began
    with capsys.disabled():
        print("\ncluster test: formed in {form:.1f} s, recovered a failing group in "
              "{recover:.1f} s, moved a crash-looping one in {crashloop:.1f} s, failed over "
              "after a node kill in {failover:.1f} s, {total:.1f} s in all".format(**timings))
