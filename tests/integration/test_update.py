"""`update`: runc's flags and -r file/stdin change a live container's cgroup,
the change shows inside, and it persists in the container's state."""
from __future__ import annotations

import json

import pytest

from test_cgroups_common import NO_SWAP_ACCOUNTING, cg_read, cgroup_dir, set_resources, swap_accounting, unified_host

MiB = 1 << 20
NEWER = pytest.mark.runc_ref_differs


@pytest.fixture
def running(rt, bundle):
    set_resources(bundle, {"memory": {"limit": 256 * MiB}, "pids": {"limit": 100}})
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    return cid, rt.state(cid)["pid"]


def mem_limit(pid: int) -> int:
    return int(cg_read(pid, "memory", "memory.max" if unified_host() else "memory.limit_in_bytes"))


def test_update_memory_with_units(rt, running):
    cid, pid = running
    rt.ok("update", "--memory", "100m", cid)
    assert mem_limit(pid) == 100 * MiB
    rt.ok("update", "--memory", "1g", cid)
    assert mem_limit(pid) == 1 << 30
    rt.ok("update", "--memory", "-1", cid)
    assert mem_limit(pid) in ((1 << 63) - 4096, (1 << 64) - 1) or cg_read(pid, "memory", "memory.max") == "max"


def test_update_memory_and_swap(rt, running):
    if not swap_accounting():
        pytest.skip(NO_SWAP_ACCOUNTING)
    cid, pid = running
    rt.ok("update", "--memory", "64m", "--memory-swap", "128m", cid)
    assert mem_limit(pid) == 64 * MiB
    d = cgroup_dir(pid, "memory")
    if unified_host():
        assert int((d / "memory.swap.max").read_text()) == 64 * MiB
    else:
        assert int((d / "memory.memsw.limit_in_bytes").read_text()) == 128 * MiB


def test_update_pids_limit_shows_inside(rt, running):
    cid, pid = running
    rt.ok("update", "--pids-limit", "3", cid)
    assert cg_read(pid, "pids", "pids.max") == "3"
    res = rt.exec_(cid, "sh", "-c", "sleep 5 & sleep 5 & sleep 5 & echo forked")
    assert "can't fork" in res.stderr and "forked" not in res.stdout, res
    rt.ok("update", "--pids-limit", "-1", cid)
    assert cg_read(pid, "pids", "pids.max") == "max"


def test_update_cpu(rt, running):
    cid, pid = running
    rt.ok("update", "--cpu-quota", "20000", "--cpu-period", "50000", "--cpu-share", "256", cid)
    if unified_host():
        assert cg_read(pid, "cpu", "cpu.max") == "20000 50000"
    else:
        assert cg_read(pid, "cpu", "cpu.cfs_quota_us") == "20000"
        assert cg_read(pid, "cpu", "cpu.cfs_period_us") == "50000"
        assert cg_read(pid, "cpu", "cpu.shares") == "256"
    # quota alone keeps the period
    rt.ok("update", "--cpu-quota", "30000", cid)
    if unified_host():
        assert cg_read(pid, "cpu", "cpu.max") == "30000 50000"
    else:
        assert cg_read(pid, "cpu", "cpu.cfs_period_us") == "50000"


def test_update_cpuset(rt, running):
    import os
    cid, pid = running
    cpu = sorted(os.sched_getaffinity(0))[-1]
    rt.ok("update", "--cpuset-cpus", str(cpu), cid)
    assert cg_read(pid, "cpuset", "cpuset.cpus") == str(cpu)
    res = rt.exec_(cid, "cat", "/proc/self/status")
    assert f"Cpus_allowed_list:\t{cpu}" in res.stdout, res


def test_update_from_file(rt, running, tmp_path):
    cid, pid = running
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"memory": {"limit": 96 * MiB}, "pids": {"limit": 50}}))
    rt.ok("update", "-r", f, cid)
    assert mem_limit(pid) == 96 * MiB
    assert cg_read(pid, "pids", "pids.max") == "50"


def test_update_from_stdin(rt, running):
    import subprocess
    cid, pid = running
    p = subprocess.run([*rt.argv(["update", "--resources", "-", cid])], input=b'{"pids": {"limit": 77}}',
                       capture_output=True, timeout=30, env={**__import__("os").environ, **dict(rt.info.env)})
    assert p.returncode == 0, p.stderr
    assert cg_read(pid, "pids", "pids.max") == "77"


def test_update_resources_file_overrides_flags(rt, running, tmp_path):
    cid, pid = running
    f = tmp_path / "res.json"
    f.write_text('{"pids": {"limit": 11}}')
    rt.ok("update", "-r", f, "--pids-limit", "12", cid)
    assert cg_read(pid, "pids", "pids.max") == "11"


def test_update_kernel_memory_warns(rt, running):
    cid, pid = running
    res = rt.ok("update", "--kernel-memory", "10m", cid)
    assert "Kernel memory settings are ignored" in res.stderr


def test_update_paused_container(rt, running):
    cid, pid = running
    rt.ok("pause", cid)
    rt.ok("update", "--pids-limit", "21", cid)
    assert cg_read(pid, "pids", "pids.max") == "21"
    assert rt.status(cid) == "paused"  # update.bats: an update does not thaw it
    rt.ok("resume", cid)
    assert rt.status(cid) == "running"


def test_update_created_container(rt, bundle):
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.ok("update", "--pids-limit", "9", cid)
    assert cg_read(rt.state(cid)["pid"], "pids", "pids.max") == "9"


def test_update_stopped_container(rt, bundle):
    bundle.set_args("true")
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.start(cid)
    rt.wait_status(cid, "stopped")
    rt.fail("update", "--pids-limit", "9", cid, match="container not running", one_line=True)


def test_update_unknown_container(rt):
    rt.fail("update", "--pids-limit", "9", "nosuch", match="container does not exist", one_line=True)


@pytest.mark.parametrize("args, match", [
    (["--memory", "1x"], "invalid value for memory"),
    (["--cpu-share", "abc"], "invalid value for cpu-share"),
    (["--cpu-quota", "1.5"], "invalid value for cpu-quota"),
    (["--pids-limit", "abc"], "pids-limit"),
])
def test_update_invalid_values(rt, running, args, match):
    cid, pid = running
    rt.fail("update", *args, cid, match=match, one_line=True)
    assert cg_read(pid, "pids", "pids.max") == "100"


def test_update_refused_value_keeps_the_old_one(rt, running):
    if unified_host():
        pytest.skip("v1 cpu.shares clamping")
    cid, pid = running
    rt.ok("update", "--cpu-share", "300", cid)
    rt.fail("update", "--cpu-share", "1", cid, match="the minimum allowed cpu-shares is 2")


def test_update_l3_cache_schema_without_rdt(rt, running):
    import os
    if os.path.isdir("/sys/fs/resctrl/info"):
        pytest.skip("Intel RDT present")
    rt.fail("update", "--l3-cache-schema", "L3:0=f", running[0], match="Intel RDT/CAT: l3 cache schema is not enabled",
            one_line=True)
    rt.fail("update", "--mem-bw-schema", "MB:0=70", running[0], match="Intel RDT/MBA", one_line=True)


def test_update_needs_exactly_one_id(rt):
    rt.fail("update", "--pids-limit", "1", match="update")


def test_update_persists_in_state(rt, running):
    if rt.is_runc:
        pytest.skip("pyrunc's state.json layout")
    cid, pid = running
    rt.ok("update", "--memory", "128m", "--cpu-quota", "10000", cid)
    rt.ok("update", "--pids-limit", "30", cid)
    st = json.loads((rt.root / cid / "state.json").read_text())
    res = st["config"]["linux"]["resources"]
    assert res["memory"]["limit"] == 128 * MiB
    assert res["cpu"]["quota"] == 10000
    assert res["pids"]["limit"] == 30
    assert res["devices"]  # untouched


@NEWER(reason="runc 1.1.5 has no --cpu-burst / --cpu-idle")
def test_update_cpu_burst_and_idle(rt, running):
    cid, pid = running
    rt.ok("update", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpu-burst", "1000", cid)
    assert cg_read(pid, "cpu", "cpu.max.burst" if unified_host() else "cpu.cfs_burst_us") == "1000"
    rt.ok("update", "--cpu-idle", "1", cid)
    assert cg_read(pid, "cpu", "cpu.idle") == "1"


# -- update.bats, behaviour by behaviour -----------------------------------------------------

BATS_SETUP = {"memory": {"limit": 32 * MiB, "reservation": 24 * MiB},
              "cpu": {"shares": 100, "quota": 500000, "period": 1000000}, "pids": {"limit": 20}}


def _stdin_update(rt, cid, doc: dict):
    import os
    import subprocess
    p = subprocess.run(rt.argv(["update", "-r", "-", cid]), input=json.dumps(doc).encode(), capture_output=True,
                       timeout=30, env={**os.environ, **dict(rt.info.env)})
    return p.returncode, p.stderr.decode()


@pytest.fixture
def bats_ctr(rt, bundle):
    """update.bats' setup(): known memory, cpu and pids values."""
    set_resources(bundle, json.loads(json.dumps(BATS_SETUP)))
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    return cid, rt.state(cid)["pid"]


def _v1_only(ctrl: str) -> None:
    from test_cgroups_common import has_v1
    if not has_v1(ctrl):
        pytest.skip(f"cgroup v1 {ctrl} controller needed")


def test_bats_v1_memory_and_swap_order(rt, bats_ctr):
    """update.bats "common limits" on v1: memsw ordering and unlimited swap."""
    _v1_only("memory")
    cid, pid = bats_ctr
    d = cgroup_dir(pid, "memory")
    if not (d / "memory.memsw.limit_in_bytes").exists():
        pytest.skip("no swap accounting")
    unlimited = (d.parent / "memory.limit_in_bytes").read_text().strip()
    assert cg_read(pid, "memory", "memory.soft_limit_in_bytes") == str(24 * MiB)
    rt.ok("update", "--memory-swap", "-1", cid)
    assert cg_read(pid, "memory", "memory.memsw.limit_in_bytes") == unlimited
    rt.ok("update", "--memory-swap", "96468992", cid)
    assert cg_read(pid, "memory", "memory.memsw.limit_in_bytes") == "96468992"
    rt.ok("update", "--memory", "-1", cid)  # both limits go
    assert cg_read(pid, "memory", "memory.limit_in_bytes") == unlimited
    assert cg_read(pid, "memory", "memory.memsw.limit_in_bytes") == unlimited
    rt.ok("update", "--memory", "30M", "--memory-swap", "50M", cid)
    assert (mem_limit(pid), int(cg_read(pid, "memory", "memory.memsw.limit_in_bytes"))) == (30 * MiB, 50 * MiB)
    rt.ok("update", "--memory", "60M", "--memory-swap", "80M", cid)  # memory above the old swap: swap first
    assert (mem_limit(pid), int(cg_read(pid, "memory", "memory.memsw.limit_in_bytes"))) == (60 * MiB, 80 * MiB)


def test_bats_all_at_once_and_back(rt, bats_ctr, tmp_path):
    cid, pid = bats_ctr
    rt.ok("update", "--cpu-period", "900000", "--cpu-quota", "600000", "--cpu-share", "200",
          "--memory", "67108864", "--memory-reservation", "33554432", "--pids-limit", "10", cid)
    assert mem_limit(pid) == 64 * MiB and cg_read(pid, "pids", "pids.max") == "10"
    f = tmp_path / "res.json"
    f.write_text(json.dumps({**BATS_SETUP, "cpu": {**BATS_SETUP["cpu"], "cpus": "0"}}))
    rt.ok("update", "-r", f, cid)
    assert mem_limit(pid) == 32 * MiB and cg_read(pid, "pids", "pids.max") == "20"
    assert cg_read(pid, "cpuset", "cpuset.cpus") == "0"
    if not unified_host():
        assert cg_read(pid, "memory", "memory.soft_limit_in_bytes") == str(24 * MiB)
        assert (cg_read(pid, "cpu", "cpu.cfs_quota_us"), cg_read(pid, "cpu", "cpu.cfs_period_us"),
                cg_read(pid, "cpu", "cpu.shares")) == ("500000", "1000000", "100")


@NEWER(reason="runc 1.2+: pids.limit 0 is 1")
def test_bats_pids_limit(rt, bats_ctr):
    cid, pid = bats_ctr
    for arg, want in (("12345", "12345"), ("-1", "max"), ("0", "1")):
        rt.ok("update", "--pids-limit", arg, cid)
        assert cg_read(pid, "pids", "pids.max") == want


def test_bats_cpu_quota_and_period(rt, bats_ctr):
    """update.bats "update cgroup cpu limits" (v1 files)."""
    _v1_only("cpu")
    cid, pid = bats_ctr

    def quota():
        return cg_read(pid, "cpu", "cpu.cfs_quota_us"), cg_read(pid, "cpu", "cpu.cfs_period_us")
    assert quota() == ("500000", "1000000")
    rt.ok("update", "--cpu-period", "900000", cid)
    assert quota() == ("500000", "900000")
    rt.ok("update", "--cpu-quota", "600000", cid)
    assert quota() == ("600000", "900000")
    rt.ok("update", "--cpu-quota", "-1", cid)
    assert quota() == ("-1", "900000")
    rt.ok("update", "--cpu-quota", "-1", "--cpu-period", "100000", cid)
    assert quota() == ("-1", "100000")


@pytest.mark.parametrize("flag, want", [("--cpu-period", ("-1", "50000")), ("--cpu-quota", ("30000", "100000"))])
def test_bats_cpu_one_value_without_previous(rt, bundle, flag, want):
    """update.bats "update cpu period/quota with no previous period/quota set"."""
    _v1_only("cpu")
    set_resources(bundle, {"cpu": {}})
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pid = rt.state(cid)["pid"]
    rt.ok("update", flag, want[1] if flag == "--cpu-period" else want[0], cid)
    assert (cg_read(pid, "cpu", "cpu.cfs_quota_us"), cg_read(pid, "cpu", "cpu.cfs_period_us")) == want


@NEWER(reason="runc 1.1.5 has no --cpu-burst")
def test_bats_cpu_burst_survives_unrelated_update(rt, bats_ctr):
    cid, pid = bats_ctr
    knob = "cpu.max.burst" if unified_host() else "cpu.cfs_burst_us"
    if cgroup_dir(pid, "cpu") is None or not (cgroup_dir(pid, "cpu") / knob).exists():
        pytest.skip("no cpu burst in this kernel")
    rt.ok("update", "--cpu-period", "900000", "--cpu-burst", "500000", cid)
    assert cg_read(pid, "cpu", knob) == "500000"
    rt.ok("update", "--memory", "100M", cid)
    assert cg_read(pid, "cpu", knob) == "500000"
    rt.ok("update", "--cpu-period", "900000", "--cpu-burst", "0", cid)
    assert cg_read(pid, "cpu", knob) == "0"


@NEWER(reason="runc 1.1.5 has no cpu.idle")
def test_bats_cpu_idle(rt, bats_ctr):
    cid, pid = bats_ctr
    d = cgroup_dir(pid, "cpu")
    if d is None or not (d / "cpu.idle").exists():
        pytest.skip("no cpu.idle in this kernel")
    for v in (1, 0, 1):
        assert _stdin_update(rt, cid, {"cpu": {"idle": v}})[0] == 0
        assert cg_read(pid, "cpu", "cpu.idle") == str(v)
    for v in ("1", "0", "1"):
        rt.ok("update", "--cpu-idle", v, cid)
        assert cg_read(pid, "cpu", "cpu.idle") == v
    for v in ("-1", "2", "3"):  # the kernel takes 0 or 1 only
        rt.fail("update", "--cpu-idle", v, cid, match="cpu.idle: invalid argument", one_line=True)
        assert cg_read(pid, "cpu", "cpu.idle") == "1"
    rt.ok("update", "--cpu-period", "10000", cid)  # another option leaves it
    assert cg_read(pid, "cpu", "cpu.idle") == "1"


def test_bats_cpuset_keys_in_any_case(rt, bats_ctr):
    """update.bats "update cpuset parameters via resources.CPU": Go's JSON
    decoder matches field names case-insensitively ({"CPU": {"Cpus": ...}})."""
    import os
    cid, pid = bats_ctr
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("two cpus needed")
    for cpu in (cpus[1], cpus[0]):
        rc, err = _stdin_update(rt, cid, {"CPU": {"Cpus": str(cpu)}})
        assert rc == 0, err
        assert cg_read(pid, "cpuset", "cpuset.cpus") == str(cpu)


def _pod(rt, bundle, resources: dict):
    """A container in a pod cgroup of its own (a parent directory it is the
    only child of); returns (cid, pid, the pod's dirs in every hierarchy)."""
    pod = f"pod-{rt.token}"
    cid = rt.new_id()
    bundle.config.setdefault("linux", {})["cgroupsPath"] = f"{pod}/{cid}"
    bundle.save()
    set_resources(bundle, resources)
    rt.run_d(cid, bundle)
    pid = rt.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        ctrls = [ln.split(":", 2)[1] for ln in f.read().splitlines()]
    dirs = {c: cgroup_dir(pid, c.split(",")[0]).parent for c in ctrls}
    return cid, pid, dirs


def _rm_pod(rt, cid, dirs) -> None:
    rt.ok("delete", "--force", cid)
    for d in dirs.values():
        if d.exists():
            d.rmdir()


@NEWER(reason="runc 1.1.5 writes the period before the quota and fails")
def test_bats_cpu_period_in_pod_with_limit(rt, bundle):
    """update.bats "update cpu period in a pod cgroup with pod limit set" (v1):
    a smaller period is written after the quota, or old_quota/new_period
    would exceed the pod's 50%."""
    _v1_only("cpu")
    cid, pid, dirs = _pod(rt, bundle, {"cpu": {"quota": 500000, "period": 1000000}})
    try:
        pod_cpu = next(d for c, d in dirs.items() if "cpu" in c.split(","))
        (pod_cpu / "cpu.cfs_quota_us").write_text("50000")
        assert (pod_cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        cur = int(cg_read(pid, "cpu", "cpu.cfs_period_us"))
        rt.fail("update", "--cpu-quota", str(cur * 6 // 10), cid, rc=1, match="cfs_quota_us: invalid argument",
                one_line=True)  # 60% is more than the pod has
        assert cg_read(pid, "cpu", "cpu.cfs_quota_us") == "500000"
        rt.ok("update", "--cpu-period", "10000", "--cpu-quota", "3000", cid)
        assert (cg_read(pid, "cpu", "cpu.cfs_quota_us"), cg_read(pid, "cpu", "cpu.cfs_period_us")) == ("3000", "10000")
        rt.ok("update", "--cpu-period", "1000000", "--cpu-quota", "500000", cid)  # and back up
        assert (cg_read(pid, "cpu", "cpu.cfs_quota_us"), cg_read(pid, "cpu", "cpu.cfs_period_us")) == \
            ("500000", "1000000")
    finally:
        _rm_pod(rt, cid, dirs)


@NEWER(reason="runc 1.1.5 writes the rt period first and fails (#4094)")
def test_bats_rt_period_and_runtime(rt, bundle):
    """update.bats "update rt period and runtime" (v1, CONFIG_RT_GROUP_SCHED):
    the runtime is written first when the new period is too small for the
    old runtime (#4094)."""
    from test_cgroups_common import cgroup_mounts
    _v1_only("cpu")
    top = __import__("pathlib").Path(cgroup_mounts()["cpu"])
    if not (top / "cpu.rt_runtime_us").exists():
        pytest.skip("no realtime group scheduling in this kernel")
    root_period, root_runtime = ((top / f).read_text().strip() for f in ("cpu.rt_period_us", "cpu.rt_runtime_us"))
    # the pod gets the root's realtime budget, so the container may have some
    pod = f"pod-{rt.token}"
    own = next(ln.split(":", 2)[2] for ln in open("/proc/self/cgroup").read().splitlines()
               if "cpu" in ln.split(":", 2)[1].split(","))
    pod_cpu = top / own.lstrip("/") / pod
    chain = [p for p in reversed(pod_cpu.relative_to(top).parents) if str(p) != "."] + [pod_cpu.relative_to(top)]
    made = []
    try:
        for rel in chain:
            d = top / rel
            if not d.exists():
                d.mkdir()
                made.append(d)
            if int((d / "cpu.rt_runtime_us").read_text()) == 0:
                (d / "cpu.rt_period_us").write_text(root_period)
                try:
                    (d / "cpu.rt_runtime_us").write_text(root_runtime)
                except OSError as e:  # EINVAL: siblings already hold part of the budget
                    pytest.skip(f"the root's realtime budget is taken by other cgroups: {e.strerror}")
        cid, pid, dirs = _pod(rt, bundle, {"cpu": {}})
        try:
            d = cgroup_dir(pid, "cpu")
            # runc's setup gives the container the root's values; so does this
            (d / "cpu.rt_period_us").write_text(root_period)
            (d / "cpu.rt_runtime_us").write_text(root_runtime)

            def rtv():
                return (d / "cpu.rt_period_us").read_text().strip(), (d / "cpu.rt_runtime_us").read_text().strip()
            assert _stdin_update(rt, cid, {"cpu": {"realtimeRuntime": 500001}})[0] == 0
            assert rtv() == (root_period, "500001")
            assert _stdin_update(rt, cid, {"cpu": {"realtimePeriod": 800001, "realtimeRuntime": 500001}})[0] == 0
            assert rtv() == ("800001", "500001")
            for period, runtime in (("900001", "600001"), ("10000", "3000"), ("100000", "20000")):
                rt.ok("update", "--cpu-rt-period", period, "--cpu-rt-runtime", runtime, cid)
                assert rtv() == (period, runtime)
        finally:
            _rm_pod(rt, cid, dirs)
    finally:
        for d in reversed(made):
            if d.exists():
                d.rmdir()


def test_bats_devices_minimal_transitions(rt, bundle):
    """update.bats "update devices [minimal transition rules]": while updates
    run, a container that reads /dev/kmsg (denied) and writes /dev/null
    (allowed) never sees either change."""
    with bundle.edit() as cfg:
        cfg["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"},
                                                {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]
        cfg["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
        for k in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][k].append("CAP_SYSLOG")
        cfg["process"]["args"] = ["sh", "-c", "while true; do head -c 100 /dev/kmsg 2>/dev/null >> /host/out; "
                                  "echo x 2>> /host/err > /dev/null; done"]
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pid = rt.state(cid)["pid"]
    for _ in range(30):
        rt.ok("update", "--pids-limit", "30", cid)
    assert cg_read(pid, "pids", "pids.max") == "30"
    assert (bundle.hostdir / "out").read_text() == ""
    assert (bundle.hostdir / "err").read_text() == ""
    rt.ok("delete", "--force", cid)


@NEWER(reason="runc 1.1.5 rewrites the config's duplicate after the update")
def test_bats_per_device_throttle_upserts(rt, bundle):
    """update.bats "update per-device iops/bps values": a device listed twice
    in the config is updated once (the last entry), new ones are added."""
    from test_cgroups_common import root_block_device
    dev = root_block_device()
    if dev is None:
        pytest.skip("no block device to throttle")
    major, minor = dev
    set_resources(bundle, {"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 485760}] * 2}})
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pid = rt.state(cid)["pid"]
    rates = {"throttleReadBpsDevice": 10485760, "throttleWriteBpsDevice": 9437184,
             "throttleReadIOPSDevice": 1000, "throttleWriteIOPSDevice": 900}
    rc, err = _stdin_update(rt, cid, {"blockIO": {k: [{"major": major, "minor": minor, "rate": v}]
                                                  for k, v in rates.items()}})
    assert rc == 0, err
    if unified_host():
        line = next(ln for ln in cg_read(pid, "io", "io.max").splitlines() if ln.startswith(f"{major}:{minor} "))
        assert line.split()[1:] == ["rbps=10485760", "wbps=9437184", "riops=1000", "wiops=900"]
    else:
        for f, v in (("read_bps", 10485760), ("write_bps", 9437184), ("read_iops", 1000), ("write_iops", 900)):
            assert cg_read(pid, "blkio", f"blkio.throttle.{f}_device") == f"{major}:{minor} {v}"
    if not rt.is_runc:
        st = json.loads((rt.root / cid / "state.json").read_text())
        bio = st["config"]["linux"]["resources"]["blockIO"]
        assert [e["rate"] for e in bio["throttleReadBpsDevice"]] == [485760, 10485760]
        assert bio["throttleWriteIOPSDevice"] == [{"major": major, "minor": minor, "rate": 900}]
