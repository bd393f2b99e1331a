"""The original suite's master cltab (t/cltab.master), as a template.

``master_cltab(directory)`` returns its text with every path inside
``directory`` and the sleeps shortened so that the orderings the tests
check still hold.  OUT is the scratch file the tests read.
"""

import os

# group, tag, levels, mode, command -- in the original's file order.
# {out} is the OUT file.  Original sleeps in the comments where shortened.
MASTER_ENTRIES = [
    ("hellogrp", "hello1", "1", "wait", '/bin/echo "hello world!" > {out}'),
    ("hellogrp", "hello2", "2", "respawn", '/bin/echo "hello world!" >> {out}'),
    ("hellogrp", "hello3", "3", "wait", "/bin/sleep 1.5; cat /dev/null > {out}"),  # sleep 5
    # sleeps 4 and 2: OUT reads 1, then 1 2, then 1 2 3
    ("hellogrp", "hello4", "4", "once", "/bin/echo 1 > {out};/bin/sleep 2;/bin/echo 3 >> {out}"),
    ("hellogrp", "hello4a", "4", "wait", "/bin/sleep 1; /bin/echo 2 >> {out}"),
    ("hellogrp", "hellolong", "long1,long2,5", "wait", "/bin/echo long > {out}"),
    ("hellogrp", "hellolong3", "long3,", "wait", "/bin/echo long3 > {out}"),
    ("pidgrp", "pid1", "1", "respawn", "/bin/echo $$ > {out}; sleep 10"),
    # sleep 6
    ("foogrp", "foo1", "12", "once", "/bin/echo foo1start >{out};sleep 3;/bin/echo foo1end >{out}"),
    ("foogrp", "foo3", "3", "once", "/bin/echo foo3 >{out}"),
    ("bargrp", "bar1", "1", "once", "/bin/echo bar1start >{out};sleep 3;/bin/echo bar1end >{out}"),
    ("bazgrp", "baz1", "1", "once", "sleep 5; /bin/echo baz1 > {out}"),  # sleep 20
    ("scramjet", "scram1", "1", "wait", "date > {out}"),
    ("hellogrp", "htest1", "f", "test", "/bin/true"),
    ("hellogrp", "htest2", "f", "test", "/bin/false"),
    ("hellogrp", "htest3", "t", "test", "/bin/true"),
    ("test", "test1", "1", "wait", "sleep 3"),
    ("test", "test2", "1", "wait", "sleep 2"),
    ("test", "test3", "2", "wait", "sleep 2"),
    ("test", "test4", "2", "wait", "sleep 3"),
    ("test", "test5", "3", "test", "true"),
    ("test", "test6", "3", "test", "sleep 1"),
]


def entry_lines(out="OUT", entries=MASTER_ENTRIES):
    return [":".join(fields[:4]) + ":" + fields[4].format(out=out) for fields in entries]


def master_cltab(directory, extra_settings=(), entries=MASTER_ENTRIES):
    """The master cltab for a test directory, as text."""
    lines = [
        "# resourcegroup:unique_tag:runlevel(s):mode:command",
        "#",
        "# location of socket",
        f":::socket:{os.path.join(directory, 'clinit.s')}",
        "# location of status file",
        f":::clstat:{os.path.join(directory, 'clstat')}",
        "# location of log file",
        f":::log:{os.path.join(directory, 'clinitlog')}",
        "",
        *extra_settings,
        *entry_lines(os.path.join(directory, "out"), entries),
    ]
    return "\n".join(lines) + "\n"
