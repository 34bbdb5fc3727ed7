"""linux.seccomp -> a seccomp filter, built and loaded as runc does it.

Translation (runc's specconv.SetupSeccomp + seccomp.InitSeccomp):

* `parse()` turns the spec into a `Profile` without touching libseccomp or
  the kernel: names of actions, operators, architectures and flags are checked
  here, in the runtime parent, so a bad profile fails `create` before anything
  runs. Each name of a syscall entry becomes one rule (runc's configs.Syscall).
* `plan_rules()` is runc's matchCall: a rule whose action equals the default
  action is dropped; a syscall name libseccomp does not know is skipped
  silently (the profile may name calls newer than this libseccomp); the
  conditions of a rule go into one libseccomp rule (all must match), unless
  two conditions test the same argument, in which case each condition becomes
  a rule of its own (runc's "old behaviour": any of them matches).
* The program libseccomp generates is exported and patched as runc's
  patchbpf does: unless the default action lets calls through (ALLOW, LOG,
  TRACE), a stub in front of it returns ENOSYS for every syscall number above
  the highest one the profile names (per architecture; x32 apart), so that
  calls newer than the profile fail with ENOSYS - which C libraries take as
  "fall back to the old call" - rather than with the default EPERM. pyrunc
  leaves the stub out when the default action already is ERRNO(ENOSYS)
  (podman's profile), where it cannot change a result; runc compares the
  errno with the whole action value there, so it always adds it.
* The program is loaded with seccomp(2) (prctl without flags), not
  seccomp_load(): the patched program is not libseccomp's any more. Flags:
  LOG and SPEC_ALLOW (and WAIT_KILLABLE_RECV with libseccomp >= 2.6) are set
  on the context with seccomp_attr_set where libseccomp supports them (a clear
  error otherwise) and passed to the kernel; SPEC_ALLOW is the default when
  the profile has no "flags" at all (runc >= 1.2); TSYNC is accepted and
  ignored as in runc (one thread loads the filter right before execve, and
  the kernel refuses TSYNC together with NEW_LISTENER).

Where the work happens (see init/child.py and container/exec.py):

* parent: `prepare()`: parse, libseccomp loaded (inherited by every child,
  so no process ever opens it after its root changed) and asked what it
  supports. Every error in the profile itself is raised here.
* builder: `start_build()` forks, before any namespace is entered (first
  thing in the stage child; in the parent for `exec`), a process that runs
  `build()` (rules, export, patch: ~15 ms of libseccomp for podman's profile)
  and writes the program to a pipe, while the container is set up; so the
  build costs `create` no wall time, and `run` only what is left of it when
  the init is ready. Nothing is cached on disk.
* container process: `ready()` first in Exec.execute (collect the program,
  connect to a notify agent), then `apply()`: right before execve with
  noNewPrivileges, or before capabilities and ids change without it (loading
  a filter without no_new_privs needs CAP_SYS_ADMIN), as runc's standard and
  setns inits do: one system call (plus one sendmsg for notify).

Notify (SCMP_ACT_NOTIFY): the listener fd the kernel returns goes to the
agent at listenerPath with runc's message, one sendmsg of the
specs.ContainerProcessState JSON with the fd (SCM_RIGHTS). runc's parent
sends it during `create`; pyrunc loads the filter at `start`, when `create`
has exited, so the container process sends it itself. It cannot open a host
path then: the runtime opens the socket with O_PATH before the root changes
and the process connects through /proc/self/fd/N before it changes ids; with
a user namespace (whose root may not write to the socket) the connection is
made before the namespace is entered, during `create`, and the message
follows at `start` (an agent serving one connection at a time waits for it
meanwhile). `exec` connects from the parent. Only sendmsg (and close) run
between the load and the agent having the fd, so a profile may not notify
sendmsg (nor write, which runc refuses for the same reason in its init).
"""
from __future__ import annotations

import _socket
import os
import stat
import struct

from ..errors import ConfigError, PyruncError
from ..fastjson import dumps
from ..linux import seccomp as L
from ..linux.fdio import read_all  # _collect runs in the init, its imports sealed

# spec name -> runc's action kind
ACTIONS = {
    "SCMP_ACT_KILL": "kill", "SCMP_ACT_KILL_THREAD": "kill_thread",
    "SCMP_ACT_KILL_PROCESS": "kill_process", "SCMP_ACT_TRAP": "trap",
    "SCMP_ACT_ERRNO": "errno", "SCMP_ACT_TRACE": "trace", "SCMP_ACT_ALLOW": "allow",
    "SCMP_ACT_LOG": "log", "SCMP_ACT_NOTIFY": "notify",
}
# spec name -> libseccomp enum scmp_compare
OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
# spec name -> libseccomp's arch name (runc's list)
ARCHS = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
}
# libseccomp arch name -> AUDIT_ARCH_* (what the kernel puts in seccomp_data.arch)
AUDIT_ARCH = {
    "x86": 0x40000003, "x86_64": 0xC000003E, "x32": 0xC000003E, "arm": 0x40000028,
    "aarch64": 0xC00000B7, "mips": 0x00000008, "mips64": 0x80000008,
    "mips64n32": 0xA0000008, "mipsel": 0x40000008, "mipsel64": 0xC0000008,
    "mipsel64n32": 0xE0000008, "ppc": 0x00000014, "ppc64": 0x80000015,
    "ppc64le": 0xC0000015, "s390": 0x00000016, "s390x": 0x80000016,
    "riscv64": 0xC00000F3, "loongarch64": 0xC0000102,
}
AUDIT_ARCH_X86_64 = 0xC000003E
_NATIVE_BY_AUDIT = {v: k for k, v in AUDIT_ARCH.items() if k != "x32"}

# flag -> (libseccomp attribute, kernel flag, (min API level, min libseccomp version), setter name)
FLAG_TSYNC = "SECCOMP_FILTER_FLAG_TSYNC"
FLAGS = {
    FLAG_TSYNC: None,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (7, 1 << 2, (4, (2, 5, 0)), "SetSSB"),
    "SECCOMP_FILTER_FLAG_LOG": (6, 1 << 1, (3, (2, 4, 0)), "SetLogBit"),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (10, 1 << 5, (7, (2, 6, 0)), "SetWaitKill"),
}
FILTER_FLAG_NEW_LISTENER = 1 << 3

EPERM, ENOSYS = 1, 38
SYSCALL_MAX_ARGUMENTS = 6
OPTIMIZE_ABOVE = 32  # runc: binary-tree optimisation for longer rule sets
SECCOMP_FD_NAME = "seccompFd"


class Rule:
    """One syscall name of a spec entry (runc's configs.Syscall)."""

    __slots__ = ("name", "action", "errno", "args")

    def __init__(self, name: str, action: str, errno: int | None,
                 args: list[tuple[int, int, int, int]]) -> None:
        self.name = name
        self.action = action
        self.errno = errno
        self.args = args  # (index, op, value, valueTwo)

    def __repr__(self) -> str:
        return f"Rule({self.name!r}, {self.action!r}, {self.errno!r}, {self.args!r})"


class Profile:
    """linux.seccomp, checked and expanded (runc's configs.Seccomp)."""

    __slots__ = ("default", "default_errno", "archs", "flags", "rules", "listener_path",
                 "listener_metadata")

    def __init__(self) -> None:
        self.default = "allow"
        self.default_errno: int | None = None
        self.archs: list[str] = []  # libseccomp names
        self.flags: list[str] | None = None  # None: not given (SPEC_ALLOW by default)
        self.rules: list[Rule] = []
        self.listener_path = ""
        self.listener_metadata = ""

    @property
    def notify(self) -> bool:
        return any(r.action == "notify" for r in self.rules)


def _bad(msg: str, path: str | None = None) -> ConfigError:
    return ConfigError(msg, path)


def _uint(v: object, what: str, bits: int = 64, path: str | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 1 << bits:
        raise _bad(f"seccomp: {what} must be an unsigned {bits}-bit integer, not {v!r}", path)
    return v


def _str(v: object, what: str, path: str | None = None) -> str:
    if not isinstance(v, str):
        raise _bad(f"seccomp: {what} must be a string, not {v!r}", path)
    return v


def _action(name: object, path: str) -> str:
    kind = ACTIONS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise _bad(f"string {name if isinstance(name, str) else repr(name)} is not a valid action for seccomp", path)
    return kind


def parse(sc: object) -> Profile | None:
    """The spec's linux.seccomp as a Profile; None when it asks for no filter
    (no defaultAction and no syscalls, as runc reads it). Raises ConfigError
    with runc's wording for anything it would refuse. A profile has hundreds
    of names: inside syscalls[] a failure's path is made on its way out (a
    relative path, prefixed by each enclosing loop), never for valid entries."""
    if sc is None:
        return None
    if not isinstance(sc, dict):
        raise _bad("seccomp: linux.seccomp must be an object", "linux.seccomp")
    syscalls = sc.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _bad("seccomp: linux.seccomp.syscalls must be an array", "linux.seccomp.syscalls")
    if not sc.get("defaultAction") and not syscalls:
        return None
    p = Profile()
    flags = sc.get("flags")
    if flags is not None:
        if not isinstance(flags, list):
            raise _bad("seccomp: linux.seccomp.flags must be an array", "linux.seccomp.flags")
        p.flags = []
        for i, f in enumerate(flags):
            if f not in FLAGS:
                raise _bad(f"seccomp flag {f} is not known to pyrunc", f"linux.seccomp.flags[{i}]")
            p.flags.append(f)
    for i, a in enumerate(sc.get("architectures") or []):
        name = ARCHS.get(a) if isinstance(a, str) else None
        if name is None:
            raise _bad(f"string {a} is not a valid arch for seccomp", f"linux.seccomp.architectures[{i}]")
        p.archs.append(name)
    p.default = _action(sc.get("defaultAction", ""), "linux.seccomp.defaultAction")
    if sc.get("defaultErrnoRet") is not None:
        p.default_errno = _uint(sc["defaultErrnoRet"], "defaultErrnoRet", 32, "linux.seccomp.defaultErrnoRet")
    p.listener_path = _str(sc.get("listenerPath") or "", "listenerPath", "linux.seccomp.listenerPath")
    p.listener_metadata = _str(sc.get("listenerMetadata") or "", "listenerMetadata",
                               "linux.seccomp.listenerMetadata")
    for i, call in enumerate(syscalls):
        try:
            _parse_syscall(p, call)
        except ConfigError as e:
            e.path = f"linux.seccomp.syscalls[{i}]{e.path}"
            raise
    # runc's InitSeccomp checks that need no library
    if p.default == "notify":
        raise _bad("SCMP_ACT_NOTIFY cannot be used as default action", "linux.seccomp.defaultAction")
    for r in p.rules:
        if r.action == "notify" and r.name in ("write", "sendmsg"):
            # runc refuses write: its init writes to the parent after loading
            # the filter. pyrunc's container process sends the listener fd
            # itself (sendmsg), which would wait forever for the agent that
            # has not got the fd yet.
            i = next(i for i, c in enumerate(syscalls) if r.name in (c.get("names") or ())
                     and ACTIONS.get(c.get("action")) == "notify")
            raise _bad(f"SCMP_ACT_NOTIFY cannot be used for the {r.name} syscall",
                       f"linux.seccomp.syscalls[{i}].action")
    if p.notify and not p.listener_path:
        raise _bad("seccomp listenerPath is not set", "linux.seccomp.listenerPath")
    return p


def _parse_syscall(p: Profile, call: object) -> None:
    """One entry of linux.seccomp.syscalls: a Rule per name, added to `p`.
    A ConfigError's path is relative to the entry ("", ".action", ...)."""
    if not isinstance(call, dict):
        raise _bad("seccomp: every entry of linux.seccomp.syscalls must be an object", "")
    action = _action(call.get("action", ""), ".action")
    errno = call.get("errnoRet")
    if errno is not None:
        errno = _uint(errno, "errnoRet", 32, ".errnoRet")
    names = call.get("names") or []
    if not isinstance(names, list):
        raise _bad("seccomp: syscalls[].names must be an array", ".names")
    if not names:
        return
    args = []  # the same for every name (an error names the first, which failed first)
    for k, arg in enumerate(call.get("args") or ()):
        try:
            args.append(_parse_arg(arg, names[0]))
        except ConfigError as e:
            e.path = f".args[{k}]{e.path}"
            raise
    for j, name in enumerate(names):
        if not isinstance(name, str):
            _str(name, "syscall name", f".names[{j}]")
        p.rules.append(Rule(name, action, errno, list(args)))


def _parse_arg(arg: object, name: object) -> tuple[int, int, int, int]:
    """(index, op, value, valueTwo) of a syscall's argument condition."""
    if not isinstance(arg, dict):
        raise _bad("seccomp: syscalls[].args entries must be objects", "")
    op_name = arg.get("op")
    op = OPERATORS.get(op_name) if isinstance(op_name, str) else None
    if op is None:
        raise _bad(f"string {arg.get('op')} is not a valid operator for seccomp", ".op")
    index = _uint(arg.get("index", 0), "args[].index", 32, ".index")
    if index >= SYSCALL_MAX_ARGUMENTS:
        # runc finds this when it adds the rule (so not for a syscall
        # it skips); here, in the parent, for every rule
        raise _bad(f"error creating seccomp syscall condition for syscall {name}: "
                   f"syscalls only have up to 6 arguments ({index} given)", ".index")
    return (index, op, _uint(arg.get("value", 0), "args[].value", 64, ".value"),
            _uint(arg.get("valueTwo", 0), "args[].valueTwo", 64, ".valueTwo"))


def action_value(kind: str, errno: int | None) -> int:
    """The libseccomp action for a runc action kind (runc's getAction):
    ERRNO and TRACE return errnoRet, EPERM without one; KILL is KILL_THREAD."""
    if kind in ("kill", "kill_thread"):
        return L.ACT_KILL_THREAD
    if kind == "kill_process":
        return L.ACT_KILL_PROCESS
    if kind == "errno":
        return L.ACT_ERRNO(EPERM if errno is None else errno)
    if kind == "trace":
        return L.ACT_TRACE(EPERM if errno is None else errno)
    return {"trap": L.ACT_TRAP, "allow": L.ACT_ALLOW, "log": L.ACT_LOG, "notify": L.ACT_NOTIFY}[kind]


def plan_rules(p: Profile, resolve) -> list[tuple[str, int, int, list[tuple[int, int, int, int]]]]:
    """The libseccomp rules to add, in order: (name, nr, action, conditions
    as (arg, op, datum_a, datum_b)). `resolve(name)` gives the native syscall
    number (negative pseudo numbers allowed) or -1 for an unknown name."""
    default = action_value(p.default, p.default_errno)
    out: list[tuple[str, int, int, list[tuple[int, int, int, int]]]] = []
    for r in p.rules:
        if not r.name:
            raise _bad("empty string is not a valid syscall")
        act = action_value(r.action, r.errno)
        if act == default:
            continue  # redundant, and libseccomp would refuse it
        nr = resolve(r.name)
        if nr == -1:
            continue  # unknown to this libseccomp: skipped, as runc does
        if not r.args:
            out.append((r.name, nr, act, []))
            continue
        counts = [0] * SYSCALL_MAX_ARGUMENTS
        conds = []
        for index, op, a, b in r.args:
            if index >= SYSCALL_MAX_ARGUMENTS:
                raise _bad(f"error creating seccomp syscall condition for syscall {r.name}: "
                           f"syscalls only have up to 6 arguments ({index} given)")
            counts[index] += 1
            conds.append((index, op, a, b))
        if max(counts) > 1:
            out.extend((r.name, nr, act, [c]) for c in conds)
        else:
            out.append((r.name, nr, act, conds))
    return out


def needs_enosys_stub(p: Profile) -> bool:
    if p.default in ("allow", "log", "trace"):
        return False  # permissive default: unknown calls pass anyway
    return not (p.default == "errno" and p.default_errno == ENOSYS)


def last_syscalls(p: Profile, native: str, resolve_arch) -> dict[int, dict[str, int]]:
    """runc's findLastSyscalls: AUDIT_ARCH -> {arch: highest syscall number
    named by the profile}, over the profile's archs plus the native one.
    `resolve_arch(arch, name)` gives the number on that arch (x32 numbers
    carry the x32 bit) or a negative value."""
    archs = list(dict.fromkeys(p.archs + [native]))
    out: dict[int, dict[str, int]] = {}
    for arch in archs:
        audit = AUDIT_ARCH[arch]
        largest = 0
        for r in p.rules:
            nr = resolve_arch(arch, r.name)
            if nr > largest:
                largest = nr
        if largest:
            out.setdefault(audit, {})[arch] = largest
        else:
            out.setdefault(audit, {})
    return out


# --- classic BPF: just what the stub needs ----------------------------------

_LD_W_ABS, _JA, _JEQ, _JGT, _JGE, _JSET, _RET_K = 0x20, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06
_COND = {"eq": (_JEQ, False), "ne": (_JEQ, True), "gt": (_JGT, False), "le": (_JGT, True),
         "ge": (_JGE, False), "lt": (_JGE, True), "set": (_JSET, False), "notset": (_JSET, True)}
RET_ERRNO_ENOSYS = 0x00050000 | ENOSYS


def _ld(off: int) -> tuple[int, int, int, int]:
    return (_LD_W_ABS, 0, 0, off)


def _ja(k: int) -> tuple[int, int, int, int]:
    return (_JA, 0, 0, k)


def _ret(k: int) -> tuple[int, int, int, int]:
    return (_RET_K, 0, 0, k)


def _jif(cond: str, k: int, skip_true: int, skip_false: int = 0) -> tuple[int, int, int, int]:
    """golang.org/x/net/bpf JumpIf: negated tests are the positive opcode with
    the targets swapped."""
    op, flip = _COND[cond]
    if not (0 <= skip_true <= 255 and 0 <= skip_false <= 255):
        raise ValueError("conditional jump out of range")
    jt, jf = (skip_false, skip_true) if flip else (skip_true, skip_false)
    return (op, jt, jf, k & 0xFFFFFFFF)


def enosys_stub(last: dict[int, dict[str, int]]) -> list[tuple[int, int, int, int]]:
    """runc's generateEnosysStub, instruction for instruction."""
    table: dict[int, int] = {}
    tail = [_ja(1), _ret(RET_ERRNO_ENOSYS)]
    for audit, maxes in last.items():
        base_enosys = len(tail) - 1
        base_filter = base_enosys + 1
        section = [_ld(0)]
        if not maxes:
            continue
        if len(maxes) == 1:
            (arch, nr), = maxes.items()
            if arch in ("s390", "s390x"):
                # unknown syscalls arrive as setup(2), number 0, on s390(x)
                section += [_jif("ne", 0, 1), _ret(RET_ERRNO_ENOSYS)]
            if base_enosys + 1 <= 255:
                st = [_jif("gt", nr, base_enosys + 1), _ja(base_filter)]
            else:
                st = [_jif("le", nr, 1), _ret(RET_ERRNO_ENOSYS), _ja(base_filter)]
            if audit == AUDIT_ARCH_X86_64:
                if arch == "x86_64":
                    st = [_jif("set", 1 << 30, len(st) - 1)] + st
                elif arch == "x32":
                    st = [_jif("notset", 1 << 30, len(st) - 1)] + st
                else:
                    raise ValueError(f"unknown amd64 native architecture {arch}")
            section += st
        elif len(maxes) == 2:
            if audit != AUDIT_ARCH_X86_64 or set(maxes) != {"x86_64", "x32"}:
                raise ValueError(f"unknown architecture overlap on native arch {audit:#x}")
            x86, x32 = maxes["x86_64"], maxes["x32"]
            if base_enosys + 2 <= 255:
                section += [_jif("set", 1 << 30, 1),
                            _jif("gt", x86, base_enosys + 2, 1),
                            _jif("gt", x32, base_enosys + 1),
                            _ja(base_filter)]
            else:
                section += [_jif("set", 1 << 30, 1),
                            _jif("gt", x86, 1, 2),
                            _jif("le", x32, 1),
                            _ret(RET_ERRNO_ENOSYS),
                            _ja(base_filter)]
        else:
            raise ValueError(f"invalid number of architecture overlaps: {len(maxes)}")
        tail = section + tail
        table[audit] = len(tail)
    tail = [_ja(len(tail))] + tail
    for audit in last:
        if audit not in table:
            continue  # no syscalls for it: the dummy jump sends it to the filter
        jump = len(tail) - table[audit]
        if jump <= 255:
            tail = [_jif("eq", audit, jump)] + tail
        else:
            tail = [_jif("ne", audit, 1), _ja(jump)] + tail
    return [_ld(4)] + tail


def assemble(insns: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("=HBBI", *i) for i in insns)


# --- the prepared filter -------------------------------------------------------


class Seccomp:
    """A profile on its way into a container process: checked in the parent,
    built (`build`) before the root changes, applied (`apply`) right before
    execve."""

    __slots__ = ("profile", "program", "flags", "state", "pid", "listener_path", "metadata",
                 "nr_seccomp", "builder", "_path_fd", "_sock", "_msg", "_pipe_r", "_builder_parent")

    def __init__(self, profile: Profile, state: dict) -> None:
        self.profile = profile
        self.program: L.Program | None = None
        self.flags = 0
        self.state = state  # the OCI state sent to the agent (notify)
        self.pid = 0  # this process's pid as the runtime sees it (notify)
        self.listener_path = profile.listener_path if profile.notify else ""
        self.metadata = profile.listener_metadata
        self.nr_seccomp = -1
        self.builder = 0  # the builder's pid (it exits at once: see _collect)
        self._builder_parent = 0
        self._path_fd = -1
        self._sock = None
        self._msg = b""
        self._pipe_r = -1

    # -- in the parent

    def wire(self) -> tuple:
        """The checked profile as plain data (marshal), for the stage child,
        which was forked before the config was read."""
        p = self.profile
        return ((p.default, p.default_errno, p.archs, p.flags,
                 [(r.name, r.action, r.errno, r.args) for r in p.rules],
                 p.listener_path, p.listener_metadata), self.state, self.nr_seccomp)

    @classmethod
    def from_wire(cls, w: tuple) -> "Seccomp":
        pw, state, nr_seccomp = w
        p = Profile()
        p.default, p.default_errno, p.archs, p.flags, rules, p.listener_path, p.listener_metadata = pw
        p.rules = [Rule(*r) for r in rules]
        sc = cls(p, state)
        sc.nr_seccomp = nr_seccomp
        return sc

    def check(self) -> None:
        """What needs libseccomp but builds nothing: archs it knows, the API
        level notify and the flags need (runc: SetupSeccomp, InitSeccomp)."""
        try:
            L.lib()
        except OSError as e:
            raise PyruncError(f"seccomp: {e.strerror}") from None
        version, api = L.version(), L.api_level()
        self.nr_seccomp = L.syscall_resolve("seccomp")
        for arch in self.profile.archs:
            if not L.arch_resolve(arch):
                raise PyruncError(f"error adding architecture to seccomp filter: "
                                  f"{arch} is not known to libseccomp {'.'.join(map(str, version))}")
        for f in self.profile.flags or ():
            _flag_supported(f, version, api, fail=True)
        from .. import log
        if log.debug_enabled():  # runc's debug line (its seccomp.bats reads it)
            log.debug(f"seccomp filter flags: {filter_flags(self.profile, version, api)}")
        if self.profile.notify and api < 6:
            raise PyruncError(f"seccomp notify unsupported: API level: got {api}, want at least 6. "
                              "Please try with libseccomp >= 2.5.0 and Linux >= 5.7")
        if self.listener_path:
            try:
                st = os.stat(self.listener_path)
            except OSError as e:
                raise PyruncError(self._connect_error(e)) from None
            if not stat.S_ISSOCK(st.st_mode):
                raise PyruncError(self._connect_error(OSError(111, "connection refused")))

    # -- libseccomp: the stage child (or the parent, for exec)

    def build(self) -> None:
        """Rules into a libseccomp context, export, patch: self.program, self.flags."""
        p = self.profile
        version, api = L.version(), L.api_level()
        try:
            f = L.Filter(action_value(p.default, p.default_errno))
        except OSError as e:
            raise PyruncError(f"error creating filter: {_gostr(e)}") from None
        try:
            for arch in p.archs:
                try:
                    f.arch_add(L.arch_resolve(arch))
                except OSError as e:
                    raise PyruncError(f"error adding architecture to seccomp filter: {_gostr(e)}") from None
            for name in wanted_flags(p, version, api):
                spec = FLAGS[name]
                if spec is None:
                    continue  # TSYNC
                _flag_supported(name, version, api, fail=True)
                try:
                    f.attr_set(spec[0], 1)
                except OSError as e:
                    raise PyruncError(f"error adding {_FLAG_WHAT[name]} flag to seccomp filter: "
                                      f"{_gostr(e)}") from None
            flags = filter_flags(p, version, api)
            if len(p.rules) > OPTIMIZE_ABOVE:
                try:
                    f.attr_set(L.ATTR_CTL_OPTIMIZE, 2)
                except OSError:
                    pass  # an older libseccomp: not fatal
            for name, nr, act, conds in plan_rules(p, L.syscall_resolve):
                try:
                    f.rule_add(act, nr, conds)
                except OSError as e:
                    what = "seccomp rule" if conds else "seccomp filter rule"
                    raise PyruncError(f"error adding {what} for syscall {name}: {_rule_error(e, nr)}") from None
            code = f.export_bpf()
        finally:
            f.release()
        if needs_enosys_stub(p):
            native = _NATIVE_BY_AUDIT.get(L.arch_native())
            if native is None:
                raise PyruncError(f"seccomp: unknown native architecture {L.arch_native():#x}")
            last = last_syscalls(p, native, lambda a, n: L.syscall_resolve(n, L.arch_resolve(a)))
            try:
                code = assemble(enosys_stub(last)) + code
            except ValueError as e:
                raise PyruncError(f"error loading seccomp filter into kernel: error patching filter: {e}") from None
        try:
            self.program = L.Program(code, self.nr_seccomp)
        except ValueError as e:
            raise PyruncError(f"error loading seccomp filter into kernel: {e}") from None
        self.flags = flags

    # a builder process: the build runs while the container is set up

    def start_build(self) -> None:
        """Fork a process that builds the program and hands it over a pipe,
        while this one goes on setting the container up. Called before this
        process enters any of the container's namespaces: the builder stays in
        the runtime's, and is gone a few milliseconds later. `ready()`
        collects the program."""
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            self.build()  # no process to spare: build here
            return
        if pid == 0:  # the builder
            try:
                # nothing of the runtime's stays open here (stdio included:
                # a caller waiting for EOF on it must not wait for us)
                os.closerange(0, w)
                os.closerange(w + 1, 1 << 20)
                try:
                    self.build()
                    raw = self.program.buf.raw  # type: ignore[union-attr]  # build() made it
                    data = b"K" + self.flags.to_bytes(4, "little") + bytes(raw)
                except BaseException as e:  # noqa: BLE001 - reported by whoever collects the program
                    data = b"E" + (str(e) if isinstance(e, PyruncError) else f"{type(e).__name__}: {e}").encode()
                view = memoryview(data)  # at most 32 KiB: fits in the pipe
                while view:
                    view = view[os.write(w, view):]
            finally:
                os._exit(0)
        os.close(w)
        self._pipe_r = r
        self.builder = pid
        self._builder_parent = os.getpid()

    def _collect(self) -> None:
        data = read_all(self._pipe_r)
        os.close(self._pipe_r)
        self._pipe_r = -1
        if self.builder and self._builder_parent == os.getpid():
            # ours to reap (forked by an init that is its pid namespace's
            # PID 1: a zombie there would outlive the exec); the stage
            # child that forked it elsewhere exited, and our caller, or the
            # host's init, reaps it
            try:
                os.waitpid(self.builder, 0)
            except ChildProcessError:
                pass
        if data[:1] == b"E":
            raise PyruncError(data[1:].decode(errors="replace"))
        if data[:1] != b"K" or len(data) < 5 + L.SOCK_FILTER_SIZE:
            raise PyruncError("seccomp filter was not built: its builder process died")
        self.flags = int.from_bytes(data[1:5], "little")
        self.program = L.Program(data[5:], self.nr_seccomp)

    # -- the listener

    def open_listener(self, connect: bool) -> None:
        """Before the root (or the user namespace) changes: an O_PATH handle on
        the agent's socket, or with `connect` a connection to it."""
        if not self.listener_path or self._path_fd >= 0 or self._sock is not None:
            return
        if connect:
            self._sock = self._connect(self.listener_path)
        else:
            try:
                self._path_fd = os.open(self.listener_path, os.O_PATH | os.O_CLOEXEC)
            except OSError as e:
                raise PyruncError(self._connect_error(e)) from None

    def release(self) -> None:
        """Close this process's copy of the listener handle (the parent of
        `exec`, once the child has its own)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._path_fd >= 0:
            os.close(self._path_fd)
            self._path_fd = -1

    def note_pid(self) -> None:
        """While /proc is still the runtime's: this process's pid there."""
        if self.listener_path:
            self.pid = int(os.readlink("/proc/self"))

    def _connect(self, path: str):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise PyruncError(self._connect_error(e)) from None
        return sock

    def _connect_error(self, e: OSError) -> str:
        return (f"failed to connect with seccomp agent specified in the seccomp profile: "
                f"dial unix {self.listener_path}: connect: {_gostr(e)}")

    def ready(self) -> None:
        """The container process, first thing before its ids and capabilities
        change: the program (from the builder), the connection to the agent
        and its message, so that apply() is the load and one sendmsg."""
        if self.program is None and self._pipe_r >= 0:
            self._collect()
        if self.program is None:
            raise PyruncError("seccomp filter was not built")
        if not self.listener_path:
            return
        if self._sock is None:
            if self._path_fd < 0:
                raise PyruncError(self._connect_error(OSError(9, "bad file descriptor")))
            self._sock = self._connect(f"/proc/self/fd/{self._path_fd}")
            os.close(self._path_fd)
            self._path_fd = -1
        st = self.state
        doc = {"ociVersion": st["ociVersion"], "fds": [SECCOMP_FD_NAME], "pid": self.pid or os.getpid()}
        if self.metadata:
            doc["metadata"] = self.metadata
        inner = {"ociVersion": st["ociVersion"], "id": st["id"], "status": st["status"]}
        pid = st.get("pid") or self.pid
        if pid:
            inner["pid"] = pid
        inner["bundle"] = st.get("bundle", "")
        if st.get("annotations"):
            inner["annotations"] = st["annotations"]
        doc["state"] = inner
        self._msg = dumps(doc, ascii=False).encode()

    # -- the container process

    def apply(self) -> None:
        """Load the filter into this process; hand the listener to the agent."""
        if self.program is None or (self.listener_path and not self._msg):
            self.ready()
        try:
            fd = self.program.load(self.flags)  # type: ignore[union-attr]  # ready() made it
        except OSError as e:
            raise PyruncError(f"error loading seccomp filter into kernel: error loading seccomp filter: "
                              f"{_gostr(e)}") from None
        if fd < 0:
            return
        sock, self._sock = self._sock, None
        try:
            if sock is None:
                raise PyruncError("seccomp listenerPath is not set")
            try:
                sock.sendmsg([self._msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                            fd.to_bytes(4, "little", signed=True))])
            except OSError as e:
                raise PyruncError(f"cannot send seccomp fd to {self.listener_path}: {_gostr(e)}") from None
        finally:
            os.close(fd)
            if sock is not None:
                sock.close()


def _gostr(e: OSError) -> str:
    """An errno as Go prints it (lower case)."""
    msg = os.strerror(e.errno) if e.errno else (e.strerror or str(e))
    return msg[:1].lower() + msg[1:]


def _rule_error(e: OSError, nr: int) -> str:
    # libseccomp-golang's wording for what seccomp_rule_add_array returns
    if e.errno == 14:  # EFAULT
        return f"unrecognized syscall {nr:#x}"
    if e.errno in (1, 13):  # EPERM, EACCES
        return "requested action matches default action of filter"
    if e.errno == 22:  # EINVAL
        return "two checks on same syscall argument"
    return _gostr(e)


def _flag_supported(flag: str, version: tuple[int, int, int], api: int, fail: bool = False) -> bool:
    spec = FLAGS[flag]
    if spec is None:
        return True
    _, _, (min_api, min_ver), setter = spec
    if api >= min_api and version >= min_ver:
        return True
    if fail:  # runc's text (libseccomp-golang's VersionError): runc's bats skip on it
        raise PyruncError(f"error adding {_FLAG_WHAT[flag]} flag to seccomp filter: {setter} requires "
                          f"libseccomp >= {'.'.join(map(str, min_ver))} and API level >= {min_api} "
                          f"(current version: {'.'.join(map(str, version))}, API level: {api})")
    return False


def wanted_flags(p: Profile, version: tuple[int, int, int], api: int) -> list[str]:
    """The profile's flags; none given (not even []): SPEC_ALLOW where this
    libseccomp supports it (runc's SetupSeccomp)."""
    if p.flags is not None:
        return p.flags
    return [f for f in ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",) if _flag_supported(f, version, api)]


def filter_flags(p: Profile, version: tuple[int, int, int], api: int) -> int:
    """The flags seccomp(2) gets (runc's filterFlags): each wanted flag's
    kernel bit (TSYNC none), NEW_LISTENER with a notify rule."""
    flags = 0
    for name in wanted_flags(p, version, api):
        flag = FLAGS[name]
        if flag is not None:
            flags |= flag[1]
    return flags | (FILTER_FLAG_NEW_LISTENER if p.notify else 0)


# how runc's setFlag names each flag in its errors
_FLAG_WHAT = {"SECCOMP_FILTER_FLAG_LOG": "log", "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "SSB",
              "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": "WaitKill"}


def prepare(spec: dict, cid: str = "", bundle: str = "", status: str = "creating",
            init_pid: int = 0, *, oci_version: str) -> Seccomp | None:
    """The runtime parent: linux.seccomp checked (spec names, then libseccomp),
    nothing built yet. None when the config asks for no filter. `oci_version`
    is the state document's (container/state.py), for the notify agent."""
    p = parse((spec.get("linux") or {}).get("seccomp"))
    if p is None:
        return None
    state = {"ociVersion": oci_version, "id": cid, "status": status, "pid": init_pid,
             "bundle": bundle, "annotations": spec.get("annotations") or {}}
    sc = Seccomp(p, state)
    sc.check()
    return sc
