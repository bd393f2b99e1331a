"""Port of 11_status.t: the status text, and the class-level status call."""

import os

from cluster_init import ClusterInit


def test_status(node):
    node.start()
    node.tell("hellogrp", "1")
    node.wait_status("hellogrp 1 DONE\n")
    assert node.status(group="hellogrp") == "1 DONE\n"
    assert node.status(level="1") == "hellogrp DONE\n"
    assert node.status(group="hellogrp", level="1") == "DONE"
    assert node.status(group="hellogrp", level="2") == ""
    assert ClusterInit.status(clstat=node.clstat) == "hellogrp 1 DONE\n"
    assert open(node.clstat).read() == "Cluster::Init::Group hellogrp 1 DONE\n"
    node.shutdown()
    assert not os.path.exists(node.clstat)
    assert ClusterInit.status(clstat=node.clstat) == ""


def test_status_lists_groups_in_order_told(node):
    node.start()
    node.settle("scramjet", "1")
    node.settle("hellogrp", "1")
    assert node.status() == "scramjet 1 DONE\nhellogrp 1 DONE\n"
    answer = node.client().request("status")
    assert answer.lines == ("scramjet 1 DONE", "hellogrp 1 DONE")
