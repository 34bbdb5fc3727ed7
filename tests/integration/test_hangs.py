"""Issue 11, items 1-5: hangs, leaks and interrupted work.

1. the init waiting for `start` holds only its stdio (or console), the exec
   fifo and the preserved fds: no other descriptor of its caller;
2. a cgroup frozen before create is refused (runc's "container's cgroup
   unexpectedly frozen") instead of hanging;
3. a cgroup that already holds processes is refused ("container's cgroup is
   not empty");
4. `create` killed with SIGKILL at any moment: `delete -f` leaves nothing;
5. a container without its own pid namespace: SIGKILL, `delete` and
   `delete -f` kill every process of its cgroup.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time

import pytest

from integration_conftest import wait_until
from test_console_socket import sock_path  # noqa: F401 - a fixture

# --------------------------------------------------------------------------- 1. descriptors


def _init_fds(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return out


def _eof_within(fd: int, timeout: float) -> bool:
    """Whether the pipe read end `fd` reaches EOF (no writer left) in time."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if r and os.read(fd, 4096) == b"":
            return True


def _runtime_with_pipe(rt, args: list[str]) -> int:
    """Run the runtime holding the write end of a pipe (as an engine's or a
    shell's descriptor would be); returns the read end."""
    r, w = os.pipe()
    try:
        p = subprocess.Popen(rt.argv(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=rt.cwd, env=rt._env(None), pass_fds=(w,))
    finally:
        os.close(w)
    assert p.wait(timeout=30) == 0
    return r


@pytest.mark.parametrize("mode", [["create"], ["run", "-d"]])
def test_waiting_init_holds_none_of_the_callers_fds(rt, bundle, mode):
    """An engine's pipe given to `create` (not one of the preserved fds) is
    closed once create returns: nothing of the container holds it."""
    cid = rt.new_id()
    r = _runtime_with_pipe(rt, [*mode, "--bundle", bundle.path, cid])
    try:
        assert _eof_within(r, 5), "the container's init still holds the caller's pipe"
    finally:
        os.close(r)
    if mode == ["create"]:
        # runc's create.bats whitelist: stdio, the exec fifo, anonymous
        # inodes, sockets and pipes of its own (the caller's pipe is closed)
        fds = _init_fds(rt.state(cid)["pid"])
        assert fds[0] == fds[1] == fds[2] == "/dev/null", fds
        extra = {n: t for n, t in fds.items() if n > 2 and not t.endswith("/exec.fifo")}
        assert all(t.startswith(("anon_inode:", "socket:[", "pipe:[")) for t in extra.values()), fds


def test_waiting_init_keeps_preserved_fds(rt, bundle, tmp_path):
    """--preserve-fds: the caller's fds 3.. are the container's and stay."""
    marker = tmp_path / "preserved"
    marker.write_text("x")
    cid = rt.new_id()
    argv = rt.argv(["create", "--preserve-fds", "2", "--bundle", bundle.path, cid])
    subprocess.run(["/bin/sh", "-c", f'exec "$@" 3<"{marker}" 4<"{marker}" 5<"{marker}"', "sh", *argv],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=rt.cwd, env=rt._env(None),
                   check=True, timeout=30)
    fds = _init_fds(rt.state(cid)["pid"])
    held = sorted(n for n, t in fds.items() if t == str(marker))
    assert held == [3, 4], fds


def test_command_substitution_of_create_with_a_console_returns(rt, bundle, sock_path):
    """`out=$(pyrunc create --console-socket S ... 2>&1)` returns: the init's
    stdio is the console, and it keeps no copy of the runtime's stderr."""
    from helpers_console import ConsoleReceiver
    with bundle.edit() as cfg:
        cfg["process"]["terminal"] = True
    cid = rt.new_id()
    argv = rt.argv(["create", "--console-socket", sock_path, "--bundle", bundle.path, cid])
    with ConsoleReceiver(sock_path):
        try:
            res = subprocess.run(["/bin/sh", "-c", 'out=$("$@" 2>&1); echo "rc=$? out=$out"', "sh", *argv],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10,
                                 cwd=rt.cwd, env=rt._env(None))
        except subprocess.TimeoutExpired:
            pytest.fail("$(create) did not return: the waiting init holds the caller's stdout or stderr")
        assert res.stdout == "rc=0 out=\n", res
        assert rt.state(cid)["status"] == "created"


# --------------------------------------------------------------------------- 2, 3. a cgroup in use


def _with_cgroups_path(bundle, path: str):
    with bundle.edit() as cfg:
        cfg.setdefault("linux", {})["cgroupsPath"] = path
    return bundle


NEWER = pytest.mark.runc_ref_differs(reason="runc 1.1 only warns about a cgroup in use; 1.2 refuses it")
NEWER_KILL = pytest.mark.runc_ref_differs(reason="runc 1.1 kills only the init; 1.2 kills the whole cgroup")


@NEWER
def test_cgroup_with_processes_is_refused(rt, make_bundle):
    """runc 1.2+: a second container may not join the first one's cgroup."""
    path = f"/pyrunc-it-{rt.token}-shared"
    first = rt.new_id()
    rt.run_d(first, _with_cgroups_path(make_bundle(), path))
    b2 = _with_cgroups_path(make_bundle(), path)
    for mode in (["create"], ["run", "-d"]):
        cid = rt.new_id()
        rt.fail(*mode, "--bundle", b2.path, cid, one_line=True,
                match=rf"{mode[0]} failed: container's cgroup is not empty: 1 process\(es\) found")
        assert cid not in rt.container_dirs()
    assert rt.status(first) == "running"
    assert rt.container_dirs() == [first]


def _frozen_cgroup(kind: str, rel: str) -> tuple[str, str, bytes, bytes]:
    """(dir, control file, freeze value, thaw value) of a cgroup to freeze."""
    from test_cgroups_common import cgroup_mounts
    mounts = cgroup_mounts()
    if kind == "v1":
        if "freezer" not in mounts:
            pytest.skip("no cgroup v1 freezer hierarchy on this host")
        return os.path.join(mounts["freezer"], rel), "freezer.state", b"FROZEN", b"THAWED"
    if "" not in mounts:
        pytest.skip("no cgroup2 hierarchy on this host")
    return os.path.join(mounts[""], rel), "cgroup.freeze", b"1", b"0"


@NEWER
@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_frozen_cgroup_is_refused(rt, bundle, kind):
    """A cgroup frozen before create: refused at once (the init would freeze
    on joining it and create would hang)."""
    rel = f"pyrunc-it-{rt.token}-frozen"
    d, name, freeze, thaw = _frozen_cgroup(kind, rel)
    os.mkdir(d)
    try:
        if not os.path.exists(os.path.join(d, name)):
            pytest.skip(f"{d} has no {name}")
        with open(os.path.join(d, name), "wb") as f:
            f.write(freeze)
        _with_cgroups_path(bundle, "/" + rel)
        for mode in (["run", "-d"], ["create"]):
            cid = rt.new_id()
            rt.run(*mode, "--bundle", bundle.path, cid, timeout=15).expect_fail(
                one_line=True, match=rf"{mode[0]} failed: container's cgroup unexpectedly frozen")
            assert cid not in rt.container_dirs()
        assert os.path.isdir(d), "the frozen cgroup was not the runtime's to remove"
    finally:
        with open(os.path.join(d, name), "wb") as f:
            f.write(thaw)
        os.rmdir(d)


# --------------------------------------------------------------------------- 5. no pid namespace of its own


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _shared_pidns(bundle, script: str):
    """A container in the host's pid namespace whose init leaves a child
    (its host pid in /host/child)."""
    with bundle.edit() as cfg:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
        cfg["process"]["args"] = ["sh", "-c", f"sleep 3600 & echo $! > /host/child; {script}"]
    return bundle


def _child(bundle) -> int:
    pid = int(bundle.wait_host_file("child", contains="\n"))
    assert _alive(pid)
    return pid


@NEWER_KILL
def test_sigkill_kills_every_process_without_own_pidns(rt, bundle):
    _shared_pidns(bundle, "exec sleep 3601")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    init, child = rt.state(cid)["pid"], _child(bundle)
    rt.kill(cid, "KILL")
    wait_until(lambda: not _alive(init) and not _alive(child), timeout=5,
               what="the init and its child to be killed")
    # the stopped container: KILL again still succeeds (its cgroup exists), as runc
    rt.kill(cid, "KILL")
    rt.delete(cid)


@NEWER_KILL
def test_sigkill_of_a_stopped_container_kills_its_leftovers(rt, bundle):
    _shared_pidns(bundle, "exit 0")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    child = _child(bundle)
    rt.wait_status(cid, "stopped")
    assert _alive(child)
    rt.kill(cid, "KILL")
    wait_until(lambda: not _alive(child), timeout=5, what="the leftover child to be killed")
    rt.delete(cid)


def test_sigterm_goes_to_the_init_only(rt, bundle):
    """Only SIGKILL is sent to the whole cgroup (runc): other signals are the
    init's to pass on."""
    _shared_pidns(bundle, "trap 'exit 0' TERM; while :; do sleep 1; done")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    child = _child(bundle)
    rt.kill(cid, "TERM")
    rt.wait_status(cid, "stopped")
    assert _alive(child)
    rt.delete(cid)
    wait_until(lambda: not _alive(child), timeout=5, what="delete to kill the leftover child")


@pytest.mark.parametrize("force", [False, True])
def test_delete_kills_every_process_without_own_pidns(rt, bundle, force):
    """delete of a stopped container, delete -f of a running one: the whole
    cgroup, not only the init."""
    _shared_pidns(bundle, "exec sleep 3601" if force else "exit 0")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    child = _child(bundle)
    if not force:
        rt.wait_status(cid, "stopped")
    rt.delete(cid, force=force)
    wait_until(lambda: not _alive(child), timeout=5, what="the child to be killed")


# --------------------------------------------------------------------------- 4. create killed midway


def _killed_after(rt, args: list, delay: float) -> None:
    p = rt.popen(*args)
    time.sleep(delay)
    p.popen.kill()  # SIGKILL: no chance to undo anything
    p.finish(timeout=10)


@pytest.mark.parametrize("mode, points, mntns", [(["create"], 32, True), (["run", "-d"], 12, True),
                                                 (["create"], 16, False)])
def test_delete_force_after_create_killed_at_any_moment(rt, bundle, leakcheck, mode, points, mntns):
    """SIGKILL of `create` at points spread over its whole run (measured
    first, so a loaded machine moves the points, not the coverage): after
    `delete -f` nothing is left, wherever it stopped. Without a mount
    namespace the container's mounts are the host's: none may stay."""
    if not mntns:
        from test_host_mntns import host_mntns
        bundle.update(host_mntns)
    cid = rt.new_id()
    t0 = time.monotonic()
    rt.ok(*mode, "--bundle", bundle.path, cid)
    took = min(time.monotonic() - t0, 0.5)
    rt.delete(cid, force=True)
    for i in range(points):
        cid = rt.new_id()
        _killed_after(rt, [*mode, "--bundle", bundle.path, cid], took * 1.2 * i / (points - 1))
        rt.run("delete", "--force", cid).expect_ok()
        leakcheck.assert_clean()


def _planned_only(rt, cid: str) -> bool:
    """Whether a killed create left its plan but no state yet."""
    d = rt.root / cid
    if not d.is_dir() or (d / "state.json").exists():
        return False
    try:
        return bool(os.getxattr(d, "user.pyrunc.plan"))
    except OSError:
        return (d / "plan.json").exists()


def test_create_killed_before_its_state(rt, bundle):
    """What a create killed after its plan but before its state leaves is
    no container to `state` or `list` (as runc: no state.json), and a plain
    `delete` removes all of it, saying the container does not exist (runc
    removes such a directory the same way)."""
    if rt.is_runc:
        pytest.skip("pyrunc's plan record")
    for attempt in range(200):
        cid = rt.new_id()
        _killed_after(rt, ["create", "--bundle", bundle.path, cid], 0.002 * (attempt % 40))
        if _planned_only(rt, cid):
            break
        rt.run("delete", "--force", cid).expect_ok()
    else:
        pytest.skip("no kill landed between the plan and the state")
    rt.fail("state", cid, match="container does not exist")
    assert rt.list_json() == []
    rt.fail("delete", cid, match="container does not exist", one_line=True)
    assert cid not in rt.container_dirs()


def test_delete_removes_what_a_plan_names(rt, tmp_path):
    """The plan alone (a create killed right after making its cgroup and
    putting its init there): delete -f kills the cgroup's processes and
    removes the cgroup in every hierarchy."""
    if rt.is_runc:
        pytest.skip("pyrunc's plan record")
    from test_cgroups_common import cgroup_mounts
    mounts = cgroup_mounts()
    cid = rt.new_id()
    keys = [k for k in ("", "pids", "freezer") if k in mounts]
    paths = {k: os.path.join(mounts[k], f"pyrunc-it-{cid}") for k in keys}
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        for p in paths.values():
            os.mkdir(p)
            with open(os.path.join(p, "cgroup.procs"), "w") as f:
                f.write(str(sleeper.pid))
        d = rt.root / cid
        d.mkdir()
        plan = {"id": cid, "bundle": str(tmp_path), "rootfs": str(tmp_path), "created": "2026-01-01T00:00:00Z",
                "pid": 0, "cgroup_paths": paths}
        try:
            os.setxattr(d, "user.pyrunc.plan", json.dumps(plan).encode())
        except OSError:
            (d / "plan.json").write_text(json.dumps(plan))
        rt.ok("delete", "--force", cid)
        assert sleeper.wait(timeout=5) == -9
        assert [p for p in paths.values() if os.path.exists(p)] == []
        assert cid not in rt.container_dirs()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        for p in paths.values():
            if os.path.exists(p):
                os.rmdir(p)


def test_delete_of_a_state_dir_without_state(rt):
    """A create killed before it wrote any state leaves only its directory:
    delete removes it and says the container does not exist (runc), and
    delete -f removes it quietly."""
    cid = rt.new_id()
    (rt.root / cid).mkdir()
    rt.fail("delete", cid, match="container does not exist", one_line=True)
    assert not (rt.root / cid).exists()
    (rt.root / cid).mkdir()
    rt.ok("delete", "--force", cid)
    assert not (rt.root / cid).exists()
