"""`events` statistics from fake v1 and v2 cgroup trees, in runc's
types.Stats JSON (field names, order, omitempty / omitzero)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrunc.cgroups import stats as S
from pyrunc.fastjson import dumps


def mk(d: Path, files: dict[str, str]) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for k, v in files.items():
        (d / k).write_text(v)
    return str(d)


MEMORY_STAT_V1 = "cache 8192\nrss 4096\ntotal_cache 8192\npgfault 10\n"


@pytest.fixture
def v1(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "hugepage_sizes", lambda: ["2MB"])
    return {
        "cpuset": mk(tmp_path / "cpuset", {
            "cpuset.cpus": "0-2,5\n", "cpuset.mems": "0\n", "cpuset.cpu_exclusive": "0\n",
            "cpuset.mem_hardwall": "0\n", "cpuset.mem_exclusive": "0\n", "cpuset.memory_migrate": "0\n",
            "cpuset.memory_spread_page": "0\n", "cpuset.memory_spread_slab": "0\n",
            "cpuset.memory_pressure": "0\n", "cpuset.sched_load_balance": "1\n",
            "cpuset.sched_relax_domain_level": "-1\n"}),
        "cpu,cpuacct": mk(tmp_path / "cpu", {
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
            "cpuacct.stat": "user 12\nsystem 3\n", "cpuacct.usage": "150000000\n",
            "cpuacct.usage_percpu": "100000000 50000000 \n",
            "cpuacct.usage_all": "cpu user system\n0 90000000 10000000\n1 40000000 10000000\n"}),
        "memory": mk(tmp_path / "memory", {
            "memory.stat": MEMORY_STAT_V1, "memory.usage_in_bytes": "12288\n",
            "memory.max_usage_in_bytes": "65536\n", "memory.failcnt": "0\n",
            "memory.limit_in_bytes": "104857600\n", "memory.memsw.usage_in_bytes": "12288\n",
            "memory.memsw.max_usage_in_bytes": "65536\n", "memory.memsw.failcnt": "0\n",
            "memory.memsw.limit_in_bytes": "9223372036854771712\n",
            "memory.kmem.usage_in_bytes": "0\n", "memory.kmem.max_usage_in_bytes": "0\n",
            "memory.kmem.failcnt": "0\n", "memory.use_hierarchy": "1\n"}),
        "pids": mk(tmp_path / "pids", {"pids.current": "3\n", "pids.max": "max\n"}),
        "blkio": mk(tmp_path / "blkio", {
            "blkio.bfq.io_serviced_recursive": "254:0 Read 5\n254:0 Write 2\nTotal 7\n",
            "blkio.bfq.io_service_bytes_recursive": "254:0 Read 20480\n254:0 Write 0\nTotal 20480\n",
            "blkio.throttle.io_serviced": "Total 0\n"}),
        "hugetlb": mk(tmp_path / "hugetlb", {
            "hugetlb.2MB.usage_in_bytes": "0\n", "hugetlb.2MB.max_usage_in_bytes": "2097152\n",
            "hugetlb.2MB.failcnt": "1\n"}),
        "devices": mk(tmp_path / "devices", {}),
        "": mk(tmp_path / "unified", {"cgroup.procs": ""}),
    }


def test_v1_stats_json(v1):
    data = S.stats(v1)
    assert dumps(data) == dumps({
        "cpu": {"usage": {"total": 150000000, "percpu": [100000000, 50000000],
                          "percpu_kernel": [10000000, 10000000], "percpu_user": [90000000, 40000000],
                          "kernel": 30000000, "user": 120000000}},
        "cpuset": {"cpus": [0, 1, 2, 5], "cpu_exclusive": 0, "mems": [0], "mem_hardwall": 0, "mem_exclusive": 0,
                   "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                   "sched_load_balance": 1, "sched_relax_domain_level": -1},
        "memory": {"cache": 8192,
                   "usage": {"limit": 104857600, "usage": 12288, "max": 65536, "failcnt": 0},
                   "swap": {"limit": 9223372036854771712, "usage": 12288, "max": 65536, "failcnt": 0},
                   "raw": {"cache": 8192, "pgfault": 10, "rss": 4096, "total_cache": 8192}},
        "pids": {"current": 3},
        "blkio": {"ioServiceBytesRecursive": [{"major": 254, "op": "Read", "value": 20480},
                                              {"major": 254, "op": "Write"}],
                  "ioServicedRecursive": [{"major": 254, "op": "Read", "value": 5},
                                          {"major": 254, "op": "Write", "value": 2}]},
        "hugetlb": {"2MB": {"max": 2097152, "failcnt": 1}},
        "intel_rdt": {},
        "network_interfaces": None,
    })


def test_v1_zero_structs_are_omitted_and_keys_ordered(v1):
    data = S.stats(v1)
    assert "throttling" not in data["cpu"]          # omitzero: all zero
    assert "kernel" not in data["memory"]           # kmem accounting present but all zero
    assert "kernelTCP" not in data["memory"]        # no kmem.tcp files at all
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]
    assert list(data["memory"]["raw"]) == sorted(data["memory"]["raw"])


def test_v1_throttling_and_pids_limit(v1):
    Path(v1["cpu,cpuacct"], "cpu.stat").write_text("nr_periods 10\nnr_throttled 2\nthrottled_time 500\n")
    Path(v1["pids"], "pids.max").write_text("50\n")
    data = S.stats(v1)
    assert data["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 2, "throttledTime": 500}
    assert data["pids"] == {"current": 3, "limit": 50}


def test_v1_blkio_falls_back_to_throttle_files(v1):
    b = Path(v1["blkio"])
    (b / "blkio.bfq.io_serviced_recursive").write_text("Total 0\n")
    (b / "blkio.throttle.io_serviced_recursive").write_text("8:0 Read 1\nTotal 1\n")
    (b / "blkio.throttle.io_service_bytes_recursive").write_text("8:0 Read 512\nTotal 512\n")
    assert S.stats(v1)["blkio"] == {"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 512}],
                                    "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1}]}


def test_v1_negative_counters_read_as_zero(v1):
    Path(v1["memory"], "memory.stat").write_text("cache -5\n")
    assert "cache" not in S.stats(v1)["memory"]


def test_v1_missing_controllers_are_skipped(v1):
    for k in ("cpuset", "blkio", "hugetlb", "pids"):
        del v1[k]
    data = S.stats(v1)
    assert data["pids"] == {} and data["hugetlb"] == {} and data["blkio"] == {}
    assert data["cpuset"]["cpu_exclusive"] == 0 and "cpus" not in data["cpuset"]


def test_v1_malformed_file_is_an_error(v1):
    Path(v1["memory"], "memory.stat").write_text("cache\n")
    with pytest.raises(S.StatsError, match="not in \"key value\" format"):
        S.stats(v1)


@pytest.fixture
def v2(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "hugepage_sizes", lambda: ["2MB", "1GB"])
    d = mk(tmp_path / "ctr", {
        "cgroup.procs": "1\n2\n",
        "pids.current": "2\n", "pids.max": "100\n",
        "memory.stat": "anon 4096\nfile 8192\n", "memory.current": "12288\n", "memory.max": "max\n",
        "memory.peak": "20000\n", "memory.swap.current": "0\n", "memory.swap.max": "0\n",
        "memory.pressure": "some avg10=0.00 avg60=1.50 avg300=0.12 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        "io.stat": "254:0 rbytes=1024 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n",
        "io.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 30\n",
        "cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
        "hugetlb.2MB.rsvd.current": "0\n", "hugetlb.2MB.events": "max 3\n",
        "hugetlb.1GB.rsvd.current": "0\n", "hugetlb.1GB.events": "max 0\n",
    })
    return {"": d}


def test_v2_stats_json(v2):
    data = S.stats(v2)
    assert data["cpu"] == {"usage": {"total": 1500000, "kernel": 500000, "user": 1000000},
                           "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 30000},
                           "psi": {"some": {"avg10": 0, "avg60": 0, "avg300": 0, "total": 9}}}
    mem = data["memory"]
    assert mem["cache"] == 8192
    assert mem["usage"] == {"limit": (1 << 64) - 1, "usage": 12288, "max": 20000, "failcnt": 0}
    # v1-compatible swap: memory+swap, limit memory.max + swap.max (uint64 arithmetic)
    assert mem["swap"] == {"limit": (1 << 64) - 1, "usage": 12288, "failcnt": 0}
    assert mem["psi"] == {"some": {"avg10": 0, "avg60": 1.5, "avg300": 0.12, "total": 42},
                          "full": {"avg10": 0, "avg60": 0, "avg300": 0, "total": 7}}
    assert data["pids"] == {"current": 2, "limit": 100}
    assert data["blkio"]["ioServiceBytesRecursive"] == [{"major": 254, "op": "Read", "value": 1024},
                                                        {"major": 254, "op": "Write"}]
    assert data["blkio"]["psi"] == {}  # both all-zero: omitzero leaves an empty object, as Go
    assert data["hugetlb"] == {"1GB": {"failcnt": 0}, "2MB": {"failcnt": 3}}
    assert data["cpuset"] == {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
                              "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                              "sched_load_balance": 0, "sched_relax_domain_level": 0}
    # Go's float formatting: 1.5 and 0.12 as is, 0 without a decimal point
    assert '"avg60":1.5,"avg300":0.12' in dumps(data) and '"avg10":0,' in dumps(data)


def test_v2_without_controllers(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "hugepage_sizes", lambda: [])
    d = mk(tmp_path / "ctr", {"cgroup.procs": "5\n6\n7\n", "cpu.stat": "usage_usec 10\nuser_usec 5\nsystem_usec 5\n"})
    data = S.stats({"": d})
    assert data["pids"] == {"current": 3}
    assert data["cpu"]["usage"] == {"total": 10000, "kernel": 5000, "user": 5000}
    assert data["memory"] == {}


def test_event_json_line(v2):
    line = dumps({"type": "stats", "id": "c1", "data": S.stats(v2)})
    doc = json.loads(line)
    assert list(doc) == ["type", "id", "data"] and "\n" not in line


def test_hugepage_sizes_names(monkeypatch, tmp_path):
    import os
    monkeypatch.setattr(os, "listdir", lambda p: ["hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "x"])
    assert sorted(S.hugepage_sizes()) == ["1GB", "2MB", "64KB"]
