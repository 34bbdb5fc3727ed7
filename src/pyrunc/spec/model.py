"""config.json as typed Python classes, for programs that build a container's
configuration in code and hand it to `Container.create` (no config.json on
disk needed):

    from pyrunc import Container
    from pyrunc.spec.model import Spec, Process, Root, Linux, Namespace
    spec = Spec(root=Root(path="rootfs"),
                process=Process(args=["sh", "-c", "echo hi"], cwd="/"),
                linux=Linux(namespaces=[Namespace(type=t) for t in ("pid", "mount", "ipc", "uts")]))
    c = Container.create("demo", bundle="/mycontainer", config=spec)

Each class is a slotted dataclass whose attributes are the runtime-spec's JSON
names (`additionalGids`, `cgroupsPath`; only `class` is spelled `class_`).
None means "absent": to_dict() leaves it out. from_dict() checks a dict
against the same table (schema.py) the command line checks config.json with,
so a wrong type is a ConfigError naming the field; a unit test keeps these
classes and that table in step. The command line never imports this module
(dataclasses and typing cost start-up time that create cannot spare).

The other platforms' sections (solaris, windows, vm, zos, freebsd) are plain
dicts here: pyrunc only checks their types.
"""
from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .example import OCI_VERSION

_M = TypeVar("_M", bound="_Model")


class _Model:
    __slots__ = ()

    def to_dict(self) -> dict:
        """The JSON object (a fresh dict of plain JSON values)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # the subclasses are dataclasses
            v = getattr(self, f.name)
            if v is not None:
                out[f.metadata.get("json", f.name)] = _dump(v)
        return out

    @classmethod
    def from_dict(cls: type[_M], d: dict, root: str | None = None) -> _M:
        """Check `d` against the runtime-spec types and build the object;
        `root` names it in error messages (default: its JSON name)."""
        from .schema import check
        d = _json_copy(d)
        check(d, table(cls), _ROOTS.get(cls.__name__, cls.__name__) if root is None else root)
        return _build(cls, d)


def _dump(v: Any) -> Any:
    if isinstance(v, _Model):
        return v.to_dict()
    if isinstance(v, list):
        return [_dump(x) for x in v]
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


def _json_copy(v: Any) -> Any:
    """A copy the check may edit (it drops nulls) without touching the caller's."""
    if isinstance(v, dict):
        return {k: _json_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_copy(x) for x in v]
    return v


def _build(cls: type[_M], d: dict) -> _M:
    kw = {}
    for name, key, conv in _converters(cls):
        if key in d:
            kw[name] = conv(d[key])
    return cls(**kw)


_CONV: dict[type, list] = {}


def _converters(cls: type) -> list:
    """(attribute, JSON key, value converter) per field, from the type hints."""
    got = _CONV.get(cls)
    if got is None:
        hints = typing.get_type_hints(cls, vars(sys.modules[__name__]))
        got = _CONV[cls] = [(f.name, f.metadata.get("json", f.name), _conv(hints[f.name]))
                            for f in dataclasses.fields(cls)]
    return got


def _conv(t: Any):
    args = [a for a in typing.get_args(t) if a is not type(None)]
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _conv(args[0])
    if isinstance(t, type) and issubclass(t, _Model):
        return lambda v: _build(t, v)
    if origin is list and isinstance(args[0], type) and issubclass(args[0], _Model):
        item = args[0]
        return lambda v: [_build(item, x) for x in v]
    if origin is dict and isinstance(args[1], type) and issubclass(args[1], _Model):
        item = args[1]
        return lambda v: {k: _build(item, x) for k, x in v.items()}
    return lambda v: v


_ROOTS = {"Spec": "", "Process": "process", "Resources": "resources", "Linux": "linux"}
_TABLES: dict[str, tuple] = {}


def table(cls: type) -> tuple:
    """The schema.py object type a class stands for (by name)."""
    if not _TABLES:
        from .schema import SPEC

        def walk(t: tuple) -> None:
            if t[0] == "o":
                _TABLES.setdefault(t[3], t)
                for ft in t[1].values():
                    walk(ft)
            elif t[0] in ("a", "m"):
                walk(t[1])
        walk(SPEC)
    return _TABLES[cls.__name__]


_DC = {"slots": True, "kw_only": True}


# --- process --------------------------------------------------------------------

@dataclass(**_DC)
class Box(_Model):
    height: int
    width: int


@dataclass(**_DC)
class User(_Model):
    uid: int | None = None
    gid: int | None = None
    umask: int | None = None
    additionalGids: list[int] | None = None
    username: str | None = None


@dataclass(**_DC)
class Capabilities(_Model):
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


@dataclass(**_DC)
class Rlimit(_Model):
    type: str
    hard: int
    soft: int


@dataclass(**_DC)
class Scheduler(_Model):
    policy: str
    nice: int | None = None
    priority: int | None = None
    flags: list[str] | None = None
    runtime: int | None = None
    deadline: int | None = None
    period: int | None = None


@dataclass(**_DC)
class IOPriority(_Model):
    class_: str = field(metadata={"json": "class"})
    priority: int | None = None


@dataclass(**_DC)
class CPUAffinity(_Model):
    initial: str | None = None
    final: str | None = None


@dataclass(**_DC)
class Process(_Model):
    terminal: bool | None = None
    consoleSize: Box | None = None
    user: User | None = None
    args: list[str] | None = None
    commandLine: str | None = None
    env: list[str] | None = None
    cwd: str | None = None
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    noNewPrivileges: bool | None = None
    apparmorProfile: str | None = None
    oomScoreAdj: int | None = None
    scheduler: Scheduler | None = None
    selinuxLabel: str | None = None
    ioPriority: IOPriority | None = None
    execCPUAffinity: CPUAffinity | None = None


# --- root, mounts, hooks ----------------------------------------------------------

@dataclass(**_DC)
class Root(_Model):
    path: str | None = None
    readonly: bool | None = None


@dataclass(**_DC)
class IDMapping(_Model):
    containerID: int
    hostID: int
    size: int


@dataclass(**_DC)
class Mount(_Model):
    destination: str | None = None
    type: str | None = None
    source: str | None = None
    options: list[str] | None = None
    uidMappings: list[IDMapping] | None = None
    gidMappings: list[IDMapping] | None = None


@dataclass(**_DC)
class Hook(_Model):
    path: str | None = None
    args: list[str] | None = None
    env: list[str] | None = None
    timeout: int | None = None


@dataclass(**_DC)
class Hooks(_Model):
    prestart: list[Hook] | None = None
    createRuntime: list[Hook] | None = None
    createContainer: list[Hook] | None = None
    startContainer: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


# --- linux.resources --------------------------------------------------------------

@dataclass(**_DC)
class DeviceCgroup(_Model):
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


@dataclass(**_DC)
class Memory(_Model):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernelTCP: int | None = None
    swappiness: int | None = None
    disableOOMKiller: bool | None = None
    useHierarchy: bool | None = None
    checkBeforeUpdate: bool | None = None


@dataclass(**_DC)
class CPU(_Model):
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtimeRuntime: int | None = None
    realtimePeriod: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@dataclass(**_DC)
class Pids(_Model):
    limit: int | None = None


@dataclass(**_DC)
class WeightDevice(_Model):
    major: int
    minor: int
    weight: int | None = None
    leafWeight: int | None = None


@dataclass(**_DC)
class ThrottleDevice(_Model):
    major: int
    minor: int
    rate: int | None = None


@dataclass(**_DC)
class BlockIO(_Model):
    weight: int | None = None
    leafWeight: int | None = None
    weightDevice: list[WeightDevice] | None = None
    throttleReadBpsDevice: list[ThrottleDevice] | None = None
    throttleWriteBpsDevice: list[ThrottleDevice] | None = None
    throttleReadIOPSDevice: list[ThrottleDevice] | None = None
    throttleWriteIOPSDevice: list[ThrottleDevice] | None = None


@dataclass(**_DC)
class HugepageLimit(_Model):
    pageSize: str
    limit: int


@dataclass(**_DC)
class InterfacePriority(_Model):
    name: str
    priority: int


@dataclass(**_DC)
class Network(_Model):
    classID: int | None = None
    priorities: list[InterfacePriority] | None = None


@dataclass(**_DC)
class Rdma(_Model):
    hcaHandles: int | None = None
    hcaObjects: int | None = None


@dataclass(**_DC)
class Resources(_Model):
    devices: list[DeviceCgroup] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    blockIO: BlockIO | None = None
    hugepageLimits: list[HugepageLimit] | None = None
    network: Network | None = None
    rdma: dict[str, Rdma] | None = None
    unified: dict[str, str] | None = None


# --- linux.seccomp ----------------------------------------------------------------

@dataclass(**_DC)
class SeccompArg(_Model):
    index: int
    value: int
    op: str
    valueTwo: int | None = None


@dataclass(**_DC)
class Syscall(_Model):
    names: list[str]
    action: str
    errnoRet: int | None = None
    args: list[SeccompArg] | None = None


@dataclass(**_DC)
class Seccomp(_Model):
    defaultAction: str
    defaultErrnoRet: int | None = None
    architectures: list[str] | None = None
    flags: list[str] | None = None
    listenerPath: str | None = None
    listenerMetadata: str | None = None
    syscalls: list[Syscall] | None = None


# --- linux --------------------------------------------------------------------------

@dataclass(**_DC)
class Namespace(_Model):
    type: str
    path: str | None = None


@dataclass(**_DC)
class Device(_Model):
    path: str
    type: str
    major: int | None = None
    minor: int | None = None
    fileMode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(**_DC)
class NetDevice(_Model):
    name: str | None = None


@dataclass(**_DC)
class IntelRdt(_Model):
    closID: str | None = None
    schemata: list[str] | None = None
    l3CacheSchema: str | None = None
    memBwSchema: str | None = None
    enableMonitoring: bool | None = None


@dataclass(**_DC)
class MemoryPolicy(_Model):
    mode: str | None = None
    nodes: str | None = None
    flags: list[str] | None = None


@dataclass(**_DC)
class Personality(_Model):
    domain: str | None = None
    flags: list[str] | None = None


@dataclass(**_DC)
class TimeOffset(_Model):
    secs: int | None = None
    nanosecs: int | None = None


@dataclass(**_DC)
class Linux(_Model):
    uidMappings: list[IDMapping] | None = None
    gidMappings: list[IDMapping] | None = None
    sysctl: dict[str, str] | None = None
    resources: Resources | None = None
    cgroupsPath: str | None = None
    namespaces: list[Namespace] | None = None
    devices: list[Device] | None = None
    netDevices: dict[str, NetDevice] | None = None
    seccomp: Seccomp | None = None
    rootfsPropagation: str | None = None
    maskedPaths: list[str] | None = None
    readonlyPaths: list[str] | None = None
    mountLabel: str | None = None
    intelRdt: IntelRdt | None = None
    memoryPolicy: MemoryPolicy | None = None
    personality: Personality | None = None
    timeOffsets: dict[str, TimeOffset] | None = None


# --- the whole config ---------------------------------------------------------------

@dataclass(**_DC)
class Spec(_Model):
    ociVersion: str | None = OCI_VERSION
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None
    solaris: dict[str, Any] | None = None
    windows: dict[str, Any] | None = None
    vm: dict[str, Any] | None = None
    zos: dict[str, Any] | None = None
    freebsd: dict[str, Any] | None = None
