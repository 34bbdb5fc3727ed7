"""Issue 3, item 8: linux.personality, process.scheduler, process.ioPriority,
process.execCPUAffinity.

Part 1 applies security/attrs.py's functions in forked children and reads the
result back from the kernel. Part 2 drives the runtime with bundles; it is
skipped until the functions are wired into create/run/exec ("wiring pending").
"""
from __future__ import annotations

import json
import os
import platform

import pytest

from pyrunc.errors import PyruncError
from pyrunc.linux import consts as C
from pyrunc.linux import sys as L
from pyrunc.init.child import apply_attrs
from pyrunc.security import attrs as A

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CPUS = sorted(os.sched_getaffinity(0))
need_2_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 only")


def in_child(fn):
    """Run fn() in a forked child; return its (JSON) result, or raise its error
    as a PyruncError with the same text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            try:
                res = {"ok": fn()}
            except BaseException as e:  # noqa: BLE001
                res = {"err": str(e), "type": type(e).__name__}
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    res = json.loads(data)
    if "err" in res:
        raise PyruncError(res["err"]) if res["type"] == "PyruncError" else RuntimeError(f"{res['type']}: {res['err']}")
    return res["ok"]


# ============================================================ part 1: the functions

# -- personality

@x86_64
def test_personality_linux32():
    def child():
        A.apply_personality({"domain": "LINUX32"})
        return L.personality(C.PERSONALITY_QUERY), os.uname().machine
    assert in_child(child) == [C.PER_LINUX32, "i686"]
    assert os.uname().machine == "x86_64"  # the caller only


def test_personality_linux_resets():
    def child():
        L.personality(C.PER_LINUX32 | 0x0040000)  # LINUX32 + ADDR_NO_RANDOMIZE
        A.apply_personality({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})  # flags ignored, as runc
        return L.personality(C.PERSONALITY_QUERY), os.uname().machine
    assert in_child(child) == [C.PER_LINUX, platform.machine()]


def test_personality_survives_exec():
    def child():
        A.apply_personality({"domain": "LINUX32"})
        import subprocess
        return subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    want = {"x86_64": "i686", "aarch64": "armv8l"}.get(platform.machine())
    if want is None:
        pytest.skip("no 32-bit personality name known for this machine")
    assert in_child(child) in (want, "armv7l")


# -- scheduler

def test_scheduler_batch_nice():
    def child():
        A.apply_scheduler({"policy": "SCHED_BATCH", "nice": 19, "priority": 0})
        return os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
    assert in_child(child) == [os.SCHED_BATCH, 19]


def test_scheduler_idle():
    assert in_child(lambda: (A.apply_scheduler({"policy": "SCHED_IDLE"}), os.sched_getscheduler(0))[1]) == os.SCHED_IDLE


def test_scheduler_fifo_priority():
    def child():
        A.apply_scheduler({"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    try:
        got = in_child(child)
    except PyruncError as e:  # an RT group scheduler without RT budget for our cgroup
        pytest.skip(f"SCHED_FIFO not available here: {e}")
    assert got == [os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, 10]


def test_scheduler_deadline_attr():
    s = {"policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_RESET_ON_FORK"], "nice": 19, "priority": 0,
         "runtime": 42000, "deadline": 100000, "period": 1000000}

    def child():
        A.apply_scheduler(s)
        return L.sched_getattr(0), os.sched_getscheduler(0)
    attr, policy = in_child(child)
    assert policy == 6 | C.SCHED_RESET_ON_FORK
    assert (attr["policy"], attr["flags"] & 1, attr["runtime"], attr["deadline"], attr["period"]) == \
        (6, 1, 42000, 100000, 1000000)


def test_scheduler_kernel_refusal_message():
    with pytest.raises(PyruncError, match=r"^error setting scheduler: invalid argument$"):
        in_child(lambda: A.apply_scheduler({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5, "period": 1}))


@need_2_cpus
def test_scheduler_vs_cpuset_message():
    dl = {"policy": "SCHED_DEADLINE", "runtime": 42000, "deadline": 1000000, "period": 1000000}

    def child(cpuset):
        os.sched_setaffinity(0, {CPUS[0]})  # SCHED_DEADLINE needs every CPU: EPERM
        A.apply_scheduler(dl, cpuset)
    with pytest.raises(PyruncError, match=r"^process scheduler can't be used together with AllowedCPUs$"):
        in_child(lambda: child("0"))
    with pytest.raises(PyruncError, match=r"^error setting scheduler: operation not permitted$"):
        in_child(lambda: child(""))


def test_apply_attrs():
    def child():
        apply_attrs({"scheduler": {"policy": "SCHED_BATCH", "nice": 5},
                     "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 2}}, {"personality": {"domain": "LINUX"}})
        return os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0), L.ioprio_get(C.IOPRIO_WHO_PROCESS, 0)
    assert in_child(child) == [os.SCHED_BATCH, 5, (2 << 13) | 2]


# -- ioPriority

@pytest.mark.parametrize("io, want", [
    ({"class": "IOPRIO_CLASS_BE", "priority": 4}, (2 << 13) | 4),
    ({"class": "IOPRIO_CLASS_IDLE"}, 3 << 13),
    ({"class": "IOPRIO_CLASS_RT", "priority": 0}, 1 << 13),
])
def test_io_priority(io, want):
    before = L.ioprio_get(C.IOPRIO_WHO_PROCESS, 0)
    assert in_child(lambda: (A.apply_io_priority(io), L.ioprio_get(C.IOPRIO_WHO_PROCESS, 0))[1]) == want
    assert L.ioprio_get(C.IOPRIO_WHO_PROCESS, 0) == before


def test_io_priority_only_the_caller_and_its_children():
    """runc's ioprio_set(1 = IOPRIO_WHO_PROCESS, 0, ...): not the process group
    (pyrunc's container processes share the runtime's process group)."""
    def child():
        os.setpgid(0, 0)
        sib = os.fork()
        if sib == 0:
            os.read(os.open("/dev/zero", os.O_RDONLY), 1)
            import time
            time.sleep(5)
            os._exit(0)
        A.apply_io_priority({"class": "IOPRIO_CLASS_IDLE"})
        r, w = os.pipe()
        kid = os.fork()
        if kid == 0:
            os.write(w, str(L.ioprio_get(C.IOPRIO_WHO_PROCESS, 0)).encode())
            os._exit(0)
        os.waitpid(kid, 0)
        inherited = int(os.read(r, 32))
        sibling = L.ioprio_get(C.IOPRIO_WHO_PROCESS, sib)
        os.kill(sib, 9)
        os.waitpid(sib, 0)
        return inherited, sibling
    inherited, sibling = in_child(child)
    assert inherited == 3 << 13
    assert sibling != 3 << 13


# -- CPU affinity

@need_2_cpus
def test_fork_with_affinity_initial():
    before = os.sched_getaffinity(0)
    r, w = os.pipe()
    pid = A.fork_with_affinity({CPUS[1]})
    if pid == 0:  # pragma: no cover - child
        os.write(w, json.dumps(sorted(os.sched_getaffinity(0))).encode())
        os._exit(0)
    os.close(w)
    got = json.loads(os.read(r, 4096))
    os.close(r)
    os.waitpid(pid, 0)
    assert got == [CPUS[1]]
    assert os.sched_getaffinity(0) == before  # the parent's mask is restored


def _sleeper():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    return pid, w


def _stop(pid, w):
    os.close(w)
    os.waitpid(pid, 0)


@need_2_cpus
def test_final_and_reset_from_the_parent():
    pid, w = _sleeper()
    try:
        A.set_final_affinity(pid, {CPUS[0]}, {CPUS[1]})
        assert os.sched_getaffinity(pid) == {CPUS[1]}
        A.set_final_affinity(pid, {CPUS[0]}, None)  # only initial: left alone
        assert os.sched_getaffinity(pid) == {CPUS[1]}
        A.set_final_affinity(pid, None, None)  # neither: reset to every CPU
        assert os.sched_getaffinity(pid) == set(range(os.cpu_count() or 1)) & _online()
    finally:
        _stop(pid, w)


def _online() -> set[int]:
    with open("/sys/devices/system/cpu/online") as f:
        return A.cpu_list(f.read().strip())


def test_reset_affinity_of_a_pinned_process():
    pid, w = _sleeper()
    try:
        os.sched_setaffinity(pid, {CPUS[0]})
        A.reset_affinity(pid)
        assert os.sched_getaffinity(pid) == _online()
    finally:
        _stop(pid, w)


def test_reset_affinity_failure_is_a_warning(capfd):
    pid, w = _sleeper()
    _stop(pid, w)
    A.reset_affinity(pid)  # gone: ESRCH
    assert "resetting the CPU affinity of pid" in capfd.readouterr().err


def test_affinity_error_message():
    with pytest.raises(PyruncError, match=r"^error setting final CPU affinity: invalid argument$"):
        in_child(lambda: A.apply_affinity({4000}))
    with pytest.raises(PyruncError, match=r"^error setting initial CPU affinity: invalid argument$"):
        A.fork_with_affinity({4000})


# ============================================================ part 2: through the runtime

def wiring(test):  # these tests once waited for the runtime wiring; it is done
    return test


def _stat_fields(text: str) -> list[str]:
    return text[text.rfind(")") + 2:].split()


def sched_of(stat: str) -> tuple[int, int]:
    """(policy, nice) from a /proc/<pid>/stat line."""
    f = _stat_fields(stat)
    return int(f[38]), int(f[16])  # fields 41 (policy) and 19 (nice), 1-based


@wiring
@x86_64
def test_run_personality_linux32(rt, bundle):
    with bundle.edit() as cfg:
        cfg["linux"]["personality"] = {"domain": "LINUX32", "flags": []}
    bundle.set_args("uname", "-m")
    res = rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert res.stdout.strip() == "i686"


@wiring
@x86_64
def test_exec_personality_from_config(rt, bundle):
    with bundle.edit() as cfg:
        cfg["linux"]["personality"] = {"domain": "LINUX32"}
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    assert rt.exec_(cid, "uname", "-m").expect_ok().stdout.strip() == "i686"


@wiring
def test_run_personality_invalid(rt, bundle):
    with bundle.edit() as cfg:
        cfg["linux"]["personality"] = {"domain": "LINUX64"}
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="invalid personality domain LINUX64", one_line=True)


@wiring
def test_run_scheduler_init_and_exec(rt, bundle):
    with bundle.edit() as cfg:
        cfg["process"]["scheduler"] = {"policy": "SCHED_BATCH", "priority": 0, "nice": 19}
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    assert sched_of(rt.exec_(cid, "cat", "/proc/1/stat").expect_ok().stdout) == (3, 19)
    assert sched_of(rt.exec_(cid, "cat", "/proc/self/stat").expect_ok().stdout) == (3, 19)  # from config.json


@wiring
def test_exec_scheduler_from_process_json(rt, bundle, tmp_path):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps({"terminal": False, "cwd": "/", "args": ["/bin/cat", "/proc/self/stat"],
                              "scheduler": {"policy": "SCHED_IDLE"}}))
    assert sched_of(rt.exec_(cid, flags=["--process", pj]).expect_ok().stdout)[0] == 5


@wiring
@pytest.mark.parametrize("s, msg", [
    ({"policy": "SCHED_FOO"}, "invalid scheduler policy: SCHED_FOO"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "invalid scheduler.nice: 20 when scheduler.policy is SCHED_OTHER"),
    ({"policy": "SCHED_OTHER", "priority": 1}, "scheduler.priority can only be specified for SchedFIFO or SchedRR policy"),
])
def test_run_scheduler_invalid(rt, bundle, s, msg):
    with bundle.edit() as cfg:
        cfg["process"]["scheduler"] = s
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match=msg, one_line=True)


@wiring
@need_2_cpus
def test_run_scheduler_vs_cpus(rt, bundle):
    with bundle.edit() as cfg:
        cfg["linux"].setdefault("resources", {})["cpu"] = {"cpus": str(CPUS[0]), "mems": "0"}
        cfg["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "nice": 19, "runtime": 42000,
                                       "deadline": 1000000, "period": 1000000}
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(),
            match="process scheduler can't be used together with AllowedCPUs")


@wiring
def test_run_io_priority_init_and_exec(rt, bundle, tmp_path):
    with bundle.edit() as cfg:
        cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    assert rt.exec_(cid, "ionice", "-p", "1").expect_ok().out_lines[0] == "best-effort: prio 4"
    assert rt.exec_(cid, "ionice").expect_ok().out_lines[0] == "best-effort: prio 4"
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps({"terminal": False, "cwd": "/", "args": ["/bin/ionice"],
                              "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}}))
    assert rt.exec_(cid, flags=["--process", pj]).expect_ok().out_lines[0] == "idle"


@wiring
def test_run_io_priority_invalid(rt, bundle):
    with bundle.edit() as cfg:
        cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 8}
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match=r"invalid ioPriority\.Priority: 8", one_line=True)


def _cpus_allowed(out: str) -> str:
    for line in out.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(out)


@wiring
@need_2_cpus
@pytest.mark.parametrize("aff, want", [
    ({"initial": str(CPUS[-1])}, str(CPUS[-1])),         # kept: no final, no reset
    ({"initial": str(CPUS[0]), "final": str(CPUS[-1])}, str(CPUS[-1])),
    ({"final": str(CPUS[0])}, str(CPUS[0])),
])
def test_exec_cpu_affinity_from_process_json(rt, bundle, tmp_path, aff, want):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps({"terminal": False, "cwd": "/", "execCPUAffinity": aff,
                              "args": ["/bin/grep", "-F", "Cpus_allowed_list:", "/proc/self/status"]}))
    assert _cpus_allowed(rt.exec_(cid, flags=["--process", pj]).expect_ok().stdout) == want


@wiring
@need_2_cpus
def test_exec_cpu_affinity_from_config(rt, bundle):
    with bundle.edit() as cfg:
        cfg["process"]["execCPUAffinity"] = {"initial": str(CPUS[0]), "final": str(CPUS[1])}
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    assert _cpus_allowed(rt.exec_(cid, "grep", "-F", "Cpus_allowed_list:", "/proc/self/status")
                         .expect_ok().stdout) == str(CPUS[1])


@wiring
@need_2_cpus
def test_run_and_exec_reset_the_callers_affinity(rt, bundle):
    """`taskset -c 0 runc run`: the container gets every CPU (tryResetCPUAffinity)."""
    full = open("/sys/devices/system/cpu/online").read().strip()
    cid = rt.new_id()
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CPUS[0]})  # the runtime inherits it
    try:
        rt.run_d(cid, bundle)
        out = rt.exec_(cid, "grep", "-F", "Cpus_allowed_list:", "/proc/self/status").expect_ok().stdout
        init = rt.exec_(cid, "grep", "-F", "Cpus_allowed_list:", "/proc/1/status").expect_ok().stdout
    finally:
        os.sched_setaffinity(0, old)
    assert _cpus_allowed(out) == full
    assert _cpus_allowed(init) == full


@wiring
def test_run_cpu_affinity_invalid(rt, bundle):
    with bundle.edit() as cfg:
        cfg["process"]["execCPUAffinity"] = {"initial": "3-1"}
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="bad CPUAffinity.Initial: invalid range: 3-1",
            one_line=True)
