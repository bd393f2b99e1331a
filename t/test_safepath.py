"""safepath: what a root daemon writes is reached component by component from /,
so that no symlink or directory another user plants on the way redirects it,
and no FIFO where a file should be can hang it (issue 17, items 1 and 3)."""

import errno
import fcntl
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from as_user import nobody, run_as
from cluster_init import safepath, trust
from daemon_rig import LIB

DEADLINE = 20  # seconds: a FIFO that blocks would hang far longer


@pytest.fixture
def public():
    """A directory every user can reach (tmp_path is root's 0700), owned by us, 0755."""
    where = Path(tempfile.mkdtemp(prefix="safepath-"))
    os.chmod(where, 0o755)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def umask():
    """Set the umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def shared_directory(public, gid):
    """A shared sticky directory as in the issue: root's, mode 1775, group ``gid``."""
    shared = public / "shared"
    shared.mkdir()
    os.chown(shared, 0, gid)
    os.chmod(shared, 0o1775)
    return shared


def secret_file(public):
    """A root-only directory holding a root-owned file the attacker wants appended to."""
    secret = public / "secret"
    secret.mkdir(mode=0o700)
    precious = secret / "clinit.log"
    precious.write_text("precious\n")
    return secret, precious


def as_nobody(function, *args):
    """Run ``function(*args)`` as user nobody; fail the test if it did not return 0."""
    uid, gid = nobody()

    def call():
        function(*args)
        return 0

    code, _out, err = run_as(uid, gid, call)
    assert code == 0, err


def refusal(call, *args, **keywords):
    """The strerror of the OSError ``call`` raises."""
    with pytest.raises(OSError) as caught:
        fd = call(*args, **keywords)
        if isinstance(fd, int):
            os.close(fd)
    return caught.value


# ---- item 1: a symlink in the middle of a path ----


def test_a_symlink_planted_in_a_shared_directory_is_not_followed(public):
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    secret, precious = secret_file(public)
    as_nobody(os.symlink, str(secret), str(shared / "logs"))
    log = str(shared / "logs" / "clinit.log")
    assert trust.directory_problems(os.path.dirname(log)) == [], "the old check, on the resolved path, is fooled"

    error = refusal(safepath.open_append, log)
    assert isinstance(error, PermissionError)
    assert error.strerror == f"{shared}/logs is a symlink owned by uid {uid}, not root; not following it"
    for call, args in (
        (safepath.ensure_directory, (f"{shared}/logs/sub",)),
        (safepath.open_read, (log,)),
        (safepath.replace_file, (f"{shared}/logs/clstat", b"x")),
        (safepath.remove, (log,)),
        (safepath.bind_unix, (f"{shared}/logs/clinit.s",)),
    ):
        assert "not following it" in refusal(call, *args).strerror, call.__name__
    assert precious.read_text() == "precious\n", "nothing was written to the target"
    assert sorted(os.listdir(secret)) == ["clinit.log"], "nothing was created there"


def test_a_directory_of_another_user_on_the_way_is_refused(public):
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    as_nobody(os.mkdir, str(shared / "logs"))
    error = refusal(safepath.open_append, f"{shared}/logs/clinit.log")
    logs = f"{shared}/logs"
    assert error.strerror == f"directory {logs} is owned by uid {uid}, not root (fix: chown root {logs})"
    assert "owned by uid" in refusal(safepath.ensure_directory, f"{shared}/logs/sub").strerror
    assert os.listdir(shared / "logs") == []


def test_even_roots_symlink_in_a_directory_others_can_write_is_not_followed(public):
    _uid, gid = nobody()
    shared = shared_directory(public, gid)
    secret, precious = secret_file(public)
    os.symlink(secret, shared / "logs")  # root's: but the issue asks for a directory nobody else can write
    error = refusal(safepath.open_append, f"{shared}/logs/clinit.log")
    assert error.strerror == (
        f"{shared}/logs is a symlink in a directory others can write ({shared}); not following it"
    )
    assert precious.read_text() == "precious\n"


def test_a_group_writable_directory_on_the_way_is_refused_a_sticky_one_is_not(public):
    gw = public / "gw"
    (gw / "logs").mkdir(parents=True)
    os.chmod(gw, 0o775)
    error = refusal(safepath.open_append, f"{gw}/logs/clinit.log", strict=True)
    assert f"directory {gw} is writable by group or others without the sticky bit" in error.strerror
    os.chmod(gw, 0o1777)
    os.close(safepath.open_append(f"{gw}/logs/clinit.log", strict=True))
    assert (gw / "logs" / "clinit.log").exists()


def test_what_is_checked_is_what_is_opened(public):
    """A directory swapped for a symlink after the walk does not redirect what is opened beneath it."""
    logs = public / "logs"
    logs.mkdir()
    secret, precious = secret_file(public)
    dir_fd = safepath.open_directory(str(logs), strict=True)
    try:
        logs.rename(public / "moved")
        os.symlink(secret, logs)
        fd = safepath.open_beneath(dir_fd, "clinit.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, strict=True)
        os.write(fd, b"line\n")
        os.close(fd)
    finally:
        os.close(dir_fd)
    assert (public / "moved" / "clinit.log").read_text() == "line\n"
    assert precious.read_text() == "precious\n"


def test_trusted_symlinks_are_followed_to_their_target(public):
    real = public / "real"
    real.mkdir()
    (public / "var").mkdir()
    os.symlink(real, public / "absolute")
    os.symlink("real", public / "relative")
    os.symlink("../real", public / "var" / "run")  # as Debian's /var/run -> /run
    os.symlink("var/run", public / "chain")
    for way in ("absolute", "relative", "var/run", "chain", "var/../chain/./"):
        fd = safepath.open_append(f"{public}/{way}/clinit.log", strict=True)
        os.write(fd, f"{way}\n".encode())
        os.close(fd)
    assert (real / "clinit.log").read_text().split() == [
        "absolute", "relative", "var/run", "chain", "var/../chain/./"
    ]


def test_the_systems_var_run_is_followed():
    fd = safepath.open_directory("/var/run", strict=True)
    try:
        here, there = os.fstat(fd), os.stat("/var/run")
        assert (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
    finally:
        os.close(fd)


def test_a_symlink_loop_ends_with_an_error(public):
    os.symlink("b", public / "a")
    os.symlink("a", public / "b")
    started = time.monotonic()
    error = refusal(safepath.open_append, f"{public}/a/clinit.log", strict=True)
    assert error.errno == errno.ELOOP and f"more than {safepath.MAX_LINKS} symlinks" in error.strerror
    assert time.monotonic() - started < DEADLINE


def test_the_last_component_is_never_followed_when_strict(public):
    _secret, precious = secret_file(public)
    os.symlink(precious, public / "clinit.log")
    error = refusal(safepath.open_append, f"{public}/clinit.log", strict=True)
    assert error.errno == errno.ELOOP
    assert error.strerror == (
        f"{public}/clinit.log is a symbolic link, not followed (Too many levels of symbolic links)"
    )
    assert refusal(safepath.open_read, f"{public}/clinit.log", strict=True).errno == errno.ELOOP
    assert precious.read_text() == "precious\n"


def test_not_strict_follows_symlinks_as_the_kernel_does(public):
    """A daemon of another user trusts what that user trusts, as before."""
    uid, gid = nobody()
    home = public / "home"
    (home / "real").mkdir(parents=True)
    shutil.chown(home, uid, gid)
    shutil.chown(home / "real", uid, gid)

    def as_that_user():
        os.symlink(str(home / "real"), str(home / "logs"))
        safepath.ensure_directory(f"{home}/logs/sub")  # not strict: not root
        os.close(safepath.open_append(f"{home}/logs/sub/clinit.log"))

    as_nobody(as_that_user)
    info = os.stat(home / "real" / "sub" / "clinit.log")
    assert info.st_uid == uid
    assert safepath.is_strict() == (os.geteuid() == 0)


def test_missing_directories_and_files_in_the_way_are_named(public):
    assert refusal(safepath.open_append, f"{public}/none/clinit.log", strict=True).strerror == (
        f"{public}/none does not exist"
    )
    (public / "file").write_text("")
    error = refusal(safepath.open_append, f"{public}/file/clinit.log", strict=True)
    assert error.errno == errno.ENOTDIR and error.strerror == f"{public}/file is a regular file, not a directory"
    assert refusal(safepath.open_append, f"{public}/", strict=True).errno == errno.EISDIR


def test_a_relative_path_starts_from_the_current_directory(public, monkeypatch):
    (public / "real").mkdir()
    monkeypatch.chdir(public / "real")
    os.close(safepath.open_append("one.log", strict=True))
    os.close(safepath.open_append("../real/two.log", strict=True))
    assert sorted(os.listdir(public / "real")) == ["one.log", "two.log"]


# ---- making directories ----


def test_missing_directories_are_made_0755_whatever_the_umask(public, umask):
    (public / "kept").mkdir(mode=0o700)
    umask(0o077)
    safepath.ensure_directory(f"{public}/kept/a/b/c", strict=True)
    for made in ("kept/a", "kept/a/b", "kept/a/b/c"):
        assert stat.S_IMODE(os.stat(public / made).st_mode) == 0o755, made
    assert stat.S_IMODE(os.stat(public / "kept").st_mode) == 0o700, "what existed is left alone"
    safepath.ensure_directory(f"{public}/other", mode=0o750, strict=True)
    assert stat.S_IMODE(os.stat(public / "other").st_mode) == 0o750
    safepath.ensure_directory(f"{public}/kept/a/b/c", strict=True)  # again: nothing to do


def test_making_directories_goes_through_trusted_symlinks_only(public):
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    (public / "real").mkdir()
    os.symlink(public / "real", public / "run")
    safepath.ensure_directory(f"{public}/run/clinit")
    assert (public / "real" / "clinit").is_dir()
    as_nobody(os.symlink, str(public / "real"), str(shared / "run"))
    refusal(safepath.ensure_directory, f"{shared}/run/other")
    assert not (public / "real" / "other").exists()


# ---- item 3: files that are not files ----


def isolated(code):
    """Run ``code`` (safepath imported) in a child with a deadline: (status, stderr)."""
    program = f"import sys; sys.path.insert(0, {LIB!r})\nfrom cluster_init import safepath\n"
    program += "try:\n    " + code + "\nexcept OSError as error:\n    sys.exit(error.strerror)\n"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=DEADLINE)
    return result.returncode, result.stderr.strip()


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("call", ["open_read(path, strict=strict)", "open_append(path, strict=strict)",
                                  "open_file(path, os.O_RDWR, strict=strict)"])
def test_a_fifo_is_refused_without_blocking(public, call, strict):
    fifo = public / "clstat"
    os.mkfifo(fifo)
    code = f"import os; path, strict = {str(fifo)!r}, {strict}; os.close(safepath.{call})"
    assert isolated(code) == (1, f"{fifo} is a FIFO, not a regular file")


def test_not_strict_a_last_symlink_is_followed_but_not_to_a_fifo(public):
    os.mkfifo(public / "fifo")
    os.symlink("fifo", public / "to-fifo")
    (public / "file").write_text("")
    os.symlink("file", public / "to-file")
    code = f"safepath.open_append({str(public / 'to-fifo')!r}, strict=False)"
    assert isolated(code) == (1, f"{public}/to-fifo is a FIFO, not a regular file")
    fd = safepath.open_append(f"{public}/to-file", strict=False)  # a daemon of another user, as before
    os.write(fd, b"line\n")
    os.close(fd)
    assert (public / "file").read_text() == "line\n"


def test_a_fifo_with_a_reader_is_refused_too(public):
    fifo = public / "clinit.log"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert isolated(f"safepath.open_append({str(fifo)!r})") == (1, f"{fifo} is a FIFO, not a regular file")
    finally:
        os.close(reader)


def test_other_kinds_of_files_are_refused(public):
    (public / "dir").mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(public / "sock"))
    try:
        error = refusal(safepath.open_read, f"{public}/dir")
        assert error.strerror == f"{public}/dir is a directory, not a regular file"
        error = refusal(safepath.open_append, f"{public}/sock")
        assert error.strerror == f"{public}/sock is a socket, not a regular file"
        assert "is a character device" in refusal(safepath.open_read, "/dev/null").strerror
    finally:
        listener.close()
    os.close(safepath.open_append("/dev/null"))  # :::output:/dev/null, as documented


def test_append_gives_a_blocking_close_on_exec_descriptor_of_our_new_file(public, umask):
    umask(0)
    path = f"{public}/clinit.log"
    fd = safepath.open_append(path, strict=True)
    try:
        assert os.get_blocking(fd) and not os.get_inheritable(fd)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
        os.write(fd, b"one\n")
    finally:
        os.close(fd)
    os.close(safepath.open_append(path, strict=True))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and open(path).read() == "one\n"


def test_a_file_another_user_planted_is_not_appended_to(public):
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    as_nobody(lambda: os.close(os.open(str(shared / "clinit.log"), os.O_WRONLY | os.O_CREAT, 0o666)))
    error = refusal(safepath.open_append, f"{shared}/clinit.log")
    assert error.strerror == f"{shared}/clinit.log is owned by uid {uid}, not by us ({os.geteuid()})"
    assert os.path.getsize(shared / "clinit.log") == 0
    # reading is not refused for the owner: who trusts the content decides (fstat)
    fd = safepath.open_read(f"{shared}/clinit.log")
    assert os.fstat(fd).st_uid == uid
    os.close(fd)


def test_a_hard_link_in_a_shared_directory_is_not_appended_to(public):
    _uid, gid = nobody()
    shared = shared_directory(public, gid)
    _secret, precious = secret_file(public)
    os.link(precious, shared / "clinit.log")  # as another user can where protected_hardlinks is off
    error = refusal(safepath.open_append, f"{shared}/clinit.log")
    assert error.strerror == f"{shared}/clinit.log has 2 hard links, in a directory others can write"
    assert precious.read_text() == "precious\n"
    (public / "own").mkdir()
    os.link(precious, public / "own" / "clinit.log")  # only root could have made this one
    os.close(safepath.open_append(f"{public}/own/clinit.log"))


# ---- atomic replace, unlink ----


def test_replace_is_atomic_and_leaves_no_temporary(public, umask):
    umask(0o077)
    path = public / "clstat"
    path.write_text("old\n")
    before = os.stat(path).st_ino
    safepath.replace_file(str(path), b"Cluster::Init::Group g 1 DONE\n", strict=True)
    assert path.read_text() == "Cluster::Init::Group g 1 DONE\n"
    assert os.stat(path).st_ino != before, "a new file renamed over the old one"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(public) == ["clstat"]


def test_replace_replaces_a_symlink_instead_of_following_it(public):
    _secret, precious = secret_file(public)
    os.symlink(precious, public / "clstat")
    safepath.replace_file(f"{public}/clstat", b"new\n", strict=True)
    assert not os.path.islink(public / "clstat") and (public / "clstat").read_text() == "new\n"
    assert precious.read_text() == "precious\n"


def test_a_failed_replace_names_the_path_and_leaves_no_temporary(public):
    (public / "clstat").mkdir()
    error = refusal(safepath.replace_file, f"{public}/clstat", b"x", strict=True)
    assert error.strerror.startswith(f"{public}/clstat: ")
    assert os.listdir(public) == ["clstat"]


def test_remove(public):
    (public / "clstat").write_text("")
    safepath.remove(f"{public}/clstat", strict=True)
    assert os.listdir(public) == []
    error = refusal(safepath.remove, f"{public}/clstat", strict=True)
    assert isinstance(error, FileNotFoundError)
    assert error.strerror == f"{public}/clstat: No such file or directory"


# ---- binding the socket ----


def connects(path):
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
    return True


def test_a_socket_is_bound_in_the_walked_directory(public, umask):
    (public / "real").mkdir()
    os.symlink("real", public / "run")
    umask(0)  # the socket is 0600 all the same
    sock = safepath.bind_unix(f"{public}/run/clinit.s", strict=True)
    try:
        sock.listen(1)
        info = os.lstat(public / "real" / "clinit.s")
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        assert not sock.get_inheritable()
        assert connects(f"{public}/run/clinit.s")
    finally:
        sock.close()


def test_a_socket_gets_its_group_and_mode(public):
    _uid, gid = nobody()
    sock = safepath.bind_unix(f"{public}/clinit.s", mode=0o660, gid=gid)
    sock.close()
    info = os.lstat(public / "clinit.s")
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, gid)


def test_a_socket_path_too_long_for_bind_works_through_the_directory(public):
    deep = public / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = f"{deep}/clinit.s"
    assert len(path) >= safepath.SUN_PATH_MAX
    sock = safepath.bind_unix(path, strict=True)
    try:
        sock.listen(1)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        sock.close()


def test_without_proc_the_socket_is_bound_by_its_checked_path(public, monkeypatch):
    monkeypatch.setattr(safepath, "PROC_FD", "/nonexistent")
    sock = safepath.bind_unix(f"{public}/clinit.s", strict=True)
    try:
        sock.listen(1)
        assert connects(f"{public}/clinit.s")
    finally:
        sock.close()
    deep = public / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    error = refusal(safepath.bind_unix, f"{deep}/clinit.s", strict=True)
    assert error.strerror.startswith(f"cannot bind {deep}/clinit.s: ")


def test_a_socket_is_not_bound_over_an_existing_file(public):
    (public / "clinit.s").write_text("")
    error = refusal(safepath.bind_unix, f"{public}/clinit.s", strict=True)
    assert error.errno == errno.EADDRINUSE and error.strerror.startswith(f"cannot bind {public}/clinit.s: ")
