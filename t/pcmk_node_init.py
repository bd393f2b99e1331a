"""Process 1 of one node of the test cluster (see pcmk_cluster.py).

Run by the harness as

    unshare --net --pid --fork --kill-child --mount-proc --uts --mount \
        --propagation private PYTHON pcmk_node_init.py NODE.json

it is process 1 of a fresh PID, mount, UTS and network namespace.  It

1. names itself (the node name is also its host name);
2. mounts the node's private /run, /var/log, /var/lib/corosync and
   /var/lib/pacemaker over the machine's (bind mounts of directories the
   harness prepared), a tmpfs on /dev/shm (libqb's ring buffers), and its
   own /usr/lib/ocf/resource.d (the machine's providers plus the agents
   under test), so nothing the cluster writes reaches the machine's own
   directories;
3. waits for "go" on standard input: the harness gives it its network
   link in between;
4. starts the clinit daemon when asked, then ``corosync -f``, waits until
   ``corosync-cmapctl`` answers, and starts ``pacemakerd``;
5. reaps orphans until it is killed.  SIGKILL of this process (from the
   machine's PID namespace) kills every process of the node at once: a
   node failure.

Every mount lives in the node's own mount namespace, which disappears
with its last process: there is nothing to unmount afterwards.
"""

import ctypes
import json
import os
import socket
import subprocess
import sys
import time


def say(*words):
    print(f"[{time.monotonic():.3f}]", *words, flush=True)


MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source, target, fstype=None, flags=0, data=None):
    """mount(2) itself: the mount command would write /run/mount/utab, and
    the machine's /run is still there before ours is mounted."""
    encode = (lambda text: None if text is None else text.encode())
    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def wait_for(command, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def main(config_path):
    with open(config_path, encoding="utf-8") as stream:
        config = json.load(stream)
    socket.sethostname(config["name"])
    mount(None, "/", flags=MS_REC | MS_PRIVATE)
    for source, target in config["binds"]:
        mount(source, target, flags=MS_BIND)
    mount("tmpfs", "/dev/shm", "tmpfs", data="mode=1777,size=256m")
    for source, target in config.get("rbinds", []):
        mount(source, target, flags=MS_BIND | MS_REC)
    say("mounted; waiting for the network")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the harness went away before the network was up")
    env = dict(config["env"])
    if config.get("clinit"):
        done = subprocess.run(config["clinit"], env=env, stdin=subprocess.DEVNULL)
        say("clinit -d -b exited", done.returncode)
    with open("/var/log/corosync.out", "ab") as out:
        subprocess.Popen(
            ["corosync", "-f", "-c", config["corosync_conf"]],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )
    wait_for(["corosync-cmapctl", "totem.cluster_name"], 30, "corosync")
    say("corosync answers")
    with open("/var/log/pacemakerd.out", "ab") as out:
        subprocess.Popen(["pacemakerd"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    say("pacemakerd started")
    while True:  # process 1 reaps every orphan of the node
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.5)


if __name__ == "__main__":
    main(sys.argv[1])
