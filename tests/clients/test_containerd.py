"""containerd 1.6 driving the runtime under test through its runc shim
(containerd-shim-runc-v2), with `ctr run --runc-binary`, and through the CRI
plugin, where config.toml registers the runtime with the shim's BinaryName
(containerd_env.cri_config) and the test speaks the CRI API as kubelet does (tests/cri.py).

The shim calls the runtime the way it calls runc: `create --bundle B
--pid-file P [--console-socket S] ID` with `--log B/log.json --log-format
json`, then `start`, `state`, `kill`, `delete`, `exec --process F --detach
--pid-file P`, `pause`, `resume`, `ps --format json`. A containerd of the
tests' own runs on a socket under a temp dir (the host's, if any, is not
touched) with the native snapshotter, and the image is an OCI archive built
here from the host's busybox-static (`ctr image import`).

    python3 -m pytest -q tests/clients/test_containerd.py
    PYRUNC_TEST_PODMAN_RUNTIME=/usr/sbin/runc python3 -m pytest -q tests/clients/test_containerd.py
"""
from __future__ import annotations

import base64
import functools
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from containerd_env import Daemon, cri_config, daemon_config, oci_archive, shims_of, task_status
from cri import CriError, call, first, msg, parse
from clients_conftest import (CGROUP_LIMITS, MEMORY_HOG, PROBE, PROBE_EXPECTED, _busybox_tar, cgroup_limits,
                              engine_runtime, probe_volume, run_on_pty)

IMAGE = "docker.io/pyrunc-test/busybox:latest"
NS = "pyrunc-test"
# the CRI plugin's: its images and containers live in containerd's k8s.io namespace
CRI_NS = "k8s.io"
PAUSE_IMAGE = "docker.io/pyrunc-test/pause:latest"


class Ctr:
    def __init__(self, base: Path, runtime: str) -> None:
        self.base = base
        self.sock = base / "containerd.sock"
        self.runtime = runtime
        # pyrunc's shim (runtime `pyrunc-shim`, installed next to the runtime) first on containerd's PATH
        env = dict(os.environ, PATH=f"{os.path.dirname(runtime)}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.d = Daemon(str(base), env, self, config=daemon_config(str(base)) + cri_config(
            str(base), PAUSE_IMAGE, runtime, f"{base}/runtime-root", "native", "pyrunc"))

    @property
    def daemon(self) -> subprocess.Popen | None:
        return self.d.proc

    def start_daemon(self) -> None:
        """containerd on the module's root, state and config, answering."""
        assert self.d.start(), self.d.log_tail()

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None,
                 namespace: str = NS) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", str(self.sock), "--namespace", namespace, *args],
                              capture_output=True, text=True, timeout=timeout, input=input)

    def run_args(self, cid: str) -> list[str]:
        return ["--runc-binary", self.runtime, "--cgroup", self.cgroup(cid)]

    @staticmethod
    def cgroup(cid: str) -> str:
        return f"/pyrunc-ctr-{os.getpid()}/{cid}"

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self(*args, **kw)
        assert r.returncode == 0, f"ctr {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r


@pytest.fixture(scope="module")
def ctr() -> Iterator[Ctr]:
    runtime = engine_runtime("containerd", "containerd", "ctr", "containerd-shim-runc-v2")
    base = Path(tempfile.mkdtemp(prefix="pyrunc-ctr-", dir="/tmp"))
    c = Ctr(base, runtime)
    try:
        c.start_daemon()
        (base / "image.tar").write_bytes(oci_archive(_busybox_tar(), IMAGE))
        c.ok("image", "import", "--snapshotter", "native", str(base / "image.tar"))
        yield c
    finally:
        c.d.stop([functools.partial(c, namespace=ns) for ns in (NS, CRI_NS)],
                 cgroup_parents=[f"/pyrunc-ctr-{os.getpid()}"])


def _run(ctr: Ctr, cid: str, *cmd: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return ctr("run", "--rm", "--snapshotter", "native", *ctr.run_args(cid), *extra, IMAGE, cid, *cmd)


def _run_detached(ctr: Ctr, cid: str, *cmd: str, extra: tuple[str, ...] = ()) -> None:
    r = ctr("run", "-d", "--snapshotter", "native", *ctr.run_args(cid), *extra, IMAGE, cid, *cmd)
    assert r.returncode == 0, r.stderr


def _remove(ctr: Ctr, cid: str) -> None:
    """Kill the container's task (if any), delete it and the container."""
    ctr("task", "kill", "-s", "SIGKILL", cid)
    time.sleep(0.2)
    ctr("task", "delete", "-f", cid)
    ctr("container", "delete", cid)


def _delete_task(ctr: Ctr, cid: str) -> int:
    """`ctr task delete`: the task's exit status (ctr 1.6 exits 0 and warns
    "task ID exit with non-zero exit code N")."""
    r = ctr.ok("task", "delete", cid)
    code = re.search(r"exit with non-zero exit code (\d+)", r.stderr)
    return int(code.group(1)) if code else 0


def _wait_for_log(log: Path, text: str, count: int = 1, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while (out := log.read_text() if log.exists() else "").count(text) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return out


def test_run_with_output(ctr):
    r = _run(ctr, "c-echo", "sh", "-c", "echo hi; echo $$")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hi", "1"]
    assert ctr("container", "ls", "-q").stdout.split() == []


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code(ctr, code):
    r = _run(ctr, f"c-exit{code}", "sh", "-c", f"exit {code}")
    assert r.returncode == code, r.stderr


def test_missing_executable_is_reported(ctr):
    r = _run(ctr, "c-missing", "/no/such/binary")
    assert r.returncode != 0
    assert "/no/such/binary" in r.stderr and "no such file or directory" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr
    ctr("container", "delete", "c-missing")


def test_detached_exec_pause_kill(ctr):
    cid = "c-bg"
    _run_detached(ctr, cid, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    try:
        r = ctr.ok("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo $$; cat /proc/1/cmdline")
        assert r.stdout.split("\n", 1)[1].startswith("sh\0-c\0trap"), r.stdout
        procs = ctr.ok("task", "ps", cid).stdout
        assert len(procs.strip().splitlines()) >= 2  # header and PID 1 (and the sleeps)
        ctr.ok("task", "pause", cid)
        assert task_status(ctr, cid, "PAUSED") == "PAUSED"
        ctr.ok("task", "resume", cid)
        assert task_status(ctr, cid, "RUNNING") == "RUNNING"
        ctr.ok("task", "kill", cid)  # SIGTERM, trapped: exit 0
        assert task_status(ctr, cid, "STOPPED") == "STOPPED"
        assert _delete_task(ctr, cid) == 0
    finally:
        _remove(ctr, cid)
    assert ctr("container", "ls", "-q").stdout.split() == []


def test_tty(ctr):
    """-t: the shim gives the runtime a --console-socket; ctr itself needs a
    terminal, so it runs on a pty of the test's, and input typed there reaches
    the container (ctr's -t is docker's -it)."""
    rc, out = run_on_pty(["ctr", "--address", str(ctr.sock), "--namespace", NS, "run", "--rm", "-t",
                          "--snapshotter", "native", *ctr.run_args("c-tty"), IMAGE, "c-tty", "sh", "-c",
                          "test -t 0 && echo stdin-is-a-tty; tty; read line; echo got:$line"], answer=b"hello\r")
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "stdin-is-a-tty", lines
    assert lines[1].startswith("/dev/pts/"), lines
    assert "got:hello" in lines[2:], lines


def test_limits_land_in_the_cgroup(ctr):
    """--memory-limit and --cpus 0.5 (ctr run has no pids flag: see
    test_config_spec_user_and_pids_limit)."""
    cid = "c-limits"
    _run_detached(ctr, cid, "sleep", "30", extra=("--memory-limit", str(64 << 20), "--cpus", "0.5"))
    try:
        limits = cgroup_limits(ctr.cgroup(cid))
        assert {**limits, "pids.max": "50"} == CGROUP_LIMITS and limits["pids.max"] == "max", limits
    finally:
        _remove(ctr, cid)


def test_config_spec_user_and_pids_limit(ctr):
    """ctr 1.6's run has no flag for the user or a pids limit: its way is
    --config, a whole runtime spec (then every other flag but the runtime's is
    ignored), here ctr's default one (`ctr oci spec`) with a rootfs dir, the
    user 65534, env, cwd and a pids limit of 50."""
    cid = "c-config"
    rootfs = ctr.base / "rootfs"
    if not rootfs.exists():
        with tarfile.open(fileobj=io.BytesIO(_busybox_tar())) as tar:
            tar.extractall(rootfs)
    spec = json.loads(ctr.ok("oci", "spec").stdout)
    spec["root"] = {"path": str(rootfs)}
    spec["process"].update(args=["sh", "-c", "id -u; id -g; echo $FOO; pwd; exec sleep 30"], cwd="/tmp",
                           user={"uid": 65534, "gid": 65534}, env=["PATH=/bin", "FOO=bar"])
    spec["linux"]["cgroupsPath"] = ctr.cgroup(cid)
    spec["linux"]["resources"]["pids"] = {"limit": 50}
    config = ctr.base / f"{cid}.json"
    config.write_text(json.dumps(spec))
    log = ctr.base / f"{cid}.log"
    r = ctr("run", "-d", "--config", str(config), "--runc-binary", ctr.runtime, "--log-uri", f"file://{log}", cid)
    assert r.returncode == 0, r.stderr
    try:
        assert _wait_for_log(log, "/tmp").split() == ["65534", "65534", "bar", "/tmp"]
        assert cgroup_limits(ctr.cgroup(cid))["pids.max"] == "50"
    finally:
        _remove(ctr, cid)


def test_env_user_cwd_readonly_tmpfs_bind_no_network(ctr):
    """--env, --cwd, --read-only, --mount of a tmpfs and of a read-only bind,
    and ctr's default network, which is none (a network namespace of the
    container's own: only lo), as a process of `ctr task exec --user` sees
    them (conftest.PROBE); --net-host gives the host's interfaces."""
    cid = "c-probe"
    vol = probe_volume(ctr.base)
    _run_detached(ctr, cid, "sleep", "30",
                  extra=("--env", "FOO=bar", "--cwd", "/tmp", "--read-only",
                         "--mount", "type=tmpfs,src=tmpfs,dst=/scratch,options=nosuid:nodev",
                         "--mount", f"type=bind,src={vol},dst=/vol,options=rbind:ro"))
    try:
        r = ctr.ok("task", "exec", "--exec-id", "probe", "--user", "65534:65534", cid, "sh", "-c", PROBE)
        assert r.stdout.split() == PROBE_EXPECTED, r.stdout
    finally:
        _remove(ctr, cid)
    host = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
    r = _run(ctr, "c-nethost", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1", extra=("--net-host",))
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == host and len(host) > 1, r.stdout


def test_log_stop_escalation_restart(ctr):
    """ctr has no logs, stop or restart; their equivalents: the task's output
    in the file of --log-uri (the shim writes it, as the runc shim writes the
    logs of Docker and the CRI); `task kill` SIGTERM, then SIGKILL after a
    grace period (the task ignores SIGTERM), the task's status 137; a new task
    of the same container (`task delete`, `task start`) runs the init again,
    its output appended to the log."""
    cid = "c-stop"
    log = ctr.base / f"{cid}.log"
    _run_detached(ctr, cid, "sh", "-c", "trap '' TERM; echo started; while :; do sleep 0.1; done",
                  extra=("--log-uri", f"file://{log}"))
    try:
        assert _wait_for_log(log, "started") == "started\n"
        ctr.ok("task", "kill", cid)  # SIGTERM: ignored
        time.sleep(1)  # the grace period
        assert task_status(ctr, cid, "RUNNING", 0) == "RUNNING"
        ctr.ok("task", "kill", "-s", "SIGKILL", cid)
        assert task_status(ctr, cid, "STOPPED") == "STOPPED"
        assert _delete_task(ctr, cid) == 137

        ctr.ok("task", "start", "-d", "--log-uri", f"file://{log}", cid)
        assert task_status(ctr, cid, "RUNNING") == "RUNNING"
        assert _wait_for_log(log, "started", 2) == "started\nstarted\n"
    finally:
        _remove(ctr, cid)
    assert ctr("container", "ls", "-q").stdout.split() == []


def test_oom_is_reported(ctr):
    """A task over its memory limit: ctr sees exit 137 and containerd
    publishes /tasks/oom for it (the shim watches the memory cgroup the
    runtime put the task's init in)."""
    cid = "c-oom"
    events = subprocess.Popen(["ctr", "--address", str(ctr.sock), "events"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # subscribed before the task starts
        r = _run(ctr, cid, "sh", "-c", MEMORY_HOG, extra=("--memory-limit", str(16 << 20)))
        assert r.returncode == 137, (r.returncode, r.stderr)
        time.sleep(0.5)  # the event stream is asynchronous
    finally:
        events.terminate()
        out = events.communicate(timeout=10)[0]
    # "<date> <time> +0000 UTC <namespace> <topic> <payload>"
    events = [line.split(" UTC ", 1)[1].split(None, 2)[1:] for line in out.splitlines()
              if f'"container_id":"{cid}"' in line]
    assert ["/tasks/oom", f'{{"container_id":"{cid}"}}'] in events, out
    exits = [json.loads(payload) for topic, payload in events if topic == "/tasks/exit"]
    assert [e["exit_status"] for e in exits] == [137], out


def test_exec_with_a_tty(ctr):
    """ctr task exec -t from a terminal: `exec --tty --console-socket` of the
    runtime; input typed at the terminal reaches the process."""
    cid = "c-exectty"
    _run_detached(ctr, cid, "sleep", "60")
    try:
        rc, out = run_on_pty(["ctr", "--address", str(ctr.sock), "--namespace", NS, "task", "exec", "-t",
                              "--exec-id", "tty1", cid, "sh", "-c", "tty; read line; echo got:$line"],
                             answer=b"hello\r")
        assert rc == 0, out
        assert out.splitlines()[0].startswith("/dev/pts/"), out
        assert "got:hello" in out, out
    finally:
        _remove(ctr, cid)


# CRI: the runtime registered in config.toml (cri_config), driven as kubelet drives it
CONTAINER_RUNNING, CONTAINER_EXITED = 1, 2


@pytest.fixture(scope="module")
def cri(ctr: Ctr) -> None:
    """The CRI socket (containerd's), with the test image and a pause image
    (the pod's sandbox: a process that stays) in the k8s.io namespace."""
    rootfs = _busybox_tar()
    for name, cmd in ((IMAGE, ("sh",)), (PAUSE_IMAGE, ("sleep", "2147483647"))):
        tar = ctr.base / "cri-image.tar"
        tar.write_bytes(oci_archive(rootfs, name, cmd))
        ctr.ok("image", "import", "--snapshotter", "native", str(tar), namespace=CRI_NS)


def _call(ctr: Ctr, method: str, request: bytes) -> dict[int, list]:
    try:
        return call(str(ctr.sock), method, request)
    except CriError as e:  # the error's text is in containerd's log
        pytest.fail(f"{e}\n--- containerd log\n" + (ctr.base / "containerd.log").read_text()[-3000:])


def _binary_name(ctr: Ctr, cid: str) -> bytes:
    """BinaryName in the runc options containerd keeps with the container."""
    info = json.loads(ctr.ok("container", "info", cid, namespace=CRI_NS).stdout)
    assert info["Runtime"]["Name"] == "io.containerd.runc.v2", info["Runtime"]
    return first(parse(base64.b64decode(info["Runtime"]["Options"]["value"])), 6)


@pytest.mark.parametrize("handler", ["pyrunc", "pyrunc-shim"])
def test_cri_runtime_registered_by_binary_name(ctr, cri, handler):
    """A pod through the CRI API (what kubelet and crictl send) with runtime
    handler `pyrunc`, the CRI plugin's runtime that config.toml registers with
    the runc shim's BinaryName, or `pyrunc-shim`, pyrunc's own shim
    (io.containerd.pyrunc.v1: the sandbox and the container in one shim, in
    its process): the sandbox and the container run under the runtime under
    test (their state is in its root, containerd holds its path), output
    reaches the CRI log, ExecSync returns output and exit codes, the memory
    limit lands in the cgroup, and stop kills (137)."""
    own_shim = handler == "pyrunc-shim"
    if own_shim and not (Path(ctr.runtime).parent / "containerd-shim-pyrunc-v1").exists():
        pytest.skip("containerd-shim-pyrunc-v1 is not installed next to the runtime under test")
    # the CRI plugin passes the runc options (Root) to runc's shim type only
    runtime_root = f"/run/containerd/pyrunc/{CRI_NS}" if own_shim else f"{ctr.base}/runtime-root/{CRI_NS}"
    cgroup_parent = Ctr.cgroup("cri-pod")
    logs = ctr.base / f"pod-logs-{handler}"
    namespaces = msg((1, 2), (2, 1))  # NamespaceOption: network NODE (the host's), pid CONTAINER
    pod = msg((1, msg((1, f"{handler}-pod"), (2, f"{handler}-pod-uid"), (3, "default"))),  # metadata
              (3, str(logs)),  # log_directory
              (8, msg((1, cgroup_parent), (2, msg((1, namespaces))))))  # linux: cgroup_parent, security_context
    sandbox = first(_call(ctr, "RunPodSandbox", msg((1, pod), (2, handler))), 1).decode()
    try:
        container = msg((1, msg((1, "work"))),  # metadata
                        (2, msg((1, IMAGE))),  # image
                        (3, ["sh", "-c", "echo hello-from-cri; exec sleep 600"]),  # command
                        (6, [msg((1, "FOO"), (2, "bar"))]),  # envs
                        (11, "work.log"),  # log_path, under the pod's log_directory
                        # linux: resources.memory_limit_in_bytes, security_context.namespace_options
                        (15, msg((1, msg((4, 64 << 20))), (2, msg((3, namespaces))))))
        cid = first(_call(ctr, "CreateContainer", msg((1, sandbox), (2, container), (3, pod))), 1).decode()
        _call(ctr, "StartContainer", msg((1, cid)))

        status = parse(first(_call(ctr, "ContainerStatus", msg((1, cid))), 1))
        assert first(status, 3, 0) == CONTAINER_RUNNING, status
        if own_shim:  # one shim for the pod: the container's address is the sandbox's
            bundles = ctr.base / "state" / "io.containerd.runtime.v2.task" / CRI_NS
            address = (bundles / sandbox / "address").read_text()
            assert (bundles / cid / "address").read_text() == address
        for ident in (sandbox, cid):
            if not own_shim:
                assert _binary_name(ctr, ident) == ctr.runtime.encode()
            state = subprocess.run([ctr.runtime, "--root", runtime_root, "state", ident],
                                   capture_output=True, text=True)
            assert state.returncode == 0, state.stderr
            assert json.loads(state.stdout)["status"] == "running", state.stdout

        r = _call(ctr, "ExecSync", msg((1, cid), (2, ["sh", "-c", "echo $FOO; cat /proc/1/cmdline"]), (3, 30)))
        assert first(r, 1, b"") == b"bar\nsleep\x00600\x00", r  # PID 1: the command, after its exec
        assert first(r, 3, 0) == 0, r
        r = _call(ctr, "ExecSync", msg((1, cid), (2, ["sh", "-c", "echo oops >&2; exit 3"]), (3, 30)))
        assert (first(r, 2), first(r, 3)) == (b"oops\n", 3), r

        limit = Path("/sys/fs/cgroup/memory") / cgroup_parent.lstrip("/") / cid / "memory.limit_in_bytes"
        assert limit.read_text().strip() == str(64 << 20)
        deadline = time.monotonic() + 10
        while "hello-from-cri" not in (log := (logs / "work.log").read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert " stdout F hello-from-cri\n" in log, log

        _call(ctr, "StopContainer", msg((1, cid), (2, 0)))  # timeout 0: SIGKILL
        status = parse(first(_call(ctr, "ContainerStatus", msg((1, cid))), 1))
        assert (first(status, 3, 0), first(status, 7, 0)) == (CONTAINER_EXITED, 137), status
        _call(ctr, "RemoveContainer", msg((1, cid)))
    finally:
        _call(ctr, "StopPodSandbox", msg((1, sandbox)))
        _call(ctr, "RemovePodSandbox", msg((1, sandbox)))
    assert ctr("container", "ls", "-q", namespace=CRI_NS).stdout.split() == []
    if own_shim:  # the pod's shim went with it (its socket first), and the containers' state
        assert not os.path.exists(address[len("unix://"):])
        assert not os.path.exists(os.path.join(runtime_root, sandbox))
        assert not os.path.exists(os.path.join(runtime_root, cid))
        try:
            os.rmdir(runtime_root)  # the namespace's root, made for the pod
        except OSError:
            pass


# -- CRI pods: the same tests with runc's shim (and runc) and with pyrunc's shim ------------

CRI_HANDLERS = ["runc", "pyrunc-shim"]
RUNTIME_ROOTS = {"runc": "/run/containerd/runc", "pyrunc-shim": "/run/containerd/pyrunc"}
# ContainerStatus fields (api.proto): state 3, exit_code 7, reason 10
STATUS_STATE, STATUS_EXIT_CODE, STATUS_REASON = 3, 7, 10


class Pod:
    """A pod sandbox of one handler, its containers, and the check that
    nothing of them is left once it is removed."""

    def __init__(self, ctr: Ctr, handler: str, name: str) -> None:
        if handler == "pyrunc-shim" and not (Path(ctr.runtime).parent / "containerd-shim-pyrunc-v1").exists():
            pytest.skip("containerd-shim-pyrunc-v1 is not installed next to the runtime under test")
        self.ctr, self.handler = ctr, handler
        self.cgroup_parent = Ctr.cgroup(f"cri-{name}")
        self.logs = ctr.base / f"logs-{name}-{handler}"
        self.namespaces = msg((1, 2), (2, 1))  # network NODE, pid CONTAINER
        self.config = msg((1, msg((1, f"{name}-{handler}"), (2, f"{name}-{handler}-uid"), (3, "default"))),
                          (3, str(self.logs)),
                          (8, msg((1, self.cgroup_parent), (2, msg((1, self.namespaces))))))
        self.id = first(_call(ctr, "RunPodSandbox", msg((1, self.config), (2, handler))), 1).decode()
        self.cids: list[str] = []
        self.removed = False

    def container(self, name: str, *cmd: str, memory: int = 0) -> str:
        resources = msg((4, memory)) if memory else None
        config = msg((1, msg((1, name))), (2, msg((1, IMAGE))), (3, list(cmd)), (11, f"{name}.log"),
                     (15, msg((1, resources), (2, msg((3, self.namespaces))))))
        cid = first(_call(self.ctr, "CreateContainer", msg((1, self.id), (2, config), (3, self.config))), 1).decode()
        self.cids.append(cid)
        _call(self.ctr, "StartContainer", msg((1, cid)))
        return cid

    def status(self, cid: str) -> dict[int, list]:
        return parse(first(_call(self.ctr, "ContainerStatus", msg((1, cid))), 1))

    def wait_exited(self, cid: str, timeout: float = 30) -> dict[int, list]:
        deadline = time.monotonic() + timeout
        while first(st := self.status(cid), STATUS_STATE, 0) != CONTAINER_EXITED and time.monotonic() < deadline:
            time.sleep(0.1)
        return st

    def log(self, name: str, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while text not in (log := _read(self.logs / f"{name}.log")) and time.monotonic() < deadline:
            time.sleep(0.1)
        return log

    def remove(self) -> None:
        if self.removed:
            return
        for cid in self.cids:
            _call(self.ctr, "StopContainer", msg((1, cid), (2, 0)))
            _call(self.ctr, "RemoveContainer", msg((1, cid)))
        _call(self.ctr, "StopPodSandbox", msg((1, self.id)))
        _call(self.ctr, "RemovePodSandbox", msg((1, self.id)))

    def leftovers(self) -> list[str]:
        ids = [self.id, *self.cids]
        problems = []
        deadline = time.monotonic() + 5
        while (shims := shims_of(ids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if shims:
            problems.append(f"shims left: {shims}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if any(i in line for i in ids)]
        if mounts:
            problems.append(f"mounts left: {mounts}")
        cgroups = [str(c) for ctrl in Path("/sys/fs/cgroup").iterdir()
                   for c in (ctrl / self.cgroup_parent.lstrip("/")).glob("*") if c.name in ids]
        if cgroups:
            problems.append(f"cgroups left: {cgroups}")
        states = [i for i in ids if os.path.exists(os.path.join(RUNTIME_ROOTS[self.handler], CRI_NS, i))]
        if states:
            problems.append(f"runtime state left: {states}")
        return problems


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@pytest.fixture(params=CRI_HANDLERS)
def pod(request, ctr, cri) -> Iterator[Pod]:
    p = Pod(ctr, request.param, request.node.name.split("[")[0].removeprefix("test_cri_").replace("_", "-")[:20])
    try:
        yield p
    finally:
        p.remove()
    assert ctr("container", "ls", "-q", namespace=CRI_NS).stdout.split() == []
    assert not p.leftovers()
    try:
        os.rmdir(os.path.join(RUNTIME_ROOTS[p.handler], CRI_NS))
    except OSError:
        pass


def test_cri_two_containers_one_shim_exec_logs_stop(pod):
    """Two containers in one pod: one shim for the pod (the sandbox's),
    ExecSync's output and exit code, the CRI log written from the stdio
    FIFOs, and StopContainer: the exit code of a container that handles
    SIGTERM, and a container that ignores it killed once the timeout is up."""
    a = pod.container("a", "sh", "-c", "echo out-a; echo err-a >&2; trap 'exit 7' TERM; "
                                       "while :; do sleep 0.1; done")
    b = pod.container("b", "sh", "-c", "echo out-b; exec sleep 600")  # PID 1: SIGTERM ignored
    shims = shims_of([pod.id, a, b])
    assert len(shims) == 1, shims
    assert f"-id {pod.id}" in " ".join(Path(f"/proc/{shims[0]}/cmdline").read_text().split("\0"))

    r = _call(pod.ctr, "ExecSync", msg((1, b), (2, ["sh", "-c", "echo in-b; echo to-err >&2; exit 5"]), (3, 30)))
    assert (first(r, 1), first(r, 2), first(r, 3)) == (b"in-b\n", b"to-err\n", 5), r
    r = _call(pod.ctr, "ExecSync", msg((1, a), (2, ["cat", "/proc/1/cmdline"]), (3, 30)))
    assert first(r, 1, b"").startswith(b"sh\0-c\0echo out-a") and first(r, 3, 0) == 0, r

    log = pod.log("a", "err-a")
    lines = sorted(line.split(" ", 1)[1] for line in log.splitlines())
    assert lines == ["stderr F err-a", "stdout F out-a"], log
    assert " stdout F out-b\n" in pod.log("b", "out-b")

    t = time.monotonic()
    _call(pod.ctr, "StopContainer", msg((1, a), (2, 10)))
    took = time.monotonic() - t
    st = pod.status(a)
    assert (first(st, STATUS_STATE), first(st, STATUS_EXIT_CODE, 0)) == (CONTAINER_EXITED, 7), st
    assert took < 5, took
    t = time.monotonic()
    _call(pod.ctr, "StopContainer", msg((1, b), (2, 2)))
    took = time.monotonic() - t
    st = pod.status(b)
    assert (first(st, STATUS_STATE), first(st, STATUS_EXIT_CODE, 0)) == (CONTAINER_EXITED, 137), st
    assert 2 <= took < 8, took
    assert shims_of([pod.id, a, b]) == shims  # the pod's shim stays with its sandbox


def test_cri_oom_killed_container(pod):
    """A container over its memory limit: ContainerStatus says OOMKilled,
    exit 137, and the pod's other container runs on."""
    other = pod.container("other", "sleep", "600")
    cid = pod.container("hog", "sh", "-c", MEMORY_HOG, memory=16 << 20)
    st = pod.wait_exited(cid)
    assert (first(st, STATUS_STATE), first(st, STATUS_EXIT_CODE, 0)) == (CONTAINER_EXITED, 137), st
    assert first(st, STATUS_REASON, b"") == b"OOMKilled", st
    assert first(pod.status(other), STATUS_STATE) == CONTAINER_RUNNING


def test_cri_exec_timeout_stats_update_and_exit_reasons(pod):
    """ExecSync past its timeout fails and its process is killed; stats
    (CPU, memory working set); UpdateContainerResources reaches the cgroup;
    the reasons Completed and Error with the exit codes of containers that
    end by themselves."""
    cid = pod.container("main", "sleep", "600")
    t = time.monotonic()
    with pytest.raises(CriError):
        call(str(pod.ctr.sock), "ExecSync", msg((1, cid), (2, ["sh", "-c", "exec sleep 77"]), (3, 1)))
    assert time.monotonic() - t < 10
    deadline = time.monotonic() + 5
    while b"77" in first(_call(pod.ctr, "ExecSync", msg((1, cid), (2, ["ps", "-o", "args"]), (3, 30))), 1, b"") \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    r = _call(pod.ctr, "ExecSync", msg((1, cid), (2, ["ps", "-o", "args"]), (3, 30)))
    assert b"sleep 77" not in first(r, 1, b""), r

    stats = parse(first(_call(pod.ctr, "ContainerStats", msg((1, cid))), 1))  # ContainerStats
    memory, cpu = parse(first(stats, 3)), parse(first(stats, 2))
    assert first(parse(first(memory, 2)), 1, 0) > 0, memory  # working_set_bytes
    assert first(parse(first(cpu, 2)), 1, 0) > 0, cpu  # usage_core_nano_seconds

    _call(pod.ctr, "UpdateContainerResources", msg((1, cid), (2, msg((4, 48 << 20)))))
    limit = Path("/sys/fs/cgroup/memory") / pod.cgroup_parent.lstrip("/") / cid / "memory.limit_in_bytes"
    if limit.parent.exists():  # cgroup v1
        assert limit.read_text().strip() == str(48 << 20)
    else:
        v2 = Path("/sys/fs/cgroup") / pod.cgroup_parent.lstrip("/") / cid / "memory.max"
        assert v2.read_text().strip() == str(48 << 20)

    ok = pod.container("ok", "true")
    bad = pod.container("bad", "sh", "-c", "exit 3")
    for c, code, reason in ((ok, 0, b"Completed"), (bad, 3, b"Error")):
        st = pod.wait_exited(c)
        assert (first(st, STATUS_STATE), first(st, STATUS_EXIT_CODE, 0), first(st, STATUS_REASON)) == \
            (CONTAINER_EXITED, code, reason), st


def test_cri_tty_container_and_pod_removed_with_running_containers(pod):
    """A container with a terminal (its log from the pty), then the pod
    stopped and removed while its containers run, as kubelet does for a
    forced deletion: StopPodSandbox stops them, RemovePodSandbox removes them."""
    config = msg((1, msg((1, "tty"))), (2, msg((1, IMAGE))), (3, ["sh", "-c", "echo tty-out; exec sleep 600"]),
                 (11, "tty.log"), (14, True),  # tty
                 (15, msg((2, msg((3, pod.namespaces))))))
    tty = first(_call(pod.ctr, "CreateContainer", msg((1, pod.id), (2, config), (3, pod.config))), 1).decode()
    _call(pod.ctr, "StartContainer", msg((1, tty)))
    assert " stdout F tty-out" in pod.log("tty", "tty-out")
    r = _call(pod.ctr, "ExecSync", msg((1, tty), (2, ["readlink", "/proc/1/fd/1"]), (3, 30)))
    assert first(r, 3, 0) == 0 and first(r, 1, b"").startswith(b"/dev/pts/"), r  # the init's: the pty
    other = pod.container("other", "sleep", "600")
    pod.cids = []  # removed with the pod below, not one by one
    _call(pod.ctr, "StopPodSandbox", msg((1, pod.id)))
    for cid in (tty, other):
        assert first(pod.status(cid), STATUS_STATE) == CONTAINER_EXITED
    pod.cids = [tty, other]  # for the leftover checks: RemovePodSandbox takes them
    _call(pod.ctr, "RemovePodSandbox", msg((1, pod.id)))
    with pytest.raises(CriError):
        call(str(pod.ctr.sock), "ContainerStatus", msg((1, tty)))
    pod.removed = True


def test_cri_pod_survives_a_containerd_restart(pod):
    """containerd killed (a crash; an upgrade's restart too) with a pod
    running: its shim and container run on, the new containerd's CRI plugin
    reconnects to the shim and lists the container RUNNING, ExecSync works,
    the container's log has every line (those written while nothing read
    waited in the FIFO), and the pod is removed cleanly (the fixture's
    leftover checks)."""
    # it writes to its log all along: while no containerd reads the stdout
    # FIFO, the write must neither fail (SIGPIPE) nor be lost
    cid = pod.container("main", "sh", "-c", "i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.05; done")
    assert "tick3" in pod.log("main", "tick3")
    (shim,) = shims_of([pod.id, cid])
    ctr = pod.ctr
    assert ctr.daemon is not None
    ctr.d.kill(signal.SIGKILL)
    try:
        assert shims_of([pod.id, cid]) == [shim]  # (a zombie has no command line)
        time.sleep(0.3)  # a few lines written while nothing reads
    finally:
        ctr.start_daemon()
    deadline = time.monotonic() + 30  # the CRI plugin answers a little after containerd
    while True:
        try:
            listed = call(str(ctr.sock), "ListContainers", b"")
            break
        except CriError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    states = {first(c, 1).decode(): first(c, 6, 0) for c in map(parse, listed.get(1, []))}  # id: state
    assert states.get(cid) == CONTAINER_RUNNING, states
    assert first(pod.status(cid), STATUS_STATE) == CONTAINER_RUNNING
    r = _call(ctr, "ExecSync", msg((1, cid), (2, ["sh", "-c", "echo in"]), (3, 30)))
    assert (first(r, 1), first(r, 3, 0)) == (b"in\n", 0), r
    assert shims_of([pod.id, cid]) == [shim]
    # the log goes on, without a gap: what was written while containerd was down is in it
    last = int(re.findall(r"tick(\d+)", pod.log("main", ""))[-1])
    log = pod.log("main", f"tick{last + 5}\n")
    ticks = [int(n) for n in re.findall(r"tick(\d+)", log)]
    assert ticks == list(range(len(ticks))) and ticks[-1] >= last + 5, log

