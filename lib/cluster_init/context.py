"""What the process machines need from outside, and what the daemon remembers of them.

* ``Timing``: the delays and limits of the process machine (cltab settings);
* ``Context``: the seam, the registry, the children's environment, working
  directory and output, the kill mode; ``reconfigure(table)`` takes the
  settings of a newly read cltab;
* ``History``: what the daemon remembers of an entry across its machines;
* ``output_path``: the output file of an entry, from the ``:::output:`` template;
* ``child_settings``: the children's directory and output, from a cltab.
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
    """What the daemon remembers of an entry across its machines: starts and last exit."""

    __slots__ = ("starts", "status", "exited_at")

    def __init__(self):
        self.starts = 0
        self.status = None  # wait status of the last exit, or None
        self.exited_at = None  # when it exited last, on the System's clock


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

    def reconfigure(self, table):
        """Take the timing, kill mode, children's directory and output of cltab ``table``."""
        self.timing = Timing.from_cltab(table)
        self.kill_mode = table.setting("kill_mode")
        self.directory, self.output = child_settings(
            table, self.start_dir, {"log": self.log_path}, self.background
        )

    def spawn_arguments(self, entry, level):
        """``System.spawn``'s keyword arguments for ``entry`` told ``level``.

        The children's environment with the entry's marks (CLINIT_GROUP,
        CLINIT_TAG, CLINIT_LEVEL), its working directory and output file.
        """
        env = dict(self.environ)
        env.update(
            CLINIT_GROUP=entry.group,
            CLINIT_TAG=entry.tag,
            CLINIT_LEVEL=level if level is not None else "",
        )
        return {
            "command": entry.command,
            "env": env,
            "directory": self.directory,
            "output": output_path(self.output, entry),
        }

    def history_of(self, entry):
        """The History of ``entry`` (made on first use)."""
        return self.history.setdefault((entry.group, entry.tag), History())

    def histories(self):
        """Every History, as ``(group, tag, starts, last wait status or None)`` rows."""
        return [(group, tag, h.starts, h.status) for (group, tag), h in self.history.items()]

    def take_histories(self, rows):
        """Remember what ``histories`` gave (a handover: the daemon before the exec)."""
        for group, tag, starts, status in rows:
            history = self.history.setdefault((group, tag), History())
            history.starts, history.status = starts, status


def _resolve(base, path):
    return os.path.normpath(path if base is None else os.path.join(base, path))


def child_settings(table, base, paths, background):
    """``(directory, output)`` for children: see Context.

    Relative paths are taken from ``base``, the directory the daemon was
    started from; without a ``:::directory:`` children run in ``base``;
    without an ``:::output:`` their output goes to the log
    (``paths["log"]``) when the daemon runs in the background, else to
    the daemon's own stdout and stderr (None).
    """
    directory = table.setting("directory")
    directory = base if directory is None else _resolve(base, directory)
    output = table.setting("output")
    if output is not None:
        output = _resolve(base, output)
    elif background:
        output = paths["log"]
    return directory, output


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
