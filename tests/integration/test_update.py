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
    rt.ok("resume", cid)


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
