"""What the process machines need from outside, and what the daemon remembers of them.

* ``Timing``: the delays and limits of the process machine (cltab settings);
* ``Context``: the seam, the registry, the children's environment, working
  directory and output, the kill mode; ``reconfigure(table)`` takes the
  settings of a newly read cltab;
* ``History``: what the daemon remembers of an entry across its machines;
* ``output_path``: the output file of an entry, from the ``:::output:`` template;
* ``child_settings``: the children's directory and output, from a cltab:
  without ``:::output:``, each entry's own file ``%g.%t.log`` beside the
  log, unless the daemon runs in the foreground on a terminal.
"""

import dataclasses
import os

from .seam import System


@dataclasses.dataclass(frozen=True)
class Timing:
    """The delays and limits of the process machine (cltab settings)."""

    term_delay: float = 5.0
    kill_delay: float = 10.0
    respawn_limit: int = 5
    respawn_window: float = 1.0
    respawn_hold: float = 60.0
    start_seconds: float = 1.0
    start_limit_burst: int = 5
    start_limit_interval: float = 10.0

    @classmethod
    def from_cltab(cls, cltab):
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: cltab.setting(name) for name in names})


class History:
    """What the daemon remembers of an entry across its machines: starts, last exit, and
    the output file of its last start."""

    __slots__ = ("starts", "status", "exited_at", "output")

    def __init__(self):
        self.starts = 0
        self.status = None  # wait status of the last exit, or None
        self.exited_at = None  # when it exited last, on the System's clock
        self.output = None  # the file the last start's output went to (None: the daemon's)


@dataclasses.dataclass
class Context:
    """What a process machine needs from outside: the seam, the index, the settings.

    ``directory`` is where children run (None: the daemon's own working
    directory) and ``output`` the template of the file their stdout and
    stderr go to (None: the daemon's own), see ``output_path``.
    ``start_dir`` (the directory the daemon was started from), ``log_path``
    (the daemon's log) and ``background`` (clinit -d -b) are what
    ``reconfigure`` needs to resolve ``:::directory:`` and ``:::output:``.
    """

    system: System  # sysapi.RealSystem, or the tests' FakeSystem
    registry: object
    timing: Timing = Timing()
    environ: dict = dataclasses.field(default_factory=dict)
    directory: str = None
    output: str = None
    daemon_id: str = None  # the CLINIT_DAEMON mark of our children
    kill_mode: str = "group"
    history: dict = dataclasses.field(default_factory=dict)  # (group, tag) -> History
    start_dir: str = None
    log_path: str = None
    background: bool = False
    terminal: bool = False
    output_group: int = None
    uid: int = None  # the daemon's (real) uid: what its processes run as, but :::user: entries
    user_uids: dict = dataclasses.field(default_factory=dict)  # (group, tag) -> uid of its :::user:

    def reconfigure(self, table):
        """Take the timing, kill mode, children's directory and output of cltab ``table``."""
        self.timing = Timing.from_cltab(table)
        self.kill_mode = table.setting("kill_mode")
        self.user_uids = {(line.group, line.tag): line.uid for line in table.users if line.uid is not None}
        self.directory, self.output = child_settings(
            table, self.start_dir, {"log": self.log_path}, self.background, self.terminal
        )

    def expected_uid(self, group, tag):
        """The uid the processes of entry ``group:tag`` run as: the one its ``:::user:``
        line names (as the user database said when the cltab was read); None: ours."""
        return self.user_uids.get((group, tag))

    def output_of(self, entry):
        """The file ``entry``'s output goes to now, or None (the daemon's own output)."""
        return output_path(self.output, entry)

    def spawn_arguments(self, entry, level):
        """``System.spawn``'s keyword arguments for ``entry`` told ``level``.

        The children's environment with the entry's marks (CLINIT_GROUP,
        CLINIT_TAG, CLINIT_LEVEL), its working directory and output file
        (shared with ``output_group``; remembered in its History), the user
        it runs as (None: ours).
        """
        env = dict(self.environ)
        env.update(
            CLINIT_GROUP=entry.group,
            CLINIT_TAG=entry.tag,
            CLINIT_LEVEL=level if level is not None else "",
        )
        output = self.history_of(entry).output = output_path(self.output, entry)
        return {
            "command": entry.command,
            "env": env,
            "directory": self.directory,
            "output": output,
            "user": entry.user,
            "output_group": None if output == self.log_path else self.output_group,  # the log stays ours
        }

    def history_of(self, entry):
        """The History of ``entry`` (made on first use)."""
        return self.history.setdefault((entry.group, entry.tag), History())

    def histories(self):
        """Every History, as ``(group, tag, {field: value})`` rows (plain data)."""
        return [
            (group, tag, {name: getattr(h, name) for name in History.__slots__})
            for (group, tag), h in self.history.items()
        ]

    def take_histories(self, rows):
        """Remember what ``histories`` gave (a handover: the daemon before the exec); a
        field this version does not know is left out."""
        for group, tag, fields in rows:
            history = self.history.setdefault((group, tag), History())
            for name in History.__slots__:
                if name in fields:
                    setattr(history, name, fields[name])


def _resolve(base, path):
    return os.path.normpath(path if base is None else os.path.join(base, path))


def child_settings(table, base, paths, background, terminal=False):
    """``(directory, output)`` for children: see Context.

    Relative paths are taken from ``base``, the directory the daemon was
    started from; without a ``:::directory:`` children run in ``base``.
    Without an ``:::output:``, a daemon in the foreground whose standard
    output is a ``terminal`` lets them write where it writes (None);
    otherwise (detached, or started by systemd or init) each entry writes
    to its own file ``%g.%t.log`` in the directory of the log
    (``paths["log"]``), never into a pipe the daemon reads.
    """
    directory = table.setting("directory")
    directory = base if directory is None else _resolve(base, directory)
    output = table.setting("output")
    if output is not None:
        output = _resolve(base, output)
    elif (background or not terminal) and paths.get("log"):
        output = beside(paths["log"])
    return directory, output


def beside(log):
    """The output template of entries without ``:::output:``: ``%g.%t.log`` beside ``log``."""
    return os.path.join(os.path.dirname(log).replace("%", "%%"), "%g.%t.log")


def _file_name(name):
    """``name`` as one path component: no slash, and neither "." nor ".."."""
    name = name.replace("/", "_")
    return name.replace(".", "_") if name in (".", "..") else name


def output_path(template, entry):
    """The output file of ``entry``: ``%g`` is its group, ``%t`` its tag, ``%%`` a %.

    A slash in a group or tag becomes ``_``, and so does each dot of a
    name that is "." or "..", so that a name never reaches into another
    directory.
    """
    if template is None:
        return None
    names = {"g": _file_name(entry.group), "t": _file_name(entry.tag), "%": "%"}
    out = []
    i = 0
    while i < len(template):
        char = template[i]
        if char == "%" and i + 1 < len(template) and template[i + 1] in names:
            out.append(names[template[i + 1]])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)
