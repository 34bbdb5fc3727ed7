"""containerd-shim-pyrunc-v1's process model, driven as containerd 1.6 drives
a v2 shim: `start` in the bundle with -namespace/-address/-publish-binary/-id
and TTRPC_ADDRESS, the runc options on stdin, its output read until every
copy of its stdout is closed (Go's CombinedOutput); then ttrpc calls on the
printed address; `delete` after a shim died. containerd itself drives the
shim in test_shim_tasks.py.

The shim is the one installed next to the runtime under test
(PYRUNC_TEST_RUNTIME's directory), else containerd-shim-pyrunc-v1 on PATH,
else `python3 -m pyrunc.shim` from this checkout.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from containerd_env import alive, argv_of, processes
from integration_conftest import processes_mentioning, wait_until
from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc as T

SRC = Path(__file__).resolve().parents[2] / "src"
NAME = "containerd-shim-pyrunc-v1"


def shim_cmd() -> list[str]:
    runtime = os.environ.get("PYRUNC_TEST_RUNTIME", "").strip()
    if runtime and "/" in runtime.split()[0]:
        cand = Path(runtime.split()[0]).parent / NAME
        if cand.exists():
            return [str(cand)]
    found = shutil.which(NAME)
    if found:
        return [found]
    return [sys.executable, "-m", "pyrunc.shim"]


SHIM = shim_cmd()


def shim_env(ttrpc: str = "/run/nowhere.ttrpc", zygote_idle: str = "0") -> dict[str, str]:
    """containerd's environment for the shim. Each test's fake containerd
    has its own address, so a zygote (shim/zygote.py) would be one per test:
    off, but in the tests of the zygote."""
    env = dict(os.environ, TTRPC_ADDRESS=ttrpc, GOMAXPROCS="2", PYRUNC_SHIM_ZYGOTE_IDLE=zygote_idle)
    if SHIM[0] == sys.executable:
        env["PYTHONPATH"] = str(SRC)
    return env


class Ctx:
    """A fake containerd's view: its address and namespace (unique per
    test, so the hashed socket paths never meet another run's)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.address = f"/run/pyrunc-shim-test-{uuid.uuid4().hex[:12]}/containerd.sock"
        self.ns = "shimtest"
        self.pids: set[int] = set()
        self.env = shim_env()

    def bundle(self, cid: str, annotations: dict[str, str] | None = None) -> Path:
        b = self.tmp / cid
        b.mkdir()
        (b / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "annotations": annotations or {}}))
        return b

    def run(self, bundle: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        return subprocess.run([*SHIM, *args], cwd=bundle, env=self.env, input=stdin,
                              capture_output=True, timeout=20)

    def start(self, bundle: Path, cid: str, stdin: bytes = b"") -> str:
        r = self.run(bundle, "-namespace", self.ns, "-address", self.address, "-publish-binary",
                     "/usr/bin/containerd", "-id", cid, "start", stdin=stdin)
        assert r.returncode == 0 and r.stderr == b"", r
        address = r.stdout.decode()
        assert (bundle / "address").read_text() == address
        with T.Client.connect(address) as c:
            self.pids.add(m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", m.ConnectRequest(id=cid))).shim_pid)
        return address

    def expected_address(self, group: str) -> str:
        d = hashlib.sha256(f"{self.address}/{self.ns}/{group}".encode()).hexdigest()
        return f"unix:///run/containerd/s/{d}"


@pytest.fixture
def ctx(tmp_path):
    c = Ctx(tmp_path)
    yield c
    leftovers = [pid for pid in c.pids if alive(pid)]
    zsocks = [zygote_socket(pid) for pid in leftovers if _is_zygote(pid)]
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    sockets = [p for p in (Path("/run/containerd/s").glob("*") if Path("/run/containerd/s").is_dir() else ())
               if any(str(p) == c.expected_address(g)[len("unix://"):] for g in ("c1", "c2", "c3", "c4", "sb1", "sb2"))
               or str(p) in zsocks]  # a zygote killed here leaves its socket
    for p in sockets:
        p.unlink()
    assert not leftovers and not sockets, f"left behind: shims {leftovers}, sockets {sockets}"


def shutdown(address: str, pid: int) -> None:
    with T.Client.connect(address) as c:
        assert c.call(m.TASK_SERVICE, "Shutdown", m.ShutdownRequest(id="x")) == b""
    wait_until(lambda: not alive(pid), 10, what="the shim to exit")
    wait_until(lambda: not os.path.exists(address[len("unix://"):]), 5, what="the socket to go")


def test_start_serves_connect_and_shutdown(ctx):
    b = ctx.bundle("c1")
    t0 = time.monotonic()
    address = ctx.start(b, "c1")
    assert address == ctx.expected_address("c1")       # containerd 1.6's SocketAddress
    (pid,) = ctx.pids
    assert alive(pid) and os.getsid(pid) == pid         # its own session
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
    assert os.stat(address[len("unix://"):]).st_mode & 0o777 == 0o600
    with T.Client.connect(address) as c:
        with pytest.raises(T.RPCError) as ei:  # a config.json that is no container's: one line, nothing made
            c.call(m.TASK_SERVICE, "Create", m.CreateTaskRequest(id="c1", bundle=str(b)))
        assert ei.value.code == T.UNKNOWN and str(ei.value).startswith("OCI runtime create failed: "), ei.value
        assert not os.path.exists(f"/run/containerd/pyrunc/{ctx.ns}/c1")
        try:
            os.rmdir(f"/run/containerd/pyrunc/{ctx.ns}")  # the namespace's root, made for it
        except OSError:
            pass
        with pytest.raises(T.RPCError) as ei:
            c.call("containerd.task.v3.Task", "Create", b"")
        assert ei.value.code == T.UNIMPLEMENTED
    shutdown(address, pid)
    assert time.monotonic() - t0 < 10


def test_create_removes_an_earlier_tasks_delete_record(ctx):
    """The record a Delete leaves for containerd's `delete` answers for that
    task alone: a Create in the bundle removes it first, failed or not."""
    from pyrunc.shim.deleted import DELETE_RECORD
    b = ctx.bundle("c1")
    (b / DELETE_RECORD).write_text("\\020\\211\\001\n")
    address = ctx.start(b, "c1")
    (pid,) = ctx.pids
    with T.Client.connect(address) as c:
        with pytest.raises(T.RPCError):  # a config.json that is no container's
            c.call(m.TASK_SERVICE, "Create", m.CreateTaskRequest(id="c1", bundle=str(b)))
    assert not (b / DELETE_RECORD).exists()
    try:
        os.rmdir(f"/run/containerd/pyrunc/{ctx.ns}")
    except OSError:
        pass
    shutdown(address, pid)


def test_go_flag_syntax_and_options_on_stdin(ctx):
    b = ctx.bundle("c1")
    opts = m.Any.pack(m.Options(binary_name="pyrunc", root="/run/pyrunc-x", systemd_cgroup=False)).encode()
    r = ctx.run(b, f"--namespace={ctx.ns}", "-address=" + ctx.address, "--publish-binary", "containerd",
                "-debug", "-id=c1", "start", stdin=opts)
    assert r.returncode == 0, r
    assert r.stdout.decode() == ctx.expected_address("c1")
    with T.Client.connect(r.stdout.decode()) as c:
        pid = m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", b"")).shim_pid
    ctx.pids.add(pid)
    shutdown(r.stdout.decode(), pid)


def test_containers_of_a_sandbox_share_one_shim(ctx):
    a1 = ctx.start(ctx.bundle("c1", {"io.kubernetes.cri.sandbox-id": "sb1"}), "c1")
    a2 = ctx.start(ctx.bundle("c2", {"io.kubernetes.cri.sandbox-id": "sb1"}), "c2")
    assert a1 == a2 == ctx.expected_address("sb1")
    assert len(ctx.pids) == 1
    a3 = ctx.start(ctx.bundle("c3", {"io.kubernetes.cri.sandbox-id": "sb2"}), "c3")
    assert a3 != a1 and len(ctx.pids) == 2
    pids = sorted(ctx.pids)
    shutdown(a1, m.ConnectResponse.decode(T.Client.connect(a1).call(m.TASK_SERVICE, "Connect", b"")).shim_pid)
    remaining = [p for p in pids if alive(p)]
    assert len(remaining) == 1
    shutdown(a3, remaining[0])


def test_a_dead_shims_socket_is_replaced(ctx):
    path = ctx.expected_address("c1")[len("unix://"):]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)                                        # bound, never listening: a dead shim's
    s.close()
    address = ctx.start(ctx.bundle("c1"), "c1")
    shutdown(address, next(iter(ctx.pids)))


def test_sigterm_ends_the_shim_and_removes_its_socket(ctx):
    address = ctx.start(ctx.bundle("c1"), "c1")
    (pid,) = ctx.pids
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), 10, what="the shim to exit")
    assert not os.path.exists(address[len("unix://"):])


def test_delete_prints_a_delete_response(ctx):
    b = ctx.bundle("c1")
    r = ctx.run(b, "-namespace", ctx.ns, "-address", ctx.address, "-publish-binary", "containerd",
                "-id", "c1", "-bundle", str(b), "delete")
    assert r.returncode == 0 and r.stderr == b"", r
    resp = m.DeleteResponse.decode(r.stdout)
    assert resp.exit_status == 137 and resp.pid == 0
    assert abs(resp.exited_at.seconds - time.time()) < 60


@pytest.mark.parametrize("args, rc, text", [
    (["-address", "/x.sock", "-id", "c1", "start"], 1, "io.containerd.pyrunc.v1: shim namespace cannot be empty"),
    (["-namespace", "n", "-address", "/x.sock", "start"], 1, "io.containerd.pyrunc.v1: shim id cannot be empty"),
    (["-namespace", "n", "-id", "c1", "-address", "/x.sock", "frobnicate"], 1, "io.containerd.pyrunc.v1: unknown action"),
    (["-nope", "start"], 2, "flag provided but not defined: -nope"),
    (["-namespace"], 2, "flag needs an argument: -namespace"),
    (["-debug=maybe", "start"], 2, 'invalid boolean value "maybe" for -debug'),
    # the zygote binds nothing but a path of its own under /run/containerd/s
    (["zygote", "/tmp/pyrunc-not-a-zygote/sock", "1", "5"], 1, "io.containerd.pyrunc.v1: zygote: bad arguments"),
    (["zygote", "/run/containerd/s/pyrunc-zygote-" + "0" * 32, "x", "5"], 1,
     "io.containerd.pyrunc.v1: zygote: bad arguments"),
])
def test_bad_command_lines(ctx, args, rc, text):
    b = ctx.bundle("c1")
    r = ctx.run(b, *args)
    assert r.returncode == rc, r
    assert r.stderr.decode().splitlines()[0].startswith(text)
    assert b"Traceback" not in r.stderr and r.stdout == b""
    assert not (b / "address").exists()


def test_start_without_config_json_leaves_nothing(ctx):
    b = ctx.tmp / "c1"
    b.mkdir()
    r = ctx.run(b, "-namespace", ctx.ns, "-address", ctx.address, "-id", "c1", "start")
    assert r.returncode == 1
    assert r.stderr.decode() == f"io.containerd.pyrunc.v1: open {b}/config.json: no such file or directory\n"
    assert not os.path.exists(ctx.expected_address("c1")[len("unix://"):])
    assert list(b.iterdir()) == []


def test_start_latency_and_rss(ctx, capsys):
    """Measured for the record (docs/shim.md): `start` until the address is
    printed, and the server's resident memory."""
    times = []
    for i in range(3):
        b = ctx.bundle(f"c{i + 1}")
        t0 = time.perf_counter()
        ctx.start(b, f"c{i + 1}")
        times.append(time.perf_counter() - t0)
    pids = sorted(ctx.pids)
    rss = []
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            rss += [int(line.split()[1]) for line in f if line.startswith("VmRSS:")]
    for i in range(3):
        a = ctx.expected_address(f"c{i + 1}")
        with T.Client.connect(a) as c:
            pid = m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", b"")).shim_pid
        shutdown(a, pid)
    with capsys.disabled():
        print(f"\nshim start (incl. Connect): best {min(times) * 1000:.0f} ms; server RSS {max(rss) // 1024} MiB")
    assert min(times) < 5


@pytest.mark.parametrize("stdin, text", [
    (b"\x0a\x05ab", "io.containerd.pyrunc.v1: invalid shim options on stdin"),
    (m.Any.pack(m.Options(shim_cgroup="/pyrunc-shim-test-nonexistent/x")).encode(),
     "io.containerd.pyrunc.v1: failed to join cgroup /pyrunc-shim-test-nonexistent/x: "),
])
def test_start_failures_leave_nothing(ctx, stdin, text):
    b = ctx.bundle("c1")
    r = ctx.run(b, "-namespace", ctx.ns, "-address", ctx.address, "-id", "c1", "start", stdin=stdin)
    assert r.returncode == 1 and r.stdout == b"", r
    assert r.stderr.decode().startswith(text) and r.stderr.decode().count("\n") == 1, r.stderr
    assert not os.path.exists(ctx.expected_address("c1")[len("unix://"):])
    assert sorted(p.name for p in b.iterdir()) == ["config.json"]
    assert not [p for p, cmd in processes_mentioning(NAME) if ctx.address in cmd]


def test_serve_on_an_inherited_socket_or_a_path(ctx):
    """Without an action the shim serves on fd 3 (a listening socket, as Go
    shims hand it to their re-executed selves) or on -socket."""
    import socket
    b = ctx.bundle("c1")
    path = str(ctx.tmp / "inherited.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    fd = listener.fileno()
    to_fd3 = "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); fd != 3 and os.close(fd); os.execv(sys.argv[2], sys.argv[2:])"
    p = subprocess.Popen([sys.executable, "-c", to_fd3, str(fd), *SHIM, "-namespace", ctx.ns, "-id", "c1"],
                         cwd=b, env=shim_env(), pass_fds=(fd,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listener.close()
    ctx.pids.add(p.pid)                           # killed by the fixture if the test fails
    with T.Client.connect(path) as c:
        assert m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", b"")).shim_pid == p.pid
        c.call(m.TASK_SERVICE, "Shutdown", b"")
    assert p.wait(10) == 0 and p.stderr.read() == b""

    path = str(ctx.tmp / "own.sock")
    p = subprocess.Popen([*SHIM, "-namespace", ctx.ns, "-id", "c1", "-socket", path], cwd=b, env=shim_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.pids.add(p.pid)
    wait_until(lambda: os.path.exists(path), 10, what="the socket")
    with T.Client.connect(path) as c:
        c.call(m.TASK_SERVICE, "Shutdown", b"")
    assert p.wait(10) == 0
    assert not os.path.exists(path)

    r = subprocess.run([*SHIM, "-namespace", ctx.ns, "-id", "c1"], cwd=b, env=shim_env(), capture_output=True,
                       timeout=20)
    assert r.returncode == 1
    assert r.stderr == b"io.containerd.pyrunc.v1: no listening socket on fd 3 and no -socket: nothing to serve\n"


# -- the zygote (shim/zygote.py) ----------------------------------------------------------

def zygotes(watched: int) -> list[int]:
    """Live zygotes watching process `watched` (argv: ... zygote PATH PID IDLE PAD)."""
    out = [pid for pid, argv in processes() if b"zygote" in argv[:6]
           and argv[argv.index(b"zygote") + 2:argv.index(b"zygote") + 3] == [str(watched).encode()]]
    # a spare just forked shows its zygote's command line for a moment
    return [pid for pid in out if _ppid_or_0(pid) not in out]


def _ppid_or_0(pid: int) -> int:
    try:
        return ppid(pid)
    except (OSError, AssertionError):
        return 0


def spares(zygote: int) -> list[int]:
    """The zygote's spare shims (argv: ... zygote-spare ...)."""
    return [pid for pid, argv in processes() if b"zygote-spare" in argv and _ppid_or_0(pid) == zygote]


def _is_zygote(pid: int) -> bool:
    return b"zygote" in argv_of(pid)[:6]


def zygote_socket(pid: int) -> str:
    argv = argv_of(pid)
    return argv[argv.index(b"zygote") + 1].decode()


def ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def fd_kinds(pid: int) -> list[str]:
    """The targets of a process's fds, inode numbers left out."""
    import re
    return sorted(re.sub(r"\d+", "N", os.readlink(f"/proc/{pid}/fd/{fd}")) for fd in os.listdir(f"/proc/{pid}/fd"))


def test_no_zygote_when_turned_off(ctx):
    address = ctx.start(ctx.bundle("c1"), "c1")  # PYRUNC_SHIM_ZYGOTE_IDLE=0
    (pid,) = ctx.pids
    time.sleep(0.5)
    assert zygotes(os.getpid()) == []
    shutdown(address, pid)


def test_a_zygote_forks_the_next_shims(ctx):
    """The first start forks its shim and launches a zygote; the next one's
    shim is forked by the zygote, and is the shim start would have made:
    its own session, stdio on /dev/null, the bundle as cwd, containerd's
    environment, start's command line, the same fds, and it serves."""
    ctx.env = shim_env(zygote_idle="30")
    a1 = ctx.start(ctx.bundle("c1"), "c1")
    (p1,) = ctx.pids
    (z,) = wait_until(lambda: zygotes(os.getpid()), 20, what="the zygote")
    ctx.pids.add(z)
    zsock = zygote_socket(z)
    wait_until(lambda: os.path.exists(zsock), 20, what="the zygote's socket")
    assert os.stat(zsock).st_mode & 0o777 == 0o600
    assert os.readlink(f"/proc/{z}/cwd") == "/"      # pins no bundle
    ours = int(Path("/proc/self/oom_score_adj").read_text())  # the fake containerd's
    assert int(Path(f"/proc/{z}/oom_score_adj").read_text()) == min(ours + 1, 1000)
    b2 = ctx.bundle("c2")
    args = ["-namespace", ctx.ns, "-address", ctx.address, "-publish-binary", "/usr/bin/containerd", "-id", "c2",
            "start"]
    a2 = ctx.start(b2, "c2")
    (p2,) = ctx.pids - {p1, z}
    assert ppid(p2) == z and ppid(p1) != z
    argv = [a.decode() for a in Path(f"/proc/{p2}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]
    assert argv[-len(args):] == args and any(NAME in a for a in argv[:3]), argv
    assert os.getsid(p2) == p2
    assert os.readlink(f"/proc/{p2}/cwd") == str(b2)
    env = dict(e.split("=", 1) for e in Path(f"/proc/{p2}/environ").read_text().split("\0") if "=" in e)
    assert env["TTRPC_ADDRESS"] == "/run/nowhere.ttrpc" and env["PYRUNC_SHIM_ZYGOTE_IDLE"] == "30"
    # (a connection of ctx.start's may still be closing in either)
    wait_until(lambda: fd_kinds(p2) == fd_kinds(p1), 5, what=f"the same fds in both shims: {fd_kinds(p1)} {fd_kinds(p2)}")
    with T.Client.connect(a2) as c:
        assert m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", m.ConnectRequest(id="c2"))).shim_pid == p2
        with pytest.raises(T.RPCError) as ei:
            c.call(m.TASK_SERVICE, "Create", m.CreateTaskRequest(id="c2", bundle=str(b2)))
        assert str(ei.value).startswith("OCI runtime create failed: "), ei.value
    # the next spare, forked after p2 was handed out, inherits nothing of p2's
    a3 = ctx.start(ctx.bundle("c3"), "c3")
    (p3,) = ctx.pids - {p1, p2, z}
    assert ppid(p3) == z
    wait_until(lambda: fd_kinds(p3) == fd_kinds(p1), 5, what=f"the same fds: {fd_kinds(p1)} {fd_kinds(p3)}")
    # the zygote warmed the cgroup migration lock at start's first word
    # (where that lock is needed at all: cgroups.rearm_migration)
    from pyrunc.cgroups import _needs_prearm
    if _needs_prearm("create", False):
        assert any(os.readlink(f"/proc/{z}/fd/{fd}").endswith("/cgroup.procs") for fd in os.listdir(f"/proc/{z}/fd"))
    # a spare that died: the next start gets a shim all the same, and a spare is made again
    (spare,) = wait_until(lambda: spares(z), 5, what="the zygote's next spare")  # forked a little later
    os.kill(spare, signal.SIGKILL)
    wait_until(lambda: not alive(spare), 5, what="the spare to die")
    a4 = ctx.start(ctx.bundle("c4"), "c4")
    (p4,) = ctx.pids - {p1, p2, p3, z}
    assert ppid(p4) == z
    wait_until(lambda: len(spares(z)) == 1, 5, what="a new spare")
    shutdown(a4, p4)
    shutdown(a3, p3)
    shutdown(a2, p2)
    shutdown(a1, p1)
    assert alive(z)
    os.kill(z, signal.SIGTERM)
    wait_until(lambda: not alive(z), 10, what="the zygote to exit")
    assert not os.path.exists(zsock)


def test_the_zygote_ends_with_its_containerd_or_when_idle(ctx):
    ctx.env = shim_env(zygote_idle="30")
    b = ctx.bundle("c1")
    argv = [*SHIM, "-namespace", ctx.ns, "-address", ctx.address, "-publish-binary", "/usr/bin/containerd",
            "-id", "c1", "start"]
    fake = subprocess.Popen(  # a containerd that runs `start` and stays until told
        [sys.executable, "-c", "import subprocess, sys; r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True, timeout=20); "
         "sys.stdout.write(r.stdout.decode()); sys.stdout.flush(); sys.stdin.read()", *argv],
        cwd=b, env=ctx.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        address = fake.stdout.read(len(ctx.expected_address("c1"))).decode()
        assert address == ctx.expected_address("c1")
        with T.Client.connect(address) as c:
            pid = m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", b"")).shim_pid
        ctx.pids.add(pid)
        (z,) = wait_until(lambda: zygotes(fake.pid), 20, what="the zygote")
        ctx.pids.add(z)
        shutdown(address, pid)
    finally:
        fake.stdin.close()
        fake.wait(10)
    wait_until(lambda: not alive(z), 10, what="the zygote to follow its containerd")
    ctx.env = shim_env(zygote_idle="1")
    address = ctx.start(ctx.bundle("c2"), "c2")
    (z2,) = wait_until(lambda: zygotes(os.getpid()), 20, what="the zygote")
    ctx.pids.add(z2)
    shutdown(address, max(ctx.pids - {pid, z, z2}))
    wait_until(lambda: not alive(z2), 10, what="the idle zygote to exit")


def test_a_command_line_longer_than_the_zygotes_room(ctx):
    """A start's command line that does not fit over the zygote's: the shim
    still shows the launcher, its namespace, its id and `start`."""
    ctx.env = shim_env(zygote_idle="30")
    a1 = ctx.start(ctx.bundle("c1"), "c1")
    (p1,) = ctx.pids
    (z,) = wait_until(lambda: zygotes(os.getpid()), 20, what="the zygote")
    ctx.pids.add(z)
    wait_until(lambda: os.path.exists(zygote_socket(z)) and spares(z), 20, what="the zygote's spare")
    b = ctx.bundle("c2")
    r = ctx.run(b, "-namespace", ctx.ns, "-address", ctx.address, "-publish-binary", "/usr/bin/" + "x" * 3000,
                "-id", "c2", "start")
    assert r.returncode == 0, r
    with T.Client.connect(r.stdout.decode()) as c:
        p2 = m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", b"")).shim_pid
    ctx.pids.add(p2)
    assert ppid(p2) == z
    argv = [a.decode() for a in Path(f"/proc/{p2}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]
    assert argv[-5:] == ["-namespace", ctx.ns, "-id", "c2", "start"] and any(NAME in a for a in argv[:3]), argv
    shutdown(r.stdout.decode(), p2)
    shutdown(a1, p1)
    os.kill(z, signal.SIGTERM)
    wait_until(lambda: not alive(z), 10, what="the zygote to exit")
