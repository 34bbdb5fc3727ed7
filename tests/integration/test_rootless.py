"""Rootless mode (issue 4, item 6): the runtime run by a real unprivileged
user. `spec --rootless`, a user namespace mapping the user's own id (written
by the runtime) or several ranges (through newuidmap/newgidmap, checked
against /etc/subuid), cgroups skipped unless delegated, and the state under
$XDG_RUNTIME_DIR/<runtime>. After each test nothing of the user's is left:
no process, no state dir, no cgroup.

The user (pyrunc-rl) is created here if missing, with a subordinate id range.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from integration_conftest import build_busybox_rootfs
from test_user import SUB_COUNT, SUB_START, USER, ensure_user

CG = Path("/sys/fs/cgroup")


@pytest.fixture(scope="module")
def user(runtime_under_test) -> pwd.struct_passwd:
    if runtime_under_test is None:
        pytest.skip("no runtime under test")
    return ensure_user()


class AsUser:
    """Runs the runtime as the unprivileged user, in its own runtime dir."""

    def __init__(self, info, pw: pwd.struct_passwd, home: Path) -> None:
        self.cmd = list(info.cmd)
        self.name = info.name if info.name != "python3 -m pyrunc" else "pyrunc"
        self.pw = pw
        self.xdg = home / "xdg"
        self.xdg.mkdir(mode=0o700)
        os.chown(self.xdg, pw.pw_uid, pw.pw_gid)
        self.cgroup_procs: str | None = None  # where to put the command first (delegation)
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home),
                    "XDG_RUNTIME_DIR": str(self.xdg), **dict(info.env)}

    def _become(self) -> None:
        if self.cgroup_procs:  # still root here: join the delegated cgroup, then drop
            with open(self.cgroup_procs, "w") as f:
                f.write("0")
        os.setgroups([])
        os.setgid(self.pw.pw_gid)
        os.setuid(self.pw.pw_uid)

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        # files, not pipes: a detached container keeps its stdio open
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run([*self.cmd, *args], cwd=cwd, env=self.env, preexec_fn=self._become,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(r.args, r.returncode, out.read().decode(), err.read().decode())

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self.run(*args, **kw)
        assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        return r

    def fail(self, *args: str, match: str) -> subprocess.CompletedProcess:
        r = self.run(*args)
        assert r.returncode != 0, f"{args}: expected failure\n{r.stdout}"
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert match in r.stderr, r.stderr
        return r

    @property
    def state_root(self) -> Path:
        return self.xdg / self.name

    def leftovers(self) -> list[str]:
        left = []
        if self.state_root.exists():
            left += [f"state dir {p}" for p in self.state_root.iterdir()]
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if p.stat().st_uid == self.pw.pw_uid or os.stat(p / "status").st_uid == self.pw.pw_uid:
                        left.append(f"process {p.name}: {(p / 'cmdline').read_bytes()[:80]!r}")
                except OSError:
                    pass
        return left


@pytest.fixture
def as_user(user, runtime_under_test, tmp_path) -> AsUser:
    os.chmod(tmp_path, 0o755)
    for parent in tmp_path.parents:  # pytest's base temp dirs are 0700
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    u = AsUser(runtime_under_test, user, tmp_path)
    yield u
    # tear down whatever a failed test left, then insist there was nothing
    deadline = time.monotonic() + 3
    while (left := u.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.05)  # processes on their way out
    if u.state_root.exists():
        for c in u.state_root.iterdir():
            u.run("delete", "--force", c.name)
    assert not left, "left behind:\n" + "\n".join(left)


def make_bundle(u: AsUser, tmp: Path, args: list[str], edit=None) -> Path:
    b = tmp / "bundle"
    build_busybox_rootfs(b / "rootfs")
    for root, dirs, files in os.walk(b):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), u.pw.pw_uid, u.pw.pw_gid)
    os.chown(b, u.pw.pw_uid, u.pw.pw_gid)
    u.ok("spec", "--rootless", cwd=b)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    if edit:
        edit(cfg)
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def test_spec_rootless_maps_the_users_own_id(as_user, tmp_path):
    b = make_bundle(as_user, tmp_path, ["sh", "-c", "id -u; cat /proc/self/uid_map; echo $$"])
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": as_user.pw.pw_uid, "size": 1}]
    assert {"type": "user"} in cfg["linux"]["namespaces"]
    r = as_user.ok("run", "--bundle", str(b), "rl1")
    out = r.stdout.split()
    assert out[0] == "0"  # root inside
    assert out[1:4] == ["0", str(as_user.pw.pw_uid), "1"]
    assert out[4] == "1"  # PID 1 of its own pid namespace


def test_detached_lifecycle_with_state_in_xdg_runtime_dir(as_user, tmp_path):
    b = make_bundle(as_user, tmp_path, ["sleep", "60"])
    as_user.ok("run", "-d", "--bundle", str(b), "rl2")
    assert (as_user.state_root / "rl2" / "state.json").exists()
    listed = json.loads(as_user.ok("list", "--format", "json").stdout)
    assert [(c["id"], c["status"], c["owner"]) for c in listed] == [("rl2", "running", USER)]
    st = json.loads(as_user.ok("state", "rl2").stdout)
    host_pid = st["pid"]
    assert os.stat(f"/proc/{host_pid}").st_uid == as_user.pw.pw_uid  # an unprivileged process on the host
    assert as_user.ok("exec", "rl2", "id", "-u").stdout.strip() == "0"
    as_user.ok("kill", "rl2", "KILL")
    deadline = time.monotonic() + 5
    while json.loads(as_user.ok("state", "rl2").stdout)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    as_user.ok("delete", "rl2")
    assert not (as_user.state_root / "rl2").exists()


def _subid_maps(cfg, start=SUB_START):
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_CHOWN")
    own = cfg["linux"]["uidMappings"][0]["hostID"], cfg["linux"]["gidMappings"][0]["hostID"]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": own[0], "size": 1},
                                   {"containerID": 1, "hostID": start, "size": 1000}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": own[1], "size": 1},
                                   {"containerID": 1, "hostID": start, "size": 1000}]


@pytest.mark.skipif(shutil.which("newuidmap") is None, reason="uidmap (newuidmap/newgidmap) is not installed")
def test_several_ranges_through_newuidmap(as_user, tmp_path):
    b = make_bundle(as_user, tmp_path, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; "
                                        "touch /dev/shm/f; chown 7:7 /dev/shm/f; stat -c %u:%g /dev/shm/f"], _subid_maps)
    out = as_user.ok("run", "--bundle", str(b), "rl3").stdout.split()
    assert out[:12] == ["0", str(as_user.pw.pw_uid), "1", "1", str(SUB_START), "1000",
                        "0", str(as_user.pw.pw_gid), "1", "1", str(SUB_START), "1000"]
    assert out[12] == "7:7"  # an id of the subordinate range, usable inside


@pytest.mark.skipif(shutil.which("newuidmap") is None, reason="uidmap (newuidmap/newgidmap) is not installed")
@pytest.mark.runc_ref_differs(reason="runc 1.1.5 reports it in five lines (newuidmap's, nsexec's, a warning)")
def test_range_outside_subuid_is_refused_cleanly(as_user, tmp_path):
    b = make_bundle(as_user, tmp_path, ["true"], lambda c: _subid_maps(c, start=SUB_START + SUB_COUNT))
    as_user.fail("run", "--bundle", str(b), "rl4", match="not allowed")


def test_cgroups_are_skipped_without_permission(as_user, tmp_path):
    """No delegation: the container runs in the user's own cgroups and no
    directory is made anywhere."""
    before = {p for p in CG.glob("*/rl5")}
    b = make_bundle(as_user, tmp_path, ["cat", "/proc/self/cgroup"])
    as_user.ok("run", "--bundle", str(b), "rl5")
    assert {p for p in CG.glob("*/rl5")} == before == set()


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 adds a warning line (oom kill count) before the error")
def test_a_limit_without_a_cgroup_is_an_error(as_user, tmp_path):
    b = make_bundle(as_user, tmp_path, ["true"],
                    lambda c: c["linux"].setdefault("resources", {}).update(pids={"limit": 10}))
    as_user.fail("run", "--bundle", str(b), "rl6", match="cannot set pids limit")


@pytest.fixture
def delegated_pids(as_user):
    """A pids cgroup owned by the user, the way a delegating manager hands one
    out; the user's commands start inside it."""
    if not (CG / "pids" / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids hierarchy")
    d = CG / "pids" / f"pyrunc-rl-{os.getpid()}"
    d.mkdir()
    for f in ("", "cgroup.procs", "tasks"):
        os.chown(d / f if f else d, as_user.pw.pw_uid, as_user.pw.pw_gid)
    as_user.cgroup_procs = str(d / "cgroup.procs")
    yield d
    for _ in range(100):
        try:
            for sub in d.iterdir():
                if sub.is_dir():
                    sub.rmdir()
            d.rmdir()
            break
        except OSError:
            time.sleep(0.05)


def test_delegated_cgroup_is_used(as_user, tmp_path, delegated_pids):
    b = make_bundle(as_user, tmp_path, ["sh", "-c", "grep pids /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max"],
                    lambda c: c["linux"].setdefault("resources", {}).update(pids={"limit": 42}))
    r = as_user.ok("run", "--keep", "--bundle", str(b), "rl7")
    assert (delegated_pids / "rl7" / "pids.max").read_text().strip() == "42"
    assert r.stdout.split()[-1] == "42"  # seen from inside
    as_user.ok("delete", "rl7")
    assert not (delegated_pids / "rl7").exists()


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 predates time namespaces")
def test_time_namespace_with_offsets(as_user, tmp_path):
    """The unprivileged parent writes the offsets of the time namespace its
    user namespace owns (the stage child is dumpable meanwhile)."""
    if not os.path.exists("/proc/self/timens_offsets"):
        pytest.skip("this kernel has no time namespaces (/proc/self/timens_offsets)")

    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 86400, "nanosecs": 5}}
    b = make_bundle(as_user, tmp_path, ["cat", "/proc/self/timens_offsets"], edit)
    out = as_user.ok("run", "--bundle", str(b), "rl5").stdout
    assert [line.split() for line in out.splitlines()] == [["monotonic", "0", "0"], ["boottime", "86400", "5"]]
