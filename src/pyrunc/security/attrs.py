"""Process attributes: linux.personality, process.scheduler, process.ioPriority
and process.execCPUAffinity, with runc's rules, messages and placement.

Where runc applies them (and where pyrunc should):

* scheduler, ioPriority, personality: by the container process itself, in this
  order, after the rootfs is final and before it reports ready (so a refused
  value is a `create`/`exec` error), while it is still root with every
  capability (SCHED_FIFO needs CAP_SYS_NICE): runc's standard_init_linux.go
  and setns_init_linux.go call setupScheduler, setupIOPriority,
  setupPersonality right before syncParentReady. init/child.py's apply_attrs
  does the three (then the memory policy).
* execCPUAffinity (exec only; "not applicable to the container's init"):
  `initial` is the mask the new process starts with, inherited from the
  runtime parent which sets it on its own thread just before it starts the
  child; `final` is set by the parent on the child's pid right after it has
  put the child into the container's cgroup (runc's setFinalCPUAffinity). With
  neither, and for every init, the parent resets the child's mask to all CPUs
  (runc's tryResetCPUAffinity) so the container never inherits the caller's
  pinning (e.g. `taskset -c 0 runc run`).

Only the stdlib and pyrunc.linux.sys (ctypes) are used; the module is cheap
to import and has no state.
"""
from __future__ import annotations

import os

from ..errors import ConfigError, PyruncError
from ..linux import consts as C

MAX_CPU = 1023  # runc 1.5's ToCPUSet: a unix.CPUSet holds 1024 CPUs
_INT32 = (-(1 << 31), (1 << 31) - 1)
_UINT64 = (0, (1 << 64) - 1)


# -- validation ---------------------------------------------------------------

def _goq(s: object) -> str:
    """Go's %q for the strings that appear in runc's messages."""
    s = str(s)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _type(v: object, t: type | tuple, what: str) -> None:
    if not isinstance(v, t) or (isinstance(v, bool) and t in (int, (int,))):
        raise ConfigError(f"invalid config: {what} has the wrong type", what)


def _int(v: object, what: str, lo_hi: tuple[int, int]) -> int:
    _type(v, int, what)
    assert isinstance(v, int)
    if not lo_hi[0] <= v <= lo_hi[1]:
        raise ConfigError(f"invalid config: {what} is out of range", what)
    return v


def _parse_uint(v: str, max_id: int = MAX_CPU) -> int:
    """strconv.ParseUint(v, 10, 32) with runc's bound, and Go's messages."""
    if not v or any(c not in "0123456789" for c in v):
        raise PyruncError(f"strconv.ParseUint: parsing {_goq(v)}: invalid syntax")
    n = int(v)
    if n > 0xFFFFFFFF:
        raise PyruncError(f"strconv.ParseUint: parsing {_goq(v)}: value out of range")
    if n > max_id:
        raise PyruncError(f"values larger than {max_id} are not supported")
    return n


def cpu_list(s: str, max_id: int = MAX_CPU) -> set[int]:
    """A cpu list ("0-3,7") as a set of CPU ids; "" is the empty set (unset).
    runc's ToCPUSet: elements are trimmed, empty elements are allowed, a range
    must not run backwards, ids above `max_id` are refused."""
    out: set[int] = set()
    if not s:
        return out
    seen = False
    for r in s.split(","):
        r = r.strip(" \t\n\r\v\f")
        if not r:
            continue
        start, dash, end = r.partition("-")
        a = _parse_uint(start, max_id)
        b = _parse_uint(end, max_id) if dash else a
        if a > b:
            raise PyruncError("invalid range: " + r)
        out.update(range(a, b + 1))
        seen = True
    if not seen:
        raise PyruncError(f"no members found in set {_goq(s)}")
    return out


def _validate_personality(p: object, warn: bool) -> None:
    _type(p, dict, "linux.personality")
    assert isinstance(p, dict)
    domain = p.get("domain", "")
    if domain not in ("LINUX", "LINUX32"):
        raise ConfigError(f"invalid personality domain {domain}", "linux.personality.domain")
    flags = p.get("flags")
    if flags is not None:
        _type(flags, list, "linux.personality.flags")
        for f in flags:
            _type(f, str, "linux.personality.flags")
        if flags and warn:
            # runc (specconv) warns and ignores them; runtime-spec: "Currently
            # no flag values are supported."
            from .. import log
            log.warn(f"ignoring unsupported personality flags: [{' '.join(flags)}] "
                     "because personality flag has not supported at this time")


def _validate_scheduler(s: object) -> None:
    _type(s, dict, "process.scheduler")
    assert isinstance(s, dict)
    policy = s.get("policy", "")
    _type(policy, str, "process.scheduler.policy")
    if policy == "":
        raise ConfigError("scheduler policy is required", "process.scheduler.policy")
    if policy not in C.SCHED_POLICIES:
        raise ConfigError(f"invalid scheduler policy: {policy}", "process.scheduler.policy")
    flags = s.get("flags") or []
    _type(flags, list, "process.scheduler.flags")
    for i, f in enumerate(flags):
        _type(f, str, "process.scheduler.flags")
        if f not in C.SCHED_FLAGS:
            raise ConfigError(f"invalid scheduler flag: {f}", f"process.scheduler.flags[{i}]")
    nice = _int(s.get("nice", 0), "process.scheduler.nice", _INT32)
    prio = _int(s.get("priority", 0), "process.scheduler.priority", _INT32)
    dl = [_int(s.get(k, 0), f"process.scheduler.{k}", _UINT64) for k in ("runtime", "deadline", "period")]
    if policy in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
        raise ConfigError(f"invalid scheduler.nice: {nice} when scheduler.policy is {policy}",
                          "process.scheduler.nice")
    if prio != 0 and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError("scheduler.priority can only be specified for SchedFIFO or SchedRR policy",
                          "process.scheduler.priority")
    if policy in ("SCHED_FIFO", "SCHED_RR") and not 1 <= prio <= 99:
        # runc leaves this to the kernel ("error setting scheduler: invalid argument")
        raise ConfigError(f"invalid scheduler.priority: {prio} when scheduler.policy is {policy} (must be 1-99)",
                          "process.scheduler.priority")
    if policy != "SCHED_DEADLINE" and any(dl):
        first = ("runtime", "deadline", "period")[[bool(x) for x in dl].index(True)]
        raise ConfigError("scheduler runtime/deadline/period can only be specified for SchedDeadline policy",
                          f"process.scheduler.{first}")


def _validate_io_priority(io: object) -> None:
    _type(io, dict, "process.ioPriority")
    assert isinstance(io, dict)
    prio = io.get("priority", 0)
    _type(prio, int, "process.ioPriority.priority")
    if not 0 <= prio <= 7:
        raise ConfigError(f"invalid ioPriority.Priority: {prio}", "process.ioPriority.priority")
    cls = io.get("class", "")
    if cls not in C.IOPRIO_CLASSES:
        raise ConfigError(f"invalid ioPriority.Class: {_goq(cls)}", "process.ioPriority.class")


def exec_affinity(process: dict) -> tuple[set[int] | None, set[int] | None]:
    """(initial, final) CPU sets of process.execCPUAffinity; None where unset or
    empty. Raises ConfigError with runc's "bad CPUAffinity.X: ..." message."""
    aff = process.get("execCPUAffinity")
    if aff is None:
        return None, None
    _type(aff, dict, "process.execCPUAffinity")
    out: list[set[int] | None] = []
    for key, label in (("initial", "Initial"), ("final", "Final")):
        v = aff.get(key) or ""
        _type(v, str, f"process.execCPUAffinity.{key}")
        try:
            out.append(cpu_list(v) or None)
        except PyruncError as e:
            raise ConfigError(f"bad CPUAffinity.{label}: {e}", f"process.execCPUAffinity.{key}") from e
    return out[0], out[1]


def validate(process: dict | None, linux: dict | None, warn: bool = True) -> None:
    """Every check of the four fields, before anything is created. `warn`
    logs runc's warning for personality flags (pass False for `exec`, which
    reuses a config already validated by `create`)."""
    process = process or {}
    linux = linux or {}
    if linux.get("personality") is not None:
        _validate_personality(linux["personality"], warn)
    if process.get("scheduler") is not None:
        _validate_scheduler(process["scheduler"])
    if process.get("ioPriority") is not None:
        _validate_io_priority(process["ioPriority"])
    exec_affinity(process)


# -- applying (each for the calling process) ------------------------------------

def _err(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def apply_personality(p: dict) -> None:
    """personality(2) with the domain (runc: flags are ignored)."""
    from ..linux import sys as L
    domain = C.PER_LINUX32 if p.get("domain") == "LINUX32" else C.PER_LINUX
    try:
        L.personality(domain)
    except OSError as e:
        raise PyruncError(f"set_personality: {_err(e)}") from None


def sched_args(s: dict) -> tuple[int, int, int, int, int, int, int]:
    """(policy, flags, nice, priority, runtime, deadline, period) for sched_setattr."""
    flags = 0
    for f in s.get("flags") or []:
        flags |= C.SCHED_FLAGS[f]
    return (C.SCHED_POLICIES[s["policy"]], flags, s.get("nice", 0), s.get("priority", 0),
            s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0))


def apply_scheduler(s: dict, cpuset: str = "") -> None:
    """sched_setattr(0, attr, 0). `cpuset` is linux.resources.cpu.cpus: with it,
    EPERM gets runc's explanation (SCHED_DEADLINE needs every CPU)."""
    from ..linux import sys as L
    try:
        L.sched_setattr(0, *sched_args(s))
    except OSError as e:
        if e.errno == 1 and cpuset:
            raise PyruncError("process scheduler can't be used together with AllowedCPUs") from None
        raise PyruncError(f"error setting scheduler: {_err(e)}") from None


def io_priority_value(io: dict) -> int:
    return C.IOPRIO_CLASSES[io["class"]] << C.IOPRIO_CLASS_SHIFT | io.get("priority", 0)


def apply_io_priority(io: dict) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | priority). runc passes
    1 (a constant it calls ioprioWhoPgrp, which is IOPRIO_WHO_PROCESS): the
    calling process, inherited by its children."""
    from ..linux import sys as L
    try:
        L.ioprio_set(C.IOPRIO_WHO_PROCESS, 0, io_priority_value(io))
    except OSError as e:
        raise PyruncError(f"failed to set io priority: {_err(e)}") from None


def apply_affinity(cpus: set[int], pid: int = 0, what: str = "final") -> None:
    """sched_setaffinity(pid, cpus); `what` names it in runc's message."""
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        raise PyruncError(f"error setting {what} CPU affinity: {_err(e)}") from None




def reset_affinity(pid: int) -> None:
    """runc's tryResetCPUAffinity: every CPU (the kernel clamps the mask to
    the cgroup's cpuset), so the container does not inherit a pinning of
    pyrunc's caller; a failure is a warning."""
    try:  # os's call, not ctypes: this runs in every create's parent
        os.sched_setaffinity(pid, range(os.cpu_count() or 1024))
    except OSError as e:
        from .. import log
        log.warn(f"resetting the CPU affinity of pid {pid} failed -- the container process "
                 f"may inherit pyrunc's CPU affinity: {_err(e)}")


def fork_with_affinity(initial: set[int] | None) -> int:
    """os.fork(), the child starting on the `initial` CPUs (execCPUAffinity
    .initial): the parent pins itself, forks, and restores its own mask."""
    if not initial:
        return os.fork()
    old = os.sched_getaffinity(0)
    apply_affinity(initial, 0, "initial")
    try:
        pid = os.fork()
    except BaseException:
        os.sched_setaffinity(0, old)
        raise
    if pid:
        os.sched_setaffinity(0, old)
    return pid


def set_final_affinity(pid: int, initial: set[int] | None, final: set[int] | None) -> None:
    """runc's setFinalCPUAffinity, by the parent right after the child joined
    the cgroup: `final` if given; neither given: reset to all CPUs; only
    `initial`: leave it."""
    if final:
        apply_affinity(final, pid, "final")
    elif not initial:
        reset_affinity(pid)
