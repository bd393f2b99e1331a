"""A rig for the daemon's parts without a daemon: a Node, its Requests and its clstat
writer over a FakeSystem, in a per-test directory.  No socket, no process: a
connection is any object, the answers to parked ones are collected in ``replies``."""

import contextlib
import logging
import os

from cluster_init.context import Context
from cluster_init.node import Node, read_cltab
from cluster_init.protocol import Request
from cluster_init.registry import Registry
from cluster_init.requests import Requests
from cluster_init.statusfile import StatusWriter

from fake_system import FakeSystem


class Connection:
    """What the server would park: only a key for Requests."""

    def __init__(self, name="client"):
        self.name = name

    def __repr__(self):
        return f"Connection({self.name})"

    def who(self):
        return f"uid 4242 ({self.name})"


class NodeRig:
    """A cltab in ``directory``, and the Node, StatusWriter and Requests that serve it."""

    def __init__(self, directory, text, system=None):
        self.dir = str(directory)
        self.cltab = os.path.join(self.dir, "cltab")
        self.clstat_path = os.path.join(self.dir, "clstat")
        self.write(text)
        self.system = system or FakeSystem()  # another rig's: the same processes (a handover)
        self.registry = Registry(self.system)  # spawns at once: no loop
        path, table, signature = read_cltab(self.cltab)
        ctx = Context(
            self.system,
            self.registry,
            environ={"PATH": "/bin"},
            daemon_id=os.path.join(self.dir, "clinit.s"),
            start_dir=self.dir,
        )
        self.node = Node(path, table, signature, ctx)
        self.changes = []  # (group, level, state, gone) of every change, in order
        self.node.subscribe(lambda group, gone: self.changes.append((group.name, group.level, group.state.value, gone)))
        self.clstat = StatusWriter(self.clstat_path, self.system.now)
        self.node.subscribe(self.clstat.group_changed)
        self.requests = Requests(self.node, self.clstat, self.system.now)
        self.node.subscribe(self.requests.group_changed)
        self.replies = []  # (connection, Answer) of every parked connection answered
        self.requests.answer_through(lambda connection, answer: self.replies.append((connection, answer)))

    def write(self, text):
        """Replace the cltab (a new inode, so a reread sees it)."""
        with open(self.cltab + ".new", "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(self.cltab + ".new", self.cltab)

    def ask(self, verb, *args, connection=None):
        """What Requests makes of one request: an Answer, or a Park."""
        return self.requests.handle(connection or Connection(), Request(verb, args))

    def exit(self, tag, code=0, signum=None):
        """The newest process of ``tag`` exits; the reaper delivers it."""
        self.system.exit(self.system.pid_of(tag), code, signum)
        self.registry.deliver(self.system.reap())

    def advance(self, seconds):
        """Move the fake clock and fire the deadlines that passed: the machines', the sweep's."""
        self.system.advance(seconds)
        self.registry.fire_due(self.system.now())
        self.node.sweep.fire_due(self.system.now())

    def state(self, name):
        group = self.node.group(name)
        return None if group is None else (group.level, group.state.value)

    def clstat_text(self):
        with open(self.clstat_path, encoding="utf-8") as stream:
            return stream.read()


class Logged(logging.Handler):
    """The daemon's log lines (logger cluster_init), as messages, while installed."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def text(self):
        return "\n".join(self.messages)

    def count(self, needle):
        return sum(needle in message for message in self.messages)


@contextlib.contextmanager
def captured_log():
    """Collect what the parts log (a daemon run in this process may have turned
    propagation off, so the handler sits on the cluster_init logger itself)."""
    logger = logging.getLogger("cluster_init")
    handler, level = Logged(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def said(answer):
    """An Answer as the client reads it."""
    from cluster_init.protocol import Answer

    assert isinstance(answer, Answer), answer
    return answer.encode().decode()
