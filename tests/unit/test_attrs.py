"""security/attrs.py: validation of linux.personality, process.scheduler,
process.ioPriority and process.execCPUAffinity (runc's messages), cpu lists,
and the values handed to the syscalls."""
from __future__ import annotations

import ctypes

import pytest
from hypothesis import given, strategies as st

from pyrunc.errors import PyruncError
from pyrunc.linux import consts as C
from pyrunc.init.child import apply_attrs
from pyrunc.security import attrs as A


def bad(process=None, linux=None) -> str:
    with pytest.raises(PyruncError) as ei:
        A.validate(process or {}, linux or {})
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


# -- personality --------------------------------------------------------------------

@pytest.mark.parametrize("domain", ["LINUX", "LINUX32"])
def test_personality_domains(domain):
    A.validate({}, {"personality": {"domain": domain}})
    A.validate({}, {"personality": {"domain": domain, "flags": []}})


@pytest.mark.parametrize("p, msg", [
    ({"domain": "LINUX64"}, "invalid personality domain LINUX64"),
    ({"domain": "linux"}, "invalid personality domain linux"),
    ({}, "invalid personality domain "),
    ({"domain": "LINUX", "flags": "ADDR_NO_RANDOMIZE"}, "invalid config: linux.personality.flags has the wrong type"),
    ({"domain": "LINUX", "flags": [1]}, "invalid config: linux.personality.flags has the wrong type"),
    ("LINUX", "invalid config: linux.personality has the wrong type"),
])
def test_personality_invalid(p, msg):
    assert bad(linux={"personality": p}) == msg


def test_personality_flags_warn_and_are_ignored(capfd):
    A.validate({}, {"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE", "READ_IMPLIES_EXEC"]}})
    err = capfd.readouterr().err
    assert "ignoring unsupported personality flags: [ADDR_NO_RANDOMIZE READ_IMPLIES_EXEC]" in err
    assert "level=warning" in err
    A.validate({}, {"personality": {"domain": "LINUX", "flags": ["X"]}}, warn=False)
    assert capfd.readouterr().err == ""


# -- scheduler ------------------------------------------------------------------------

@pytest.mark.parametrize("s", [
    {"policy": "SCHED_OTHER"},
    {"policy": "SCHED_OTHER", "nice": -20},
    {"policy": "SCHED_BATCH", "nice": 19, "priority": 0},
    {"policy": "SCHED_IDLE", "nice": 40},  # nice only checked for OTHER/BATCH (runc)
    {"policy": "SCHED_FIFO", "priority": 1},
    {"policy": "SCHED_RR", "priority": 99, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
    {"policy": "SCHED_ISO"},
    {"policy": "SCHED_DEADLINE", "runtime": 42000, "deadline": 100000, "period": 1000000,
     "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN"]},
    {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS",
                                        "SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"]},
])
def test_scheduler_valid(s):
    A.validate({"scheduler": s}, {})


@pytest.mark.parametrize("s, msg", [
    ({}, "scheduler policy is required"),
    ({"policy": ""}, "scheduler policy is required"),
    ({"policy": "SCHED_FOO"}, "invalid scheduler policy: SCHED_FOO"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}, "invalid scheduler flag: SCHED_FLAG_NOPE"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "invalid scheduler.nice: 20 when scheduler.policy is SCHED_OTHER"),
    ({"policy": "SCHED_BATCH", "nice": -21}, "invalid scheduler.nice: -21 when scheduler.policy is SCHED_BATCH"),
    ({"policy": "SCHED_OTHER", "priority": 5},
     "scheduler.priority can only be specified for SchedFIFO or SchedRR policy"),
    ({"policy": "SCHED_FIFO", "priority": 0},
     "invalid scheduler.priority: 0 when scheduler.policy is SCHED_FIFO (must be 1-99)"),
    ({"policy": "SCHED_RR", "priority": 100},
     "invalid scheduler.priority: 100 when scheduler.policy is SCHED_RR (must be 1-99)"),
    ({"policy": "SCHED_OTHER", "runtime": 1},
     "scheduler runtime/deadline/period can only be specified for SchedDeadline policy"),
    ({"policy": "SCHED_FIFO", "priority": 1, "period": 5},
     "scheduler runtime/deadline/period can only be specified for SchedDeadline policy"),
    ({"policy": "SCHED_OTHER", "nice": "1"}, "invalid config: process.scheduler.nice has the wrong type"),
    ({"policy": "SCHED_OTHER", "nice": True}, "invalid config: process.scheduler.nice has the wrong type"),
    ({"policy": "SCHED_OTHER", "nice": 1 << 31}, "invalid config: process.scheduler.nice is out of range"),
    ({"policy": "SCHED_DEADLINE", "runtime": -1}, "invalid config: process.scheduler.runtime is out of range"),
    ({"policy": "SCHED_OTHER", "flags": "SCHED_FLAG_RECLAIM"}, "invalid config: process.scheduler.flags has the wrong type"),
    ({"policy": 1}, "invalid config: process.scheduler.policy has the wrong type"),
])
def test_scheduler_invalid(s, msg):
    assert bad({"scheduler": s}) == msg


def test_scheduler_not_a_dict():
    assert bad({"scheduler": ["SCHED_OTHER"]}) == "invalid config: process.scheduler has the wrong type"


def test_sched_args():
    assert A.sched_args({"policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"],
                         "runtime": 42000, "deadline": 100000, "period": 1000000}) == \
        (6, 0x05, 0, 0, 42000, 100000, 1000000)
    assert A.sched_args({"policy": "SCHED_BATCH", "nice": 19}) == (3, 0, 19, 0, 0, 0, 0)
    assert A.sched_args({"policy": "SCHED_RR", "priority": 7}) == (2, 0, 0, 7, 0, 0, 0)


def test_sched_attr_layout():
    from pyrunc.linux import sys as L
    assert ctypes.sizeof(L._SchedAttr) == 56  # SCHED_ATTR_SIZE_VER1, as unix.SizeofSchedAttr
    assert L._SchedAttr.sched_nice.offset == 16 and L._SchedAttr.sched_runtime.offset == 24
    assert L._SchedAttr.sched_period.offset == 40 and L._SchedAttr.sched_util_max.offset == 52


def test_policy_and_flag_numbers_match_the_kernel():
    import os
    assert C.SCHED_POLICIES["SCHED_OTHER"] == os.SCHED_OTHER
    assert C.SCHED_POLICIES["SCHED_FIFO"] == os.SCHED_FIFO
    assert C.SCHED_POLICIES["SCHED_RR"] == os.SCHED_RR
    assert C.SCHED_POLICIES["SCHED_BATCH"] == os.SCHED_BATCH
    assert C.SCHED_POLICIES["SCHED_IDLE"] == os.SCHED_IDLE
    assert C.SCHED_RESET_ON_FORK == os.SCHED_RESET_ON_FORK


# -- ioPriority -----------------------------------------------------------------------

@pytest.mark.parametrize("io", [
    {"class": "IOPRIO_CLASS_RT", "priority": 0},
    {"class": "IOPRIO_CLASS_BE", "priority": 7},
    {"class": "IOPRIO_CLASS_IDLE"},  # runc accepts a missing priority (0)
])
def test_io_priority_valid(io):
    A.validate({"ioPriority": io}, {})


@pytest.mark.parametrize("io, msg", [
    ({"class": "IOPRIO_CLASS_BE", "priority": 8}, "invalid ioPriority.Priority: 8"),
    ({"class": "IOPRIO_CLASS_BE", "priority": -1}, "invalid ioPriority.Priority: -1"),
    ({"class": "IOPRIO_CLASS_NONE", "priority": 0}, 'invalid ioPriority.Class: "IOPRIO_CLASS_NONE"'),
    ({"priority": 0}, 'invalid ioPriority.Class: ""'),
    ({"class": "IOPRIO_CLASS_BE", "priority": "4"}, "invalid config: process.ioPriority.priority has the wrong type"),
])
def test_io_priority_invalid(io, msg):
    assert bad({"ioPriority": io}) == msg


def test_io_priority_value():
    assert A.io_priority_value({"class": "IOPRIO_CLASS_RT", "priority": 3}) == (1 << 13) | 3
    assert A.io_priority_value({"class": "IOPRIO_CLASS_BE", "priority": 4}) == 0x4004
    assert A.io_priority_value({"class": "IOPRIO_CLASS_IDLE"}) == 0x6000


# -- cpu lists and execCPUAffinity ----------------------------------------------------------

@pytest.mark.parametrize("s, cpus", [
    ("", set()),
    ("0", {0}),
    ("0-3,7", {0, 1, 2, 3, 7}),
    (" 1 , ,2,", {1, 2}),  # runc trims elements and skips empty ones
    ("5-5", {5}),
    ("1023", {1023}),
    ("0-2,1-3", {0, 1, 2, 3}),
])
def test_cpu_list(s, cpus):
    assert A.cpu_list(s) == cpus


@pytest.mark.parametrize("s, msg", [
    ("3-1", "invalid range: 3-1"),
    ("a", 'strconv.ParseUint: parsing "a": invalid syntax'),
    ("-1", 'strconv.ParseUint: parsing "": invalid syntax'),
    ("1-", 'strconv.ParseUint: parsing "": invalid syntax'),
    ("+1", 'strconv.ParseUint: parsing "+1": invalid syntax'),
    ("1 - 2", 'strconv.ParseUint: parsing "1 ": invalid syntax'),
    ("1024", "values larger than 1023 are not supported"),
    ("4294967296", 'strconv.ParseUint: parsing "4294967296": value out of range'),
    (",,", 'no members found in set ",,"'),
    (" ", 'no members found in set " "'),
    ("１", 'strconv.ParseUint: parsing "１": invalid syntax'),  # a non-ASCII digit
])
def test_cpu_list_invalid(s, msg):
    with pytest.raises(PyruncError) as ei:
        A.cpu_list(s)
    assert str(ei.value) == msg


@given(st.sets(st.integers(0, 300), min_size=1, max_size=40))
def test_cpu_list_roundtrip(cpus):
    # format as runs the way the kernel prints Cpus_allowed_list
    runs, ids = [], sorted(cpus)
    start = prev = ids[0]
    for c in ids[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if c is not None:
            start = prev = c
    assert A.cpu_list(",".join(runs)) == cpus


def test_exec_affinity():
    assert A.exec_affinity({}) == (None, None)
    assert A.exec_affinity({"execCPUAffinity": {}}) == (None, None)
    assert A.exec_affinity({"execCPUAffinity": {"initial": "", "final": ""}}) == (None, None)
    assert A.exec_affinity({"execCPUAffinity": {"initial": "7"}}) == ({7}, None)
    assert A.exec_affinity({"execCPUAffinity": {"initial": "7", "final": "0-3,7"}}) == ({7}, {0, 1, 2, 3, 7})
    assert A.exec_affinity({"execCPUAffinity": {"final": "1"}}) == (None, {1})


@pytest.mark.parametrize("aff, msg", [
    ({"initial": "x"}, 'bad CPUAffinity.Initial: strconv.ParseUint: parsing "x": invalid syntax'),
    ({"initial": "0", "final": "2-1"}, "bad CPUAffinity.Final: invalid range: 2-1"),
    ({"final": ","}, 'bad CPUAffinity.Final: no members found in set ","'),
    ({"initial": 3}, "invalid config: process.execCPUAffinity.initial has the wrong type"),
    ("0-3", "invalid config: process.execCPUAffinity has the wrong type"),
])
def test_exec_affinity_invalid(aff, msg):
    assert bad({"execCPUAffinity": aff}) == msg


def test_validate_empty_and_none():
    A.validate({}, {})
    A.validate(None, None)
    A.validate({"scheduler": None, "ioPriority": None, "execCPUAffinity": None}, {"personality": None})


def test_validate_the_spec_example():
    # config.md's Linux process example
    A.validate({"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
                "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
                "scheduler": {"policy": "SCHED_DEADLINE", "nice": 0, "priority": 0, "runtime": 42000,
                              "deadline": 100000, "period": 1000000}},
               {"personality": {"domain": "LINUX"}})


def test_apply_attrs_order(monkeypatch):
    calls = []
    monkeypatch.setattr(A, "apply_scheduler", lambda s, cpuset="": calls.append(("sched", cpuset)))
    monkeypatch.setattr(A, "apply_io_priority", lambda io: calls.append(("io",)))
    monkeypatch.setattr(A, "apply_personality", lambda p: calls.append(("pers",)))
    apply_attrs({"scheduler": {"policy": "SCHED_OTHER"}, "ioPriority": {"class": "IOPRIO_CLASS_BE"}},
                {"personality": {"domain": "LINUX"}, "resources": {"cpu": {"cpus": "0-1"}}})
    assert calls == [("sched", "0-1"), ("io",), ("pers",)]  # runc's order
    calls.clear()
    apply_attrs({}, None)
    assert calls == []
