"""Port of 50multigrp.t: groups are independent of each other.

The commands append to OUT (the original overwrote it and sampled),
and their sleeps differ by a second, so the order is certain.
"""

from cltab_master import MASTER_ENTRIES, master_cltab
from daemon_rig import wait_for

ENTRIES = [e for e in MASTER_ENTRIES if e[0] not in ("foogrp", "bargrp", "bazgrp")] + [
    ("foogrp", "foo1", "12", "once", "echo foo1start >>{out}; sleep 2; echo foo1end >>{out}"),
    ("bargrp", "bar1", "1", "once", "echo bar1start >>{out}; sleep 3; echo bar1end >>{out}"),
    ("bazgrp", "baz1", "1", "once", "sleep 4; echo baz1 >>{out}"),
]


def test_groups_do_not_wait_for_each_other(node):
    node.write_cltab(master_cltab(node.dir, entries=ENTRIES))
    node.start()
    for group in ("bazgrp", "foogrp"):
        assert node.settle(group, "1") == "DONE", "a once entry does not hold its group"
    wait_for(lambda: node.out_lines() == ["foo1start"], what="foo1start")
    assert node.settle("bargrp", "1") == "DONE"
    assert node.status() == "bazgrp 1 DONE\nfoogrp 1 DONE\nbargrp 1 DONE\n"
    wait_for(lambda: len(node.out_lines()) == 5, what="five lines")
    assert node.out_lines() == ["foo1start", "bar1start", "foo1end", "bar1end", "baz1"]
