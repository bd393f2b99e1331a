"""The parts around the process machine: its Context, the Registry that
spawns and watches its children, and a Group's view of its machines.

Driven through the fake seam, so nothing runs and nothing sleeps.
"""

import signal

from cluster_init import cltab
from cluster_init.adopt import Adoption
from cluster_init.context import Context, Timing, child_settings
from cluster_init.registry import Registry
from cluster_init.states import ProcEvent, ProcState

from fake_system import FakeSystem
from machine_rig import Rig


def table(*settings):
    return cltab.parse("".join(f":::{line}\n" for line in settings) + "g:t1:1:once:true\n", "cltab")


# ---- Context ----


def test_reconfigure_takes_timing_kill_mode_directory_and_output():
    system = FakeSystem()
    ctx = Context(system, Registry(system), start_dir="/srv/start", log_path="/var/log/clinit.log")
    ctx.reconfigure(table("term_delay:2", "kill_mode:all", "directory:work", "output:out/%g.%t.log"))
    assert ctx.timing == Timing(term_delay=2.0)
    assert ctx.kill_mode == "all"
    assert ctx.directory == "/srv/start/work", "relative to the directory the daemon started in"
    assert ctx.output == "/srv/start/out/%g.%t.log"
    ctx.reconfigure(table())
    assert ctx.timing == Timing() and ctx.kill_mode == "group"
    assert ctx.directory == "/srv/start"
    assert ctx.output == "/var/log/%g.%t.log", "no terminal: each entry's own file beside the log"


def test_on_a_terminal_children_write_where_the_daemon_writes():
    system = FakeSystem()
    ctx = Context(system, Registry(system), start_dir="/", log_path="/var/log/clinit/clinit.log", terminal=True)
    ctx.reconfigure(table())
    assert ctx.output is None, "a foreground daemon on a terminal: its own output"
    ctx.reconfigure(table("output:/o/%g.%t"))
    assert ctx.output == "/o/%g.%t", ":::output: wins"


def test_in_the_background_each_entry_writes_to_its_own_file_beside_the_log():
    system = FakeSystem()
    ctx = Context(system, Registry(system), start_dir="/", log_path="/var/log/clinit/clinit.log",
                  background=True, terminal=True)
    ctx.reconfigure(table())
    assert ctx.output == "/var/log/clinit/%g.%t.log"
    (entry,) = table().entries
    assert ctx.output_of(entry) == "/var/log/clinit/g.t1.log"
    assert child_settings(table("output:/o/%t"), "/", {"log": "/l"}, True) == ("/", "/o/%t")
    assert child_settings(table(), "/", {"log": "/100%good/log"}, True)[1] == "/100%%good/%g.%t.log", (
        "a % in the log's directory stays a %"
    )


def test_spawn_arguments_carry_the_marks_and_the_output_file():
    system = FakeSystem()
    ctx = Context(system, Registry(system), environ={"PATH": "/bin"}, output="/o/%g.%t.log", directory="/d")
    (entry,) = table().entries
    arguments = ctx.spawn_arguments(entry, "1")
    assert arguments["command"] == "true" and arguments["directory"] == "/d"
    assert arguments["output"] == "/o/g.t1.log"
    assert arguments["env"] == {"PATH": "/bin", "CLINIT_GROUP": "g", "CLINIT_TAG": "t1", "CLINIT_LEVEL": "1"}
    assert arguments["user"] is None and arguments["output_group"] is None
    assert ctx.environ == {"PATH": "/bin"}, "the children's environment is copied, not changed"


def test_history_outlives_the_machine():
    rig = Rig()
    proc = rig.process("g:t1:1:once:true")
    proc.start("1")
    rig.exit("t1", 3)
    proc.stop()
    rig.registry.remove(proc)
    again = rig.process("g:t1:1:once:true")
    assert again.history is proc.history and again.history.starts == 1
    assert again.history.status == 3 << 8


# ---- Registry: spawns, exits, pidfds ----


def test_the_registry_spawns_what_the_machine_asks_for():
    rig = Rig()
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.start("1")
    (spawned,) = rig.system.spawned
    assert spawned.command == "sleep 3" and spawned.env["CLINIT_LEVEL"] == "1"
    assert rig.registry.by_pid(spawned.pid) is proc and proc.pid == spawned.pid
    assert proc.history.starts == 1 and not proc.exec_failed


def test_a_failed_spawn_is_the_machines_failure():
    rig = Rig()
    rig.system.fail_spawns = 1
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.start("1")
    assert proc.state is ProcState.CONFIGURED and proc.exec_failed and proc.failure
    assert rig.registry.live_pids() == [] and proc.history.starts == 0


def test_reap_collects_and_delivers_every_exit():
    rig = Rig()
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.start("1")
    rig.system.exit(proc.pid, 0)
    rig.registry.reap()
    assert proc.state is ProcState.DONE and rig.registry.live_pids() == []


def test_pidfds_go_through_the_loops_hooks():
    system = FakeSystem()
    watched = {}
    registry = Registry(system, watch_fd=watched.__setitem__, unwatch_fd=watched.pop)
    rig = Rig()
    rig.system, rig.registry = system, registry
    rig.ctx = Context(system, registry)
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.adopt(Adoption(ProcEvent.ADOPTED_RUNNING, "1", leader=700, pids=(700, 701), pgids=(700,)))
    assert proc.state is ProcState.RUNNING and proc.pid == 700
    assert sorted(system.watched.values()) == [700, 701] and set(watched) == set(system.watched)
    assert registry.live_pids() == [700], "the adopted leader is ours to wait for"
    member = next(fd for fd, pid in system.watched.items() if pid == 701)
    watched[member]()  # the loop finds the member's pidfd readable
    assert proc.state is ProcState.RUNNING and member not in watched
    (leader,) = watched
    watched[leader]()
    assert proc.state is ProcState.DONE and proc.history.status is None, "exit status unknown"
    assert watched == {} and system.watched == {} and registry.live_pids() == []


def test_an_adopted_process_gone_already_is_not_watched():
    rig = Rig()
    rig.system.watch_process = lambda pid: (_ for _ in ()).throw(ProcessLookupError(pid))
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.adopt(Adoption(ProcEvent.ADOPTED_RUNNING, "1", leader=702, pids=(702,), pgids=(702,)))
    assert proc.state is ProcState.DONE and proc.pid is None and rig.registry.live_pids() == []


def test_run_spawns_reads_the_registrys_clock():
    system = FakeSystem()
    registry = Registry(system, immediate=False)
    rig = Rig()
    rig.system, rig.registry, rig.ctx = system, registry, Context(system, registry)
    procs = [rig.process(f"g:t{i}:1:once:true") for i in range(3)]
    for proc in procs:
        proc.start("1")
    system.spawn = lambda *args, _spawn=system.spawn, **kwargs: (system.advance(1), _spawn(*args, **kwargs))[1]
    assert registry.run_spawns(until=system.now() + 1.5) == 2, "the budget ran out after two"
    assert registry.spawns_waiting() == 1


# ---- the stop reaches what remains ----


def test_a_stop_signals_every_group_that_remains():
    rig = Rig(Timing(term_delay=1, kill_delay=1))
    proc = rig.process("g:t1:1:respawn:daemonish &")
    proc.start("1")
    first = proc.pid
    member = rig.system.member(first)
    rig.advance(2)
    rig.exit("t1", 0)
    proc.stop()
    rig.exit("t1", signum=signal.SIGINT)
    assert proc.state is ProcState.LINGERING and proc.remains.pgids == {first}
    rig.advance(1)
    rig.advance(1)
    rig.advance(1)
    assert [sig for pgid, sig in rig.system.signals if pgid == first][-2:] == [signal.SIGKILL] * 2
    rig.system.exit(member, signum=signal.SIGKILL)
    rig.registry.reap()
    assert proc.state is ProcState.CONFIGURED and proc.remains.pgids == set()


# ---- a Group's machines ----


def test_a_group_shows_its_machines_by_tag():
    rig = Rig()
    group = rig.group("test")
    assert group.machines() == [] and group.machine("test1") is None
    group.tell("1")
    (tag, proc), = group.machines()
    assert tag == "test1" and group.machine("test1") is proc and proc.entry.tag == "test1"
    assert group.machine("nosuch") is None


def test_output_files_are_shared_with_the_socket_group_but_never_the_log():
    system = FakeSystem()
    ctx = Context(system, Registry(system), start_dir="/", log_path="/l/clinit.log", output_group=42)
    (entry,) = table().entries
    ctx.reconfigure(table())
    assert ctx.spawn_arguments(entry, "1")["output_group"] == 42
    ctx.reconfigure(table("output:/l/clinit.log"))  # the Perl-era way: children write into the log
    arguments = ctx.spawn_arguments(entry, "1")
    assert arguments["output"] == "/l/clinit.log" and arguments["output_group"] is None


def test_the_uid_an_entry_runs_as():
    system = FakeSystem()
    ctx = Context(system, Registry(system))
    ctx.reconfigure(cltab.parse("g:t1:1:once:true\ng:t2:1:once:true\n:::user:g:t2:root\n", "cltab"))
    assert ctx.expected_uid("g", "t2") == 0 and ctx.expected_uid("g", "t1") is None
