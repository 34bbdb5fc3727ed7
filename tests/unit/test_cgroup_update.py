"""`update`: flag parsing (runc's units and messages), the merge into the
stored linux.resources, and what gets written."""
from __future__ import annotations

import pytest

from pyrunc.cgroups.update import merge_update
from pyrunc.cli import events as E
from pyrunc.cli import update as U
from pyrunc.errors import PyruncError


@pytest.mark.parametrize("s, want", [
    ("100", 100), ("100b", 100), ("1k", 1024), ("1K", 1024), ("1kb", 1024), ("1KiB", 1024), ("100m", 100 << 20),
    ("1g", 1 << 30), ("1.5g", 3 << 29), ("2 GiB", 2 << 30), ("1t", 1 << 40), ("0", 0), ("1e3", 1000),
])
def test_ram_in_bytes(s, want):
    assert U.ram_in_bytes(s) == want


@pytest.mark.parametrize("s, msg", [
    ("1x", "invalid suffix: 'x'"), ("1kbb", "invalid suffix: 'kbb'"), ("1bb", "invalid suffix: 'bb'"),
    ("abc", "invalid size: 'abc'"), ("-2", "invalid size: '-2'"), ("1.2.3", "strconv.ParseFloat"),
    ("1_0", "strconv.ParseFloat"), ("1kib2", "strconv.ParseFloat"),
])
def test_ram_in_bytes_errors(s, msg):
    with pytest.raises(PyruncError, match=msg.replace(".", r"\.")):
        U.ram_in_bytes(s)


def opts(**kw):
    o = {k: v for k, (_, v) in U.FLAGS.items()}
    o.update({k.replace("_", "-"): v for k, v in kw.items()})
    return o


def test_flags_to_resources():
    r = U.resources_from_flags(opts(memory="512m", memory_swap="-1", memory_reservation="1g", cpu_share="512",
                                    cpu_quota="-1", cpu_period="100000", cpu_burst="10", cpu_rt_period="1000000",
                                    cpu_rt_runtime="950", cpuset_cpus="0-1", cpuset_mems="0", cpu_idle="1",
                                    pids_limit="0", blkio_weight="500"))
    assert r == {"memory": {"limit": 512 << 20, "swap": -1, "reservation": 1 << 30},
                 "cpu": {"cpus": "0-1", "mems": "0", "idle": 1, "burst": 10, "period": 100000,
                         "realtimePeriod": 1000000, "shares": 512, "quota": -1, "realtimeRuntime": 950},
                 "blockIO": {"weight": 500}, "pids": {"limit": 0}}


def test_flags_unset_are_absent():
    assert U.resources_from_flags(opts()) == {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}
    assert U.resources_from_flags(opts(blkio_weight="0")) == {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}


@pytest.mark.parametrize("kw, msg", [
    ({"memory": "1x"}, "invalid value for memory: invalid suffix: 'x'"),
    ({"cpu_share": "abc"}, 'invalid value for cpu-share: strconv.ParseUint: parsing "abc": invalid syntax'),
    ({"cpu_period": "-1"}, 'invalid value for cpu-period: strconv.ParseUint: parsing "-1": invalid syntax'),
    ({"cpu_quota": "1.5"}, 'invalid value for cpu-quota: strconv.ParseInt: parsing "1.5": invalid syntax'),
    ({"pids_limit": "abc"}, 'invalid value "abc" for flag -pids-limit: parse error'),
    ({"cpu_share": "99999999999999999999"}, "value out of range"),
])
def test_flag_errors(kw, msg):
    with pytest.raises(PyruncError, match=msg.replace(".", r"\.").replace("(", r"\(")):
        U.resources_from_flags(opts(**kw))


def test_kernel_memory_flags_map_to_the_ignored_fields():
    r = U.resources_from_flags(opts(kernel_memory="10m", kernel_memory_tcp="-1"))
    assert r["memory"] == {"kernel": 10 << 20, "kernelTCP": -1}


def test_every_runc_flag_is_known():
    """runc 1.5's update flags (update.go), all of them."""
    runc = {"resources", "blkio-weight", "cpu-period", "cpu-quota", "cpu-burst", "cpu-share", "cpu-rt-period",
            "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "kernel-memory", "kernel-memory-tcp", "memory",
            "cpu-idle", "memory-reservation", "memory-swap", "pids-limit", "l3-cache-schema", "mem-bw-schema"}
    assert runc <= set(U.FLAGS) and U.ALIASES["r"] == "resources"


def test_resource_keys_fold_as_go_json():
    """update -r's JSON goes through the config's schema walk, which matches
    field names as Go's decoder does (update.bats writes {"CPU": {"Cpus": ...}})."""
    from pyrunc.spec import schema as S
    got = {"CPU": {"Cpus": "1", "MEMS": "0"}, "cpu": {"quota": 5},
           "Unified": {"CPU.Max": "max"}, "blockio": {"ThrottleReadBpsDevice": [{"Major": 8, "minor": 0, "RATE": 2}]},
           "memory": {"CheckBeforeUpdate": True}, "mystery": {"X": 1}}
    S.check(got, S.RESOURCES, "resources")
    assert got == {"cpu": {"cpus": "1", "mems": "0", "quota": 5}, "unified": {"CPU.Max": "max"},
                   "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 2}]},
                   "memory": {"checkBeforeUpdate": True}, "mystery": {"X": 1}}


def test_read_resources_reports(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"Pids": {"Limit": 3}}')
    assert U.read_resources(str(f)) == {"Pids": {"Limit": 3}}  # folded by the schema walk
    with pytest.raises(PyruncError, match="^open .*missing.json: no such file or directory$"):
        U.read_resources(str(tmp_path / "missing.json"))
    f.write_text("[1]")
    with pytest.raises(PyruncError, match="must be an object"):
        U.read_resources(str(f))


# -- merge ---------------------------------------------------------------------------------

OLD = {"devices": [{"allow": False, "access": "rwm"}],
       "memory": {"limit": 100, "swap": 200, "swappiness": 10},
       "cpu": {"shares": 512, "quota": 1000, "period": 10000, "cpus": "0"},
       "pids": {"limit": 5},
       "blockIO": {"weight": 100, "weightDevice": [{"major": 8, "minor": 0, "weight": 10, "leafWeight": 20}],
                   "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}


def test_merge_memory_keeps_swap_companion():
    new, apply, ignored = merge_update(OLD, {"memory": {"limit": 150}})
    assert new["memory"] == {"limit": 150, "swap": 200, "swappiness": 10}
    assert apply == {"memory": {"limit": 150, "swap": 200, "checkBeforeUpdate": False}}
    assert ignored == []
    assert new["cpu"] == OLD["cpu"] and new["devices"] == OLD["devices"]  # untouched


def test_merge_memory_unlimited_clears_swap():
    new, apply, _ = merge_update(OLD, {"memory": {"limit": -1}})
    assert new["memory"] == {"limit": -1, "swappiness": 10}
    assert apply["memory"]["limit"] == -1 and apply["memory"]["swap"] == 0


def test_merge_reservation_alone():
    new, apply, _ = merge_update(OLD, {"memory": {"reservation": 7}})
    assert apply == {"memory": {"reservation": 7, "checkBeforeUpdate": False}}
    assert new["memory"]["reservation"] == 7


def test_merge_quota_alone_keeps_old_period():
    new, apply, _ = merge_update(OLD, {"cpu": {"quota": 3000}})
    assert apply == {"cpu": {"period": 10000, "quota": 3000}}
    assert new["cpu"] == {"shares": 512, "quota": 3000, "period": 10000, "cpus": "0"}


def test_merge_unrelated_update_keeps_cpu_values():
    new, apply, _ = merge_update(OLD, {"pids": {"limit": 9}})
    assert apply == {"pids": {"limit": 9}}
    assert new["cpu"] == OLD["cpu"] and new["pids"] == {"limit": 9}


def test_merge_idle_does_not_write_shares():
    new, apply, _ = merge_update(OLD, {"cpu": {"idle": 1}})
    assert apply == {"cpu": {"idle": 1}}


def test_merge_realtime_pair():
    _, apply, _ = merge_update({"cpu": {"realtimePeriod": 1000}}, {"cpu": {"realtimeRuntime": 10}})
    assert apply == {"cpu": {"realtimePeriod": 1000, "realtimeRuntime": 10}}


def test_merge_blkio_upserts_devices():
    new, apply, _ = merge_update(OLD, {"blockIO": {
        "weightDevice": [{"major": 8, "minor": 0, "weight": 50}, {"major": 8, "minor": 16, "leafWeight": 30}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 9}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 4}]}})
    assert new["blockIO"]["weightDevice"] == [{"major": 8, "minor": 0, "weight": 50, "leafWeight": 20},
                                              {"major": 8, "minor": 16, "leafWeight": 30}]
    assert new["blockIO"]["throttleReadBpsDevice"] == [{"major": 8, "minor": 0, "rate": 9}]
    assert new["blockIO"]["throttleWriteBpsDevice"] == [{"major": 8, "minor": 0, "rate": 4}]
    assert apply["blockIO"]["weightDevice"][0] == {"major": 8, "minor": 0, "weight": 50, "leafWeight": 20}


def test_merge_ignored_keys():
    _, apply, ignored = merge_update(OLD, {"devices": [{"allow": True, "access": "rwm"}], "hugepageLimits": [
        {"pageSize": "2MB", "limit": 1}], "memory": {"swappiness": 5, "disableOOMKiller": True},
        "network": {"classID": 1}})
    assert sorted(ignored) == ["devices", "hugepageLimits", "memory.disableOOMKiller", "memory.swappiness", "network"]
    assert apply == {}


def test_merge_unified_and_empty():
    new, apply, _ = merge_update({}, {"unified": {"memory.high": "5"}})
    assert new == {"unified": {"memory.high": "5"}} and apply == {"unified": {"memory.high": "5"}}
    new, apply, _ = merge_update(None, {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}})
    assert new == {} and apply == {}


def test_merge_does_not_modify_inputs():
    import copy
    old = copy.deepcopy(OLD)
    merge_update(old, {"memory": {"limit": 1}, "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 1}]}})
    assert old == OLD


# -- events --interval ---------------------------------------------------------------------------

@pytest.mark.parametrize("s, want", [("5s", 5.0), ("100ms", 0.1), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0),
                                     ("-1s", -1.0), ("2us", 2e-6), ("1h1m1s1ms", 3661.001)])
def test_parse_duration(s, want):
    assert E.parse_duration(s) == pytest.approx(want)


@pytest.mark.parametrize("s, msg", [("5", 'time: missing unit in duration "5"'), ("", 'time: invalid duration ""'),
                                    ("5x", 'time: unknown unit "x" in duration "5x"'), ("s", "invalid duration")])
def test_parse_duration_errors(s, msg):
    with pytest.raises(PyruncError, match=msg):
        E.parse_duration(s)
