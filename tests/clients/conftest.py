"""Fixtures for driving pyrunc (or runc, for reference) through podman.

Everything podman keeps is private to the session: its own graph root, run
root, tmp dir, static dir, volume path, network config dir, events log, image
copy tmp dir, file locks (not the host's /dev/shm/libpod_lock), HOME and
XDG_CONFIG_HOME (`system reset` writes there), a cgroup parent of its own, and
the vfs storage driver (no overlay mounts). The configuration files are given
through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / CONTAINERS_REGISTRIES_CONF
and the equivalent global flags are passed on every call as well.

Two paths podman 4.3 hard-codes for root cannot be redirected:
/var/lib/containers/cache (the blob info cache that `podman import` writes)
and /run/containers/networks (netavark's run dir, made by every command; the
bridge network test leaves its IPAM database, ipam.db, there). The session
removes them at the end if (and only if) it created them, netavark's state
included.

The runtime under test: PYRUNC_TEST_PODMAN_RUNTIME (a path, or a name on
PATH), by default `pyrunc` on PATH. PYRUNC_TEST_PODMAN_RUNTIME=/usr/sbin/runc
runs the same tests against the reference. PYRUNC_TEST_PODMAN_TIMEOUT (seconds,
default 60; a call normally takes well under a second) bounds every podman
call, so a hang fails a test instead of blocking the run; after two hangs the
remaining tests fail at once.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

# other client test modules import helpers as `from clients_conftest import ...`
if __name__ in sys.modules:
    sys.modules["clients_conftest"] = sys.modules[__name__]

BUSYBOX = Path("/usr/bin/busybox")
IMAGE = "localhost/pyrunc-test/busybox:latest"
DEFAULT_TIMEOUT = float(os.environ.get("PYRUNC_TEST_PODMAN_TIMEOUT", "60"))
# after this many hangs the remaining tests fail at once instead of waiting
MAX_HANGS = 2
# podman's default rlimits for root (NOFILE 1048576, NPROC 4194304) need
# CAP_SYS_RESOURCE, which root may lack (CI sandboxes do): set modest ones
ULIMITS = ("nofile=1024:1024", "nproc=1024:1024")
# a shell that doubles a string up to 128 MiB: over a 16 MiB limit the OOM
# killer ends it; bounded, so a limit that is missing cannot exhaust the host
MEMORY_HOG = "x=a; i=0; while [ $i -lt 27 ]; do x=$x$x; i=$((i+1)); done; echo not-killed"
# host paths podman 4.3 writes whatever its configuration says (see above)
HOST_PATHS = (
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path("/var/lib/containers/cache"),
    Path("/var/lib/containers"),
    Path("/run/containers/networks"),
    Path("/run/containers"),
)
# netavark's run dir: its IPAM database (ipam.db, written once a container
# used a bridge network) and aardvark-dns's configs stay there after the last
# container has gone
NETAVARK_RUN_DIR = Path("/run/containers/networks")
NETAVARK_STATE = ("ipam.db", "aardvark-dns")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX64_ANY = re.compile(r"\b[0-9a-f]{64}\b")


# --------------------------------------------------------------------------- the runtime


def _resolve_runtime() -> tuple[str | None, str]:
    spec = os.environ.get("PYRUNC_TEST_PODMAN_RUNTIME", "").strip() or "pyrunc"
    path = shutil.which(spec) if os.sep not in spec else (spec if os.access(spec, os.X_OK) else None)
    return path, spec


@pytest.fixture(scope="session")
def podman_runtime() -> str:
    """Absolute path of the OCI runtime podman is told to use (--runtime)."""
    path, spec = _resolve_runtime()
    if path is None:
        pytest.skip(f"runtime {spec!r} not found (set PYRUNC_TEST_PODMAN_RUNTIME)")
    return os.path.abspath(path)


def pytest_report_header(config: pytest.Config) -> list[str]:
    path, spec = _resolve_runtime()
    podman = shutil.which("podman")
    return [f"podman: {podman or 'NOT FOUND'}; podman runtime under test: {path or f'NOT FOUND ({spec})'}"]


# --------------------------------------------------------------------------- podman helper


@dataclass
class Result:
    argv: list[str]
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    duration: float

    def describe(self) -> str:
        rc = "HUNG (killed)" if self.returncode is None else f"exit {self.returncode}"
        return (f"$ {' '.join(self.argv)}\n-> {rc} after {self.duration:.2f}s\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


@dataclass
class Podman:
    """A podman with private state, bound to one OCI runtime."""

    base: Path
    runtime: str
    env: dict[str, str]
    global_args: list[str]
    cgroup_parent: str
    state_root: Path  # where the runtime keeps container state (runc: /run/runc)
    image: str = IMAGE
    calls: list[Result] = field(default_factory=list)
    hung: bool = False  # some call timed out since the last cleanup
    hangs: list[str] = field(default_factory=list)  # every call that timed out

    def __call__(self, *args: str, timeout: float | None = None, input: str | None = None,
                 check: bool = False, hang_ok: bool = False, cwd: str | None = None) -> Result:
        """Run podman (in `cwd`, if given); a hang (no exit within the
        timeout) fails the test, or with hang_ok returns a Result whose
        returncode is None."""
        argv = ["podman", *self.global_args, *args]
        start = time.monotonic()
        try:
            p = subprocess.run(argv, env=self.env, input=input, capture_output=True, text=True, cwd=cwd,
                               timeout=timeout or DEFAULT_TIMEOUT,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            res = Result(argv, None, out, err, time.monotonic() - start)
            self.calls.append(res)
            self.hung = True
            self.hangs.append(" ".join(args))
            if hang_ok:
                return res
            pytest.fail(f"podman hung (killed after {e.timeout:.0f}s):\n{res.describe()}"
                        f"--- session processes\n{_process_snapshot(self)}", pytrace=False)
        res = Result(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - start)
        self.calls.append(res)
        if check and res.returncode != 0:
            pytest.fail(f"podman failed:\n{res.describe()}", pytrace=False)
        return res

    def cgroup_pids(self) -> set[int]:
        """Every process in our cgroup parent: conmon and the containers."""
        pids: set[int] = set()
        for ctrl in _cgroup_mounts():
            top = ctrl / self.cgroup_parent.lstrip("/")
            for dirpath, _dirs, files in os.walk(top):
                if "cgroup.procs" in files:
                    try:
                        pids |= {int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()}
                    except OSError:
                        pass
        return pids

    def kill_session_processes(self) -> list[int]:
        """Last resort after a hang: SIGKILL the processes this session
        started: conmon and the containers' (our cgroup parent), and podman
        or runtime processes still running for our containers."""
        pids = sorted(self.cgroup_pids() | {p for p, _w, _c in _session_processes(self)})
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        return pids

    def force_remove_all(self) -> None:
        """rm -af; if that hangs, kill our processes and try once more. After
        a hang, kill first: the stuck runtime would only make rm hang too."""
        if self.hung:
            self.kill_session_processes()
            self.hung = False
        res = self("rm", "--all", "--force", "--time", "0", timeout=60, hang_ok=True)
        if res.returncode is None:
            self.kill_session_processes()
            self("rm", "--all", "--force", "--time", "0", timeout=60, hang_ok=True)

    def run_args(self, *args: str, network: str = "none") -> list[str]:
        """Flags every `podman run`/`create` of these tests takes."""
        return ["--network", network, "--cgroup-parent", self.cgroup_parent,
                *[a for u in ULIMITS for a in ("--ulimit", u)], *args]

    def container_ids(self) -> list[str]:
        res = self("ps", "-a", "--no-trunc", "--format", "{{.ID}}", check=True)
        return res.stdout.split()

    def runtime_state_ids(self) -> set[str]:
        """Container ids (podman's 64-hex ids) with a state dir in the runtime's root."""
        try:
            return {n for n in os.listdir(self.state_root) if _HEX64.match(n)}
        except FileNotFoundError:
            return set()

    def container_cgroups(self) -> list[Path]:
        """Cgroup dirs under our parent other than conmon's."""
        found = []
        for ctrl in _cgroup_mounts():
            d = ctrl / self.cgroup_parent.lstrip("/")
            if d.is_dir():
                found += [c for c in d.iterdir() if c.is_dir() and c.name != "conmon"]
        return found

    def wait_status(self, name: str, want: str, timeout: float = 15.0) -> str:
        end = time.monotonic() + timeout
        status = ""
        while time.monotonic() < end:
            res = self("inspect", "--format", "{{.State.Status}}", name)
            status = res.stdout.strip()
            if res.returncode == 0 and status == want:
                return status
            time.sleep(0.1)
        return status


def _cgroup_mounts() -> list[Path]:
    """Mount points of the cgroup hierarchies (v1 controllers and cgroup2)."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 1] in ("cgroup", "cgroup2"):
                mounts.append(Path(parts[4]))
    return mounts


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == str(base) or mp.startswith(prefix):
                found.append(mp)
    return found


def _session_processes(pm: Podman) -> list[tuple[int, str, str]]:
    """(pid, wchan, cmdline) of this session's processes outside the cgroup
    tree too: those whose command line names our base directory (podman,
    conmon, the runtime's create) or a container id those name (the
    runtime's start/state/kill/delete)."""
    procs = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            wchan = Path(f"/proc/{pid}/wchan").read_text()
        except OSError:
            continue
        procs.append((int(pid), wchan, cmd))
    ids = {i for _p, _w, cmd in procs if str(pm.base) in cmd for i in _HEX64_ANY.findall(cmd)}
    return [(pid, wchan, cmd) for pid, wchan, cmd in sorted(procs)
            if str(pm.base) in cmd or any(i in cmd for i in ids)]


def _process_snapshot(pm: Podman) -> str:
    """For hang reports: what each process of the session is waiting in."""
    return "".join(f"{pid} [{wchan}] {cmd[:400]}\n" for pid, wchan, cmd in _session_processes(pm))


def _busybox_tar() -> bytes:
    """A busybox rootfs as a tar stream: bin/busybox + applet symlinks,
    /etc/passwd and /etc/group, and the usual empty directories."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(ti)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, now
            tar.addfile(ti, io.BytesIO(data))

        for d in ("bin", "dev", "etc", "proc", "sys", "run", "var", "home"):
            add_dir(d)
        add_dir("root", 0o700)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in applets:
            if applet == "busybox" or "/" in applet:
                continue
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, "busybox", 0o777, now
            tar.addfile(ti)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def _write_config(base: Path, runtime: str) -> dict[str, str]:
    conf = base / "conf"
    conf.mkdir()
    for d in ("home", "tmpdir", "imgtmp", "net"):
        (base / d).mkdir()
    name = os.path.basename(runtime)
    ulimits = ", ".join(f'"{u}"' for u in ULIMITS)
    (conf / "containers.conf").write_text(f"""\
[containers]
default_ulimits = [{ulimits}]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
lock_type = "file"
tmp_dir = "{base}/tmp"
static_dir = "{base}/root/libpod"
volume_path = "{base}/root/volumes"
image_copy_tmp_dir = "{base}/imgtmp"
# podman passes --log-format=json --log FILE to the runtimes listed here, as
# it does to runc: drive the runtime under test exactly like runc
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "{name}"]

[network]
network_backend = "netavark"
network_config_dir = "{base}/net"
""")
    (conf / "storage.conf").write_text(f"""\
[storage]
driver = "vfs"
graphroot = "{base}/root"
runroot = "{base}/runroot"
""")
    (conf / "registries.conf").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERS_", "XDG_", "REGISTRY_AUTH"))}
    env.update(
        CONTAINERS_CONF=str(conf / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(conf / "storage.conf"),
        CONTAINERS_REGISTRIES_CONF=str(conf / "registries.conf"),
        HOME=str(base / "home"),
        XDG_CONFIG_HOME=str(base / "home" / ".config"),
        TMPDIR=str(base / "tmpdir"),
    )
    return env


@pytest.fixture(scope="session")
def podman(podman_runtime: str) -> Iterator[Podman]:
    """A private podman, with the busybox image imported, bound to the
    runtime under test. At the end every trace of it is removed, and anything
    that could not be is reported as an error."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if shutil.which("conmon") is None and not any(
            os.access(p, os.X_OK) for p in ("/usr/bin/conmon", "/usr/libexec/podman/conmon")):
        pytest.skip("conmon is not installed")
    if os.geteuid() != 0:
        pytest.skip("the podman client tests need root")
    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} (busybox-static) is not installed")

    host_before = {p: p.exists() for p in HOST_PATHS}
    token = secrets.token_hex(4)
    # short: conmon's attach socket path must fit in sun_path
    base = Path(tempfile.mkdtemp(prefix=f"pyrunc-podman-{token}-", dir="/tmp"))
    env = _write_config(base, podman_runtime)
    cgroup_parent = f"/pyrunc-podman-{token}"
    global_args = [
        "--root", str(base / "root"), "--runroot", str(base / "runroot"),
        "--tmpdir", str(base / "tmp"), "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
        "--runtime", podman_runtime,
    ]
    pm = Podman(base=base, runtime=podman_runtime, env=env, global_args=global_args,
                cgroup_parent=cgroup_parent,
                state_root=Path("/run") / os.path.basename(podman_runtime))
    try:
        tar = base / "busybox.tar"
        tar.write_bytes(_busybox_tar())
        pm("import", "--change", 'CMD ["/bin/sh"]', str(tar), IMAGE, check=True)
        tar.unlink()
        yield pm
    finally:
        problems = _teardown(pm, host_before)
    if problems:
        pytest.fail("podman session left things behind:\n  " + "\n  ".join(problems), pytrace=False)


def _teardown(pm: Podman, host_before: dict[Path, bool]) -> list[str]:
    problems: list[str] = []
    leftover: list[str] = []
    if pm.hung:
        pm.kill_session_processes()
        pm.hung = False
    res = pm("ps", "-a", "--no-trunc", "--format", "{{.ID}}", timeout=60, hang_ok=True)
    if res.returncode == 0:
        leftover = res.stdout.split()
    else:
        problems.append(f"podman ps failed:\n{res.describe()}")
    if leftover:
        problems.append(f"containers still present at the end: {leftover}")
        pm.force_remove_all()
    res = pm("system", "reset", "--force", timeout=120, hang_ok=True)
    if res.returncode != 0:
        problems.append(f"podman system reset failed:\n{res.describe()}")
    killed = pm.kill_session_processes()
    if killed:
        problems.append(f"processes left in {pm.cgroup_parent} (killed): {killed}")
    # podman's shm mounts (vfs makes no others): unmount what is left
    mounts = _mounts_under(pm.base)
    if mounts:
        problems.append(f"mounts left under {pm.base}: {mounts}")
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
    # our cgroup parent (conmon's cgroup lives there, and the containers')
    for ctrl in _cgroup_mounts():
        top = ctrl / pm.cgroup_parent.lstrip("/")
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            if os.path.basename(dirpath).startswith("libpod-"):
                problems.append(f"container cgroup left behind: {dirpath}")
            try:
                os.rmdir(dirpath)
            except OSError as e:
                problems.append(f"cannot remove cgroup {dirpath}: {e.strerror}")
    # podman also makes the parent (conmon's, with a `tasks` file) under
    # /sys/fs/cgroup/<c> for a controller this host does not mount as v1
    # (hugetlb: cgroup2 only here): plain files of the tmpfs, no cgroup
    cgroupfs = set(_cgroup_mounts())
    for top in Path("/sys/fs/cgroup").glob(f"*/{pm.cgroup_parent.lstrip('/')}"):
        if top.parent not in cgroupfs:
            shutil.rmtree(top, ignore_errors=True)
    stale = pm.runtime_state_ids()
    if stale:
        # only ids podman used in this session
        used = {i for r in pm.calls for i in _HEX64_ANY.findall(r.stdout + r.stderr + " ".join(r.argv))}
        stale &= used
        if stale:
            problems.append(f"runtime state dirs left in {pm.state_root}: {sorted(stale)}")
    shutil.rmtree(pm.base, ignore_errors=True)
    if pm.base.exists():
        problems.append(f"cannot remove {pm.base}")
    # the host paths podman 4.3 writes regardless of configuration
    for p in HOST_PATHS:
        if host_before[p] or not p.exists():
            continue
        if p == NETAVARK_RUN_DIR:
            problems += _clear_netavark_state(p)
        try:
            if p.is_dir():
                p.rmdir()
            else:
                p.unlink()
        except OSError as e:
            problems.append(f"cannot remove {p} (made by this session): {e.strerror}")
    return problems


def _clear_netavark_state(run_dir: Path) -> list[str]:
    """Remove what netavark keeps in its run dir (the session made the dir),
    once no netavark or aardvark-dns process may still write there."""
    deadline = time.monotonic() + 10
    while (busy := _processes_named("netavark", "aardvark-dns")) and time.monotonic() < deadline:
        time.sleep(0.1)
    if busy:
        return [f"netavark state in {run_dir} left: still in use by {busy}"]
    problems = []
    for name in NETAVARK_STATE:
        path = run_dir / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as e:
            problems.append(f"cannot remove {path}: {e.strerror}")
    return problems


def _processes_named(*names: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                comm = (d / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.append(f"{comm}[{d.name}]")
    return found


@pytest.fixture
def leak_check(podman: Podman) -> Iterator[Podman]:
    """The podman fixture, plus a check after the test that podman, the
    runtime's state root and the cgroup tree hold nothing of the test."""
    if len(podman.hangs) >= MAX_HANGS:
        pytest.fail(f"not run: podman already hung {len(podman.hangs)} times in this session "
                    f"(first: podman ... {podman.hangs[0]})", pytrace=False)
    state_before = podman.runtime_state_ids()
    yield podman
    problems: list[str] = []
    if podman.hung:  # the stuck runtime would make `podman ps` hang as well
        podman.kill_session_processes()
        podman.hung = False
    res = podman("ps", "-a", "--no-trunc", "--format", "{{.ID}}", hang_ok=True)
    ids = res.stdout.split()
    if res.returncode != 0:
        problems.append(f"podman ps failed:\n{res.describe()}")
    if ids or res.returncode != 0:
        podman.force_remove_all()
        if ids:
            problems.append(f"containers left by the test (now removed): {ids}")
    # `run --rm` cleans up in podman's exit path and in conmon's exit command:
    # give the latter a moment
    end = time.monotonic() + 10
    while True:
        stale = podman.runtime_state_ids() - state_before
        cgroups = podman.container_cgroups()
        if not (stale or cgroups) or time.monotonic() > end:
            break
        time.sleep(0.1)
    if stale:
        problems.append(f"runtime state dirs left in {podman.state_root}: {sorted(stale)}")
        for cid in stale:  # do not let them pile up
            try:
                subprocess.run([podman.runtime, "delete", "--force", cid], capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"`{podman.runtime} delete --force {cid}` hung")
    if cgroups:
        problems.append(f"container cgroups left: {[str(c) for c in cgroups]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)



# -- daemons the engine tests start themselves (containerd, dockerd) ----------

def engine_runtime(package: str, *tools: str) -> str:
    """The runtime under test for an engine test module, or skip: the engine's
    tools, busybox-static and the runtime must be there."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: {package})")
    if not BUSYBOX.exists():
        pytest.skip("busybox-static is not installed")
    runtime = os.environ.get("PYRUNC_TEST_PODMAN_RUNTIME") or shutil.which("pyrunc")
    if not runtime:
        pytest.skip("no runtime under test (pyrunc not on PATH)")
    return runtime


def wait_for_daemon(proc: subprocess.Popen, ready, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.1)


def stop_daemon(proc: subprocess.Popen, base: Path, cgroup_parent: str, timeout: float = 30) -> None:
    """Stop the daemon, then remove its temp dir and the cgroup parent the
    tests gave its containers (empty by then)."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    subprocess.run(["umount", "-R", str(base)], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        cg = ctrl / cgroup_parent.lstrip("/")
        if cg.is_dir():
            for sub in sorted(cg.rglob("*"), reverse=True):
                if sub.is_dir():
                    sub.rmdir()
            cg.rmdir()


def run_on_pty(argv: list[str], answer: bytes = b"", after: bytes = b"/dev/pts/",
               timeout: float = 60, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run an engine command on a pty of the test's (as from a terminal);
    type `answer` once `after` shows. Returns (exit status, output)."""
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the last holder of the slave side is gone
            break
        if not chunk:
            break
        out += chunk
        if answer and after in out:
            os.write(master, answer)
            answer = b""
    os.close(master)
    return p.wait(30), out.decode(errors="replace").replace("\r", "")


# -- what the tests of every engine check the same way ------------------------

# A container started with FOO=bar, uid and gid 65534, working dir /tmp, a
# read-only rootfs, a tmpfs on /scratch, probe_volume()'s dir bound read-only
# on /vol and no network prints PROBE_EXPECTED (its network namespace has
# only a loopback interface).
PROBE = ("echo $FOO; id -u; id -g; pwd; cat /vol/data; "
         "awk '$2 == \"/\" {root = $4} END {split(root, o, \",\"); print o[1]}' /proc/mounts; "
         "grep -c ' /scratch tmpfs ' /proc/mounts; "
         "touch /scratch/f && echo scratch-rw; touch /vol/f 2>/dev/null || echo vol-ro; "
         "sed -n 's/^ *\\([^:]*\\):.*/\\1/p' /proc/net/dev")
PROBE_EXPECTED = ["bar", "65534", "65534", "/tmp", "from-host", "ro", "1", "scratch-rw", "vol-ro", "lo"]


def probe_flags(volume: Path) -> list[str]:
    """podman's and Docker's flags for PROBE (no network: the tests' run_args)."""
    return ["-e", "FOO=bar", "-u", "65534:65534", "-w", "/tmp", "--read-only", "--tmpfs", "/scratch",
            "-v", f"{volume}:/vol:ro"]


def probe_volume(base: Path) -> Path:
    """A host dir for PROBE's /vol: a file to read, and writable by anyone,
    so that only a read-only bind keeps uid 65534 from writing there."""
    vol = base / "vol"
    vol.mkdir(exist_ok=True)
    vol.chmod(0o777)
    (vol / "data").write_text("from-host\n")
    return vol


# podman's and Docker's flags for CGROUP_LIMITS: --cpus 0.5 is a CFS quota of
# half the period
LIMIT_FLAGS = ["--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"]
CGROUP_LIMITS = {"memory.limit_in_bytes": str(64 << 20), "pids.max": "50",
                 "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"}


def cgroup_limits(cgroup: str) -> dict[str, str]:
    """The files of CGROUP_LIMITS in a container's cgroup (a path below each
    v1 controller's mount)."""
    return {f: Path("/sys/fs/cgroup", f.split(".")[0], cgroup.lstrip("/"), f).read_text().strip()
            for f in CGROUP_LIMITS}
