"""A handover: the running daemon re-executes itself in place, as the version now installed.

``clinit --reexec`` (the request ``reexec [SECONDS]``) asks for it; the
package's postinst does after an upgrade.  The daemon keeps its pid, so
its children stay its children and systemd (Type=notify, MAINPID) or the
init script's pid file see nothing change, as with ``systemctl
daemon-reexec``; no group is stopped, nothing is started.  In order:

1. the request rereads the cltab (one that is refused is not handed
   over) and waits, parked, for the rest of these steps;
2. the probe: the command the daemon would become runs ``--check`` on
   the cltab, with CLINIT_REEXEC=probe, and must end by naming a handover
   format we write (carry.FORMAT): so an interpreter or module that is
   missing or broken, a cltab the new version refuses, or a version that
   cannot take a handover, is found while the daemon can still say so;
   the probe runs beside the loop, which goes on serving;
3. once the node is at rest (Node.unrest: every group settled or
   halted, no process of it being started or stopped; tells meanwhile
   are served and waited for) and the probe passed: clstat is up to
   date, the handled signals are blocked, systemd is told RELOADING=1,
   the record (carry.py) is written, and the daemon execs the command
   with its own arguments (absolute paths; -d -b stays: the new image
   knows from the record that it is detached already).  The listening
   socket, the lock beside it and the clients' connections stay open
   across the exec, so that no client sees the socket gone, and no
   ``clinit -S`` the lock free;
4. the new image takes all of it over, resumes every group as it was
   (Node.resume), and answers the waiting clients itself.

If the exec fails, nothing was given up: the daemon unblocks its signals,
tells systemd READY=1 again and answers the error; it goes on as it was.
If the request's SECONDS pass first, it answers why the node was not at
rest.  A new image that dies before it answers closes the connection
unanswered: the command says so (exit 1), and the daemon that starts
next adopts what is left, as after any crash.
"""

import logging
import os
import sys

from . import carry
from .connections import Park
from .signals import unblock
from .protocol import Answer
from .version import VERSION

log = logging.getLogger("cluster_init")

PROBE_TIMEOUT = 30.0  # seconds the probe may take
PROBE_KEEP = 65536  # bytes of the probe's output kept: the last ones
PROBE_LINE = "handover: "  # what the probe prints last: "handover: clinit VERSION reads formats 1 ..."


def probe_line():
    """The probe's last line (cli_daemon prints it after ``--check`` when asked)."""
    return f"{PROBE_LINE}clinit {VERSION} reads formats {' '.join(map(str, carry.READS))}"


def own_command(options, main=None):
    """``(command, arguments)`` that run this daemon again: the interpreter with its
    flags and the clinit script (or ``-m cluster_init``), then the daemon's arguments
    from ``options`` with absolute paths.  None when this process is not the clinit
    command (a daemon run inside another program cannot re-execute itself)."""
    main = sys.modules.get("__main__") if main is None else main
    entry = getattr(main, "main", None)  # the clinit script's and -m cluster_init's: cli.main
    if getattr(entry, "__module__", None) != f"{__package__}.cli" or not sys.executable:
        return None
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.startswith("cluster_init"):
        program = ["-m", "cluster_init"]
    else:
        program = [os.path.abspath(sys.argv[0])]
    import subprocess

    flags = getattr(subprocess, "_args_from_interpreter_flags", list)()
    arguments = ["-d"] + (["-b"] if options.background else [])
    for flag, value in (("-p", options.pidfile), ("-c", options.cltab), ("-s", options.socket)):
        if value is not None:
            arguments += [flag, os.path.abspath(value)]
    return [sys.executable, *flags, *program], arguments


class Handover:
    """The handover of one daemon (daemon.Daemon ``daemon``); see the module docstring.

    ``command`` is own_command's, or None.  The loop calls ``step`` after
    every pass and fires the probe's deadline; the requests call ``ask``,
    ``waits``, ``expired`` and ``gone``.  In the new image (``carried``:
    the record, carry.py) the daemon's start-up steps take the lock, the
    socket and the connections, unblock the signals, resume the groups
    and answer the clients that asked, through it.
    """

    def __init__(self, daemon, command, carried, watch_fd, unwatch_fd):
        self.daemon = daemon
        self.command = command
        self.carried = carried  # the record of the handover this image is the end of, or None
        self._answer = []  # after the exec: the connections that asked for it
        self.watch_fd, self.unwatch_fd = watch_fd, unwatch_fd  # the loop's, as the registry's
        self.waiters = {}  # parked connection -> seconds it asked for
        self.verdict = None  # None: not probed; True: the probe passed; else why not
        self._probe = None  # (Popen, descriptor, output so far)
        self.deadline = None  # the probe's

    # what the requests call
    def ask(self, connection, seconds):
        """The ``reexec`` request: an Answer now, or a Park until the handover (or not)."""
        if self.command is None:
            return Answer(False, "this daemon cannot re-execute itself: it does not run as the clinit command")
        self.waiters[connection] = seconds
        log.info("handover asked: re-executing as soon as the node is at rest")
        return Park(self.daemon.system.now() + seconds)

    def waits(self, connection):
        return connection in self.waiters

    def expired(self, connection):
        seconds = self.waiters.pop(connection)
        why = self.daemon.node.unrest() or ("the new image is being checked" if self._probe else "")
        self._forget_if_alone()
        message = f"timeout: not handed over within {seconds:g} s" + (f": {why}" if why else "")
        log.warning("%s", message)
        return Answer(False, message)

    def gone(self, connection):
        self.waiters.pop(connection, None)
        self._forget_if_alone()

    def _forget_if_alone(self):
        if not self.waiters:
            self._end_probe()
            self.verdict = None  # the next request probes again: the installed version may change

    def _answer_all(self, answer):
        for connection in list(self.waiters):
            del self.waiters[connection]
            self.daemon.server.answer(connection, answer)
        self._forget_if_alone()

    # what the loop calls
    def next_deadline(self):
        return self.deadline

    def fire_due(self, now):
        if self.deadline is not None and now >= self.deadline:
            self._fail(f"its check did not finish within {PROBE_TIMEOUT:g} s")

    def step(self):
        """After every pass of the loop: probe, or re-execute once the node is at rest."""
        if not self.waiters or self._probe is not None:
            return
        if self.daemon.node.halting:
            self._answer_all(Answer(False, "not handed over: the daemon is shutting down"))
            return
        if self.verdict is None:
            self._start_probe()
        elif self.verdict is True and self.daemon.node.unrest() is None:
            self._exec()

    # the probe
    def _start_probe(self):
        import subprocess

        command, _arguments = self.command
        argv = [*command, "--check", "-c", self.daemon.node.path]
        env = dict(os.environ, **{carry.ENVIRONMENT: "probe"})
        try:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
        except OSError as error:
            self._fail(f"cannot run {command[0]}: {error.strerror or error}")
            return
        fd = popen.stdout.fileno()
        os.set_blocking(fd, False)
        self._probe = (popen, fd, bytearray())
        self.deadline = self.daemon.system.now() + PROBE_TIMEOUT
        self.watch_fd(fd, self._probe_readable)

    def _probe_readable(self):
        popen, fd, output = self._probe
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        output += chunk
        del output[:-PROBE_KEEP]  # its last lines say how it went (warnings come first)
        if chunk:
            return
        lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
        self._end_probe()
        last = lines[-1] if lines else ""
        if last.startswith(PROBE_LINE):
            if str(carry.FORMAT) in last.rsplit(" formats ", 1)[-1].split():
                self.verdict = True
                log.info("the new image checked the cltab: %s", last[len(PROBE_LINE):])
                return
            why = f"{last[len(PROBE_LINE):]}, not format {carry.FORMAT}"
        elif ": ok, " in last:
            why = "the clinit installed cannot take a handover (it has no --reexec)"
        else:
            why = last or "its check printed nothing"
            log.error("the new image's check of the cltab said:\n%s", "\n".join(lines))
        self._fail(why)

    def _end_probe(self):
        if self._probe is None:
            return
        popen, fd, _output = self._probe
        self._probe, self.deadline = None, None
        self.unwatch_fd(fd)
        if popen.poll() is None:
            popen.kill()  # still running: given up (its exit is reaped by the loop)
        popen.stdout.close()

    def _fail(self, why):
        self._end_probe()
        message = f"not handed over: the new image cannot take over: {why}"
        log.error("%s", message)
        self._answer_all(Answer(False, message))

    # the exec
    def _exec(self):
        """Re-execute; returns only if that failed, with the daemon as it was."""
        daemon = self.daemon
        daemon.clstat.flush()
        listener, connections = daemon.server.carry(set(self.waiters))
        blocked = daemon.signal_box.block_for_exec()
        daemon.premises.notify_reloading(daemon.system.now())
        passed = []  # the record's descriptor first, then those the new image takes over
        try:
            record = carry.capture(daemon.node, [name for name, _level, _state in daemon.clstat.rows()])
            record.update(
                start_dir=daemon.premises.start_dir,
                listener=listener,
                lock=daemon.premises.lock_fd,
                connections=[[fd, inbuf.decode("latin-1"), parked] for fd, inbuf, parked in connections],
                signals=blocked,
            )
            passed.append(carry.send(record))
            passed += [daemon.premises.lock_fd, *(fd for fd, _inbuf, _parked in connections)]
            passed += [listener[0]] if listener is not None else []
            passed += carry.descriptors(record)
            for number in passed:
                os.set_inheritable(number, True)
            self._execve(passed[0])
            why = "execve returned"
        except OSError as error:
            why = f"cannot re-execute {self.command[0][0]}: {error.strerror or error}"
        except Exception as error:  # a bug must not take the daemon down with its signals blocked
            log.exception("internal error in the handover")
            why = f"internal error: {error}"
        for number in passed[1:]:
            try:
                os.set_inheritable(number, False)
            except OSError:
                pass
        if passed:
            os.close(passed[0])
        unblock(blocked)
        daemon.premises.notify_ready()
        message = f"not handed over: {why}; clinit {VERSION} goes on"
        log.error("%s", message)
        self._answer_all(Answer(False, message))

    def _execve(self, record_fd):
        command, arguments = self.command
        argv = [*command, *arguments]
        log.info("handing over: clinit %s pid %d re-executes itself: %s", VERSION, os.getpid(), " ".join(argv))
        with self.daemon.system.spawning():  # the open-files limit it was started with
            os.execve(argv[0], argv, dict(os.environ, **{carry.ENVIRONMENT: str(record_fd)}))

    def close(self):
        """The daemon closes: a probe still running is given up."""
        self._end_probe()

    # the new image: the daemon's start-up steps that take over what the record names
    def take_lock(self):
        self.daemon.premises.take_lock(self.carried["lock"])

    def take_socket(self):
        """The listening socket (bound anew if none was passed on) and the connections."""
        daemon, carried = self.daemon, self.carried
        if carried["listener"] is None:
            daemon.premises.check_socket()
        connections = [(fd, inbuf.encode("latin-1"), parked) for fd, inbuf, parked in carried["connections"]]
        self._answer = daemon.server.take_over(
            daemon.premises.socket_path, daemon.premises.socket_gid, carried["listener"], connections
        )

    def unblock(self):
        unblock(self.carried["signals"])

    def resume(self):
        """Every group as it was (Node.resume); False when the record cannot say it."""
        try:
            groups, histories = carry.parse(self.carried)
        except (KeyError, TypeError, ValueError) as error:
            log.error("cannot resume from the handover record (%s): adopting as after a crash", error)
            return False
        self.daemon.node.resume(groups, histories)
        return True

    def answer_waiting(self):
        """Answer the clients that asked for the handover, now that it is done."""
        if self.carried is None:
            return
        message = f"handed over: clinit {VERSION} runs on as pid {os.getpid()} (was clinit {self.carried['version']})"
        for connection in self._answer:
            self.daemon.server.answer(connection, Answer(True, message))
        self._answer = []
