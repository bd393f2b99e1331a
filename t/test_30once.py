"""Port of 30once.t: a once entry and a wait entry side by side."""

from daemon_rig import wait_for


def test_once_and_wait_side_by_side(node):
    node.start()
    node.tell("hellogrp", "4")
    seen = []

    def reaches(lines):
        def check():
            current = node.out_lines()
            if current and (not seen or seen[-1] != current):
                seen.append(current)
            return current == lines
        return check

    wait_for(reaches(["1"]), what="1")
    wait_for(reaches(["1", "2"]), what="1 2")
    node.wait_status("hellogrp 4 DONE\n")  # hello4a (wait) done; hello4 (once) still runs
    wait_for(reaches(["1", "2", "3"]), what="1 2 3")
    assert seen == [["1"], ["1", "2"], ["1", "2", "3"]]
    wait_for(lambda: node.exits("hello4") == 1, what="hello4 to exit")
    assert node.out_lines() == ["1", "2", "3"], "nothing more after the once entry ends"
    assert node.starts("hello4") == 1, "a once entry is not restarted"
