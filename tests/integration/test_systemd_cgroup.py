"""The systemd cgroup driver (--systemd-cgroup) against a real systemd.

Each layout boots its own systemd in new namespaces (helpers_systemd): the
host's hybrid layout (v1 controllers, systemd in its legacy mode) and a
unified one (cgroup2 only, as on modern hosts). The runtime runs inside
those namespaces; what systemd made of the unit is read back with
`systemctl show`, what the container got from its cgroup files and from
inside. Without systemd, --systemd-cgroup is a clear error.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from helpers_systemd import SystemdHost, available
from integration_conftest import Runtime, wait_until

WHY = available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY)


def _boot(layout: str, token: str) -> Iterator[SystemdHost]:
    host = SystemdHost(layout, f"pyrunc-sd-{layout}-{token}").start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def sd_hybrid() -> Iterator[SystemdHost]:
    yield from _boot("hybrid", os.urandom(3).hex())


@pytest.fixture(scope="module")
def sd_unified() -> Iterator[SystemdHost]:
    yield from _boot("unified", os.urandom(3).hex())


def _inside(rt: Runtime, host: SystemdHost, request: pytest.FixtureRequest) -> Runtime:
    """The same runtime, run inside the systemd's namespaces with --systemd-cgroup."""
    info = dataclasses.replace(rt.info, cmd=tuple(host.cmd([*rt.info.cmd, "--systemd-cgroup"])))
    inner = Runtime(info, rt.root, rt.token, rt.cwd)
    lc = getattr(request.node, "_leakcheck", None)
    if lc is not None:
        lc.foreign_cgroups += host.dirs
        lc.rt = inner
    return inner


@pytest.fixture
def srt(rt: Runtime, sd_hybrid: SystemdHost, request: pytest.FixtureRequest) -> Runtime:
    return _inside(rt, sd_hybrid, request)


@pytest.fixture
def urt(rt: Runtime, sd_unified: SystemdHost, request: pytest.FixtureRequest) -> Runtime:
    return _inside(rt, sd_unified, request)


def _cgroup_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.strip().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls] = path
    return out


RUNC_DEVICES = "runc 1.1.5 leaves the container in devices:/system.slice, where systemd moved it"


def _without_runc_devices(rt: Runtime, lines: dict[str, str]) -> dict[str, str]:
    """runc's known defect aside (checked in test_devices_rules_kept_by_systemd)."""
    return {k: v for k, v in lines.items() if not (rt.is_runc and k == "devices")}


# -- hybrid (this host's layout: systemd in legacy mode) -------------------------------

def test_container_runs_in_a_scope_of_systemd(srt, sd_hybrid, bundle):
    cid = srt.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.set_args("sh", "-c", "cat /proc/self/cgroup > /host/cg; sleep 600")
    bundle.save()
    srt.run_d(cid, bundle)
    unit = f"pyt-{cid}.scope"
    lines = _cgroup_lines(bundle.wait_host_file("cg"))
    # every hierarchy, those systemd manages and those it does not (cpuset,
    # freezer: created by the runtime at the same place), devices included
    assert set(_without_runc_devices(srt, lines).values()) == {f"/system.slice/{unit}"}, lines
    props = sd_hybrid.show(unit, "ActiveState", "Slice", "Delegate", "Description", "MemoryAccounting",
                           "TasksAccounting", "CPUAccounting", "BlockIOAccounting", "DefaultDependencies")
    assert props == {"ActiveState": "active", "Slice": "system.slice", "Delegate": "yes",
                     "Description": f"libcontainer container {cid}", "MemoryAccounting": "yes",
                     "TasksAccounting": "yes", "CPUAccounting": "yes", "BlockIOAccounting": "yes",
                     "DefaultDependencies": "no"}
    st = srt.state(cid)
    assert Path(sd_hybrid.path("memory", f"/system.slice/{unit}/cgroup.procs")).read_text().split() == \
        [str(_host_pid(sd_hybrid, st["pid"]))]
    srt.delete(cid, force=True)
    assert sd_hybrid.show(unit, "LoadState")["LoadState"] == "not-found"
    assert sd_hybrid.dirs_named(cid) == []


def _host_pid(host: SystemdHost, ns_pid: int) -> int:
    """A pid of the systemd's namespace, as the host sees it."""
    todo = [host.pid]
    while todo:
        pid = todo.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        nspid = next((ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), [])
        if len(nspid) >= 2 and nspid[1] == str(ns_pid):
            return pid
        todo += [int(k) for k in kids]
    raise AssertionError(f"no host pid for {ns_pid}")


def test_default_unit_name_and_foreground_run(srt, sd_hybrid, bundle):
    """No cgroupsPath: <runtime>-<id>.scope in system.slice; a foreground
    run's exit leaves no unit and no directory."""
    cid = srt.new_id()
    bundle.set_args("cat", "/proc/self/cgroup")
    res = srt.run_fg(cid, bundle)
    prefix = "runc" if srt.is_runc else "pyrunc"
    assert set(_without_runc_devices(srt, _cgroup_lines(res.stdout)).values()) == \
        {f"/system.slice/{prefix}-{cid}.scope"}
    assert sd_hybrid.show(f"{prefix}-{cid}.scope", "LoadState")["LoadState"] == "not-found"
    assert sd_hybrid.dirs_named(cid) == []


def test_resources_become_unit_properties_and_files(srt, sd_hybrid, bundle):
    cid = srt.new_id()
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.config["linux"]["resources"] = {
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 20},
        "cpu": {"shares": 512, "quota": 33333, "period": 100000, "cpus": "0"},
    }
    bundle.save()
    srt.run_d(cid, bundle)
    props = sd_hybrid.show(unit, "MemoryLimit", "TasksMax", "CPUShares", "CPUQuotaPerSecUSec",
                           "CPUQuotaPeriodUSec", "AllowedCPUs")
    # systemd keeps whole percents: the quota is rounded up to 34%, in the
    # property and (as runc) in the file, so that both agree
    assert props == {"MemoryLimit": str(64 << 20), "TasksMax": "20", "CPUShares": "512",
                     "CPUQuotaPerSecUSec": "340ms", "CPUQuotaPeriodUSec": "100ms", "AllowedCPUs": "0"}
    cg = f"/system.slice/{unit}"
    assert Path(sd_hybrid.path("memory", cg + "/memory.limit_in_bytes")).read_text().strip() == str(64 << 20)
    assert Path(sd_hybrid.path("pids", cg + "/pids.max")).read_text().strip() == "20"
    # (runc 1.1.5 predates the rounding of the file: 33333)
    assert Path(sd_hybrid.path("cpu", cg + "/cpu.cfs_quota_us")).read_text().strip() == \
        ("33333" if srt.is_runc else "34000")
    assert Path(sd_hybrid.path("cpu", cg + "/cpu.shares")).read_text().strip() == "512"
    assert Path(sd_hybrid.path("cpuset", cg + "/cpuset.cpus")).read_text().strip() == "0"
    # the pids limit holds inside: 20 tasks, then fork fails
    res = srt.exec_(cid, "sh", "-c", "for i in $(seq 40); do sleep 30 & done 2>/dev/null; wait; echo done")
    assert "can't fork" in res.stderr or "Resource temporarily unavailable" in res.stderr or res.rc != 0
    srt.delete(cid, force=True)
    assert sd_hybrid.dirs_named(cid) == []


def test_devices_rules_kept_by_systemd(srt, sd_hybrid, bundle):
    """DevicePolicy=strict with the container's allow list: a device outside
    it cannot be opened, /dev/null can, and the init is in the unit's
    devices cgroup (systemd moves it to the slice when it realizes the
    devices controller for the unit; runc 1.1 leaves it there)."""
    cid = srt.new_id()
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.set_args("sh", "-c", "grep devices /proc/self/cgroup > /host/dev; mknod /tmp/mem c 1 1; "
                    "head -c1 /tmp/mem >/dev/null 2>>/host/dev || echo denied >> /host/dev; "
                    "echo ok > /dev/null && echo null-ok >> /host/dev; sleep 600")
    bundle.save()
    srt.run_d(cid, bundle)
    text = bundle.wait_host_file("dev", contains="null-ok")
    if srt.is_runc:
        pytest.xfail(RUNC_DEVICES)
    assert f"devices:/system.slice/{unit}" in text
    assert "denied" in text
    props = sd_hybrid.show(unit, "DevicePolicy", "DeviceAllow")
    assert props["DevicePolicy"] == "strict"
    allow = props["DeviceAllow"]
    for entry in ("/dev/char/1:3 rwm", "char-136 rwm", "char-* m", "block-* m"):
        assert entry in allow, allow
    listed = Path(sd_hybrid.path("devices", f"/system.slice/{unit}/devices.list")).read_text()
    assert "a *:* rwm" not in listed and "c 1:3 rwm" in listed
    srt.delete(cid, force=True)


def test_update_sets_properties_too(srt, sd_hybrid, bundle):
    cid = srt.new_id()
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}}
    bundle.save()
    srt.run_d(cid, bundle)
    srt.ok("update", "--memory", "128m", "--pids-limit", "30", "--cpu-quota", "50000", cid)
    props = sd_hybrid.show(unit, "MemoryLimit", "TasksMax", "CPUQuotaPerSecUSec")
    assert props == {"MemoryLimit": str(128 << 20), "TasksMax": "30", "CPUQuotaPerSecUSec": "500ms"}
    cg = f"/system.slice/{unit}"
    assert Path(sd_hybrid.path("memory", cg + "/memory.limit_in_bytes")).read_text().strip() == str(128 << 20)
    assert Path(sd_hybrid.path("pids", cg + "/pids.max")).read_text().strip() == "30"
    # systemd re-applies its properties on daemon-reload: the new values stay
    assert sd_hybrid.systemctl("daemon-reload").returncode == 0
    assert Path(sd_hybrid.path("pids", cg + "/pids.max")).read_text().strip() == "30"
    srt.delete(cid, force=True)


def test_exec_pause_kill_all(srt, sd_hybrid, bundle):
    cid = srt.new_id()
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.save()
    srt.run_d(cid, bundle)
    res = srt.exec_(cid, "cat", "/proc/self/cgroup")
    assert set(_without_runc_devices(srt, _cgroup_lines(res.stdout)).values()) == {f"/system.slice/{unit}"}
    srt.ok("pause", cid)
    assert srt.status(cid) == "paused"
    assert Path(sd_hybrid.path("freezer", f"/system.slice/{unit}/freezer.state")).read_text().strip() == "FROZEN"
    srt.ok("resume", cid)
    assert srt.status(cid) == "running"
    if srt.is_runc:  # its kill --all lists the processes of its devices cgroup
        srt.delete(cid, force=True)
        pytest.xfail(RUNC_DEVICES)
    srt.ok("kill", "--all", cid, "KILL")
    srt.wait_status(cid, "stopped")
    srt.ok("delete", cid)
    assert sd_hybrid.show(unit, "LoadState")["LoadState"] == "not-found"
    assert sd_hybrid.dirs_named(cid) == []


def test_slice_parent_and_annotations(srt, sd_hybrid, bundle):
    """A nested parent slice is expanded into its path; org.systemd.property.*
    annotations become properties (xxxSec in microseconds as xxxUSec)."""
    cid = srt.new_id()
    tok = srt.token
    parent = f"pyt{tok}-sub.slice"
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"{parent}:pyt:{cid}"
    bundle.config["annotations"] = {"org.systemd.property.TimeoutStopSec": "uint64 7",
                                    "org.systemd.property.CollectMode": "'inactive-or-failed'"}
    bundle.set_args("sh", "-c", "cat /proc/self/cgroup > /host/cg; sleep 600")
    bundle.save()
    try:
        srt.run_d(cid, bundle)
        lines = _cgroup_lines(bundle.wait_host_file("cg"))
        assert lines["memory"] == f"/pyt{tok}.slice/{parent}/{unit}"
        props = sd_hybrid.show(unit, "Slice", "TimeoutStopUSec", "CollectMode")
        assert props == {"Slice": parent, "TimeoutStopUSec": "7s", "CollectMode": "inactive-or-failed"}
        srt.delete(cid, force=True)
        assert sd_hybrid.show(unit, "LoadState")["LoadState"] == "not-found"
    finally:  # the slices stay after the container, as with runc: ours to
        # stop, and their directories in the hierarchies systemd leaves alone
        # (made by the runtime for the container's cgroup) ours to remove
        sd_hybrid.systemctl("stop", parent, f"pyt{tok}.slice")
        for d in sorted(sd_hybrid.dirs_named(f"pyt{tok}"), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        wait_until(lambda: not sd_hybrid.dirs_named(f"pyt{tok}"), what="the test's slices removed")


@pytest.mark.parametrize("path, msg", [
    ("just-a-path", r'expected cgroupsPath to be of format .{0,2}slice:prefix:name'),
    ("a:b", r'expected cgroupsPath to be of format .{0,2}slice:prefix:name'),
    ("bad--x.slice:p:n", "invalid slice name: bad--x.slice"),
    ("noslice:p:n", "invalid slice name: noslice"),
])
def test_bad_cgroups_path(srt, sd_hybrid, bundle, path, msg):
    cid = srt.new_id()
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.save()
    srt.fail("run", "-d", "-b", bundle.path, cid, match=msg, one_line=not srt.is_runc)
    assert sd_hybrid.dirs_named(cid) == []


def test_bad_annotation_is_refused_before_anything_exists(srt, sd_hybrid, bundle):
    cid = srt.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.config["annotations"] = {"org.systemd.property.X1": "true"}
    bundle.save()
    srt.fail("run", "-d", "-b", bundle.path, cid, match="annotation org.systemd.property.X1 name incorrect",
             one_line=not srt.is_runc)
    assert sd_hybrid.show(f"pyt-{cid}.scope", "LoadState")["LoadState"] == "not-found"


def test_unit_that_systemd_refuses(srt, sd_hybrid, bundle):
    """A property systemd rejects fails create with systemd's reason, and
    leaves nothing (no unit, no cgroup, no state)."""
    cid = srt.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.config["annotations"] = {"org.systemd.property.NoSuchProperty": "true"}
    bundle.save()
    res = srt.fail("run", "-d", "-b", bundle.path, cid, match="NoSuchProperty", one_line=not srt.is_runc)
    assert "Traceback" not in res.stderr
    assert sd_hybrid.dirs_named(cid) == []


def test_killed_create_leaves_no_unit_after_delete(srt, sd_hybrid, bundle):
    """create killed with SIGKILL at points spread over its run: delete -f
    stops the unit it may have started and removes every directory."""
    import time
    cid = srt.new_id()
    t0 = time.monotonic()
    srt.create(cid, bundle)
    took = min(time.monotonic() - t0, 0.5)
    srt.delete(cid, force=True)
    points = 24
    for i in range(points):
        cid = srt.new_id()
        p = srt.popen("create", "--bundle", bundle.path, cid)
        time.sleep(took * 1.2 * i / (points - 1))
        p.popen.kill()
        p.finish(timeout=10)
        srt.run("delete", "--force", cid).expect_ok()
        prefix = "runc" if srt.is_runc else "pyrunc"
        assert sd_hybrid.show(f"{prefix}-{cid}.scope", "LoadState")["LoadState"] == "not-found", i
        # systemd removes a stopped scope's directory on its own time: a
        # directory still there after 2 s is one left for good (seen once
        # in nine full runs without this wait; the cause is not known)
        with contextlib.suppress(pytest.fail.Exception):
            wait_until(lambda: not sd_hybrid.dirs_named(cid), timeout=2, what="the scope's directories to go")
        assert sd_hybrid.dirs_named(cid) == [], i


def test_without_systemd_it_is_a_clear_error(rt, bundle):
    """On this host (no systemd running) --systemd-cgroup is refused."""
    cid = rt.new_id()
    res = rt.fail("--systemd-cgroup", "run", "-d", "-b", bundle.path, cid, one_line=not rt.is_runc)
    assert "systemd" in res.error_message


# -- unified (cgroup v2 only) ----------------------------------------------------------

def test_unified_lifecycle(urt, sd_unified, bundle):
    cid = urt.new_id()
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.config["annotations"] = {"org.systemd.property.TimeoutStopSec": "uint64 5"}
    bundle.set_args("sh", "-c", "cat /proc/self/cgroup > /host/cg; sleep 600")
    bundle.save()
    urt.run_d(cid, bundle)
    # (the v1 lines are the host's hierarchies, outside this systemd's view)
    assert f"\n0::/system.slice/{unit}\n" in "\n" + bundle.wait_host_file("cg")
    props = sd_unified.show(unit, "ActiveState", "Slice", "Delegate", "IOAccounting", "TimeoutStopUSec")
    assert props == {"ActiveState": "active", "Slice": "system.slice", "Delegate": "yes",
                     "IOAccounting": "yes", "TimeoutStopUSec": "5s"}
    cg = Path(sd_unified.path("unified", f"/system.slice/{unit}"))
    res = urt.exec_(cid, "cat", "/proc/self/cgroup")
    assert f"\n0::/system.slice/{unit}\n" in "\n" + res.stdout
    urt.ok("pause", cid)
    assert (cg / "cgroup.freeze").read_text().strip() == "1"
    assert urt.status(cid) == "paused"
    urt.ok("resume", cid)
    urt.ok("kill", "--all", cid, "KILL")
    urt.wait_status(cid, "stopped")
    urt.ok("delete", cid)
    assert sd_unified.show(unit, "LoadState")["LoadState"] == "not-found"
    assert not cg.exists()


def test_unified_hugetlb_limit_in_the_units_cgroup(urt, sd_unified, bundle):
    """This cgroup2 has one controller (hugetlb; the others are bound to v1
    here): its limit lands in the unit's cgroup, enabled down from the slice."""
    if not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("the kernel has no 2MB huge pages")
    if not sd_unified._hugetlb_enabled:
        pytest.skip("this host's cgroup2 has no hugetlb controller to give the systemd")
    cid = urt.new_id()
    unit = f"pyt-{cid}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyt:{cid}"
    bundle.config["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}
    bundle.save()
    urt.run_d(cid, bundle)
    cg = Path(sd_unified.path("unified", f"/system.slice/{unit}"))
    assert (cg / "hugetlb.2MB.max").read_text().strip() == str(4 << 20)
    assert sd_unified.show(unit, "ActiveState")["ActiveState"] == "active"
    urt.delete(cid, force=True)
    assert not cg.exists()


def test_library_create_with_systemd(rt, sd_hybrid, bundle, request):
    """pyrunc.Container.create(systemd_cgroup=True), from a Python program
    inside the systemd's namespaces; the command line then sees the unit."""
    if rt.is_runc:
        pytest.skip("the library is pyrunc's")
    srt = _inside(rt, sd_hybrid, request)
    cid = srt.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:lib:{cid}"
    bundle.save()
    src = Path(__file__).resolve().parents[2] / "src"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pyrunc\n"
            "c = pyrunc.Container.create(sys.argv[2], bundle=sys.argv[3], root=sys.argv[4], systemd_cgroup=True)\n"
            "c.start(); print(c.status)\n")
    import subprocess
    import tempfile
    with tempfile.TemporaryFile("w+") as out:  # a file: the container keeps its stdio open
        r = subprocess.run(sd_hybrid.cmd([sys.executable, "-c", code, str(src), cid, str(bundle.path),
                                          str(srt.root)]),
                           stdout=out, stderr=subprocess.STDOUT, timeout=60, stdin=subprocess.DEVNULL)
        out.seek(0)
        text = out.read()
    assert r.returncode == 0 and text.strip() == "running", text
    assert sd_hybrid.show(f"lib-{cid}.scope", "ActiveState")["ActiveState"] == "active"
    assert srt.state(cid)["status"] == "running"
    srt.delete(cid, force=True)
    assert sd_hybrid.show(f"lib-{cid}.scope", "LoadState")["LoadState"] == "not-found"
