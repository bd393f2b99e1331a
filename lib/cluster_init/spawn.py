"""Start a child with the C library's posix_spawn, through ctypes.

Why not os.fork: a fork copies the daemon's page tables, which costs
about 0.9 ms for a 15 MiB daemon where glibc's posix_spawn (a
vfork-style clone) costs 0.3 ms whatever the daemon's size (measured in
bench/).  Why not os.posix_spawn: Python 3.11's cannot change directory
or close descriptors in the child, and it builds its signal set with
sigaddset, which refuses the two signals glibc keeps for itself (32 and
33); glibc's posix_spawn then leaves those two ignored in the child, and
an ignored signal survives exec.  Here the child's actions are glibc's
own: dup2 of stdin, stdout and stderr, chdir (posix_spawn_file_actions_
addchdir_np, glibc 2.29), closefrom(3) (glibc 2.34), a new session, an
empty signal mask, and the default disposition for every signal.  Where
the two _np actions are missing, the caller changes directory itself
and every descriptor must be close-on-exec (launcher.Launcher does both).
"""

import ctypes
import os
import signal

POSIX_SPAWN_SETSIGDEF = 0x04
POSIX_SPAWN_SETSIGMASK = 0x08
POSIX_SPAWN_SETSID = 0x80  # glibc 2.26
SIGSET_BYTES = 128  # glibc's sigset_t: 1024 bits
ATTR_BYTES = 1024  # room for posix_spawnattr_t (336 bytes in glibc)
ACTIONS_BYTES = 256  # room for posix_spawn_file_actions_t (80 bytes in glibc)


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for name in (
            "posix_spawn",
            "posix_spawnattr_init",
            "posix_spawnattr_setflags",
            "posix_spawnattr_setsigdefault",
            "posix_spawnattr_setsigmask",
            "posix_spawn_file_actions_init",
            "posix_spawn_file_actions_destroy",
            "posix_spawn_file_actions_adddup2",
        ):
            getattr(libc, name)
    except (OSError, AttributeError):
        return None
    return libc


def _sigset(signals):
    """A raw sigset_t with the bits of ``signals`` set (no sigaddset: it refuses glibc's own)."""
    raw = bytearray(SIGSET_BYTES)
    for signum in signals:
        bit = signum - 1
        raw[bit // 8] |= 1 << (bit % 8)
    return ctypes.create_string_buffer(bytes(raw), SIGSET_BYTES)


class Spawner:
    """posix_spawn with the child setup clinit needs; ``available`` says whether it works here."""

    def __init__(self):
        self.libc = _libc()
        self.available = self.libc is not None
        self.chdir_in_child = self.available and hasattr(self.libc, "posix_spawn_file_actions_addchdir_np")
        self.closefrom_in_child = self.available and hasattr(
            self.libc, "posix_spawn_file_actions_addclosefrom_np"
        )
        self._attr = None
        if self.available:
            self._attr = ctypes.create_string_buffer(ATTR_BYTES)
            libc = self.libc
            self._check(libc.posix_spawnattr_init(self._attr))
            flags = POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
            self._check(libc.posix_spawnattr_setflags(self._attr, ctypes.c_short(flags)))
            every_signal = range(1, min(signal.NSIG, SIGSET_BYTES * 8))
            self._check(libc.posix_spawnattr_setsigdefault(self._attr, _sigset(every_signal)))
            self._check(libc.posix_spawnattr_setsigmask(self._attr, _sigset(())))

    @staticmethod
    def _check(result):
        if result != 0:
            raise OSError(result, os.strerror(result))

    def spawn(self, path, argv, env, stdin, stdout, stderr, directory=None):
        """Start ``path`` with ``argv`` and ``env`` (a dict); its pid.

        OSError (with the child's errno) if an action or the exec failed.
        """
        libc = self.libc
        actions = ctypes.create_string_buffer(ACTIONS_BYTES)
        self._check(libc.posix_spawn_file_actions_init(actions))
        try:
            for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                self._check(libc.posix_spawn_file_actions_adddup2(actions, fd, target))
            if directory is not None and self.chdir_in_child:
                self._check(libc.posix_spawn_file_actions_addchdir_np(actions, os.fsencode(directory)))
            if self.closefrom_in_child:
                self._check(libc.posix_spawn_file_actions_addclosefrom_np(actions, 3))
            args = [os.fsencode(arg) for arg in argv]
            environ = [os.fsencode(key) + b"=" + os.fsencode(value) for key, value in env.items()]
            c_argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
            c_env = (ctypes.c_char_p * (len(environ) + 1))(*environ, None)
            pid = ctypes.c_int()
            self._check(libc.posix_spawn(ctypes.byref(pid), os.fsencode(path), actions, self._attr, c_argv, c_env))
            return pid.value
        finally:
            libc.posix_spawn_file_actions_destroy(actions)
