"""Docker engine 20.10 driving the runtime under test, registered with
`dockerd --add-runtime pyrunc=PATH` and chosen with `docker run --runtime
pyrunc`: dockerd -> containerd -> containerd-shim-runc-v2 -> the runtime.

A dockerd of the tests' own (its own containerd, data root, exec root and
socket under a temp dir; --bridge=none --iptables=false; the vfs storage
driver), the image made with `docker import` from the host's busybox-static.

    python3 -m pytest -q tests/clients/test_docker.py
    PYRUNC_TEST_PODMAN_RUNTIME=/usr/sbin/runc python3 -m pytest -q tests/clients/test_docker.py
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from clients_conftest import (CGROUP_LIMITS, LIMIT_FLAGS, MEMORY_HOG, PROBE, PROBE_EXPECTED, _busybox_tar,
                              cgroup_limits, engine_runtime, probe_flags, probe_volume, run_on_pty, stop_daemon,
                              wait_for_daemon)

IMAGE = "pyrunc-test/busybox:latest"


class Docker:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.host = f"unix://{base}/docker.sock"
        self.cgroup_parent = f"/pyrunc-docker-{os.getpid()}"

    def __call__(self, *args: str, timeout: float = 90, input: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_CONFIG": str(self.base / "client")}
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True,
                              timeout=timeout, input=input, env=env)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self(*args, **kw)
        assert r.returncode == 0, f"docker {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def run_args(self) -> list[str]:
        return ["--runtime", "pyrunc", "--network", "none", "--cgroup-parent", self.cgroup_parent]


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    runtime = engine_runtime("docker.io", "dockerd", "docker", "containerd")
    base = Path(tempfile.mkdtemp(prefix="pyrunc-docker-", dir="/tmp"))
    dk = Docker(base)
    (base / "daemon.json").write_text("{}")  # not the host's /etc/docker/daemon.json
    log = open(base / "dockerd.log", "w")
    d = subprocess.Popen(
        ["dockerd", "-H", dk.host, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "--config-file", str(base / "daemon.json"), "--bridge=none",
         "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--storage-driver", "vfs",
         "--add-runtime", f"pyrunc={runtime}", "--default-ulimit", "nofile=1024:1024",
         "--default-ulimit", "nproc=1024:1024", "--exec-opt", "native.cgroupdriver=cgroupfs"],
        stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for_daemon(d, lambda: dk("version").returncode == 0, base / "dockerd.log", "dockerd", 60)
        (base / "busybox.tar").write_bytes(_busybox_tar())
        dk.ok("import", str(base / "busybox.tar"), IMAGE)
        yield dk
    finally:
        ids = dk("ps", "-aq").stdout.split()
        if ids:
            dk("rm", "-f", *ids)
        log.close()
        stop_daemon(d, base, dk.cgroup_parent)


def test_run_with_output_and_exit_code(docker):
    r = docker("run", "--rm", *docker.run_args(), IMAGE, "sh", "-c", "echo hi; echo $$; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout.split() == ["hi", "1"]
    assert docker("ps", "-aq").stdout.split() == []


def test_env_user_workdir_readonly_tmpfs_bind_no_network(docker):
    """-e, -u, -w, --read-only, --tmpfs, -v (read-only bind) and --network
    none, as the container sees them (conftest.PROBE)."""
    r = docker("run", "--rm", *docker.run_args(), *probe_flags(probe_volume(docker.base)), IMAGE, "sh", "-c", PROBE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == PROBE_EXPECTED, r.stdout


def test_missing_executable_is_reported(docker):
    r = docker("run", "--rm", *docker.run_args(), IMAGE, "/no/such/binary")
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert "executable file not found" in r.stderr or "no such file or directory" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr


def test_detached_logs_exec_pause_stop_restart(docker):
    name = "pyrunc-docker-bg"
    docker.ok("run", "-d", "--name", name, *docker.run_args(), *LIMIT_FLAGS,
              IMAGE, "sh", "-c", "echo started; trap 'echo term; exit 0' TERM; while :; do sleep 0.1; done")
    try:
        assert "started" in docker.ok("logs", name).stdout
        assert docker.ok("exec", name, "sh", "-c", "echo $$ > /dev/null; cat /proc/1/comm").stdout.strip() == "sh"
        cid = docker.ok("inspect", "-f", "{{.Id}}", name).stdout.strip()
        assert cgroup_limits(f"{docker.cgroup_parent}/{cid}") == CGROUP_LIMITS
        docker.ok("pause", name)
        assert docker.ok("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "paused"
        docker.ok("unpause", name)
        assert docker.ok("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
        docker.ok("stop", "-t", "5", name)  # SIGTERM, trapped
        assert docker.ok("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"
        assert "term" in docker.ok("logs", name).stdout
        docker.ok("restart", name)
        assert docker.ok("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
        docker.ok("kill", name)
        assert docker.ok("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    finally:
        docker("rm", "-f", name)
    assert docker("ps", "-aq").stdout.split() == []


def test_stop_kills_after_the_grace_period(docker):
    name = "pyrunc-docker-stubborn"
    docker.ok("run", "-d", "--name", name, *docker.run_args(), IMAGE, "sh", "-c",
              "trap '' TERM; while :; do sleep 0.1; done")
    try:
        started = time.monotonic()
        docker.ok("stop", "-t", "1", name)  # SIGTERM ignored: SIGKILL after 1 s
        assert time.monotonic() - started >= 1
        assert docker.ok("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    finally:
        docker("rm", "-f", name)


def test_oom_is_reported(docker):
    name = "pyrunc-docker-oom"
    r = docker("run", "--name", name, *docker.run_args(), "--memory", "16m", "--memory-swap", "16m", IMAGE,
               "sh", "-c", MEMORY_HOG)
    try:
        assert r.returncode == 137, (r.returncode, r.stderr)
        assert docker.ok("inspect", "-f", "{{.State.OOMKilled}}", name).stdout.strip() == "true"
    finally:
        docker("rm", "-f", name)


def test_interactive_tty(docker):
    """-it from a terminal (a pty of the test's): the runtime's console socket
    path, and input typed at the terminal reaching the container."""
    rc, text = run_on_pty(["docker", "-H", docker.host, "run", "--rm", "-it", *docker.run_args(), IMAGE,
                           "sh", "-c", "tty; read line; echo got:$line"], answer=b"hello\r")
    assert rc == 0, text
    assert "/dev/pts/" in text and "got:hello" in text, text


def test_exec_with_a_tty(docker):
    """docker exec -it: `exec --tty --console-socket` of the runtime."""
    name = "pyrunc-docker-exectty"
    docker.ok("run", "-d", "--name", name, *docker.run_args(), IMAGE, "sleep", "60")
    try:
        rc, text = run_on_pty(["docker", "-H", docker.host, "exec", "-it", name, "sh", "-c",
                               "tty; read line; echo got:$line"], answer=b"hi\r")
        assert rc == 0, text
        assert "/dev/pts/" in text and "got:hi" in text, text
    finally:
        docker("rm", "-f", name)
