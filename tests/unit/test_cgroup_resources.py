"""linux.resources -> cgroup files, v1 and v2, against fake cgroupfs trees.

The trees are directories of pre-created files with the kernel's defaults: a
write to a file the kernel would not have fails with ENOENT, as on cgroupfs.
Every write goes through resources._write_file, which the fixture records
(in order) and emulates where the kernel has behaviour that runc relies on
(devices.list after devices.allow/deny, cpu.shares clamping, EBUSY on a memory
limit below usage, subtree_control enabling controllers in the children).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyrunc.cgroups import devices as D
from pyrunc.cgroups import resources as R
from pyrunc.errors import PyruncError

V1_FILES = {
    "cpuset": {"cpuset.cpus": "0-1", "cpuset.mems": "0"},
    "cpu,cpuacct": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
                    "cpu.cfs_burst_us": "0", "cpu.idle": "0", "cpu.rt_period_us": "1000000",
                    "cpu.rt_runtime_us": "0", "cpuacct.usage": "0"},
    "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712", "memory.oom_control": "oom_kill_disable 0",
               "memory.swappiness": "60", "memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "pids": {"pids.max": "max"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": ""},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "max", "hugetlb.2MB.rsvd.limit_in_bytes": "max",
                "hugetlb.1GB.limit_in_bytes": "max", "hugetlb.1GB.rsvd.limit_in_bytes": "max"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": ""},
    "rdma": {"rdma.max": ""},
    "freezer": {"freezer.state": "THAWED"},
}

V2_FILES = {"cgroup.type": "domain", "cgroup.controllers": "", "cgroup.subtree_control": "",
            "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0"}
V2_CTRL_FILES = {
    "pids": {"pids.max": "max", "pids.current": "0"},
    "memory": {"memory.max": "max", "memory.low": "0", "memory.high": "max", "memory.swap.max": "max",
               "memory.current": "0"},
    "io": {"io.weight": "default 100", "io.max": ""},
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "hugetlb": {"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max"},
    "rdma": {"rdma.max": ""},
}


class FakeFS:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.writes: list[tuple[str, str, str]] = []  # (key of the dir, file, data)
        self.fail: dict[str, int] = {}                # file -> errno of the next write
        self.keys: dict[str, str] = {}
        self.shares_range = (2, 262144)
        self.usage = 0

    def make(self, key: str, rel: str, files: dict[str, str]) -> str:
        d = self.root / rel
        d.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (d / name).write_text(content)
        self.keys[str(d)] = key
        return str(d)

    def write(self, dirpath: str, name: str, data: str) -> None:
        path = os.path.join(dirpath, name)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.writes.append((self.keys.get(dirpath, dirpath), name, data))
        if name in self.fail:
            raise OSError(self.fail.pop(name), os.strerror(errno.EINVAL))
        if name in ("devices.allow", "devices.deny"):
            return self._devices(dirpath, name, data)
        if name == "cpu.shares":
            lo, hi = self.shares_range
            data = str(min(max(int(data), lo), hi))
        if name == "memory.limit_in_bytes" and 0 < int(data) < self.usage:
            raise OSError(errno.EBUSY, "Device or resource busy")
        if name == "cgroup.subtree_control":
            return self._subtree(dirpath, data)
        Path(path).write_text(data)

    def _devices(self, d: str, name: str, data: str) -> None:
        """The kernel's v1 semantics: "a" switches mode; otherwise an exception
        is added, or (exactly matching) permissions are removed from one."""
        lst = Path(d, "devices.list")
        emu = D.Emulator.from_list(lst.read_text())
        t, mm, perms = data.split()
        major, minor = mm.split(":")
        meta = (t, -1 if major == "*" else int(major), -1 if minor == "*" else int(minor))
        allow = name == "devices.allow"
        if t == "a":
            emu.default_allow, emu.rules = allow, {}
        elif allow != emu.default_allow:
            emu.rules[meta] = emu.rules.get(meta, 0) | D._perm_set(perms)
        else:
            left = emu.rules.get(meta, 0) & ~D._perm_set(perms)
            emu.rules.pop(meta, None)
            if left:
                emu.rules[meta] = left
        lst.write_text(render_list(emu))

    def _subtree(self, d: str, data: str) -> None:
        ctrl = data.lstrip("+")
        sc = Path(d, "cgroup.subtree_control")
        words = sc.read_text().split()
        if ctrl not in Path(d, "cgroup.controllers").read_text().split():
            raise OSError(errno.ENOENT, "No such file or directory")
        sc.write_text(" ".join(words + [ctrl]))
        for child in Path(d).iterdir():
            if child.is_dir():
                cc = child / "cgroup.controllers"
                cc.write_text(" ".join(cc.read_text().split() + [ctrl]))
                for fname, content in V2_CTRL_FILES.get(ctrl, {}).items():
                    if not (child / fname).exists():
                        (child / fname).write_text(content)

    def files(self, key: str) -> list[tuple[str, str]]:
        return [(f, v) for k, f, v in self.writes if k == key]

    def read(self, d: str, name: str) -> str:
        return Path(d, name).read_text()


def render_list(emu: D.Emulator) -> str:
    """devices.list as the kernel shows it."""
    if emu.is_blacklist():
        return "a *:* rwm\n"
    out = []
    for (t, major, minor), bits in emu._ordered():
        out.append(f"{t} {'*' if major < 0 else major}:{'*' if minor < 0 else minor} {D._perm_str(bits)}\n")
    return "".join(out)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fs = FakeFS(tmp_path)
    monkeypatch.setattr(R, "_write_file", fs.write)
    monkeypatch.setattr(D, "running_in_userns", lambda: False)
    return fs


@pytest.fixture
def v1(fake):
    """paths of a fake v1 host (cpu and cpuacct co-mounted, like many distros)."""
    paths = {}
    for key, files in V1_FILES.items():
        paths[key] = fake.make(key, f"{key}/ctr", files)
    return paths


@pytest.fixture
def v2(fake):
    """paths of a fake unified host: root -> parent -> ctr, controllers only
    enabled in the root's cgroup.controllers."""
    all_ctrls = " ".join(V2_CTRL_FILES)
    fake.make("root", "unified", {"cgroup.controllers": all_ctrls, "cgroup.subtree_control": ""})
    fake.make("parent", "unified/parent", {**V2_FILES})
    d = fake.make("", "unified/parent/ctr", {**V2_FILES})
    return {"": d}


def apply(paths, res, **kw):
    warnings = []
    R.apply_resources(paths, res, warn=warnings.append, **kw)
    return warnings


# -- v1 memory ----------------------------------------------------------------------------

def test_v1_memory_all_fields(v1, fake):
    apply(v1, {"memory": {"limit": 100 << 20, "swap": 200 << 20, "reservation": 50 << 20,
                          "disableOOMKiller": True, "swappiness": 30}}, skip_devices=True)
    # the current limit (unlimited) is above the new swap: memory first, then memory+swap
    assert fake.files("memory") == [
        ("memory.limit_in_bytes", str(100 << 20)), ("memory.memsw.limit_in_bytes", str(200 << 20)),
        ("memory.soft_limit_in_bytes", str(50 << 20)), ("memory.oom_control", "1"), ("memory.swappiness", "30")]


def test_v1_memory_raising_limit_writes_swap_first(v1, fake):
    Path(v1["memory"], "memory.limit_in_bytes").write_text(str(10 << 20))
    apply(v1, {"memory": {"limit": 100 << 20, "swap": 200 << 20}}, skip_devices=True)
    assert [f for f, _ in fake.files("memory")] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_memory_unlimited_sets_swap_unlimited(v1, fake):
    apply(v1, {"memory": {"limit": -1}}, skip_devices=True)
    assert fake.files("memory") == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_memory_without_swap_accounting(v1, fake):
    os.unlink(os.path.join(v1["memory"], "memory.memsw.limit_in_bytes"))
    apply(v1, {"memory": {"limit": -1}}, skip_devices=True)
    assert fake.files("memory") == [("memory.limit_in_bytes", "-1")]
    with pytest.raises(PyruncError, match="memory.memsw.limit_in_bytes"):
        apply(v1, {"memory": {"limit": 1 << 20, "swap": 2 << 20}}, skip_devices=True)


def test_v1_memory_limit_below_usage(v1, fake):
    fake.usage = 1 << 20
    with pytest.raises(PyruncError, match=r"unable to set memory limit to 4096 \(current usage: 4096, peak usage: 8192\)"):
        apply(v1, {"memory": {"limit": 4096}}, skip_devices=True)


def test_v1_memory_zero_means_unset(v1, fake):
    apply(v1, {"memory": {"limit": 0, "swap": 0, "reservation": 0, "disableOOMKiller": False}}, skip_devices=True)
    assert fake.writes == []


@pytest.mark.parametrize("bad", [101, 200, -2])
def test_swappiness_range(v1, fake, bad):
    with pytest.raises(PyruncError, match=f"invalid memory swappiness value: {bad} \\(valid range is 0-100\\)"):
        apply(v1, {"memory": {"swappiness": bad}, "pids": {"limit": 5}}, skip_devices=True)
    assert fake.writes == []  # validated before anything is written


def test_swappiness_unset_values(v1, fake):
    apply(v1, {"memory": {"swappiness": -1}}, skip_devices=True)
    apply(v1, {"memory": {"swappiness": (1 << 64) - 1}}, skip_devices=True)
    assert fake.writes == []


def test_kernel_memory_is_ignored_with_runc_warning(v1, fake):
    w = apply(v1, {"memory": {"kernel": 1 << 20, "kernelTCP": 1 << 20}}, skip_devices=True)
    assert w == ["Kernel memory settings are ignored and will be removed"]
    assert fake.writes == []


# -- v1 cpu, cpuset, pids -------------------------------------------------------------------

def test_v1_cpu_all_fields(v1, fake):
    apply(v1, {"cpu": {"shares": 512, "quota": 50000, "period": 200000, "burst": 1000, "idle": 1,
                       "realtimeRuntime": 950, "realtimePeriod": 1000000, "cpus": "1", "mems": "0"}},
          skip_devices=True)
    assert fake.files("cpuset") == [("cpuset.cpus", "1"), ("cpuset.mems", "0")]
    assert fake.files("cpu,cpuacct") == [
        ("cpu.shares", "512"), ("cpu.cfs_period_us", "200000"), ("cpu.cfs_burst_us", "1000"),
        ("cpu.cfs_quota_us", "50000"), ("cpu.idle", "1"), ("cpu.rt_period_us", "1000000"),
        ("cpu.rt_runtime_us", "950")]


def test_v1_cpu_period_retried_after_quota(v1, fake):
    fake.fail["cpu.cfs_period_us"] = errno.EINVAL
    apply(v1, {"cpu": {"quota": 5000, "period": 10000}}, skip_devices=True)
    assert fake.files("cpu,cpuacct") == [("cpu.cfs_period_us", "10000"), ("cpu.cfs_quota_us", "5000"),
                                         ("cpu.cfs_period_us", "10000")]


def test_v1_cpu_period_einval_without_quota_fails(v1, fake):
    fake.fail["cpu.cfs_period_us"] = errno.EINVAL
    with pytest.raises(PyruncError, match=r'failed to write "10000": write .*cpu.cfs_period_us: invalid argument'):
        apply(v1, {"cpu": {"period": 10000}}, skip_devices=True)


def test_v1_cpu_burst_missing_knob_ignored(v1, fake):
    os.unlink(os.path.join(v1["cpu,cpuacct"], "cpu.cfs_burst_us"))
    apply(v1, {"cpu": {"burst": 10}}, skip_devices=True)


@pytest.mark.parametrize("shares, msg", [(1, "the minimum allowed cpu-shares is 2"),
                                         (300000, "the maximum allowed cpu-shares is 262144")])
def test_v1_cpu_shares_read_back(v1, fake, shares, msg):
    with pytest.raises(PyruncError, match=msg):
        apply(v1, {"cpu": {"shares": shares}}, skip_devices=True)


@pytest.mark.parametrize("limit, want", [(5, "5"), (0, "1"), (-1, "max")])
def test_v1_pids(v1, fake, limit, want):
    apply(v1, {"pids": {"limit": limit}}, skip_devices=True)
    assert fake.files("pids") == [("pids.max", want)]


# -- v1 blkio, hugetlb, net, rdma, unified ----------------------------------------------------

def test_v1_blkio_bfq_and_throttle(v1, fake):
    dev = {"major": 8, "minor": 0}
    apply(v1, {"blockIO": {"weight": 300, "weightDevice": [{**dev, "weight": 200}],
                           "throttleReadBpsDevice": [{**dev, "rate": 1000}],
                           "throttleWriteBpsDevice": [{**dev, "rate": 2000}],
                           "throttleReadIOPSDevice": [{**dev, "rate": 30}],
                           "throttleWriteIOPSDevice": [{**dev, "rate": 40}]}}, skip_devices=True)
    assert fake.files("blkio") == [
        ("blkio.bfq.weight", "300"), ("blkio.bfq.weight_device", "8:0 200"),
        ("blkio.throttle.read_bps_device", "8:0 1000"), ("blkio.throttle.write_bps_device", "8:0 2000"),
        ("blkio.throttle.read_iops_device", "8:0 30"), ("blkio.throttle.write_iops_device", "8:0 40")]


def test_v1_blkio_cfq_files_when_present(v1, fake):
    for f in ("blkio.weight", "blkio.weight_device", "blkio.leaf_weight", "blkio.leaf_weight_device"):
        Path(v1["blkio"], f).write_text("")
    apply(v1, {"blockIO": {"weight": 300, "leafWeight": 400,
                           "weightDevice": [{"major": 8, "minor": 0, "weight": 200, "leafWeight": 100}]}},
          skip_devices=True)
    assert fake.files("blkio") == [("blkio.weight", "300"), ("blkio.leaf_weight", "400"),
                                   ("blkio.weight_device", "8:0 200"), ("blkio.leaf_weight_device", "8:0 100")]


def test_v1_hugetlb(v1, fake):
    apply(v1, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}]},
          skip_devices=True)
    assert fake.files("hugetlb") == [
        ("hugetlb.2MB.limit_in_bytes", str(4 << 20)), ("hugetlb.2MB.rsvd.limit_in_bytes", str(4 << 20)),
        ("hugetlb.1GB.limit_in_bytes", "0"), ("hugetlb.1GB.rsvd.limit_in_bytes", "0")]


def test_v1_hugetlb_without_rsvd(v1, fake):
    for ps in ("2MB", "1GB"):
        os.unlink(os.path.join(v1["hugetlb"], f"hugetlb.{ps}.rsvd.limit_in_bytes"))
    apply(v1, {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}, {"pageSize": "1GB", "limit": 2}]},
          skip_devices=True)
    assert fake.files("hugetlb") == [("hugetlb.2MB.limit_in_bytes", "1"), ("hugetlb.1GB.limit_in_bytes", "2")]


def test_v1_hugetlb_unknown_page_size(v1, fake):
    with pytest.raises(PyruncError, match="page size 3MB is not supported"):
        apply(v1, {"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, skip_devices=True)


def test_v1_network_and_rdma(v1, fake):
    apply(v1, {"network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5},
                                                                {"name": "lo", "priority": 2}]},
               "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1}}},
          skip_devices=True)
    assert fake.files("net_cls") == [("net_cls.classid", str(0x100001))]
    assert fake.files("net_prio") == [("net_prio.ifpriomap", "eth0 5"), ("net_prio.ifpriomap", "lo 2")]
    assert fake.files("rdma") == [("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
                                  ("rdma.max", "mlx4_0 hca_object=1")]


@pytest.mark.parametrize("res, ctrl", [
    ({"network": {"classID": 1}}, "net_cls"),
    ({"network": {"priorities": [{"name": "eth0", "priority": 1}]}}, "net_prio"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 1}}}, "rdma"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, "hugetlb"),
    ({"pids": {"limit": 3}}, "pids"),
])
def test_v1_missing_controller_is_one_clear_error(v1, fake, res, ctrl):
    del v1[ctrl]
    with pytest.raises(PyruncError, match=f"cannot set {ctrl} limit: no {ctrl} controller"):
        apply(v1, res, skip_devices=True)


def test_v1_missing_controller_ok_when_unused(v1, fake):
    for k in ("net_cls", "net_prio", "rdma", "hugetlb"):
        del v1[k]
    apply(v1, {"network": {"classID": 0}, "rdma": {}, "hugepageLimits": []}, skip_devices=True)
    assert fake.writes == []


def test_unified_on_v1_is_an_error(v1, fake):
    with pytest.raises(PyruncError, match="invalid configuration: cannot use unified on cgroup v1"):
        apply(v1, {"unified": {"memory.high": "1"}, "pids": {"limit": 1}})
    assert fake.writes == []


def test_hybrid_host_uses_v1(v1, fake, tmp_path):
    v1[""] = fake.make("", "unified/ctr", V2_FILES)
    apply(v1, {"pids": {"limit": 7}}, skip_devices=True)
    assert fake.files("pids") == [("pids.max", "7")]
    with pytest.raises(PyruncError, match="cannot use unified on cgroup v1"):
        apply(v1, {"unified": {"pids.max": "1"}}, skip_devices=True)


# -- v1 devices ----------------------------------------------------------------------------------

DEFAULT_LIST = """b *:* m
c *:* m
c 1:3 rwm
c 1:5 rwm
c 1:7 rwm
c 1:8 rwm
c 1:9 rwm
c 5:0 rwm
c 5:2 rwm
c 10:200 rwm
c 136:* rwm
"""


def test_v1_devices_default_rules(v1, fake):
    apply(v1, {"devices": [{"allow": False, "access": "rwm"}]})
    writes = fake.files("devices")
    # runc's transition from an allow-all cgroup: deny all, then the allow list in (major, minor, type) order
    assert writes[0] == ("devices.deny", "a *:* rwm")
    assert [w[1] for w in writes[1:]] == ["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                                          "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm",
                                          "c 136:* rwm"]
    assert all(w[0] == "devices.allow" for w in writes[1:])
    assert fake.read(v1["devices"], "devices.list") == DEFAULT_LIST


def test_v1_devices_are_applied_without_any_config(v1, fake):
    apply(v1, {})
    assert fake.read(v1["devices"], "devices.list") == DEFAULT_LIST


def test_v1_devices_user_rules(v1, fake):
    apply(v1, {"devices": [{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                           {"allow": True, "type": "b", "major": 7, "access": "r"}]})
    lst = fake.read(v1["devices"], "devices.list")
    assert "c 10:229 rwm\n" in lst and "b 7:* r\n" in lst


def test_v1_devices_spec_device_replaces_default_rule(v1, fake):
    apply(v1, {"devices": [{"allow": False, "access": "rwm"}]},
          linux_devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])
    assert "c 1:3 " not in fake.read(v1["devices"], "devices.list")


def test_v1_devices_transition_from_existing_whitelist(v1, fake):
    Path(v1["devices"], "devices.list").write_text(DEFAULT_LIST + "c 10:229 rwm\n")
    apply(v1, {})
    # minimal: only the extra rule is taken away, no disruptive deny-all
    assert fake.files("devices") == [("devices.deny", "c 10:229 rwm")]


def test_v1_devices_blacklist(v1, fake):
    apply(v1, {"devices": [{"allow": True, "access": "rwm"},
                           {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "rwm"}]})
    # black-list mode: allow all, then deny 8:0 (the default allow rules are no-ops there)
    assert fake.files("devices") == [("devices.allow", "a *:* rwm"), ("devices.deny", "b 8:0 rwm")]


def test_v1_devices_default_rules_come_last(v1, fake):
    # as runc: a deny of a device in the default list is undone by the defaults
    apply(v1, {"devices": [{"allow": True, "access": "rwm"},
                           {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]})
    assert fake.files("devices") == [("devices.allow", "a *:* rwm")]


@pytest.mark.parametrize("rule, msg", [
    ({"allow": False, "access": ""}, "device access at 0 field cannot be empty"),
    ({"allow": False, "type": "x", "access": "rwm"}, 'invalid cgroup device type "x"'),
    ({"allow": False, "type": "c", "access": 7}, "invalid device access 7"),
])
def test_v1_devices_invalid_rules(v1, fake, rule, msg):
    with pytest.raises(PyruncError, match=msg):
        apply(v1, {"devices": [rule]})
    assert fake.writes == []


def test_v1_devices_unknown_access_letters_ignored(v1, fake):
    """runc takes "rwa" (update.bats does) as "rw"; a rule with no r, w or m
    is a no-op; pyrunc says so."""
    warned = apply(v1, {"devices": [{"allow": False, "access": "rwm"},
                                    {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
                                    {"allow": True, "type": "c", "major": 1, "minor": 12, "access": "x"}]})
    assert ("devices.allow", "c 1:11 rw") in fake.files("devices")
    assert not any("1:12" in v for _, v in fake.files("devices"))
    assert len(warned) == 2 and 'access "rwa"' in warned[0]


def test_v1_devices_hole_punch_refused(v1, fake):
    with pytest.raises(PyruncError, match="cannot punch hole in existing wildcard rule"):
        apply(v1, {"devices": [{"allow": False, "access": "rwm"},
                               {"allow": True, "type": "c", "major": 1, "access": "rwm"},
                               {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "r"}]})


def test_v1_devices_controller_required(v1, fake):
    del v1["devices"]
    with pytest.raises(PyruncError, match="devices cgroup controller is not mounted"):
        apply(v1, {})


def test_v1_devices_skipped_in_user_namespace(v1, fake, monkeypatch):
    monkeypatch.setattr(D, "running_in_userns", lambda: True)
    apply(v1, {})
    assert fake.writes == []


# -- v2 ----------------------------------------------------------------------------------

@pytest.fixture
def no_bpf(monkeypatch):
    got = []
    monkeypatch.setattr(D, "set_v2", lambda path, rules, program=None: got.append((path, rules)))
    return got


def test_v2_device_program_planned_ahead(v2, fake, monkeypatch):
    """plan_devices makes the device program before the init waits for it;
    apply_resources then loads that one."""
    got = []
    monkeypatch.setattr(D, "set_v2", lambda path, rules, program=None: got.append(program))
    plan = R.plan_devices(v2, {}, None)
    assert plan[1] == D.device_filter(plan[0]) and plan[1][1] == "Apache"
    R.apply_resources(v2, {}, devices_plan=plan)
    assert got == [plan[1]]
    assert fake.writes == []  # planning wrote nothing


def test_v2_memory(v2, fake, no_bpf):
    apply(v2, {"memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 10 << 20}})
    assert fake.files("") == [("memory.swap.max", str(200 << 20)), ("memory.max", str(100 << 20)),
                              ("memory.low", str(10 << 20))]
    # the controller was enabled from the top: root, then parent
    assert fake.files("root") == [("cgroup.subtree_control", "+memory")]
    assert fake.files("parent") == [("cgroup.subtree_control", "+memory")]


@pytest.mark.parametrize("mem, swap_max", [
    ({"limit": 100, "swap": 100}, "0"),       # equal: no swap
    ({"limit": -1}, "max"),                   # unlimited memory: unlimited swap too
    ({"limit": 100, "swap": -1}, "max"),
    ({"limit": 100}, None),
])
def test_v2_swap_conversion(v2, fake, no_bpf, mem, swap_max):
    apply(v2, {"memory": mem})
    got = [v for f, v in fake.files("") if f == "memory.swap.max"]
    assert got == ([swap_max] if swap_max else [])


@pytest.mark.parametrize("mem, msg", [
    ({"swap": 100}, "unable to set swap limit without memory limit"),
    ({"limit": 200, "swap": 100}, r"memory\+swap limit should be >= memory limit"),
    ({"limit": -5, "swap": 100}, "invalid memory value: -5"),
])
def test_v2_swap_errors_before_writing(v2, fake, no_bpf, mem, msg):
    with pytest.raises(PyruncError, match=msg):
        apply(v2, {"memory": mem, "pids": {"limit": 1}})
    assert fake.writes == []


def test_v2_swap_max_missing_is_fine_for_max_and_zero(v2, fake, no_bpf):
    apply(v2, {"pids": {"limit": 1}, "memory": {"limit": 5}})  # enables memory
    os.unlink(os.path.join(v2[""], "memory.swap.max"))
    apply(v2, {"memory": {"limit": -1}})
    apply(v2, {"memory": {"limit": 100, "swap": 100}})
    with pytest.raises(PyruncError, match="memory.swap.max"):
        apply(v2, {"memory": {"limit": 100, "swap": 200}})


def test_v2_check_before_update(v2, fake, no_bpf):
    apply(v2, {"memory": {"limit": 1 << 30}})
    Path(v2[""], "memory.current").write_text(str(1 << 20))
    with pytest.raises(PyruncError, match=r"rejecting memory limit 4096 <= usage 1048576"):
        apply(v2, {"memory": {"limit": 4096, "checkBeforeUpdate": True}})
    with pytest.raises(PyruncError, match=r"rejecting memory\+swap limit 8192 <= usage 1048576"):
        apply(v2, {"memory": {"limit": 4096, "swap": 8192, "checkBeforeUpdate": True}})
    apply(v2, {"memory": {"limit": 4096}})  # without the flag the kernel decides


def test_v2_cpu(v2, fake, no_bpf):
    apply(v2, {"cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 1000, "idle": 0,
                       "cpus": "0", "mems": "0"}})
    assert fake.files("") == [("cpu.idle", "0"), ("cpu.weight", "100"), ("cpu.max.burst", "1000"),
                              ("cpu.max", "50000 200000"), ("cpuset.cpus", "0"), ("cpuset.mems", "0")]


@pytest.mark.parametrize("cpu, want", [({"quota": 20000}, "20000 100000"), ({"period": 50000}, "max 50000"),
                                       ({"quota": -1, "period": 10000}, "max 10000")])
def test_v2_cpu_max(v2, fake, no_bpf, cpu, want):
    apply(v2, {"cpu": cpu})
    assert ("cpu.max", want) in fake.files("")


def test_v2_realtime_ignored_with_warning(v2, fake, no_bpf):
    w = apply(v2, {"cpu": {"realtimeRuntime": 10, "realtimePeriod": 100}})
    assert any("realtime" in x for x in w)
    assert fake.files("") == []


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 100), (262144, 10000), (1, 1), (0, 0), (500000, 10000)])
def test_cpu_shares_to_weight(shares, weight):
    assert R.convert_cpu_shares_to_weight(shares) == weight


def test_cpu_weight_is_monotonic():
    ws = [R.convert_cpu_shares_to_weight(s) for s in range(2, 262145, 97)]
    assert ws == sorted(ws) and 1 <= ws[0] and ws[-1] <= 10000


def test_v2_io_weight_without_bfq(v2, fake, no_bpf):
    dev = {"major": 8, "minor": 0}
    apply(v2, {"blockIO": {"weight": 500, "throttleReadBpsDevice": [{**dev, "rate": 1000}],
                           "throttleWriteIOPSDevice": [{**dev, "rate": 10}]}})
    assert fake.files("") == [("io.weight", str(1 + (500 - 10) * 9999 // 990)), ("io.max", "8:0 rbps=1000"),
                              ("io.max", "8:0 wiops=10")]


def test_v2_io_bfq(v2, fake, no_bpf):
    apply(v2, {"pids": {"limit": 1}, "blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 1, "rate": 1}]}})
    Path(v2[""], "io.bfq.weight").write_text("default 100\n")
    apply(v2, {"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}})
    assert Path(v2[""], "io.bfq.weight").read_text().startswith("300")
    assert "8:0 200\n" in Path(v2[""], "io.bfq.weight").read_text()


def test_v2_hugetlb_rdma_pids(v2, fake, no_bpf):
    apply(v2, {"pids": {"limit": 0}, "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
               "rdma": {"mlx5_1": {"hcaHandles": 1}}})
    assert fake.files("") == [("pids.max", "1"), ("hugetlb.2MB.max", str(2 << 20)),
                              ("hugetlb.2MB.rsvd.max", str(2 << 20)), ("rdma.max", "mlx5_1 hca_handle=1")]


def test_v2_unified(v2, fake, no_bpf):
    apply(v2, {"unified": {"memory.high": "1000000", "pids.max": "9"}})
    assert ("memory.high", "1000000") in fake.files("")
    assert ("pids.max", "9") in fake.files("")


def test_v2_unified_errors(v2, fake, no_bpf):
    with pytest.raises(PyruncError, match=r'unified resource "a/b" must be a file name \(no slashes\)'):
        apply(v2, {"unified": {"a/b": "1"}})
    with pytest.raises(PyruncError, match=r'unified resource "misc.max" can\'t be set: controller "misc" not available'):
        apply(v2, {"unified": {"misc.max": "1"}})
    with pytest.raises(PyruncError, match="must be in the form CONTROLLER.PARAMETER"):
        apply(v2, {"unified": {"nodot": "1"}})


def test_v2_controller_not_available(v2, fake, no_bpf):
    Path(fake.root, "unified", "cgroup.controllers").write_text("pids")
    with pytest.raises(PyruncError, match="the memory controller is not available"):
        apply(v2, {"memory": {"limit": 1 << 20}})


def test_v2_devices_program_requested(v2, fake, no_bpf):
    apply(v2, {"devices": [{"allow": False, "access": "rwm"}]})
    assert len(no_bpf) == 1 and no_bpf[0][0] == v2[""]
    assert ("c", 1, 3, "rwm", True) in no_bpf[0][1]
    apply(v2, {}, skip_devices=True)
    assert len(no_bpf) == 1


def test_v2_ignored_settings_warn(v2, fake, no_bpf):
    w = apply(v2, {"memory": {"swappiness": 10, "disableOOMKiller": True}, "network": {"classID": 1},
                   "blockIO": {"leafWeight": 10}})
    assert len(w) == 4 and all("ignored" in x for x in w)


# -- validation --------------------------------------------------------------------------

@pytest.mark.parametrize("res", [
    {"memory": {"limit": "1g"}}, {"cpu": {"shares": -1}}, {"cpu": {"cpus": 3}}, {"pids": {"limit": True}},
    {"blockIO": {"weight": 70000}}, {"hugepageLimits": [{"limit": 1}]}, {"memory": []},
    {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
])
def test_invalid_values(v1, fake, res):
    with pytest.raises(PyruncError, match="invalid config"):
        apply(v1, res, skip_devices=True)
    assert fake.writes == []


# -- update on v2: update.bats' sequences, flags -> merge -> files ------------------------------

def test_v2_update_bats_sequences(v2, fake, no_bpf):
    """update.bats "common limits" and "cpu limits", v2 branch: each update
    writes what runc's would, from the container's stored resources."""
    from pyrunc.cgroups.update import merge_update
    from pyrunc.cli import update as U
    stored = {"memory": {"limit": 32 << 20, "reservation": 24 << 20},
              "cpu": {"shares": 100, "quota": 500000, "period": 1000000}, "pids": {"limit": 20}}
    apply(v2, stored)

    def upd(**flags):
        nonlocal stored
        o = {k: v for k, (_, v) in U.FLAGS.items()}
        o.update({k.replace("_", "-"): v for k, v in flags.items()})
        stored, now, _ = merge_update(stored, U.resources_from_flags(o))
        fake.writes.clear()
        apply(v2, now)
        return dict((f, v) for _, f, v in fake.writes)

    assert upd(memory="50M") == {"memory.max": str(50 << 20)}
    assert upd(memory="52428800", memory_swap="96468992") == \
        {"memory.swap.max": str(96468992 - 52428800), "memory.max": "52428800"}  # swap excludes memory
    assert upd(memory="-1") == {"memory.swap.max": "max", "memory.max": "max"}
    assert upd(memory_reservation="33554432") == {"memory.low": "33554432"}
    assert upd(pids_limit="-1") == {"pids.max": "max"}
    assert upd(cpu_period="900000") == {"cpu.max": "500000 900000"}
    assert upd(cpu_quota="600000") == {"cpu.max": "600000 900000"}
    assert upd(cpu_quota="-1") == {"cpu.max": "max 900000"}
    assert upd(cpu_share="200") == {"cpu.weight": str(R.convert_cpu_shares_to_weight(200))}
    assert upd(cpu_idle="1") == {"cpu.idle": "1"}  # and no cpu.weight (runc: shares 0 with idle)
    assert upd(cpu_period="900000", cpu_burst="500000") == {"cpu.max.burst": "500000", "cpu.max": "max 900000"}
    assert upd(memory="100M") == {"memory.max": str(100 << 20)}  # burst untouched
    assert stored["cpu"]["burst"] == 500000 and stored["pids"]["limit"] == -1


def test_cpuset_ensure_fills_empty_parents(tmp_path):
    """runc's cpusetEnsureParent: empty cpuset.cpus/mems take the nearest
    non-empty ancestor's values, top down."""
    from pyrunc.cgroups import _cpuset_ensure
    root, pod, ctr = tmp_path / "cpuset", tmp_path / "cpuset" / "pod", tmp_path / "cpuset" / "pod" / "ctr"
    ctr.mkdir(parents=True)
    (root / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset.mems").write_text("0\n")
    for d in (pod, ctr):
        (d / "cpuset.cpus").write_text("")
        (d / "cpuset.mems").write_text("")
    (pod / "cpuset.mems").write_text("0\n")  # a value already set stays
    assert _cpuset_ensure(str(ctr)) == {"cpuset.cpus": "0-1", "cpuset.mems": "0"}
    assert (pod / "cpuset.cpus").read_text() == "0-1" and (ctr / "cpuset.cpus").read_text() == "0-1"
    assert (pod / "cpuset.mems").read_text() == "0\n"
