"""The seam for side effects: what a System does for the daemon and its machines.

The machines and the daemon's parts never call ``os``, ``signal`` or
``time`` for what touches processes or the clock; they call a System,
and ``System`` below is every member they may call, with its contract.
sysapi.RealSystem does the real thing; the tests' FakeSystem
(t/fake_system.py) records what was asked, reports the exits a test
makes up, and has a clock the test moves.  Both provide every member
listed here (t/test_seam.py checks it); a member added here is added
to both.
"""

from typing import Any, ContextManager, Dict, List, Optional, Protocol, Tuple


class System(Protocol):
    """Processes, signals, descriptors and the clock, as the daemon uses them."""

    # starting children
    def spawn(self, command: str, env: Dict[str, str], directory: Optional[str] = None,
              output: Optional[str] = None, user: Optional[str] = None,
              output_group: Optional[int] = None) -> int:
        """Start ``/bin/sh -c command``; its pid, once the shell has been exec'ed.

        The child runs in a new session and process group, with default
        signal dispositions, an empty signal mask, stdin from /dev/null,
        stdout and stderr appended to the file ``output`` (or, when None,
        those of the daemon), in ``directory`` (or the daemon's), with the
        umask and the open-file limit the daemon was started with, and no
        other descriptor of ours.  Output files are opened for each spawn
        and closed once the child has them: a rotated file is opened anew
        by the next child, and the daemon holds no descriptor per entry;
        with ``output_group`` (a gid), the file gets that group and mode 0640.
        With ``user`` (``USER`` or ``USER:UNIXGROUP``, users.py), it runs as
        that user, looked up now: its uid, gid and supplementary groups, and
        HOME, USER and LOGNAME in its environment (in ``directory`` entered
        as that user).  SpawnError if the user cannot be looked up, or the
        directory, the output file, the change of ids or the exec failed.
        """

    def spawning(self) -> ContextManager[None]:
        """A context for a batch of spawns (children get the original open-file limit)."""

    def signals_changed(self) -> None:
        """The daemon changed signal dispositions: children must get the defaults back."""

    def seal_descriptors(self) -> None:
        """Make every descriptor but 0, 1 and 2 close-on-exec, and 1 and 2 inheritable."""

    def raise_open_files_limit(self) -> Tuple[int, int]:
        """Raise the daemon's soft open-files limit to the hard one; the (soft, hard)
        limits as they were, which are remembered: children get them (``spawning``)."""

    def open_files_limit(self) -> Optional[Tuple[int, int]]:
        """The (soft, hard) limits children get: those ``raise_open_files_limit`` found,
        or None before it was called."""

    # signalling and looking at processes
    def signal_group(self, pgid: int, signum: int) -> None:
        """Send ``signum`` to process group ``pgid``; one that is gone is no error."""

    def signal_process(self, pid: int, signum: int) -> None:
        """Send ``signum`` to process ``pid``; one that is gone is no error."""

    def group_alive(self, pgid: int) -> bool:
        """True while any process of the process group is left (zombies do not count)."""

    def group_is_ours(self, pgid: int, daemon_id: str, group: str, tag: str, uid: Optional[int] = None) -> bool:
        """True while a process of the group is left that carries these marks and is
        ours (it descends from us, or runs as ``uid``, None: our own uid): a group
        whose leader is gone can be emptied, and its number taken by a stranger's new
        session; only ours may be signalled."""

    def marked(self, daemon_id: str, group: str, tag: str, uid: Optional[int] = None) -> List[int]:
        """The pids of the processes that carry these marks and are ours: they descend
        from us, or run as ``uid`` (None: our own uid) (marks.py)."""

    def leftovers(self, daemon_id: str) -> List[Any]:
        """What a shutdown must stop beside the entries: every live process that carries
        that daemon identity and descends from this process (of any uid when we run as
        root, else of ours), or, not descending from it (a crashed predecessor's), runs
        as our own uid; as marks.Found."""

    def find_marked(self, daemon_id: str, uids: Optional[Any] = None) -> List[Any]:
        """Every live process of our uid, or of one of ``uids`` (the users entries run
        as), that carries that daemon identity, as marks.Found with its real uid (what
        a new daemon adopts)."""

    # what the entries print
    def last_lines(self, paths: List[str]) -> Dict[str, str]:
        """``{path: the last line written to it}`` for each output file of ``paths`` that
        has one and can be read, without control characters (outputs.py)."""

    # watching and collecting
    def watch_process(self, pid: int) -> Optional[Any]:
        """A descriptor that becomes readable when ``pid`` (not necessarily our child)
        exits: a pidfd; None where pidfds are missing (Linux < 5.3)."""

    def unwatch_process(self, watch: Any) -> None:
        """Give back what ``watch_process`` returned."""

    def become_subreaper(self, on: bool = True) -> bool:
        """Make orphaned descendants come back to us (``on=False``: give it up);
        False where it cannot be had."""

    def reap(self) -> List[Tuple[int, int]]:
        """Collect every child that has exited, without blocking: ``(pid, wait_status)``
        pairs (waitstatus.py decodes them)."""

    # time
    def now(self) -> float:
        """A monotonic clock, in seconds."""

    def booted_at(self) -> float:
        """When the machine booted, in seconds since the epoch; 0 if it cannot be told."""


MEMBERS = tuple(
    name for name, value in vars(System).items() if callable(value) and not name.startswith("_")
)
