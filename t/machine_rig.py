"""A rig for driving the machines through the fake seam and fake clock."""

from cluster_init import cltab
from cluster_init.group import Group
from cluster_init.context import Context, Timing
from cluster_init.process import Process
from cluster_init.registry import Registry
from fake_system import FakeSystem

from cltab_master import entry_lines


PERL = Timing(start_seconds=0, start_limit_burst=0)
"""The Perl clinit's timing: a respawn entry is DONE as soon as it started, and only the
respawn guard makes a crash loop.  What the ports of the Perl machine tests run on."""


def master():
    """The master cltab, parsed (OUT is a placeholder: nothing runs)."""
    return cltab.parse("\n".join(entry_lines()) + "\n", "cltab.master")


class Rig:
    """A FakeSystem, a Registry and a Context, with helpers to drive them."""

    def __init__(self, timing=None):
        self.system = FakeSystem()
        self.registry = Registry(self.system)
        self.ctx = Context(self.system, self.registry, timing or PERL, {"PATH": "/bin"})
        self.seen = []  # (level, state name) of every group change

    def process(self, line):
        """A lone process machine for one cltab line."""
        (entry,) = cltab.parse(line + "\n", "test").entries
        proc = Process(entry, self.ctx)
        # record every state it passes through, not only where it settles
        proc.changed = lambda _old: self.seen.append(proc.state.value)
        return proc

    def group(self, name, table=None):
        table = table or master()
        return Group(
            name,
            table.entries_of(name),
            self.ctx,
            observer=lambda g: self.seen.append((g.level, g.state.value)),
        )

    def exit(self, tag, code=0, signum=None):
        """The newest process of ``tag`` exits; the reaper delivers it."""
        self.system.exit(self.system.pid_of(tag), code, signum)
        self.registry.deliver(self.system.reap())

    def pidfd_exit(self, pid):
        """An adopted ``pid`` exits: the registry finds its pidfd readable."""
        (watch,) = [watch for watch, watched in self.system.watched.items() if watched == pid]
        self.registry.pidfd_readable(watch)

    def advance(self, seconds):
        """Move the fake clock and fire every deadline that passed."""
        self.system.advance(seconds)
        self.registry.fire_due(self.system.now())

    def running(self):
        return self.system.running_tags()

    def states(self):
        """The group states seen so far, without levels; then forget them."""
        seen, self.seen = self.seen, []
        return [item[1] if isinstance(item, tuple) else item for item in seen]
