"""security/seccomp.py and linux/seccomp.py: linux.seccomp -> filter.

Part 1 needs neither libseccomp nor the kernel: the spec's translation
(runc's SetupSeccomp / matchCall), and runc's ENOSYS stub, run through a
small classic-BPF interpreter.
Part 2 builds real filters with libseccomp and runs the whole program (stub
+ libseccomp's code) through the same interpreter.
Part 3 loads filters into forked children and makes system calls.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import struct

import pytest

from pyrunc.errors import PyruncError
from pyrunc.security import seccomp as S

X86_64 = platform.machine() == "x86_64"
AUDIT_X86_64, AUDIT_I386, AUDIT_AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
X32_BIT = 0x40000000
RET_ALLOW, RET_KILL_THREAD, RET_KILL_PROCESS = 0x7FFF0000, 0, 0x80000000
FALLTHROUGH = 0x7FFF0001  # a marker "filter" after the stub in part 1


def ret_errno(e):
    return 0x00050000 | e


# --------------------------------------------------------------------------- a cBPF interpreter


def bpf_run(prog: bytes, nr: int, arch: int, args=(0, 0, 0, 0, 0, 0), ip: int = 0) -> int:
    """Run a seccomp classic-BPF program on one struct seccomp_data; return
    the filter's verdict. Covers the instructions libseccomp and runc emit."""
    data = struct.pack("=iIQ6Q", nr, arch, ip, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    steps = 0
    while True:
        steps += 1
        assert steps < 100000, "runaway program"
        code, jt, jf, k = insns[pc]
        cls = code & 0x07
        pc += 1
        if cls == 0x00:  # BPF_LD
            mode = code & 0xE0
            if mode == 0x20:  # ABS
                assert code & 0x18 == 0, "only 32-bit loads"
                a = struct.unpack_from("=I", data, k)[0]
            elif mode == 0x00:  # IMM
                a = k
            elif mode == 0x60:  # MEM
                a = mem[k]
            else:
                raise AssertionError(f"ld mode {mode:#x}")
        elif cls == 0x01:  # BPF_LDX
            x = k if code & 0xE0 == 0x00 else mem[k]
        elif cls == 0x02:  # BPF_ST
            mem[k] = a
        elif cls == 0x03:  # BPF_STX
            mem[k] = x
        elif cls == 0x04:  # BPF_ALU
            op, src = code & 0xF0, (x if code & 0x08 else k)
            a = {0x00: lambda: a + src, 0x10: lambda: a - src, 0x20: lambda: a * src,
                 0x40: lambda: a | src, 0x50: lambda: a & src, 0x60: lambda: a << src,
                 0x70: lambda: a >> src, 0x80: lambda: -a, 0xA0: lambda: a ^ src}[op]() & 0xFFFFFFFF
        elif cls == 0x05:  # BPF_JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                pc += k
            else:
                cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
                pc += jt if cond else jf
        elif cls == 0x06:  # BPF_RET
            return a if code & 0x18 == 0x10 else k
        elif cls == 0x07:  # BPF_MISC
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
        assert 0 <= pc < len(insns), "jumped out of the program"


# --------------------------------------------------------------------------- part 1: parse


def profile(**kw):
    sc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    sc.update(kw)
    return sc


def test_no_filter_when_empty():
    assert S.parse(None) is None
    assert S.parse({}) is None
    assert S.parse({"defaultAction": "", "syscalls": []}) is None
    assert S.parse({"architectures": ["SCMP_ARCH_X86_64"]}) is None


def test_names_become_rules_in_order():
    p = S.parse(profile(defaultErrnoRet=38, syscalls=[
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
    ]))
    assert p.default == "errno" and p.default_errno == 38
    assert [(r.name, r.action, r.errno) for r in p.rules] == [
        ("read", "allow", None), ("write", "allow", None), ("mkdir", "errno", 13)]
    assert p.rules[2].args == [(1, S.OPERATORS["SCMP_CMP_EQ"], 0o700, 0)]
    assert p.flags is None and p.archs == [] and not p.notify


@pytest.mark.parametrize("spec,msg", [
    (profile(defaultAction="SCMP_ACT_FOO"), "string SCMP_ACT_FOO is not a valid action for seccomp"),
    (profile(defaultAction="", syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]),
     "string  is not a valid action for seccomp"),
    (profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_BAR"}]),
     "string SCMP_ACT_BAR is not a valid action for seccomp"),
    (profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_FOO"]), "string SCMP_ARCH_FOO is not a valid arch for seccomp"),
    (profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]),
     "string SCMP_CMP_XX is not a valid operator for seccomp"),
    (profile(flags=["SECCOMP_FILTER_FLAG_FOO"]), "seccomp flag SECCOMP_FILTER_FLAG_FOO is not known to pyrunc"),
    (profile(defaultAction="SCMP_ACT_NOTIFY"), "SCMP_ACT_NOTIFY cannot be used as default action"),
    (profile(listenerPath="/x", syscalls=[{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]),
     "SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    (profile(listenerPath="/x", syscalls=[{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]),
     "SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall"),
    (profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]), "seccomp listenerPath is not set"),
    (profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
     "error creating seccomp syscall condition for syscall mkdir: syscalls only have up to 6 arguments (6 given)"),
    (profile(defaultErrnoRet=-1), "defaultErrnoRet must be an unsigned 32-bit integer"),
    (profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}]}]), "args[].value must be"),
    ("nope", "linux.seccomp must be an object"),
])
def test_parse_errors(spec, msg):
    with pytest.raises(PyruncError) as ei:
        S.parse(spec)
    assert msg in str(ei.value)
    assert "\n" not in str(ei.value)


def test_flags_none_vs_empty():
    assert S.parse(profile()).flags is None  # SPEC_ALLOW by default, where supported
    assert S.parse(profile(flags=[])).flags == []
    assert S.parse(profile(flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"])).flags == [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]


def test_archs_map_to_libseccomp_names():
    p = S.parse(profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"]))
    assert p.archs == ["x86_64", "x86", "x32", "aarch64"]


def test_every_action_and_operator_is_known():
    from pyrunc.spec.features import SECCOMP_ACTIONS, SECCOMP_ARCHS, SECCOMP_OPERATORS
    assert set(S.ACTIONS) == set(SECCOMP_ACTIONS)
    assert set(S.OPERATORS) == set(SECCOMP_OPERATORS)
    assert set(S.ARCHS) == set(SECCOMP_ARCHS)


# --------------------------------------------------------------------------- part 1: actions and rules


@pytest.mark.parametrize("kind,errno_,value", [
    ("kill", None, 0), ("kill_thread", None, 0), ("kill_process", None, 0x80000000),
    ("trap", None, 0x00030000), ("errno", None, 0x00050001), ("errno", 38, 0x00050026),
    ("errno", 0x10001, 0x00050001), ("trace", None, 0x7FF00001), ("trace", 5, 0x7FF00005),
    ("allow", 7, 0x7FFF0000), ("log", None, 0x7FFC0000), ("notify", None, 0x7FC00000),
])
def test_action_values(kind, errno_, value):
    assert S.action_value(kind, errno_) == value


NR = {"read": 0, "write": 1, "mkdir": 83, "personality": 135, "socket": 41, "socketcall": -101}


def plan(spec):
    return S.plan_rules(S.parse(spec), lambda n: NR.get(n, -1))


def test_plan_skips_redundant_and_unknown_rules():
    out = plan(profile(syscalls=[
        {"names": ["read", "nosuchcall", "socketcall"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO"},  # = default ERRNO(EPERM)
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},  # the same
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
    ]))
    assert out == [("read", 0, 0x7FFF0000, []), ("socketcall", -101, 0x7FFF0000, []),
                   ("mkdir", 83, 0x00050002, [])]


def test_plan_default_errno_ret_changes_redundancy():
    out = plan(profile(defaultErrnoRet=38, syscalls=[{"names": ["write"], "action": "SCMP_ACT_ERRNO"}]))
    assert out == [("write", 1, 0x00050001, [])]  # ERRNO(EPERM) is not the default ERRNO(ENOSYS)


def test_plan_conditions_on_distinct_args_make_one_rule():
    eq, masked = S.OPERATORS["SCMP_CMP_EQ"], S.OPERATORS["SCMP_CMP_MASKED_EQ"]
    out = plan(profile(defaultAction="SCMP_ACT_ALLOW", syscalls=[{
        "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
        "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                 {"index": 2, "value": 9, "valueTwo": 15, "op": "SCMP_CMP_MASKED_EQ"}]}]))
    assert out == [("socket", 41, 0x00050016, [(0, eq, 16, 0), (2, masked, 9, 15)])]


def test_plan_conditions_on_the_same_arg_make_one_rule_each():
    gt, lt = S.OPERATORS["SCMP_CMP_GT"], S.OPERATORS["SCMP_CMP_LT"]
    out = plan(profile(defaultAction="SCMP_ACT_ALLOW", syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GT"},
                 {"index": 0, "value": 5, "op": "SCMP_CMP_LT"},
                 {"index": 1, "value": 1, "op": "SCMP_CMP_LT"}]}]))
    assert out == [("personality", 135, 0x00050001, [(0, gt, 10, 0)]),
                   ("personality", 135, 0x00050001, [(0, lt, 5, 0)]),
                   ("personality", 135, 0x00050001, [(1, lt, 1, 0)])]


def test_plan_empty_name():
    with pytest.raises(PyruncError, match="empty string is not a valid syscall"):
        plan(profile(syscalls=[{"names": [""], "action": "SCMP_ACT_ALLOW"}]))


# --------------------------------------------------------------------------- part 1: the ENOSYS stub


@pytest.mark.parametrize("default,errno_,want", [
    ("SCMP_ACT_ALLOW", None, False), ("SCMP_ACT_LOG", None, False), ("SCMP_ACT_TRACE", None, False),
    ("SCMP_ACT_ERRNO", None, True), ("SCMP_ACT_ERRNO", 1, True), ("SCMP_ACT_ERRNO", 38, False),
    ("SCMP_ACT_KILL", None, True), ("SCMP_ACT_KILL_PROCESS", None, True), ("SCMP_ACT_TRAP", None, True),
])
def test_needs_enosys_stub(default, errno_, want):
    sc = profile(defaultAction=default)
    if errno_ is not None:
        sc["defaultErrnoRet"] = errno_
    assert S.needs_enosys_stub(S.parse(sc)) is want


def test_last_syscalls_per_arch():
    nums = {("x86_64", "read"): 0, ("x86_64", "mkdir"): 83, ("x32", "read"): X32_BIT | 0,
            ("x32", "mkdir"): X32_BIT | 83, ("x86", "read"): 3, ("x86", "mkdir"): 39,
            ("x86_64", "socketcall"): -101, ("x86", "socketcall"): 102}
    p = S.parse(profile(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X32"], syscalls=[
        {"names": ["read", "mkdir", "socketcall", "nosuch"], "action": "SCMP_ACT_ALLOW"}]))
    last = S.last_syscalls(p, "x86_64", lambda a, n: nums.get((a, n), -1))
    # the native arch is implied; x86_64 and x32 share an AUDIT_ARCH
    assert last == {AUDIT_I386: {"x86": 102}, AUDIT_X86_64: {"x32": X32_BIT | 83, "x86_64": 83}}


def stubbed(last):
    """The stub followed by a one-instruction 'filter' that returns FALLTHROUGH."""
    return S.assemble(S.enosys_stub(last) + [(0x06, 0, 0, FALLTHROUGH)])


def test_stub_single_arch():
    prog = stubbed({AUDIT_AARCH64: {"aarch64": 300}})
    assert bpf_run(prog, 300, AUDIT_AARCH64) == FALLTHROUGH
    assert bpf_run(prog, 0, AUDIT_AARCH64) == FALLTHROUGH
    assert bpf_run(prog, 301, AUDIT_AARCH64) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog, 999, AUDIT_X86_64) == FALLTHROUGH  # another arch: the filter decides


def test_stub_x86_64_x32_and_i386():
    prog = stubbed({AUDIT_X86_64: {"x86_64": 335, "x32": X32_BIT | 547}, AUDIT_I386: {"x86": 440}})
    assert bpf_run(prog, 335, AUDIT_X86_64) == FALLTHROUGH
    assert bpf_run(prog, 336, AUDIT_X86_64) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog, X32_BIT | 547, AUDIT_X86_64) == FALLTHROUGH
    assert bpf_run(prog, X32_BIT | 548, AUDIT_X86_64) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog, 440, AUDIT_I386) == FALLTHROUGH
    assert bpf_run(prog, 441, AUDIT_I386) == ret_errno(errno.ENOSYS)


def test_stub_x86_64_without_x32():
    prog = stubbed({AUDIT_X86_64: {"x86_64": 335}})
    assert bpf_run(prog, 336, AUDIT_X86_64) == ret_errno(errno.ENOSYS)
    # x32 calls are not the stub's business: the filter (bad arch) decides
    assert bpf_run(prog, X32_BIT | 600, AUDIT_X86_64) == FALLTHROUGH


def test_stub_x32_alone():
    prog = stubbed({AUDIT_X86_64: {"x32": X32_BIT | 547}})
    assert bpf_run(prog, X32_BIT | 548, AUDIT_X86_64) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog, 600, AUDIT_X86_64) == FALLTHROUGH


def test_stub_s390x_setup_multiplexer():
    prog = stubbed({0x80000016: {"s390x": 450}})
    assert bpf_run(prog, 0, 0x80000016) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog, 1, 0x80000016) == FALLTHROUGH
    assert bpf_run(prog, 451, 0x80000016) == ret_errno(errno.ENOSYS)


def test_stub_long_jumps():
    """Enough architectures that the jumps pass 255 instructions: the long
    forms (runc's jle/ret/ja and jne/ja) must still send every arch right."""
    last = {0x1000 + i: {"aarch64": 100 + i} for i in range(120)}
    last[AUDIT_X86_64] = {"x86_64": 335, "x32": X32_BIT | 547}
    last[0x40002000] = {"x86": 50}
    prog = stubbed(last)
    assert len(prog) // 8 > 300
    for audit, maxes in last.items():
        for arch, top in maxes.items():
            assert bpf_run(prog, top, audit) == FALLTHROUGH, (hex(audit), arch)
            assert bpf_run(prog, top + 1, audit) == ret_errno(errno.ENOSYS), (hex(audit), arch)
    assert bpf_run(prog, 5, 0x7777) == FALLTHROUGH


def test_stub_empty_arch_falls_through():
    prog = stubbed({AUDIT_AARCH64: {}, AUDIT_I386: {"x86": 10}})
    assert bpf_run(prog, 1000, AUDIT_AARCH64) == FALLTHROUGH
    assert bpf_run(prog, 11, AUDIT_I386) == ret_errno(errno.ENOSYS)


def test_assemble_encoding():
    insns = [S._ld(4), S._jif("eq", AUDIT_X86_64, 3), S._jif("ne", 7, 1), S._jif("le", 9, 2, 1),
             S._jif("notset", 1 << 30, 4), S._ja(300), S._ret(0x50026)]
    raw = S.assemble(insns)
    assert [struct.unpack_from("=HBBI", raw, i) for i in range(0, len(raw), 8)] == [
        (0x20, 0, 0, 4), (0x15, 3, 0, AUDIT_X86_64), (0x15, 0, 1, 7), (0x25, 1, 2, 9),
        (0x45, 0, 4, 1 << 30), (0x05, 0, 0, 300), (0x06, 0, 0, 0x50026)]
    with pytest.raises(ValueError):
        S._jif("gt", 1, 256)


# --------------------------------------------------------------------------- part 2: libseccomp


def have_libseccomp():
    try:
        from pyrunc.linux import seccomp as L
        L.lib()
        return True
    except OSError:
        return False


needs_lib = pytest.mark.skipif(not have_libseccomp(), reason="libseccomp.so.2 not available")
x86_64_only = pytest.mark.skipif(not X86_64, reason="x86_64 syscall numbers")


def built(sc: dict) -> S.Seccomp:
    s = S.prepare({"linux": {"seccomp": sc}}, cid="c1", bundle="/b", oci_version="1.2.0")
    s.build()
    return s


def prog_of(s: S.Seccomp) -> bytes:
    return bytes(s.program.buf.raw)


@needs_lib
def test_libseccomp_binding_basics():
    from pyrunc.linux import seccomp as L
    assert L.version() >= (2, 3, 1)
    assert L.arch_resolve("x86_64") == AUDIT_X86_64
    assert L.arch_resolve("nosucharch") == 0
    assert L.syscall_resolve("nosuchcall") == -1
    if X86_64:
        assert L.syscall_resolve("mkdir") == 83
        assert L.syscall_resolve("mkdir", L.arch_resolve("x32")) == X32_BIT | 83
        assert L.syscall_resolve("socketcall") < -1  # a pseudo syscall on x86_64
        assert L.arch_native() == AUDIT_X86_64


@needs_lib
def test_prepare_checks_with_libseccomp():
    from pyrunc.linux import seccomp as L
    if L.arch_resolve("loongarch64") == 0:
        with pytest.raises(PyruncError, match="error adding architecture to seccomp filter: loongarch64"):
            S.prepare({"linux": {"seccomp": profile(architectures=["SCMP_ARCH_LOONGARCH64"])}},
                  oci_version="1.2.0")
    if L.api_level() < 7:
        with pytest.raises(PyruncError, match=r"^error adding WaitKill flag to seccomp filter: "
                                              r"SetWaitKill requires libseccomp >= 2\.6\.0 and API level >= 7 "
                                              r"\(current version: \d+\.\d+\.\d+, API level: \d+\)$"):
            S.prepare({"linux": {"seccomp": profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])}},
                  oci_version="1.2.0")
    with pytest.raises(PyruncError, match="failed to connect with seccomp agent specified in the seccomp "
                                          "profile: dial unix /nonexistent.sock: connect: no such file or directory"):
        S.prepare({"linux": {"seccomp": profile(listenerPath="/nonexistent.sock", syscalls=[
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])}}, oci_version="1.2.0")
    assert S.prepare({"linux": {}}, oci_version="1.2.0") is None


@needs_lib
@x86_64_only
def test_filter_verdicts():
    s = built({
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "nosuchcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
            # same arg twice: either condition
            {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
            # distinct args: both conditions
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                      # MASKED_EQ: (arg & value) == valueTwo
                      {"index": 1, "value": 0xF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getpgrp"], "action": "SCMP_ACT_LOG"},
            {"names": ["uname"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
            {"names": ["getuid"], "action": "SCMP_ACT_KILL"},
        ]})
    prog = prog_of(s)
    run = lambda nr, *args: bpf_run(prog, nr, AUDIT_X86_64, args + (0,) * (6 - len(args)))  # noqa: E731
    assert run(83) == ret_errno(13)  # mkdir
    assert run(0) == RET_ALLOW  # read
    assert run(135, 0xFFFFFFFF) == ret_errno(1)  # personality(0xffffffff)
    assert run(135, 0) == RET_ALLOW
    assert run(62, 1, 9) == RET_KILL_PROCESS and run(62, 1, 15) == RET_KILL_PROCESS
    assert run(62, 1, 2) == RET_ALLOW
    assert run(41, 2, 1) == ret_errno(97) and run(41, 2, 0x801) == ret_errno(97)  # AF_INET, SOCK_STREAM|flags
    assert run(41, 2, 2) == RET_ALLOW and run(41, 1, 1) == RET_ALLOW  # SOCK_DGRAM, AF_UNIX
    assert run(110) == 0x00030000  # TRAP
    assert run(111) == 0x7FFC0000  # LOG
    assert run(63) == 0x7FF00005  # TRACE(5)
    assert run(102) == RET_KILL_THREAD
    assert bpf_run(prog, 3, AUDIT_I386) == RET_KILL_THREAD  # an arch not in the filter
    # default ALLOW: no stub, flags = SPEC_ALLOW (runc's default) where supported
    from pyrunc.linux import seccomp as L
    assert s.flags in (0, L.FILTER_FLAG_SPEC_ALLOW)


@needs_lib
@x86_64_only
def test_enosys_stub_in_front_of_libseccomp():
    s = built({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
               "syscalls": [{"names": ["read", "write", "mkdir", "openat"], "action": "SCMP_ACT_ALLOW"}]})
    prog = prog_of(s)
    assert bpf_run(prog, 257, AUDIT_X86_64) == RET_ALLOW  # openat: the highest named
    assert bpf_run(prog, 100, AUDIT_X86_64) == ret_errno(errno.EPERM)  # known to the profile's range: default
    assert bpf_run(prog, 258, AUDIT_X86_64) == ret_errno(errno.ENOSYS)  # newer than the profile
    assert bpf_run(prog, 1000, AUDIT_X86_64) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog, 295, AUDIT_I386) == RET_ALLOW  # openat on i386
    assert bpf_run(prog, 296, AUDIT_I386) == ret_errno(errno.ENOSYS)
    # ERRNO(ENOSYS) default: the stub cannot change a verdict and is left out
    s2 = built({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "syscalls": [{"names": ["read", "write", "mkdir", "openat"], "action": "SCMP_ACT_ALLOW"}]})
    assert len(prog_of(s2)) < len(prog)
    assert bpf_run(prog_of(s2), 1000, AUDIT_X86_64) == ret_errno(errno.ENOSYS)
    assert bpf_run(prog_of(s2), 100, AUDIT_X86_64) == ret_errno(errno.ENOSYS)


CONTAINERS_SECCOMP = "/usr/share/containers/seccomp.json"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_NATIVE = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}
PODMAN_CAPS = ("CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
               "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
               "CAP_SETUID", "CAP_SYS_CHROOT")  # podman 4.3's defaults


def podman_profile(path: str = CONTAINERS_SECCOMP, caps=PODMAN_CAPS) -> dict | None:
    """podman's default profile as podman writes it into config.json
    (containers/common's conversion: the native arch and its sub-arches,
    entries filtered by arch and by the container's capabilities); None if
    containers-common is not installed. With podman 4.3's default
    capabilities this gives exactly the linux.seccomp podman passes."""
    try:
        with open(path) as f:
            src = json.load(f)
    except OSError:
        return None
    goarch = _GOARCH.get(platform.machine(), platform.machine())
    native = _NATIVE.get(goarch)
    archs: list[str] = []
    for m in src.get("archMap") or []:
        if m["architecture"] == native:
            archs = [m["architecture"], *m.get("subArchitectures", [])]
    out = {"defaultAction": src["defaultAction"]}
    if src.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = src["defaultErrnoRet"]
    out["architectures"] = archs
    rules = []
    for s in src["syscalls"]:
        inc, exc = s.get("includes") or {}, s.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"] or exc.get("arches") and goarch in exc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        r = {"names": s["names"], "action": s["action"]}
        if s.get("args"):
            r["args"] = [{k: v for k, v in a.items() if k != "valueTwo" or v} for a in s["args"]]
        if s.get("errnoRet") is not None:
            r["errnoRet"] = s["errnoRet"]
        rules.append(r)
    out["syscalls"] = rules
    return out


def podman_like_profile():
    sc = podman_profile()
    if sc is None:
        pytest.skip(f"{CONTAINERS_SECCOMP} (containers-common) not installed")
    return sc


@needs_lib
@x86_64_only
def test_podman_profile_builds_and_behaves():
    sc = podman_like_profile()
    s = built(sc)
    prog = prog_of(s)
    assert 300 < s.program.ninsns < 4096
    assert bpf_run(prog, 83, AUDIT_X86_64) == RET_ALLOW  # mkdir
    assert bpf_run(prog, 246, AUDIT_X86_64) == ret_errno(errno.EPERM)  # kexec_load
    assert bpf_run(prog, 135, AUDIT_X86_64, (0xFFFFFFFF,)) == RET_ALLOW  # personality(PER_QUERY)
    assert bpf_run(prog, 135, AUDIT_X86_64, (0x0040000,)) == ret_errno(errno.ENOSYS)  # other personalities
    assert bpf_run(prog, 9999, AUDIT_X86_64) == ret_errno(errno.ENOSYS)


@needs_lib
@x86_64_only
def test_builder_process_hands_over_the_same_program():
    sc = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "flags": ["SECCOMP_FILTER_FLAG_LOG"],
          "syscalls": [{"names": ["read", "write", "exit_group", "mkdir"], "action": "SCMP_ACT_ALLOW"}]}
    direct = built(sc)
    s = S.prepare({"linux": {"seccomp": sc}}, cid="c1", bundle="/b", oci_version="1.2.0")
    s.start_build()
    assert s.program is None
    s.ready()
    assert prog_of(s) == prog_of(direct)
    assert s.flags == direct.flags
    from pyrunc.linux import seccomp as L
    assert s.flags & L.FILTER_FLAG_LOG
    with pytest.raises(ChildProcessError):  # ready() reaped the builder, ours
        os.waitpid(s.builder, os.WNOHANG)


@needs_lib
def test_builder_error_is_reported_by_ready(monkeypatch):
    s = S.prepare({"linux": {"seccomp": profile(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW"}])}},
                  oci_version="1.2.0")

    def boom(self):
        raise PyruncError("error adding seccomp filter rule for syscall read: boom")

    monkeypatch.setattr(S.Seccomp, "build", boom)
    s.start_build()
    with pytest.raises(PyruncError, match="for syscall read: boom"):
        s.ready()
    with pytest.raises(ChildProcessError):  # reaped all the same
        os.waitpid(s.builder, os.WNOHANG)


# --------------------------------------------------------------------------- part 3: the kernel


def in_child(fn):
    """fn() in a forked child; its JSON result (or its error text)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            try:
                res = {"ok": fn()}
            except BaseException as e:  # noqa: BLE001
                res = {"err": f"{type(e).__name__}: {e}"}
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
    return json.loads(data)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def raw_syscall(nr, *args):
    ret = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return ret if ret >= 0 else -ctypes.get_errno()


def seccomp_mode():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return -1


@needs_lib
@x86_64_only
def test_kernel_applies_patched_filter():
    # a profile a Python process survives: podman-ish allow list, EPERM default
    sc = podman_like_profile()
    sc["defaultErrnoRet"] = 1  # EPERM: the stub is needed
    s = built(sc)

    def child():
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        s.apply()
        return {"mode": seccomp_mode(),
                "kexec_load": raw_syscall(246, 0, 0, 0, 0),  # ERRNO(EPERM) by rule
                "unlisted": raw_syscall(134, 0),  # uselib: not in the profile, in its range -> default
                "newer": raw_syscall(1000),  # beyond the profile -> ENOSYS by the stub
                "getpid": raw_syscall(39) == os.getpid()}

    res = in_child(child)
    assert res == {"ok": {"mode": 2, "kexec_load": -errno.EPERM, "unlisted": -errno.EPERM,
                          "newer": -errno.ENOSYS, "getpid": True}}, res


@needs_lib
@x86_64_only
def test_kernel_kill_and_errno_and_flags():
    s = built({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
                            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]})
    from pyrunc.linux import seccomp as L
    assert s.flags == L.FILTER_FLAG_LOG  # TSYNC is ignored, as in runc

    def errno_child():
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)
        s.apply()
        return raw_syscall(258, -100, 0, 0)  # mkdirat(AT_FDCWD, NULL, 0)

    assert in_child(errno_child) == {"ok": -95}

    def kill_child():
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)
        s.apply()
        raw_syscall(110)  # getppid
        return "survived"

    assert in_child(kill_child) == {"signal": 31}  # SIGSYS


@needs_lib
def test_load_without_nnp_or_cap_fails_clearly():
    s = built({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})

    def child():
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)  # no CAP_SYS_ADMIN, no no_new_privs
        s.apply()
        return "loaded"

    res = in_child(child)
    assert res["err"].startswith("PyruncError: error loading seccomp filter into kernel: "
                                 "error loading seccomp filter: permission denied"), res


# runc's seccomp.bats flags_value(): what each spec flag adds to seccomp(2)'s flags
_FLAG_VALUES = {"SECCOMP_FILTER_FLAG_TSYNC": 0, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


def test_flag_table_matches_the_kernel_and_libseccomp():
    """Spec name -> (libseccomp attribute, seccomp(2) flag): SCMP_FLTATR_CTL_LOG
    = 6, _CTL_SSB = 7, _CTL_WAITKILL = 10 (seccomp.h); the kernel's
    SECCOMP_FILTER_FLAG_LOG = 2, SPEC_ALLOW = 4, WAIT_KILLABLE_RECV = 32,
    NEW_LISTENER = 8; TSYNC is accepted and ignored (None)."""
    assert S.FLAGS["SECCOMP_FILTER_FLAG_TSYNC"] is None
    assert {k: v[:2] for k, v in S.FLAGS.items() if v} == {
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (7, 4), "SECCOMP_FILTER_FLAG_LOG": (6, 2),
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (10, 32)}
    assert S.FILTER_FLAG_NEW_LISTENER == 8
    # runc's KnownFlags, in its order
    assert list(S.FLAGS) == ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                             "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]


@needs_lib
@pytest.mark.parametrize("flags", [None, []] + [
    [f for i, f in enumerate(_FLAG_VALUES) if n >> i & 1] for n in range(1, 8)])
def test_flags_value_of_every_combination(flags, tmp_path):
    """runc's seccomp.bats "SECCOMP_FILTER_FLAG_*": the value passed to
    seccomp(2) for every combination; no "flags" at all means SPEC_ALLOW
    where supported."""
    from pyrunc.linux import seccomp as L
    ssb_ok = S._flag_supported("SECCOMP_FILTER_FLAG_SPEC_ALLOW", L.version(), L.api_level())
    log_ok = S._flag_supported("SECCOMP_FILTER_FLAG_LOG", L.version(), L.api_level())
    if flags and (("SECCOMP_FILTER_FLAG_SPEC_ALLOW" in flags and not ssb_ok)
                  or ("SECCOMP_FILTER_FLAG_LOG" in flags and not log_ok)):
        pytest.skip("this libseccomp cannot set one of the flags")
    sc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    if flags is not None:
        sc["flags"] = flags
    want = (4 if ssb_ok else 0) if flags is None else sum(_FLAG_VALUES[f] for f in flags)
    assert built(sc).flags == want
    # with a notify rule the listener flag joins them
    import socket
    with socket.socket(socket.AF_UNIX) as agent:
        agent.bind(str(tmp_path / "agent.sock"))
        sc["listenerPath"] = str(tmp_path / "agent.sock")
        sc["syscalls"].append({"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"})
        assert built(sc).flags == want | 8
