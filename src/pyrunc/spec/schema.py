"""The runtime-spec's config.json types as a table, and one walk that checks
a parsed document against it before anything is made.

Each type is a small tuple, so the table costs nothing to import and the
walk is a few hundred nanoseconds per field (no msgspec, no pydantic: their
import alone costs more than a whole `create`):

    STR, BOOL, ANY             a JSON string, boolean, anything
    ("i", lo, hi)              an integer in [lo, hi] (Go's int64, uint32, ...)
    ("a", T)                   an array of T
    ("m", T)                   an object with string keys and T values (Go map)
    ("o", fields, required, name)  an object: {key: T}, keys that must be there

The types are Go's (runc decodes into runtime-spec's specs-go), so a config
runc accepts passes; the spec's JSON schema adds where it is stricter only
"required", and only for fields Go always writes (no omitempty), so no Go
program's config is refused. As in Go: unknown fields are ignored, and null
in an object field means absent (the key is dropped, so later code sees the
same dict as if it had not been written). Beyond Go: a string holding a NUL
character or a lone UTF-16 surrogate ("\\ud800") is refused: the kernel
cannot take the one, UTF-8 has no form for the other, and either would reach
the user later as a Python exception's text.

Errors name the field: `process.capabilities.bounding: expected an array of
strings, got a string`; `mounts[2].options[0]: ...`; map keys are quoted,
`linux.sysctl["net.ipv4.ip_forward"]`.
"""
from __future__ import annotations

from ..errors import ConfigError

STR = ("s",)
BOOL = ("b",)
ANY = ("*",)


def _int(bits: int, signed: bool) -> tuple:
    return ("i", -(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else ("i", 0, (1 << bits) - 1)


I32, I64 = _int(32, True), _int(64, True)
U16, U32, U64 = _int(16, False), _int(32, False), _int(64, False)


def _arr(t: tuple) -> tuple:
    return ("a", t)


def _map(t: tuple) -> tuple:
    return ("m", t)


def _obj(name: str, fields: dict, required: tuple = ()) -> tuple:
    return ("o", fields, required, name)


STRS = _arr(STR)

# --- the common part -------------------------------------------------------
ID_MAPPING = _obj("IDMapping", {"containerID": U32, "hostID": U32, "size": U32},
                  ("containerID", "hostID", "size"))
HOOK = _obj("Hook", {"path": STR, "args": STRS, "env": STRS, "timeout": I64})
HOOKS = _obj("Hooks", {k: _arr(HOOK) for k in ("prestart", "createRuntime", "createContainer",
                                               "startContainer", "poststart", "poststop")})
MOUNT = _obj("Mount", {"destination": STR, "type": STR, "source": STR, "options": STRS,
                       "uidMappings": _arr(ID_MAPPING), "gidMappings": _arr(ID_MAPPING)})
ROOT = _obj("Root", {"path": STR, "readonly": BOOL})
USER = _obj("User", {"uid": U32, "gid": U32, "umask": U32, "additionalGids": _arr(U32), "username": STR})
PROCESS = _obj("Process", {
    "terminal": BOOL,
    "consoleSize": _obj("Box", {"height": U64, "width": U64}, ("height", "width")),
    "user": USER,
    "args": STRS,
    "commandLine": STR,
    "env": STRS,
    "cwd": STR,
    "capabilities": _obj("Capabilities", {k: STRS for k in ("bounding", "effective", "inheritable",
                                                             "permitted", "ambient")}),
    "rlimits": _arr(_obj("Rlimit", {"type": STR, "hard": U64, "soft": U64}, ("type", "hard", "soft"))),
    "noNewPrivileges": BOOL,
    "apparmorProfile": STR,
    "oomScoreAdj": I64,
    "scheduler": _obj("Scheduler", {"policy": STR, "nice": I32, "priority": I32, "flags": STRS,
                                    "runtime": U64, "deadline": U64, "period": U64}, ("policy",)),
    "selinuxLabel": STR,
    "ioPriority": _obj("IOPriority", {"class": STR, "priority": I64}, ("class",)),
    "execCPUAffinity": _obj("CPUAffinity", {"initial": STR, "final": STR}),
})

# --- linux ------------------------------------------------------------------
_BLOCK_DEV = {"major": I64, "minor": I64}
_THROTTLE = _arr(_obj("ThrottleDevice", {**_BLOCK_DEV, "rate": U64}, ("major", "minor")))
RESOURCES = _obj("Resources", {
    "devices": _arr(_obj("DeviceCgroup", {"allow": BOOL, "type": STR, "major": I64, "minor": I64,
                                          "access": STR}, ("allow",))),
    "memory": _obj("Memory", {"limit": I64, "reservation": I64, "swap": I64, "kernel": I64,
                              "kernelTCP": I64, "swappiness": U64, "disableOOMKiller": BOOL,
                              "useHierarchy": BOOL, "checkBeforeUpdate": BOOL}),
    "cpu": _obj("CPU", {"shares": U64, "quota": I64, "burst": U64, "period": U64, "realtimeRuntime": I64,
                        "realtimePeriod": U64, "cpus": STR, "mems": STR, "idle": I64}),
    "pids": _obj("Pids", {"limit": I64}),
    "blockIO": _obj("BlockIO", {
        "weight": U16, "leafWeight": U16,
        "weightDevice": _arr(_obj("WeightDevice", {**_BLOCK_DEV, "weight": U16, "leafWeight": U16},
                                  ("major", "minor"))),
        "throttleReadBpsDevice": _THROTTLE, "throttleWriteBpsDevice": _THROTTLE,
        "throttleReadIOPSDevice": _THROTTLE, "throttleWriteIOPSDevice": _THROTTLE}),
    "hugepageLimits": _arr(_obj("HugepageLimit", {"pageSize": STR, "limit": U64}, ("pageSize", "limit"))),
    "network": _obj("Network", {"classID": U32, "priorities": _arr(_obj(
        "InterfacePriority", {"name": STR, "priority": U32}, ("name", "priority")))}),
    "rdma": _map(_obj("Rdma", {"hcaHandles": U32, "hcaObjects": U32})),
    "unified": _map(STR),
})
SECCOMP = _obj("Seccomp", {
    "defaultAction": STR,
    "defaultErrnoRet": U64,
    "architectures": STRS,
    "flags": STRS,
    "listenerPath": STR,
    "listenerMetadata": STR,
    "syscalls": _arr(_obj("Syscall", {
        "names": STRS, "action": STR, "errnoRet": U64,
        "args": _arr(_obj("SeccompArg", {"index": U64, "value": U64, "valueTwo": U64, "op": STR},
                          ("index", "value", "op")))}, ("names", "action"))),
}, ("defaultAction",))
LINUX = _obj("Linux", {
    "uidMappings": _arr(ID_MAPPING),
    "gidMappings": _arr(ID_MAPPING),
    "sysctl": _map(STR),
    "resources": RESOURCES,
    "cgroupsPath": STR,
    "namespaces": _arr(_obj("Namespace", {"type": STR, "path": STR}, ("type",))),
    "devices": _arr(_obj("Device", {"path": STR, "type": STR, "major": I64, "minor": I64, "fileMode": U32,
                                    "uid": U32, "gid": U32}, ("path", "type"))),
    "netDevices": _map(_obj("NetDevice", {"name": STR})),
    "seccomp": SECCOMP,
    "rootfsPropagation": STR,
    "maskedPaths": STRS,
    "readonlyPaths": STRS,
    "mountLabel": STR,
    "intelRdt": _obj("IntelRdt", {"closID": STR, "schemata": STRS, "l3CacheSchema": STR, "memBwSchema": STR,
                                  "enableMonitoring": BOOL}),
    "memoryPolicy": _obj("MemoryPolicy", {"mode": STR, "nodes": STR, "flags": STRS}),
    "personality": _obj("Personality", {"domain": STR, "flags": STRS}),
    "timeOffsets": _map(_obj("TimeOffset", {"secs": I64, "nanosecs": U32})),
})

# --- other platforms: pyrunc ignores them, but they must still be well-formed
SOLARIS = _obj("Solaris", {
    "milestone": STR, "limitpriv": STR, "maxShmMemory": STR,
    "anet": _arr(_obj("SolarisAnet", {k: STR for k in ("linkname", "lowerLink", "allowedAddress",
                                                       "configureAllowedAddress", "defrouter",
                                                       "linkProtection", "macAddress")})),
    "cappedCPU": _obj("SolarisCappedCPU", {"ncpus": STR}),
    "cappedMemory": _obj("SolarisCappedMemory", {"physical": STR, "swap": STR}),
})
WINDOWS = _obj("Windows", {
    "layerFolders": STRS,
    "devices": _arr(_obj("WindowsDevice", {"id": STR, "idType": STR})),
    "resources": _obj("WindowsResources", {
        "memory": _obj("WindowsMemory", {"limit": U64}),
        "cpu": _obj("WindowsCPU", {"count": U64, "shares": U16, "maximum": U16,
                                   "affinity": _arr(_obj("WindowsCPUGroupAffinity", {"mask": U64, "group": U32}))}),
        "storage": _obj("WindowsStorage", {"iops": U64, "bps": U64, "sandboxSize": U64})}),
    "credentialSpec": ANY,
    "servicing": BOOL,
    "ignoreFlushesDuringBoot": BOOL,
    "hyperv": _obj("WindowsHyperV", {"utilityVMPath": STR}),
    "network": _obj("WindowsNetwork", {"endpointList": STRS, "allowUnqualifiedDNSQuery": BOOL,
                                       "DNSSearchList": STRS, "networkSharedContainerName": STR,
                                       "networkNamespace": STR}),
})
VM = _obj("VM", {
    "hypervisor": _obj("VMHypervisor", {"path": STR, "parameters": STRS}),
    "kernel": _obj("VMKernel", {"path": STR, "parameters": STRS, "initrd": STR}),
    "image": _obj("VMImage", {"path": STR, "format": STR}),
    "hwconfig": _obj("VMHWConfig", {"deviceTree": STR, "vcpus": U32, "memory": U64, "dtdevs": STRS,
                                    "iomems": _arr(_obj("VMIOMems", {"firstGFN": U64, "firstMFN": U64,
                                                                     "nrMFNs": U64})),
                                    "irqs": _arr(U32)}),
})
ZOS = _obj("ZOS", {"namespaces": _arr(_obj("ZOSNamespace", {"type": STR, "path": STR}))})
_JAIL_ALLOW = {k: BOOL for k in ("setHostname", "rawSockets", "chflags", "quotas", "socketAf", "mlock",
                                 "reservedPorts", "suser")}
FREEBSD = _obj("FreeBSD", {
    "devices": _arr(_obj("FreeBSDDevice", {"path": STR, "mode": U32})),
    "jail": _obj("FreeBSDJail", {
        **{k: STR for k in ("parent", "host", "ip4", "ip6", "vnet", "interface", "sysvmsg", "sysvsem", "sysvshm")},
        "ip4Addr": STRS, "ip6Addr": STRS, "vnetInterfaces": STRS, "enforceStatfs": I64,
        "allow": _obj("FreeBSDJailAllow", {**_JAIL_ALLOW, "mount": STRS})}),
})

SPEC = _obj("Spec", {
    "ociVersion": STR,
    "process": PROCESS,
    "root": ROOT,
    "hostname": STR,
    "domainname": STR,
    "mounts": _arr(MOUNT),
    "hooks": HOOKS,
    "annotations": _map(STR),
    "linux": LINUX,
    "solaris": SOLARIS,
    "windows": WINDOWS,
    "vm": VM,
    "zos": ZOS,
    "freebsd": FREEBSD,
})


# --- the walk -----------------------------------------------------------------

class _Bad(Exception):
    """Raised at the faulty value; each enclosing level adds its key on the
    way out, so a valid document never builds a path string."""

    def __init__(self, t: tuple, v: object, why: str = "") -> None:
        self.t, self.v, self.why = t, v, why
        self.path: list = []


def check(doc: object, t: tuple = SPEC, root: str = "") -> None:
    """Raise ConfigError naming the first field of `doc` that does not have
    the type `t` gives it (in its message and its `path`); `root` names the
    document."""
    try:
        _walk(doc, t)
    except _Bad as e:
        where = _path(root, e.path)
        raise ConfigError(f"{where}: {_why(e)}", where if root or e.path else None) from None


def _walk(v: object, t: tuple) -> None:
    k = t[0]
    if k == "s":
        if type(v) is not str:
            raise _Bad(t, v)
        if "\x00" in v or not v.isascii():
            _text(v)
    elif k == "o":
        if type(v) is not dict:
            raise _Bad(t, v)
        fields = t[1]
        nulls: list[str] | None = None
        renames: list[tuple[str, str]] | None = None
        for key, val in v.items():
            ft = fields.get(key)
            if ft is None:
                # Go's decoder matches a key case-insensitively when no field
                # has it exactly ("pagesize" is pageSize): renamed after the loop
                canon = _folded(fields).get(key.lower()) if type(key) is str else None
                if canon is None:
                    continue  # unknown: ignored, as Go's decoder does
                renames = (renames or []) + [(key, canon)]
                ft = fields[canon]
            if val is None:
                nulls = (nulls or []) + [key]
                continue
            try:
                _walk(val, ft)
            except _Bad as e:
                e.path.append(key)
                raise
        if nulls:
            for key in nulls:
                del v[key]
        if renames:
            _rename(v, renames)
        for key in t[2]:
            if key not in v:
                bad = _Bad(fields[key], None, "required field is missing")
                bad.path.append(key)
                raise bad
    elif k == "a":
        if type(v) is not list:
            raise _Bad(t, v)
        it = t[1]
        if it is STR:  # the common case, without a call per item
            for i, x in enumerate(v):
                if type(x) is not str or "\x00" in x or not x.isascii():
                    try:
                        _walk(x, STR)
                    except _Bad as e:
                        e.path.append(i)
                        raise
            return
        for i, x in enumerate(v):
            try:
                _walk(x, it)
            except _Bad as e:
                e.path.append(i)
                raise
    elif k == "i":
        if type(v) is not int or not t[1] <= v <= t[2]:
            raise _Bad(t, v)
    elif k == "b":
        if type(v) is not bool:
            raise _Bad(t, v)
    elif k == "m":
        if type(v) is not dict:
            raise _Bad(t, v)
        vt = t[1]
        for key, val in v.items():
            try:
                if type(key) is not str or "\x00" in key or not key.isascii():
                    _text(key, "key ")
                _walk(val, vt)
            except _Bad as e:
                e.path.append((key,))
                raise


_FOLDED: dict[int, dict[str, str]] = {}


def _folded(fields: dict) -> dict[str, str]:
    """lower-cased field name -> the field's name, per object type."""
    f = _FOLDED.get(id(fields))
    if f is None:
        f = _FOLDED[id(fields)] = {k.lower(): k for k in fields}
    return f


def _rename(v: dict, renames: list[tuple[str, str]]) -> None:
    """Give case-folded keys their field's name. As in Go, of two keys for
    one field the later in the document wins, and two objects for one field
    decode into the same struct: {"CPU": {"cpus": "1"}, "cpu": {"quota": 5}}
    is cpu {cpus, quota}."""
    order = {k: i for i, k in enumerate(v)}
    for key, canon in renames:
        if key not in v:  # dropped as null
            continue
        val = v.pop(key)
        if canon in v:
            first, later = (val, v[canon]) if order.get(canon, -1) > order[key] else (v[canon], val)
            val = {**first, **later} if type(first) is dict and type(later) is dict else later
        v[canon] = val


def _text(v: str, what: str = "") -> None:
    """What the kernel and Python's os functions can take: no NUL, and no
    lone UTF-16 surrogate (JSON's "\\ud800", which has no UTF-8 form)."""
    if type(v) is not str:  # a map key, from a library caller's dict
        raise _Bad(STR, v, f"{what}must be a string")
    if "\x00" in v:
        raise _Bad(STR, v, f"{what}must not contain a NUL character")
    try:
        v.encode()
    except UnicodeEncodeError:
        raise _Bad(STR, v, f"{what}is not valid Unicode (a lone surrogate escape)") from None


def _path(root: str, parts: list) -> str:
    out = [root]
    for p in reversed(parts):
        if type(p) is int:
            out.append(f"[{p}]")
        elif type(p) is tuple:
            from ..fastjson import dumps
            out.append(f"[{dumps(p[0])}]")
        else:
            out.append(f".{p}" if out != [""] else p)
    return "".join(out) or "config"


def describe(t: tuple, plural: bool = False) -> str:
    """'an array of strings', 'an integer from 0 to 4294967295', ..."""
    k = t[0]
    if k == "a":
        return ("arrays" if plural else "an array") + " of " + describe(t[1], True)
    if k == "m":
        return ("objects" if plural else "an object") + " with " + _ADJ[t[1][0]] + " values"
    if k == "i":
        base = "integers" if plural else "an integer"
        return base if t[1:] == I64[1:] else f"{base} from {t[1]} to {t[2]}"
    name = {"s": ("a string", "strings"), "b": ("a boolean", "booleans"), "o": ("an object", "objects"),
            "*": ("any value", "any values")}[k]
    return name[plural]


_ADJ = {"s": "string", "b": "boolean", "i": "integer", "o": "object", "a": "array", "m": "object", "*": "any"}


def _got(v: object, t: tuple) -> str:
    if v is None:
        return "null"
    if type(v) is bool:
        return "a boolean"
    if type(v) is int:
        if t[0] != "i":
            return "an integer"
        s = str(v) if -10**30 < v < 10**30 else ""
        return s or ("a larger integer" if v > 0 else "a smaller integer")
    if type(v) is float:
        return "a non-integer number" if t[0] == "i" else "a number"
    names: dict[type, str] = {str: "a string", list: "an array", dict: "an object"}
    return names.get(type(v), type(v).__name__)


def _why(e: _Bad) -> str:
    if e.why:
        return e.why
    return f"expected {describe(e.t)}, got {_got(e.v, e.t)}"
