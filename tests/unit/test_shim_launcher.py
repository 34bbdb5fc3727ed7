"""scripts/shim-launcher.sh, the sh front of containerd-shim-pyrunc-v1: it
answers containerd's `delete` from the record the shim's Delete left
(shim/deleted.py: record_deleted) when nothing is left to clean up, and
hands everything else to the Python shim (here a fake that says it ran)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pyrunc.shim import messages as m
from pyrunc.shim.deleted import DELETE_RECORD, delete_response, forget_deleted, own_start_time, record_deleted

TEMPLATE = Path(__file__).resolve().parents[2] / "scripts" / "shim-launcher.sh"
# containerd runs it through its #!/bin/sh: dash on Debian, bash or
# busybox's ash elsewhere
SHELLS = [[p] for p in (shutil.which("dash"), shutil.which("bash")) if p]
if shutil.which("busybox"):
    SHELLS.append([str(shutil.which("busybox")), "sh"])


@pytest.fixture(params=SHELLS or [["/bin/sh"]], ids=lambda sh: sh[-1].rsplit("/", 1)[-1])
def sh(request) -> list[str]:
    return request.param


@pytest.fixture
def launcher(tmp_path, sh):
    fake = tmp_path / "python-shim"
    fake.write_text("#!/bin/sh\nprintf 'python shim:'; for a; do printf ' %s' \"$a\"; done; echo\n")
    fake.chmod(0o755)
    script = tmp_path / "containerd-shim-pyrunc-v1"
    script.write_text(TEMPLATE.read_text().replace("@SHIM@", str(fake)))
    script.chmod(0o755)
    return [*sh, str(script)]


@pytest.fixture
def bundle(tmp_path):
    b = tmp_path / "bundle"
    b.mkdir()
    return b


def run(launcher: list[str], bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher, *args], cwd=bundle, capture_output=True, timeout=10)


DELETE = ("-namespace", "ns1", "-address", "/run/containerd/containerd.sock", "-publish-binary",
          "/usr/bin/containerd", "-id", "c1", "delete")


def test_the_record_is_the_answer(launcher, bundle):
    stamp = 1_765_000_000_123_456_789
    record_deleted(str(bundle), stamp)
    r = run(launcher, bundle, *DELETE)
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout == delete_response(137, stamp)
    resp = m.DeleteResponse.decode(r.stdout)
    assert (resp.exit_status, resp.exited_at.seconds, resp.exited_at.nanos) == (137, 1_765_000_000, 123_456_789)
    assert not (bundle / (DELETE_RECORD + ".new")).exists()


def test_no_record_runs_the_shim(launcher, bundle):
    r = run(launcher, bundle, *DELETE)
    assert r.stdout.decode() == "python shim: " + " ".join(DELETE) + "\n"


def test_forget_deleted_removes_the_record(launcher, bundle):
    record_deleted(str(bundle), time.time_ns())
    forget_deleted(str(bundle))
    forget_deleted(str(bundle))  # none: no error
    assert run(launcher, bundle, *DELETE).stdout.startswith(b"python shim:")


def test_a_socket_still_there_runs_the_shim(launcher, bundle, tmp_path):
    """A live shim still serving others, or a dead one's socket to remove:
    the Python `delete` looks at it."""
    record_deleted(str(bundle), time.time_ns())
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        (bundle / "address").write_text(f"unix://{path}")
        assert run(launcher, bundle, *DELETE).stdout.startswith(b"python shim:")
    finally:
        s.close()
    path.unlink()  # gone: the record answers
    assert run(launcher, bundle, *DELETE).stdout == delete_response(137, _stamp(bundle))


def _stamp(bundle: Path) -> int:
    resp = m.DeleteResponse.decode(bytes(int(o, 8) for o in (bundle / DELETE_RECORD).read_text().split("\\")[1:]))
    return resp.exited_at.seconds * 1_000_000_000 + resp.exited_at.nanos


def test_the_bundle_flag_and_go_flag_forms(launcher, bundle, tmp_path):
    record_deleted(str(bundle), 5_000_000_001)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    want = delete_response(137, 5_000_000_001)
    for args in (("-namespace", "n", "-id", "c1", "-bundle", str(bundle), "delete"),
                 ("--namespace=n", "-id=c1", "--bundle", str(bundle), "-debug", "delete"),
                 ("-namespace=n", f"-bundle={bundle}", "--address=/a.sock", "delete")):
        r = run(launcher, elsewhere, *args)
        assert r.stdout == want, (args, r)


@pytest.mark.parametrize("args", [
    ("-id", "c1", "delete"),                              # no namespace: the shim's error
    ("-namespace", "", "-id", "c1", "delete"),
    ("-namespace", "n", "-id", "c1", "start"),
    ("-namespace", "n", "delete", "extra"),                # not Go's command line
    ("-namespace", "n", "-nope", "delete"),                # a flag only the shim may reject
    ("-namespace", "n", "-debug=false", "delete"),
    ("-namespace", "n", "-id"),
    ("-v",),
    (),
])
def test_anything_else_runs_the_shim(launcher, bundle, args):
    record_deleted(str(bundle), time.time_ns())
    r = run(launcher, bundle, *args)
    assert r.stdout.decode() == "python shim:" + "".join(f" {a}" for a in args) + "\n", r


@pytest.mark.parametrize("text", ["", "\n", "\\020\\211\\00x\n", "%s%s\n", "\\020 \\211\n"])
def test_a_record_that_is_not_escapes_runs_the_shim(launcher, bundle, text):
    (bundle / DELETE_RECORD).write_text(text)
    assert run(launcher, bundle, *DELETE).stdout.startswith(b"python shim:")


def test_the_record_is_private_and_whole(bundle):
    record_deleted(str(bundle), 1)
    st = os.stat(bundle / DELETE_RECORD)
    assert st.st_mode & 0o777 == 0o600
    text = (bundle / DELETE_RECORD).read_text()
    assert text.endswith("\n") and set(text[:-1]) <= set("\\01234567")


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


@pytest.fixture
def live_socket(bundle, tmp_path):
    """The shim's socket, still there (the address file names it)."""
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    (bundle / "address").write_text(f"unix://{path}")
    yield path
    s.close()


def test_a_pods_shim_that_still_runs_lets_the_record_answer(launcher, bundle, live_socket):
    """The shim serves the pod's other containers, so its socket stays: the
    record names it (pid, start time), and it still runs."""
    record_deleted(str(bundle), 7_000_000_000, (os.getpid(), own_start_time()))
    assert run(launcher, bundle, *DELETE).stdout == delete_response(137, 7_000_000_000)


def test_a_dead_shim_or_another_process_lets_the_shim_look(launcher, bundle, live_socket):
    p = subprocess.Popen(["sleep", "30"])
    try:
        started = _start_time(p.pid)
    finally:
        p.kill()
        p.wait()
    for shim in ((p.pid, started),                      # gone
                 (os.getpid(), own_start_time() + 1),   # the pid, reused by another
                 (1, own_start_time())):                # a live pid that is not the shim
        record_deleted(str(bundle), 1, shim)
        assert run(launcher, bundle, *DELETE).stdout.startswith(b"python shim:"), shim


@pytest.mark.parametrize("line", ["", "abc 12\n", "12\n", " 12\n", "12 x\n", "-1 5\n", "1:2 3\n"])
def test_a_record_without_a_shim_it_can_check_lets_the_shim_look(launcher, bundle, live_socket, line):
    record_deleted(str(bundle), 1)
    with open(bundle / DELETE_RECORD, "a") as f:
        f.write(line)
    assert run(launcher, bundle, *DELETE).stdout.startswith(b"python shim:")


def test_own_start_time_is_the_stat_field():
    assert own_start_time() == _start_time(os.getpid())
