"""linux.resources for real: each resource observed in the container's cgroup
files, and from inside the container where it shows (a memory limit kills an
allocation past it, a pids limit makes fork fail, a denied device cannot be
opened). The last tests run the same config under Debian's runc and compare
the cgroup files."""
from __future__ import annotations

import os

import pytest

from test_cgroups_common import (NO_SWAP_ACCOUNTING, RUNC, RuncRef, blkio_weight_file, cg_read, cgroup_dir, has_v1,
                                 hugepage_size, kernel_has_file, limit_without_swap, root_block_device, set_resources,
                                 swap_accounting, unified_host)

MiB = 1 << 20
NEWER = pytest.mark.runc_ref_differs


def start(rt, bundle, res: dict) -> tuple[str, int]:
    set_resources(bundle, res)
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    return cid, rt.state(cid)["pid"]


def mem_limit_file() -> tuple[str, str]:
    return ("memory", "memory.max") if unified_host() else ("memory", "memory.limit_in_bytes")


# -- memory ------------------------------------------------------------------------------------------

def test_memory_limit_and_reservation_files(rt, bundle):
    res = {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB}}
    if not unified_host():
        res["memory"].update(swappiness=20, disableOOMKiller=False)
    cid, pid = start(rt, bundle, res)
    assert int(cg_read(pid, *mem_limit_file())) == 64 * MiB
    if unified_host():
        assert int(cg_read(pid, "memory", "memory.low")) == 32 * MiB
    else:
        assert int(cg_read(pid, "memory", "memory.soft_limit_in_bytes")) == 32 * MiB
        assert cg_read(pid, "memory", "memory.swappiness") == "20"


def test_memory_swap_file(rt, bundle):
    if not swap_accounting():
        pytest.skip(NO_SWAP_ACCOUNTING)
    cid, pid = start(rt, bundle, {"memory": {"limit": 64 * MiB, "swap": 96 * MiB}})
    if unified_host():
        assert int(cg_read(pid, "memory", "memory.swap.max")) == 32 * MiB
    else:
        assert int(cg_read(pid, "memory", "memory.memsw.limit_in_bytes")) == 96 * MiB


def test_memory_limit_kills_an_allocation_past_it(rt, bundle):
    """dd's 64 MiB buffer in a 24 MiB cgroup (no swap): the OOM killer ends dd
    (SIGKILL: 137); 4 MiB fits."""
    set_resources(bundle, {"memory": limit_without_swap(24 * MiB)})
    bundle.sh("dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null; echo small=$?; "
              "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo big=$?")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, res
    assert "small=0" in res.stdout and "big=137" in res.stdout, res


def test_memory_limit_below_swap_limit_is_refused(rt, bundle):
    if unified_host():
        msg = "memory\\+swap limit should be >= memory limit"
    else:
        msg = "memsw.limit_in_bytes"  # the kernel refuses memory+swap below memory
    set_resources(bundle, {"memory": {"limit": 64 * MiB, "swap": 32 * MiB}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match=msg)


def test_swappiness_out_of_range(rt, bundle):
    set_resources(bundle, {"memory": {"swappiness": 101}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(),
            match=r"invalid memory swappiness value: 101 \(valid range is 0-100\)")


def test_kernel_memory_is_ignored_with_a_warning(rt, bundle):
    set_resources(bundle, {"memory": {"kernel": 64 * MiB, "kernelTCP": 8 * MiB}})
    bundle.set_args("true")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, res
    assert "Kernel memory settings are ignored" in res.stderr


# -- pids -------------------------------------------------------------------------------------------

def test_pids_limit_file(rt, bundle):
    cid, pid = start(rt, bundle, {"pids": {"limit": 42}})
    assert cg_read(pid, "pids", "pids.max") == "42"


@NEWER(reason="runc 1.1.5 treats pids.limit 0 as unset; runc >= 1.2 (runtime-spec 1.2.1) writes 1")
def test_pids_limit_zero_means_one(rt, bundle):
    cid, pid = start(rt, bundle, {"pids": {"limit": 0}})
    assert cg_read(pid, "pids", "pids.max") == "1"


def test_pids_limit_negative_is_unlimited(rt, bundle):
    cid, pid = start(rt, bundle, {"pids": {"limit": -1}})
    assert cg_read(pid, "pids", "pids.max") == "max"


def test_pids_limit_makes_fork_fail(rt, bundle):
    set_resources(bundle, {"pids": {"limit": 4}})
    bundle.sh("sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo all-forked' 2>/host/err; echo rc=$?")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, res
    assert "all-forked" not in res.stdout and "rc=0" not in res.stdout, res
    assert "can't fork" in bundle.host("err").read_text()


# -- cpu, cpuset --------------------------------------------------------------------------------------

def test_cpu_files(rt, bundle):
    cpus = sorted(os.sched_getaffinity(0))
    cid, pid = start(rt, bundle, {"cpu": {"shares": 512, "quota": 50000, "period": 100000,
                                          "cpus": str(cpus[0]), "mems": "0"}})
    if unified_host():
        assert cg_read(pid, "cpu", "cpu.max") == "50000 100000"
        assert cg_read(pid, "cpu", "cpu.weight") in ("59", "20")  # runc >= 1.3 / older linear formula
        assert cg_read(pid, "cpuset", "cpuset.cpus") == str(cpus[0])
    else:
        assert cg_read(pid, "cpu", "cpu.shares") == "512"
        assert cg_read(pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cg_read(pid, "cpu", "cpu.cfs_period_us") == "100000"
        assert cg_read(pid, "cpuset", "cpuset.cpus") == str(cpus[0])
        assert cg_read(pid, "cpuset", "cpuset.mems") == "0"
    # the container sees the cpuset
    res = rt.exec_(cid, "cat", "/proc/self/status")
    assert f"Cpus_allowed_list:\t{cpus[0]}" in res.stdout, res


def test_cpu_shares_out_of_range(rt, bundle):
    if unified_host():
        pytest.skip("cgroup v2 converts shares to a weight: no kernel clamping to report")
    set_resources(bundle, {"cpu": {"shares": 1}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match="the minimum allowed cpu-shares is 2")


def test_cpuset_outside_the_machine(rt, bundle):
    set_resources(bundle, {"cpu": {"cpus": str(os.cpu_count() + 7)}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match="cpuset.cpus")


@NEWER(reason="runc 1.1.5 has no cpu.burst nor cpu.idle")
def test_cpu_burst_and_idle(rt, bundle):
    burst = "cpu.max.burst" if unified_host() else "cpu.cfs_burst_us"
    for name in (burst, "cpu.idle"):
        if not kernel_has_file("cpu", name):
            pytest.skip(f"the kernel has no {name} (burst: 5.14, idle: 5.15)")
    cid, pid = start(rt, bundle, {"cpu": {"quota": 50000, "period": 100000, "burst": 20000, "idle": 1}})
    if unified_host():
        assert cg_read(pid, "cpu", "cpu.max.burst") == "20000"
    else:
        assert cg_read(pid, "cpu", "cpu.cfs_burst_us") == "20000"
    assert cg_read(pid, "cpu", "cpu.idle") == "1"


# -- block io --------------------------------------------------------------------------------------------

def test_blkio_throttle_files(rt, bundle):
    dev = root_block_device()
    if dev is None:
        pytest.skip("no block device under /")
    d = {"major": dev[0], "minor": dev[1]}
    cid, pid = start(rt, bundle, {"blockIO": {"throttleReadBpsDevice": [{**d, "rate": MiB}],
                                              "throttleWriteIOPSDevice": [{**d, "rate": 100}]}})
    key = f"{dev[0]}:{dev[1]}"
    if unified_host():
        line = next(ln for ln in cg_read(pid, "io", "io.max").splitlines() if ln.startswith(key))
        assert f"rbps={MiB}" in line and "wiops=100" in line
    else:
        assert cg_read(pid, "blkio", "blkio.throttle.read_bps_device") == f"{key} {MiB}"
        assert cg_read(pid, "blkio", "blkio.throttle.write_iops_device") == f"{key} 100"


def test_blkio_weight(rt, bundle):
    if blkio_weight_file() is None:
        pytest.skip("the kernel offers no blkio weight file (I/O schedulers without CFQ or BFQ): "
                    "test_blkio_weight_without_a_weight_file checks the error")
    cid, pid = start(rt, bundle, {"blockIO": {"weight": 300}})
    d = cgroup_dir(pid, "io" if unified_host() else "blkio")
    for name in ("blkio.weight", "blkio.bfq.weight", "io.bfq.weight"):
        if (d / name).exists():
            assert (d / name).read_text().split()[-1] == "300" or "300" in (d / name).read_text()
            return
    assert unified_host()
    assert (d / "io.weight").read_text().split()[-1] == str(1 + (300 - 10) * 9999 // 990)


def test_blkio_weight_without_a_weight_file(rt, bundle, leakcheck):
    """As runc (fs/blkio.go): without blkio.weight it writes
    blkio.bfq.weight, and a kernel without BFQ has no such file: the
    container fails, before anything is left behind."""
    if unified_host() or not has_v1("blkio"):
        pytest.skip("needs the cgroup v1 blkio controller")
    if blkio_weight_file() is not None:
        pytest.skip(f"the kernel has {blkio_weight_file()}: test_blkio_weight checks it")
    set_resources(bundle, {"blockIO": {"weight": 300}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match="blkio.bfq.weight")
    leakcheck.assert_clean()


def test_blkio_unknown_device(rt, bundle):
    set_resources(bundle, {"blockIO": {"throttleReadBpsDevice": [{"major": 4095, "minor": 77, "rate": 1}]}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match="4095:77")


# -- devices -----------------------------------------------------------------------------------------

def fuse_bundle(bundle, allow: bool):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host")

    def cfg(c):
        c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]
        if allow:
            c["linux"]["resources"]["devices"].append(
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    bundle.update(cfg)
    bundle.sh("if (exec 3<>/dev/fuse) 2>/host/err; then echo fuse=open; else echo fuse=denied; fi; "
              "(exec 4<>/dev/null) && echo null=open")


def test_denied_device_cannot_be_opened(rt, bundle):
    fuse_bundle(bundle, allow=False)
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, res
    assert "fuse=denied" in res.stdout and "null=open" in res.stdout, res
    assert "Operation not permitted" in bundle.host("err").read_text()


def test_allowed_device_can_be_opened(rt, bundle):
    fuse_bundle(bundle, allow=True)
    res = rt.run_fg(rt.new_id(), bundle)
    assert "fuse=open" in res.stdout and "null=open" in res.stdout, res


def test_devices_cgroup_list_is_runcs(rt, bundle):
    if not has_v1("devices"):
        pytest.skip("no v1 devices controller")
    cid, pid = start(rt, bundle, {})
    assert cg_read(pid, "devices", "devices.list").splitlines() == [
        "b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
        "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]


def test_invalid_device_rule_is_one_clear_error(rt, bundle, leakcheck):
    set_resources(bundle, {"devices": [{"allow": False, "type": "x", "access": "rwm"}]})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match=r'invalid cgroup device type \\?"x')
    leakcheck.assert_clean()


# -- what the host cannot honour -----------------------------------------------------------------------

def test_unified_on_v1_is_an_error(rt, bundle, leakcheck):
    if unified_host():
        pytest.skip("cgroup v2 host")
    set_resources(bundle, {"unified": {"memory.high": "1000000"}})
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(),
            match="invalid configuration: cannot use unified on cgroup v1")
    leakcheck.assert_clean()


@pytest.mark.parametrize("res", [{"memory": {"swappiness": 101}},
                                 {"devices": [{"allow": False, "type": "x", "access": "rwm"}]}])
def test_invalid_resources_are_one_line(rt, bundle, leakcheck, res):
    set_resources(bundle, res)
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), one_line=True)
    leakcheck.assert_clean()


@pytest.mark.parametrize("res, ctrl", [
    ({"network": {"classID": 0x100001}}, "net_cls"),
    ({"network": {"priorities": [{"name": "lo", "priority": 1}]}}, "net_prio"),
    ({"rdma": {"mlx5_0": {"hcaHandles": 1}}}, "rdma"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]}, "hugetlb"),
])
def test_unmounted_v1_controller_is_an_error(rt, bundle, leakcheck, res, ctrl):
    if unified_host() or has_v1(ctrl):
        pytest.skip(f"{ctrl} is available here")
    set_resources(bundle, res)
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match=f"cannot set {ctrl} limit")
    leakcheck.assert_clean()


def test_hugetlb_limit_file(rt, bundle):
    if not (unified_host() or has_v1("hugetlb")):
        pytest.skip("no hugetlb controller that runc would use")
    if not hugepage_size("2MB"):
        pytest.skip("the kernel has no 2MB huge pages")
    cid, pid = start(rt, bundle, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    name = "hugetlb.2MB.max" if unified_host() else "hugetlb.2MB.limit_in_bytes"
    assert int(cg_read(pid, "hugetlb", name)) == 4 * MiB


# -- side by side with runc ------------------------------------------------------------------------------

SKIP_FILES = ("stat", "usage", "current", "peak", "events", "pressure", "procs", "tasks", "failcnt", "numa",
              "slabinfo", "io_serv", "sectors", "time", "merged", "queued", "max_usage", "cgroup.", "notify",
              "clone_children", "effective", "memory_pressure", "oom_control", "reset_stats")


def cgroup_files(pid: int) -> dict[str, str]:
    from test_cgroups_common import cgroup_mounts
    out = {}
    for ctrl in sorted(set(cgroup_mounts())):
        d = cgroup_dir(pid, ctrl)
        if d is None or not d.is_dir():
            continue
        for name in sorted(os.listdir(d)):
            if any(s in name for s in SKIP_FILES) or not (d / name).is_file():
                continue
            try:
                out[f"{ctrl}/{name}"] = (d / name).read_text()
            except OSError as e:
                out[f"{ctrl}/{name}"] = f"error {e.errno}"
    return out


COMPARED = {
    "memory": {"limit": 80 * MiB, "swap": 120 * MiB, "reservation": 40 * MiB},
    "cpu": {"shares": 700, "quota": 30000, "period": 60000, "realtimeRuntime": 0, "cpus": "0", "mems": "0"},
    "pids": {"limit": 33},
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                {"allow": True, "type": "b", "major": 7, "access": "r"}],
}


def test_same_cgroup_files_as_runc(rt, bundle, tmp_path):
    if rt.is_runc or not os.path.exists(RUNC):
        pytest.skip("needs Debian's runc to compare with")
    res = dict(COMPARED)
    cpu = min(os.sched_getaffinity(0))
    res["cpu"] = {**res["cpu"], "cpus": str(cpu)}
    if not swap_accounting():  # both runtimes would fail (test_memory_swap_file)
        res["memory"] = {k: v for k, v in res["memory"].items() if k != "swap"}
    if not unified_host():
        res["memory"] = {**res["memory"], "swappiness": 15, "disableOOMKiller": True}
    dev = root_block_device()
    if dev:
        res["blockIO"] = {"throttleWriteBpsDevice": [{"major": dev[0], "minor": dev[1], "rate": 4 * MiB}]}
    if blkio_weight_file():  # else both runtimes fail (test_blkio_weight_without_a_weight_file)
        res.setdefault("blockIO", {})["weight"] = 250
    set_resources(bundle, res)
    ref = RuncRef(tmp_path / "runc-root")
    rcid = f"ref-{rt.token}"
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    try:
        rpid = ref.run_d(rcid, bundle.path)
        mine = cgroup_files(rt.state(cid)["pid"])
        theirs = cgroup_files(rpid)
    finally:
        ref.delete(rcid)
    assert set(mine) == set(theirs)
    diff = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
    assert not diff, diff


# -- a parent (pod) cgroup made by an engine -----------------------------------------------------

@pytest.mark.parametrize("leaf_exists", [False, True])
def test_container_under_an_empty_cpuset_pod(rt, bundle, leaf_exists):
    """update.bats' pod tests: the engine makes the pod cgroup with a plain
    mkdir in every v1 hierarchy, so its cpuset is empty; a task cannot join
    an empty cpuset (ENOSPC). As runc (cpusetEnsureParent), the container's
    create fills the pod's cpuset.cpus/mems from its parent."""
    from test_cgroups_common import cgroup_mounts
    if not has_v1("cpuset"):
        pytest.skip("no cgroup v1 cpuset hierarchy")
    top = cgroup_mounts()["cpuset"]
    pod = os.path.join(top, f"pod-{rt.token}")
    os.mkdir(pod)
    try:
        with open(os.path.join(pod, "cpuset.cpus")) as f:
            assert f.read().strip() == ""  # the kernel's empty start: what the test is about
        if leaf_exists:  # the engine made the container's own cgroup too
            os.mkdir(os.path.join(pod, "ctr"))
        with bundle.edit() as cfg:
            cfg["linux"]["cgroupsPath"] = f"/pod-{rt.token}/ctr"
        cid = rt.new_id()
        rt.run_d(cid, bundle)
        pid = rt.state(cid)["pid"]
        with open(os.path.join(top, "cpuset.cpus")) as f:
            root_cpus = f.read().strip()
        assert cg_read(pid, "cpuset", "cpuset.cpus") == root_cpus
        assert rt.ok("exec", cid, "cat", "/proc/self/status").stdout.count("Cpus_allowed_list") == 1
        rt.ok("delete", "--force", cid)
    finally:
        for d in cgroup_mounts().values():
            for p in (os.path.join(d, f"pod-{rt.token}", "ctr"), os.path.join(d, f"pod-{rt.token}")):
                if os.path.isdir(p):
                    os.rmdir(p)
