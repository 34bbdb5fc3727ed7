"""Device access rules: runc's rule set, its emulator, the v1 writer and the
v2 eBPF program.

A rule is a tuple (type, major, minor, access, allow): type 'a' (all), 'b' or
'c'; major/minor -1 for a wildcard; access a subset of "rwm".

runc turns linux.resources.devices into rules in order and appends its default
allow list (specconv.AllowedDevices, minus the entries whose path
linux.devices redefines). The rules go through an emulator of the v1 devices
cgroup (opencontainers/cgroups devices_emulator.go) so that v1 and v2 agree,
including its refusal to punch a hole in a wildcard rule. On v1 the minimal
transition from the cgroup's current devices.list is written to devices.allow
and devices.deny; on v2 the emulated rules become a BPF_PROG_TYPE_CGROUP_DEVICE
program (devicefilter.go, itself after crun's ebpf.c).
"""
from __future__ import annotations

import os

from ..errors import ConfigError, PyruncError
from . import running_in_userns

WILDCARD = -1

# specconv.AllowedDevices: (rule, device path or "")
DEFAULT_ALLOWED: tuple[tuple[tuple[str, int, int, str, bool], str], ...] = (
    (("c", -1, -1, "m", True), ""),              # mknod of any char device
    (("b", -1, -1, "m", True), ""),              # mknod of any block device
    (("c", 1, 3, "rwm", True), "/dev/null"),
    (("c", 1, 8, "rwm", True), "/dev/random"),
    (("c", 1, 7, "rwm", True), "/dev/full"),
    (("c", 5, 0, "rwm", True), "/dev/tty"),
    (("c", 1, 5, "rwm", True), "/dev/zero"),
    (("c", 1, 9, "rwm", True), "/dev/urandom"),
    (("c", 136, -1, "rwm", True), ""),           # /dev/pts/*
    (("c", 5, 2, "rwm", True), ""),              # /dev/ptmx
    (("c", 10, 200, "rwm", True), ""),           # /dev/net/tun (kept by runc for compatibility)
)

_PERM_BITS = {"r": 1, "w": 2, "m": 4}


def _perm_set(p: str) -> int:
    s = 0
    for c in p:
        s |= _PERM_BITS.get(c, 0)
    return s


def _perm_str(s: int) -> str:
    return ("r" if s & 1 else "") + ("w" if s & 2 else "") + ("m" if s & 4 else "")


def spec_rules(resources: dict, linux_devices: list | None = None) -> list[tuple]:
    """The rules runc derives from a config: linux.resources.devices in order,
    then the default allow list (CreateCgroupConfig + createDevices)."""
    rules: list[tuple] = []
    for i, d in enumerate(resources.get("devices") or []):
        if not isinstance(d, dict):
            raise ConfigError(f"invalid config: linux.resources.devices[{i}] must be an object",
                              f"linux.resources.devices[{i}]")
        t = d.get("type") or "a"
        major = d.get("major")
        minor = d.get("minor")
        major = -1 if major is None else major
        minor = -1 if minor is None else minor
        access = d.get("access") or ""
        if not access:
            raise ConfigError(f"device access at {i} field cannot be empty", f"linux.resources.devices[{i}].access")
        if t not in ("a", "b", "c"):
            raise ConfigError(f'invalid cgroup device type "{t}"', f"linux.resources.devices[{i}].type")
        for v, what in ((major, "major"), (minor, "minor")):
            if isinstance(v, bool) or not isinstance(v, int) or v < -1 or v > 0xFFFFFFFF:
                raise ConfigError(f"invalid device {what} number {v!r} at linux.resources.devices[{i}]",
                                  f"linux.resources.devices[{i}].{what}")
        if not isinstance(access, str):
            raise ConfigError(f"invalid device access {access!r} at linux.resources.devices[{i}] (a string of r, w, m)",
                              f"linux.resources.devices[{i}].access")
        perms = _perm_str(_perm_set(access))  # as runc: other letters mean nothing (validate warns)
        if not perms and t != "a":
            continue
        rules.append((t, major, minor, perms, bool(d.get("allow"))))
    spec_paths = {d.get("path") for d in linux_devices or [] if isinstance(d, dict)}
    for rule, path in DEFAULT_ALLOWED:
        if path and path in spec_paths:
            continue  # runc: the config's own device takes priority over the default
        rules.append(rule)
    return rules


def cgroup_string(rule: tuple) -> str:
    t, major, minor, perms, _ = rule
    return f"{t} {'*' if major == WILDCARD else major}:{'*' if minor == WILDCARD else minor} {perms}"


class Emulator:
    """The state of a v1 devices cgroup: default policy plus exceptions.

    rules maps (type, major, minor) -> permission bits (allow exceptions in a
    white-list, deny exceptions in a black-list)."""

    __slots__ = ("default_allow", "rules")

    def __init__(self, default_allow: bool = False) -> None:
        self.default_allow = default_allow
        self.rules: dict[tuple[str, int, int], int] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Emulator) and self.default_allow == other.default_allow and \
            self.rules == other.rules

    def is_blacklist(self) -> bool:
        return self.default_allow

    def _add(self, meta: tuple, perms: int) -> None:
        self.rules[meta] = self.rules.get(meta, 0) | perms

    def _rm(self, meta: tuple, perms: int) -> None:
        t, major, minor = meta
        for partial in ((t, WILDCARD, minor), (t, major, WILDCARD), (t, WILDCARD, WILDCARD)):
            if partial == meta:
                continue
            if self.rules.get(partial, 0) & perms:
                raise PyruncError(
                    f"requested rule [{_meta_str(meta)} {_perm_str(perms)}] not supported by devices cgroupv1 "
                    f"(cannot punch hole in existing wildcard rule [{_meta_str(partial)} "
                    f"{_perm_str(self.rules[partial])}])")
        left = self.rules.get(meta, 0) & ~perms
        if left:
            self.rules[meta] = left
        else:
            self.rules.pop(meta, None)

    def apply(self, rule: tuple) -> None:
        t, major, minor, perms, allow = rule
        if t == "a":
            # allow-all / deny-all: reset into black-list / white-list mode
            self.default_allow = allow
            self.rules = {}
            return
        meta, bits = (t, major, minor), _perm_set(perms)
        if allow == self.default_allow:  # allow in a black-list, deny in a white-list
            try:
                self._rm(meta, bits)
            except PyruncError as e:
                kind = "deny" if allow else "allow"
                raise PyruncError(f"unable to remove '{kind}' exception: {e}") from None
        else:
            self._add(meta, bits)

    @classmethod
    def from_rules(cls, rules: list[tuple]) -> "Emulator":
        emu = cls(False)  # a white-list by default, as runc builds it
        for r in rules:
            emu.apply(r)
        return emu

    @classmethod
    def from_list(cls, text: str) -> "Emulator":
        """From a devices.list: allow lines; "a *:* rwm" means black-list mode."""
        emu = cls(False)
        for line in text.splitlines():
            if not line.strip():
                continue
            fields = line.replace(":", " ").split()
            if len(fields) != 4:
                raise PyruncError(f"malformed devices.list rule {line}")
            t, major, minor, perms = fields
            if t == "a":
                emu.default_allow, emu.rules = True, {}
                continue
            if t not in ("b", "c"):
                raise PyruncError(f'unknown device type "{t}" in devices.list')
            try:
                maj = WILDCARD if major == "*" else int(major)
                mnr = WILDCARD if minor == "*" else int(minor)
            except ValueError:
                raise PyruncError(f"malformed devices.list rule {line}") from None
            emu.apply((t, maj, mnr, perms, True))
        return emu

    def _ordered(self) -> list[tuple[tuple[str, int, int], int]]:
        return sorted(self.rules.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))

    def transition(self, target: "Emulator") -> list[tuple]:
        """The minimal rules that take this cgroup to `target` (runc's Transition)."""
        out: list[tuple] = []
        old = self.rules
        if self.is_blacklist() or self.default_allow != target.default_allow:
            out.append(("a", WILDCARD, WILDCARD, "rwm", target.default_allow))
            old = {}
        for meta, perms in sorted(old.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
            dropped = perms & ~target.rules.get(meta, 0)
            if dropped:
                out.append((*meta, _perm_str(dropped), target.default_allow))
        for meta, perms in target._ordered():
            gained = perms & ~old.get(meta, 0)
            if gained:
                out.append((*meta, _perm_str(gained), not target.default_allow))
        return out

    def clean_rules(self) -> list[tuple]:
        """The rules that turn a deny-all cgroup into this state (runc's Rules())."""
        return Emulator(False).transition(self)


def _meta_str(meta: tuple) -> str:
    t, major, minor = meta
    return f"{t} {major}:{minor}"


# -- v1 ---------------------------------------------------------------------------

def plan_v1(path: str, rules: list[tuple]) -> tuple:
    """(target, the writes that take the v1 devices cgroup at `path` from what
    it lists now to the rules): set_v1's work before its first write, which
    a create does while the init mounts (nothing else writes the new
    cgroup's list meanwhile). () in a user namespace: nothing to write."""
    if running_in_userns():
        return ()
    target = Emulator.from_rules(rules)
    return target, list(_load_list(path).transition(target))


def set_v1(path: str, rules: list[tuple], write, plan: tuple | None = None) -> None:
    """Write the transition to the rules into a v1 devices cgroup, then check
    that devices.list shows exactly the result (runc's setV1). `plan`:
    plan_v1's, made earlier for the same path and rules."""
    if plan is None:
        plan = plan_v1(path, rules)
    if not plan:
        return
    target, writes = plan
    for rule in writes:
        write(path, "devices.allow" if rule[4] else "devices.deny", cgroup_string(rule))
    after = _load_list(path)
    if not target.is_blacklist() and after != target:
        raise PyruncError("resulting devices cgroup doesn't precisely match target")
    if target.is_blacklist() != after.is_blacklist():
        raise PyruncError("resulting devices cgroup doesn't match target mode")


def _load_list(path: str) -> Emulator:
    try:
        with open(os.path.join(path, "devices.list")) as f:
            return Emulator.from_list(f.read())
    except FileNotFoundError:
        raise PyruncError(f"cannot set device rules: {path}/devices.list does not exist "
                          "(no devices cgroup controller)") from None


# -- v2: the eBPF program ----------------------------------------------------------

# instruction classes and operations (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61            # BPF_LDX | BPF_MEM | BPF_W
_ALU_AND_K = 0x54            # BPF_ALU | BPF_AND | BPF_K
_ALU_RSH_K = 0x74            # BPF_ALU | BPF_RSH | BPF_K
_ALU_MOV_K = 0xb4            # BPF_ALU | BPF_MOV | BPF_K
_ALU_MOV_X = 0xbc            # BPF_ALU | BPF_MOV | BPF_X
_JMP_JNE_K = 0x55            # BPF_JMP | BPF_JNE | BPF_K
_JMP_JNE_X = 0x5d            # BPF_JMP | BPF_JNE | BPF_X
_JMP_EXIT = 0x95             # BPF_JMP | BPF_EXIT

BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
LICENSE = "Apache"  # as runc's devicefilter.go


def _ins(code: int, dst: int = 0, src: int = 0, off: object = 0, imm: int = 0) -> list:
    return [code, dst, src, off, imm]


def device_filter(rules: list[tuple]) -> tuple[bytes, str]:
    """The cgroup-device program for the rules, as raw struct bpf_insn bytes,
    and its license. Same program as runc's deviceFilter()."""
    import struct
    emu = Emulator.from_rules(rules)
    clean = emu.clean_rules()
    default_allow = emu.is_blacklist()
    insts: list[list] = [
        _ins(_LDX_MEM_W, 2, 1, 0),            # R2 <- access_type
        _ins(_ALU_AND_K, 2, imm=0xFFFF),       # R2 &= 0xffff: the device type
        _ins(_LDX_MEM_W, 3, 1, 0),            # R3 <- access_type
        _ins(_ALU_RSH_K, 3, imm=16),           # R3 >>= 16: the access
        _ins(_LDX_MEM_W, 4, 1, 4),            # R4 <- major
        _ins(_LDX_MEM_W, 5, 1, 8),            # R5 <- minor
    ]
    labels: dict[int, int] = {}
    block = 0
    for idx, rule in enumerate(clean):
        t, major, minor, perms, allow = rule
        if t == "a":
            if idx != 0 or allow != default_allow:
                raise PyruncError(f"[internal error] emulated cgroupv2 devices ruleset had bad wildcard at "
                                  f"idx {idx} ({cgroup_string(rule)})")
            continue
        if allow == default_allow:
            raise PyruncError(f"[internal error] emulated cgroupv2 devices ruleset had no-op rule at "
                              f"idx {idx} ({cgroup_string(rule)})")
        bpf_type = BPF_DEVCG_DEV_CHAR if t == "c" else BPF_DEVCG_DEV_BLOCK
        access = 0
        for c in perms:
            access |= {"r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE, "m": BPF_DEVCG_ACC_MKNOD}[c]
        nxt = ("L", block + 1)
        labels[block] = len(insts)
        insts.append(_ins(_JMP_JNE_K, 2, off=nxt, imm=bpf_type))
        if access != 7:  # rwm: no access check
            insts += [_ins(_ALU_MOV_X, 1, 3),                     # R1 <- R3
                      _ins(_ALU_AND_K, 1, imm=access),            # R1 &= access
                      _ins(_JMP_JNE_X, 1, 3, off=nxt)]            # if R1 != R3 goto next
        if major >= 0:
            insts.append(_ins(_JMP_JNE_K, 4, off=nxt, imm=major))
        if minor >= 0:
            insts.append(_ins(_JMP_JNE_K, 5, off=nxt, imm=minor))
        insts += [_ins(_ALU_MOV_K, 0, imm=1 if allow else 0), _ins(_JMP_EXIT)]
        block += 1
    labels[block] = len(insts)
    insts += [_ins(_ALU_MOV_K, 0, imm=1 if default_allow else 0), _ins(_JMP_EXIT)]
    out = bytearray()
    for pc, (code, dst, src, off, imm) in enumerate(insts):
        if isinstance(off, tuple):
            off = labels[off[1]] - (pc + 1)
        # imm is a signed 32-bit field; majors/minors above 2^31 wrap as in Go's int32()
        imm &= 0xFFFFFFFF
        out += struct.pack("<BBhI", code, (src << 4) | dst, off, imm)
    return bytes(out), LICENSE


def _is_rwm(perms: str) -> bool:
    return _perm_set(perms) == 7


def set_v2(path: str, rules: list[tuple], program: tuple | None = None) -> None:
    """Load the device program and attach it to the cgroup directory,
    replacing any program attached before (runc's setV2). `program`:
    device_filter(rules), made earlier."""
    prog, lic = program or device_filter(rules)
    from . import ebpf
    try:
        dirfd = os.open(path, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise PyruncError(f"cannot get dir FD for {path}") from None
    try:
        ebpf.load_attach_device_filter(prog, lic, dirfd)
    except OSError as e:
        # as runc (after crun): a user namespace or a rootless runtime cannot
        # use bpf(2); and a failure is ignorable when every rule allows all
        if running_in_userns() or os.geteuid() != 0 or all(r[4] and _is_rwm(r[3]) for r in rules):
            return
        raise PyruncError(str(e) if e.strerror is None else
                          f"{e.strerror[:1].lower()}{e.strerror[1:]}") from None
    finally:
        os.close(dirfd)
