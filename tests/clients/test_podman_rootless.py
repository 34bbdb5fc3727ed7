"""Rootless podman (issue 6, item 4): an unprivileged user's podman with the
runtime under test. podman makes the user namespace (the user's id and its
/etc/subuid range) and calls the runtime inside it as its root: the runtime
must take $XDG_RUNTIME_DIR for its state, bind devices instead of mknod, and
skip the cgroups it may not use, as runc does there.

Everything podman keeps is in a temp dir (vfs storage) and the user's
runtime dir; the pause process rootless podman leaves is killed after.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from clients_conftest import _busybox_tar, engine_runtime
from test_user import SUB_START, ensure_user

IMAGE = "localhost/pyrunc-test/busybox:latest"


class RootlessPodman:
    def __init__(self, base: Path, runtime: str, pw) -> None:
        self.base, self.runtime, self.pw = base, runtime, pw
        self.xdg = base / "xdg"
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(base),
                    "XDG_RUNTIME_DIR": str(self.xdg), "XDG_CONFIG_HOME": str(base / "config"),
                    "USER": pw.pw_name}

    def _become(self) -> None:
        os.setgroups([])
        os.setgid(self.pw.pw_gid)
        os.setuid(self.pw.pw_uid)

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = ["podman", "--storage-driver", "vfs", "--root", str(self.base / "root"),
                "--runroot", str(self.xdg / "runroot"), "--tmpdir", str(self.base / "tmp"),
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", self.runtime, *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run(argv, env=self.env, preexec_fn=self._become, cwd=self.base,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, r.returncode, out.read().decode(), err.read().decode())

    def run_args(self) -> list[str]:
        return ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def rpm() -> Iterator[RootlessPodman]:
    runtime = engine_runtime("podman", "podman", "newuidmap")
    pw = ensure_user()
    base = Path(tempfile.mkdtemp(prefix="pyrunc-rlpodman-", dir="/tmp"))
    os.chmod(base, 0o755)
    pm = RootlessPodman(base, runtime, pw)
    pm.xdg.mkdir(mode=0o700)
    (base / "busybox.tar").write_bytes(_busybox_tar())
    for p in (base, pm.xdg, base / "busybox.tar"):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    try:
        r = pm("import", str(base / "busybox.tar"), IMAGE)
        assert r.returncode == 0, r.stderr
        yield pm
    finally:
        pm("rm", "-a", "-f")
        subprocess.run(["pkill", "-KILL", "-u", pw.pw_name], capture_output=True)  # the pause process
        deadline = time.monotonic() + 10  # until reaped, so later tests of this user start clean
        while subprocess.run(["pgrep", "-u", pw.pw_name], capture_output=True).returncode == 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # files made inside the user namespace belong to subordinate ids
        subprocess.run(["rm", "-rf", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_run_as_an_unprivileged_user(rpm):
    r = rpm("run", "--rm", *rpm.run_args(), IMAGE, "sh", "-c", "id -u; cat /proc/self/uid_map; echo $$")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "0"
    assert out[1:7] == ["0", str(rpm.pw.pw_uid), "1", "1", str(SUB_START), "65536"]
    assert out[7] == "1"
    # the runtime's state went to the user's runtime dir, and is gone
    assert not any((rpm.xdg / Path(rpm.runtime).name).glob("*"))


def test_exit_code_and_missing_executable(rpm):
    r = rpm("run", "--rm", *rpm.run_args(), IMAGE, "sh", "-c", "exit 5")
    assert r.returncode == 5, r.stderr
    r = rpm("run", "--rm", *rpm.run_args(), IMAGE, "/no/such/binary")
    assert r.returncode in (126, 127), r.stderr
    assert "/no/such/binary" in r.stderr and "Traceback" not in r.stderr


def test_detached_exec_stop(rpm):
    name = "pyrunc-rl-bg"
    r = rpm("run", "-d", "--name", name, *rpm.run_args(), IMAGE, "sh", "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    assert r.returncode == 0, r.stderr
    try:
        r = rpm("exec", name, "cat", "/proc/1/cmdline")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("sh\0-c\0trap")
        r = rpm("stop", "-t", "5", name)
        assert r.returncode == 0, r.stderr
    finally:
        rpm("rm", "-f", name)
