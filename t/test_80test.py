"""Port of 80test.t: test mode makes the group PASSED or FAILED."""


def test_failed_then_passed(node):
    node.start()
    assert node.settle("hellogrp", "f") == "FAILED"
    assert node.status() == "hellogrp f FAILED\n"
    assert node.settle("hellogrp", "t") == "PASSED"
    assert node.status() == "hellogrp t PASSED\n"
