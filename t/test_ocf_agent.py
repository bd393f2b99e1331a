"""The OCF resource agent ocf/clinit, action by action, against a real daemon.

Each test runs the agent as Pacemaker's executor would (OCF_* variables,
one action per run) on a cltab in its own directory; the agent starts
its own ``clinit -d -b``.  test_ocf_tester runs resource-agents'
ocf-tester on it.
"""

import os
import re
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest

from cluster_init import cltab as cltab_module
from daemon_rig import CHECKOUT, stays, wait_for
from ocf_rig import AGENT, AgentRig, public_copy
from realproc import alive

OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_UNIMPLEMENTED = 0, 1, 3
OCF_ERR_INSTALLED, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 5, 6, 7
DTD_DIR = "/usr/share/resource-agents"

needs_xmllint = pytest.mark.skipif(
    shutil.which("xmllint") is None, reason="xmllint is not installed (Debian libxml2-utils)")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run a process as user nobody")


@pytest.fixture
def rig(tmp_path):
    rig = AgentRig(tmp_path)
    yield rig
    rig.cleanup()


def reason(done):
    """The agent's ocf-exit-reason line (without the prefix), or None."""
    found = re.findall(r"^ocf-exit-reason:(.*)$", done.stderr, re.M)
    return found[-1] if found else None


def started(rig):
    done = rig.agent("start")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert rig.clstat() == ("run", "DONE")
    return done


# meta-data, usage, unknown actions

def test_meta_data_describes_the_parameters_and_actions():
    done = subprocess.run([AGENT, "meta-data"], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"]})
    assert done.returncode == OCF_SUCCESS
    assert done.stdout.splitlines()[1] == '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">'
    root = ET.fromstring(done.stdout)
    assert root.get("name") == "group"
    params = {p.get("name"): p for p in root.iter("parameter")}
    assert set(params) == {"group", "level", "stop_level", "cltab", "timeout", "clinit"}
    assert {name for name, p in params.items() if p.get("required") == "1"} == {"group", "level"}
    assert params["stop_level"].find("content").get("default") == "stopped"
    assert params["cltab"].find("content").get("default") == "/etc/cltab"
    actions = {a.get("name") for a in root.iter("action")}
    assert actions == {"start", "stop", "monitor", "validate-all", "meta-data"}


@needs_xmllint
@pytest.mark.skipif(not os.path.exists(os.path.join(DTD_DIR, "ra-api-1.dtd")),
                    reason="no ra-api-1.dtd (Debian resource-agents)")
def test_meta_data_validates_against_the_ocf_dtd():
    meta = subprocess.run([AGENT, "meta-data"], capture_output=True, timeout=30, check=True).stdout
    lint = subprocess.run(["xmllint", "--noout", "--valid", "-"], input=meta, cwd=DTD_DIR,
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stderr.decode()


@needs_root
def test_meta_data_works_as_nobody():
    copy = public_copy(AGENT)
    try:
        done = subprocess.run([copy, "meta-data"], user="nobody", group="nogroup", cwd="/",
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "OCF_ROOT": "/usr/lib/ocf"})
    finally:
        shutil.rmtree(os.path.dirname(copy))
    assert done.returncode == OCF_SUCCESS, done.stderr
    ET.fromstring(done.stdout)


@pytest.mark.parametrize(
    "action", ["notify", "promote", "demote", "migrate_to", "reload", "bogus", ""])
def test_other_actions_are_unimplemented(rig, action):
    assert rig.rc(action) == OCF_ERR_UNIMPLEMENTED


# validate-all

def test_validate_all_accepts_a_good_configuration(rig):
    done = rig.agent("validate-all")
    assert done.returncode == OCF_SUCCESS, done.stderr


@pytest.mark.parametrize("params, why", [
    ({"cltab": "/nonexistent/cltab"}, "does not exist"),
    ({"group": "nosuch"}, "has no group nosuch"),
    ({"group": None}, "group is missing"),
    ({"level": "a:b"}, "level"),
    ({"stop_level": "run"}, "both"),
    ({"timeout": "soon"}, "timeout"),
])
def test_validate_all_refuses_a_bad_configuration(rig, params, why):
    done = rig.agent("validate-all", **params)
    assert done.returncode == OCF_ERR_CONFIGURED
    assert why in reason(done)


def test_validate_all_refuses_a_cltab_that_does_not_parse(rig):
    with open(rig.node.cltab, "a", encoding="utf-8") as stream:
        stream.write("web:bad:run:sometimes:true\n")
    done = rig.agent("validate-all")
    assert done.returncode == OCF_ERR_CONFIGURED
    assert "cltab" in reason(done)


def test_validate_all_refuses_a_group_with_a_boot_level(rig):
    """A :::boot: line would start the group on every node whose daemon starts."""
    text = open(rig.node.cltab, encoding="utf-8").read()
    rig.node.write_cltab(":::boot:slow:run\n" + text)
    assert rig.agent("validate-all").returncode == OCF_SUCCESS, "another group's boot line is no matter"
    rig.node.write_cltab(text + "::override:boot:web:run\n")
    done = rig.agent("validate-all")
    assert done.returncode == OCF_ERR_CONFIGURED
    assert "gives group web a boot level: every node would start it" in reason(done)
    assert rig.rc("start") == OCF_ERR_CONFIGURED and rig.daemon_pid() is None


def test_validate_all_wants_clinit_installed(rig):
    done = rig.agent("validate-all", clinit="/nonexistent/clinit")
    assert done.returncode == OCF_ERR_INSTALLED
    assert "not installed" in reason(done)


def test_start_validates_first(rig):
    assert rig.rc("start", group="nosuch") == OCF_ERR_CONFIGURED
    assert rig.daemon_pid() is None


# start, monitor, stop

def test_monitor_without_a_daemon_is_not_running(rig):
    assert rig.rc("monitor") == OCF_NOT_RUNNING  # never clinit's 3
    assert rig.rc("monitor", probe=True) == OCF_NOT_RUNNING


def test_probe_without_clinit_is_not_running(rig):
    assert rig.rc("monitor", probe=True, clinit="/nonexistent/clinit") == OCF_NOT_RUNNING
    assert rig.rc("monitor", clinit="/nonexistent/clinit") == OCF_ERR_INSTALLED


def test_start_starts_a_daemon_and_the_group_monitor_stop(rig):
    started(rig)
    assert rig.daemon_pid() is not None
    assert rig.rc("monitor") == OCF_SUCCESS
    assert rig.rc("monitor", probe=True) == OCF_SUCCESS
    (svc,) = wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")

    done = rig.agent("stop")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert rig.clstat() == ("stopped", "DONE")
    assert rig.tagged_pids("svc") == []
    assert rig.rc("monitor") == OCF_NOT_RUNNING
    assert rig.rc("monitor", probe=True) == OCF_NOT_RUNNING


def test_an_entry_stopped_by_hand_is_not_a_failure_for_monitor(rig):
    started(rig)
    (svc,) = wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")
    assert rig.clinit("--stop", "web", "svc").returncode == 0
    wait_for(lambda: not alive(svc), what="the stop by hand")
    assert rig.rc("monitor") == OCF_SUCCESS and rig.clstat() == ("run", "DONE")
    assert rig.rc("stop") == OCF_SUCCESS


def test_start_is_idempotent(rig):
    started(rig)
    (svc,) = wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")
    daemon = rig.daemon_pid()
    started(rig)
    assert rig.daemon_pid() == daemon
    assert stays(lambda: rig.tagged_pids("svc"), 0.5, "the respawn entry") == [svc]
    assert rig.rc("monitor") == OCF_SUCCESS


def test_stop_is_idempotent(rig):
    started(rig)
    assert rig.rc("stop") == OCF_SUCCESS
    assert rig.rc("stop") == OCF_SUCCESS
    assert rig.clstat() == ("stopped", "DONE")
    assert rig.rc("monitor") == OCF_NOT_RUNNING


def test_stop_without_a_daemon_succeeds_and_starts_none(rig):
    assert rig.rc("stop") == OCF_SUCCESS
    assert rig.daemon_pid() is None
    assert not os.path.exists(rig.node.socket)


def test_stop_of_a_group_the_daemon_never_ran_succeeds(rig):
    started(rig)
    assert rig.rc("stop", group="slow") == OCF_SUCCESS
    assert rig.clstat("slow") is None
    assert rig.clstat() == ("run", "DONE")


def test_a_failed_start_is_1_with_an_exit_reason(rig):
    open(rig.flag, "w").close()
    done = rig.agent("start")
    assert done.returncode == OCF_ERR_GENERIC
    assert reason(done) == "clinit group web settled FAILED at level run: web:fit: test failed: exit 1"
    assert rig.clstat() == ("run", "FAILED")
    monitor = rig.agent("monitor")
    assert monitor.returncode == OCF_ERR_GENERIC
    assert reason(monitor) == "clinit group web is FAILED at level run: web:fit: test failed: exit 1"
    assert rig.rc("monitor", probe=True) == OCF_ERR_GENERIC
    # recovery: stop, fix, start
    assert rig.rc("stop") == OCF_SUCCESS
    assert rig.rc("monitor") == OCF_NOT_RUNNING
    os.unlink(rig.flag)
    started(rig)


def test_a_start_that_does_not_settle_in_time_is_1_not_124(rig):
    done = rig.agent("start", group="slow", timeout="1")
    assert done.returncode == OCF_ERR_GENERIC
    assert "within 1 s" in reason(done)
    assert rig.rc("stop", group="slow") == OCF_SUCCESS
    assert rig.clstat("slow") == ("stopped", "DONE")
    assert rig.tagged_pids("nap") == []


def test_a_broken_cltab_fails_no_action_while_a_daemon_runs_on_a_good_one(rig):
    """Issue 18: a typo in the cltab must not make stop fail (which means fencing)."""
    started(rig)
    with open(rig.node.cltab, encoding="utf-8") as stream:
        good = stream.read()
    rig.node.write_cltab(good + "web:bad:run:sometimes:true\n")
    assert rig.rc("monitor") == OCF_SUCCESS  # the daemon runs on the last good cltab
    done = rig.agent("stop")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert reason(done) is None
    assert "refused, acting on the last good one" in done.stderr  # clinit's warning, for the log
    assert rig.clstat() == ("stopped", "DONE")
    done = rig.agent("start")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert reason(done) is None, "a warning in the log, not a failure"
    assert re.search(r"(^warn|WARNING): clinit refuses the cltab .*unknown mode 'sometimes'.*; "
                     r"the clinit daemon runs on its last good cltab$", done.stderr, re.M), done.stderr
    assert rig.clstat() == ("run", "DONE")
    done = rig.agent("validate-all")
    assert done.returncode == OCF_ERR_CONFIGURED and "unknown mode 'sometimes'" in reason(done)
    rig.node.write_cltab(good)
    assert rig.rc("stop") == OCF_SUCCESS


def test_a_broken_cltab_fails_start_when_no_daemon_runs(rig):
    with open(rig.node.cltab, encoding="utf-8") as stream:
        good = stream.read()
    rig.node.write_cltab(good + "web:bad:run:sometimes:true\n")
    done = rig.agent("start")
    assert done.returncode == OCF_ERR_CONFIGURED
    assert "unknown mode 'sometimes'" in reason(done)
    assert rig.daemon_pid() is None


def test_a_crash_loop_fails_monitor_and_says_why(rig):
    """A respawn entry that starts failing: monitor reads FAILED, its exit reason says why."""
    started(rig)
    with open(rig.node.cltab, encoding="utf-8") as stream:
        text = stream.read()
    need = os.path.join(rig.dir, "need")
    open(need, "w").close()
    rig.node.write_cltab(text.replace("web:svc:run:respawn:exec sleep 1000",
                                      f"web:svc:run:respawn:test -e {need} || exit 4; exec sleep 1000"))
    assert rig.rc("stop") == OCF_SUCCESS
    started(rig)
    (svc,) = wait_for(lambda: rig.tagged_pids("svc"), what="the service")
    os.unlink(need)  # what it needs is gone: each start fails now
    os.kill(svc, 9)
    wait_for(lambda: rig.clstat() == ("run", "FAILED"), what="the crash loop")
    done = rig.agent("monitor")
    assert done.returncode == OCF_ERR_GENERIC
    assert re.fullmatch(r"clinit group web is FAILED at level run: web:svc: crash loop: (exited 5 times within 10 s"
                        r"|started 6 times in 0\.\d\d s), last exit 4.*", reason(done)), reason(done)


# clinit's exit statuses, from a stand-in clinit, become OCF's
STUB = """\
#!/bin/sh
case " $* " in
    *" --check "*) exit 0 ;;
    *" -d "*) echo "stub: no daemon for you" >&2; exit "${STUB_D:-0}" ;;
    *" -w "*) echo "stub: waited" >&2; exit "${STUB_W:-0}" ;;
    *" -l "*) exit "${STUB_L:-0}" ;;
esac
exit 0
"""


@pytest.mark.parametrize("action, codes, expected", [
    ("start", {"STUB_L": "3", "STUB_D": "5"}, OCF_ERR_INSTALLED),  # python-daemon missing
    ("start", {"STUB_L": "3", "STUB_D": "6"}, OCF_ERR_CONFIGURED),  # cltab refused
    ("start", {"STUB_L": "3", "STUB_D": "1"}, OCF_ERR_GENERIC),  # cannot start
    ("start", {"STUB_L": "4"}, 4),  # permission denied
    ("start", {"STUB_W": "124"}, OCF_ERR_GENERIC),  # -w timeout: not 124
    ("start", {"STUB_W": "3"}, OCF_ERR_GENERIC),  # the daemon went away: not "unimplemented"
    ("start", {"STUB_W": "4"}, 4),
    ("start", {"STUB_W": "6"}, OCF_ERR_CONFIGURED),
    ("start", {"STUB_W": "2"}, OCF_ERR_CONFIGURED),  # clinit refused the names
    ("stop", {"STUB_W": "124"}, OCF_ERR_GENERIC),
    ("monitor", {"STUB_L": "3"}, OCF_NOT_RUNNING),  # no daemon, nothing left: not 3
    ("monitor", {"STUB_L": "4"}, 4),
    ("monitor", {"STUB_L": "124"}, OCF_ERR_GENERIC),
])
def test_clinit_statuses_are_mapped_not_passed_through(rig, action, codes, expected):
    stub = os.path.join(rig.dir, "bin", "stub-clinit")
    with open(stub, "w", encoding="utf-8") as stream:
        stream.write(STUB)
    os.chmod(stub, 0o755)
    if action == "stop":  # a group that clstat says runs, so stop tells the daemon
        with open(rig.node.clstat, "w", encoding="utf-8") as stream:
            stream.write("Cluster::Init::Group web run DONE\n")
    done = rig.agent(action, clinit=stub, extra_env=codes)
    assert done.returncode == expected, done.stderr
    if expected != OCF_NOT_RUNNING:
        assert reason(done), "no ocf-exit-reason line"


def test_a_group_moved_by_hand_is_a_failure(rig):
    started(rig)
    assert rig.clinit("-w", "web", "side").returncode == 0
    done = rig.agent("monitor")
    assert done.returncode == OCF_ERR_GENERIC
    assert "neither run nor stopped" in reason(done)
    assert rig.rc("monitor", probe=True) == OCF_ERR_GENERIC
    assert rig.rc("stop") == OCF_SUCCESS
    assert rig.tagged_pids("side") == []
    assert rig.rc("monitor") == OCF_NOT_RUNNING


def test_a_group_halted_by_hand_is_not_running(rig):
    started(rig)
    assert rig.clinit("-k", "-w", "-t", "20").returncode == 0  # clstat goes with the daemon
    assert rig.rc("monitor") == OCF_NOT_RUNNING
    started(rig)  # a new daemon


def test_deep_monitor_runs_the_test_entries_again(rig):
    started(rig)
    assert rig.rc("monitor", depth=10) == OCF_SUCCESS
    open(rig.flag, "w").close()
    assert rig.rc("monitor") == OCF_SUCCESS  # depth 0 only reads clstat
    done = rig.agent("monitor", depth=10)
    assert done.returncode == OCF_ERR_GENERIC
    assert "test entry fit" in reason(done)
    assert rig.clstat() == ("run", "DONE")  # the check changed nothing
    assert len(rig.tagged_pids("svc")) == 1


def test_a_crashed_daemon_is_a_failure(rig):
    started(rig)
    wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")
    rig.crash_daemon()
    done = rig.agent("monitor")
    assert done.returncode == OCF_ERR_GENERIC  # not 7: Pacemaker must stop it first
    assert "daemon died" in reason(done)
    assert rig.rc("monitor", probe=True) == OCF_ERR_GENERIC


def test_stop_after_a_daemon_crash_leaves_no_process(rig):
    started(rig)
    wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")
    rig.crash_daemon()
    done = rig.agent("stop")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert rig.tagged_pids("svc") == []
    assert rig.rc("monitor") == OCF_NOT_RUNNING
    started(rig)
    assert len(wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")) == 1


def test_stop_after_a_daemon_crash_succeeds_and_clears_clstat(rig):
    started(rig)
    rig.crash_daemon()
    done = rig.agent("stop")
    assert done.returncode == OCF_SUCCESS, done.stderr
    assert rig.clstat() in (None, ("stopped", "DONE"))
    assert rig.rc("monitor") == OCF_NOT_RUNNING
    assert rig.rc("monitor", probe=True) == OCF_NOT_RUNNING


def marked_process(rig, **popen):
    """A process marked as the rig's daemon marks the group's children.

    It is reaped as soon as it dies, as a dead daemon's orphan would be,
    so that no zombie lingers in its process group."""
    env = rig.node.env()
    env.update(CLINIT_GROUP="web", CLINIT_TAG="svc", CLINIT_LEVEL="run",
               CLINIT_DAEMON=rig.node.socket)
    process = subprocess.Popen(["sleep", "1000"], env=env, start_new_session=True, **popen)
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def test_processes_marked_for_the_group_that_no_daemon_owns(rig):
    """The agent's side of a crash, with a process marked as a daemon marks
    its children (CLINIT_GROUP, CLINIT_DAEMON): monitor fails; stop ends it,
    through a new daemon that adopts it or directly."""
    orphan = marked_process(rig)
    try:
        wait_for(lambda: rig.tagged_pids("svc") == [orphan.pid], what="the marked process")
        done = rig.agent("monitor")
        assert done.returncode == OCF_ERR_GENERIC
        assert f"processes of group web run: {orphan.pid}" in reason(done)
        assert rig.rc("monitor", probe=True) == OCF_ERR_GENERIC
        assert rig.rc("monitor", group="slow") == OCF_NOT_RUNNING  # another group's
        done = rig.agent("stop")
        assert done.returncode == OCF_SUCCESS, done.stderr
        orphan.wait(10)
        assert rig.clstat() in (None, ("stopped", "DONE"))
        assert rig.rc("monitor") == OCF_NOT_RUNNING
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


@needs_root
def test_another_users_marked_process_is_not_the_groups(rig):
    planted = marked_process(rig, user="nobody", group="nogroup")
    try:
        wait_for(lambda: rig.tagged_pids("svc") == [planted.pid], what="the planted process")
        assert rig.rc("monitor") == OCF_NOT_RUNNING
        assert rig.rc("stop") == OCF_SUCCESS
        assert planted.poll() is None  # not ours to stop
    finally:
        planted.kill()
        planted.wait()


def test_processes_left_by_a_dead_daemon_are_a_failure(rig):
    started(rig)
    wait_for(lambda: rig.tagged_pids("svc"), what="the respawn entry")
    rig.crash_daemon()
    os.unlink(rig.node.clstat)
    done = rig.agent("monitor")
    assert done.returncode == OCF_ERR_GENERIC
    assert "processes of group web" in reason(done)


# ocf-tester

@pytest.mark.skipif(shutil.which("ocf-tester") is None,
                    reason="ocf-tester is not installed (Debian resource-agents)")
@needs_xmllint
def test_ocf_tester(rig):
    agent = public_copy(AGENT)  # readable by nobody, whatever the checkout's modes
    try:
        argv = ["ocf-tester", "-v", "-n", "web-rsc"]
        for name, value in rig.params.items():
            argv += ["-o", f"{name}={value}"]
        env = rig.node.env()
        env["OCF_ROOT"] = "/usr/lib/ocf"
        env["TMPDIR"] = rig.tmp
        done = subprocess.run(argv + [agent], env=env, cwd="/", stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(os.path.dirname(agent))
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{agent} passed all tests" in done.stdout
    assert rig.clstat() == ("stopped", "DONE")
    assert rig.tagged_pids("svc") == []


# the README's section "Under Pacemaker"

def readme_section():
    with open(os.path.join(CHECKOUT, "README"), encoding="utf-8") as stream:
        text = stream.read()
    return text[text.index("Under Pacemaker\n---"):text.index("License\n---")]


def test_readme_cltab_parses_with_the_group():
    lines = [line[4:] for line in readme_section().splitlines()
             if line.startswith(("    :::", "    web:"))]
    table = cltab_module.parse("\n".join(lines) + "\n", "README")
    assert table.groups() == ("web",)
    assert {entry.mode for entry in table.entries} == {"test", "respawn"}


def test_readme_names_every_exit_code_and_stonith():
    section = readme_section()
    for code in range(8):
        assert re.search(rf"^    {code}  ", section, re.M), f"exit code {code}"
    assert "stonith-enabled=false" in section and "fencing" in section.lower()
    assert "/usr/lib/ocf/resource.d/clinit/group" in section


@pytest.mark.skipif(shutil.which("crm_verify") is None,
                    reason="crm_verify is not installed (Debian pacemaker)")
def test_readme_cib_xml_is_a_valid_configuration():
    section = readme_section()
    start = section.index("    <group id=\"web-group\">")
    end = section.index("    </group>") + len("    </group>")
    cib = (
        '<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.0">'
        '<configuration><crm_config><cluster_property_set id="options">'
        '<nvpair id="options-stonith" name="stonith-enabled" value="false"/>'
        "</cluster_property_set></crm_config><nodes/>"
        f"<resources>{section[start:end]}</resources><constraints/></configuration>"
        "<status/></cib>"
    )
    done = subprocess.run(["crm_verify", "--xml-text", cib], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    group = ET.fromstring(section[start:end])
    agent = group.find("primitive[@provider='clinit']")
    assert agent.get("type") == "group"
    depth = agent.find(".//op/instance_attributes/nvpair[@name='OCF_CHECK_LEVEL']")
    assert depth is not None and depth.get("value") == "10"


def test_a_boot_line_fails_start_also_while_a_daemon_runs(rig):
    """Not a broken file: one the daemon's last good cltab would not make right."""
    started(rig)
    with open(rig.node.cltab, encoding="utf-8") as stream:
        text = stream.read()
    rig.node.write_cltab(text + ":::boot:web:run\n")
    done = rig.agent("start")
    assert done.returncode == OCF_ERR_CONFIGURED
    assert "gives group web a boot level" in reason(done)
    rig.node.write_cltab(text)
