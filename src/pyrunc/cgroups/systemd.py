"""The systemd cgroup driver (`--systemd-cgroup`), as runc's.

With it, systemd owns the container's cgroup: the runtime asks systemd over
D-Bus for a transient scope unit holding the init (StartTransientUnit with
Slice=, Delegate=yes, PIDs=, the accounting switches and the
org.systemd.property.* annotations), sets the limits as unit properties so
that systemd, which rewrites a unit's cgroup whenever it reloads, keeps them,
and then also writes them into the cgroup files, exactly as the cgroupfs
driver does (some have no systemd property). On cgroup v1 systemd manages
only some hierarchies; runc creates the container's directory in the others
itself, at the same <mountpoint>/<slice path>/<unit> place, and so does this.

cgroupsPath is "slice:prefix:name": the unit is "<prefix>-<name>.scope" in
the slice (default system.slice), or the slice "<name>" if it ends in
".slice"; an empty cgroupsPath means "pyrunc-<id>.scope" in system.slice.
Exec, pause, stats and ps work on the cgroup files as with the cgroupfs
driver; delete stops the unit.
"""
from __future__ import annotations

import os

from .. import log
from ..errors import ConfigError, PyruncError
from . import Manager, hierarchies
from .dbus import Connection, DBusError, Variant, parse_address

SYSTEMD = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
PRIVATE_SOCKET = "/run/systemd/private"
SYSTEM_BUS = "/run/dbus/system_bus_socket"
DEFAULT_PREFIX = "pyrunc"
MAX_UINT64 = (1 << 64) - 1
DEF_CPU_QUOTA_PERIOD = 100000
JOB_TIMEOUT = 30.0


def is_running_systemd() -> bool:
    """sd_booted(3): the host was booted with systemd."""
    return os.path.isdir("/run/systemd/system") and not os.path.islink("/run/systemd/system")


# -- names and paths ---------------------------------------------------------------

def parse_cgroups_path(cgroups_path: str, cid: str) -> tuple[str, str, str]:
    """(parent slice, prefix, name) from linux.cgroupsPath."""
    if not cgroups_path:
        return "", DEFAULT_PREFIX, cid
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError('expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
                          f'got "{cgroups_path}" instead', "linux.cgroupsPath")
    return parts[0], parts[1], parts[2]


def unit_name(prefix: str, name: str) -> str:
    """A scope unless the name asks for a slice (runc's getUnitName)."""
    return name if name.endswith(".slice") else f"{prefix}-{name}.scope"


def expand_slice(slice_name: str) -> str:
    """systemd's slice nesting as a path: "a-b-c.slice" is
    /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root. The slice is
    linux.cgroupsPath's first part."""
    suffix = ".slice"
    if len(slice_name) < len(suffix) or not slice_name.endswith(suffix) or "/" in slice_name:
        raise ConfigError(f"invalid slice name: {slice_name}", "linux.cgroupsPath")
    base = slice_name[:-len(suffix)]
    if base == "-":
        return "/"
    path = prefix = ""
    for component in base.split("-"):
        if not component:
            raise ConfigError(f"invalid slice name: {slice_name}", "linux.cgroupsPath")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


def range_to_bits(text: str) -> list[int]:
    """A cpuset list ("0-2,7") as systemd's AllowedCPUs byte array (the
    lowest CPUs in the first byte)."""
    bits = 0
    for r in text.split(","):
        r = r.strip()
        if not r:
            continue
        lo, sep, hi = r.partition("-")
        try:
            start, end = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise PyruncError(f"invalid cpuset range {r!r}") from None
        if start < 0 or start > end or end >= 1 << 32:
            raise PyruncError(f"invalid range: {r}")
        for i in range(start, end + 1):
            bits |= 1 << i
    if not bits:
        raise PyruncError("empty value")
    return list(bits.to_bytes((bits.bit_length() + 7) // 8, "little"))


# -- unit properties from linux.resources ---------------------------------------------

def _u64(v: int) -> int:
    return v & MAX_UINT64


def _cpu_quota(props: list, cpu: dict, version: int) -> int | None:
    """CPUQuotaPeriodUSec and CPUQuotaPerSecUSec; returns the quota rounded
    up as systemd rounds it (to whole percents), for the cgroup file too."""
    quota = cpu.get("quota") or 0
    period = cpu.get("period") or 0
    if period:
        if version >= 242:
            props.append(("CPUQuotaPeriodUSec", Variant("t", period)))
    if not quota and not period:
        return None
    per_sec = MAX_UINT64
    if quota > 0:
        period = period or DEF_CPU_QUOTA_PERIOD
        per_sec = quota * 1000000 // period
        if per_sec % 10000:
            per_sec = (per_sec // 10000 + 1) * 10000
            quota = per_sec * period // 1000000
    props.append(("CPUQuotaPerSecUSec", Variant("t", per_sec)))
    return quota


def _cpuset(props: list, cpu: dict, version: int) -> None:
    if version < 244:
        return  # too old for AllowedCPUs: the cgroup file still gets it
    if cpu.get("cpus"):
        props.append(("AllowedCPUs", Variant("ay", range_to_bits(cpu["cpus"]))))
    if cpu.get("mems"):
        props.append(("AllowedMemoryNodes", Variant("ay", range_to_bits(cpu["mems"]))))


def _tasks_max(limit: int) -> int:
    return MAX_UINT64 if limit < 0 else (limit or 1)  # systemd refuses TasksMax=0


def device_properties(resources: dict, linux_devices: list | None, version: int) -> list:
    """DevicePolicy=strict and a DeviceAllow list with the container's rules,
    so that systemd, when it realizes the unit, keeps the container's device
    access (without them it would allow everything). runc's rules."""
    from .devices import WILDCARD, Emulator, spec_rules
    emu = Emulator.from_rules(spec_rules(resources, linux_devices))
    if emu.is_blacklist():
        if not emu.rules:
            return [("DeviceAllow", Variant("a(ss)", [])), ("DevicePolicy", Variant("s", "auto"))]
        log.warn("systemd doesn't support blacklist device rules -- applying temporary deny-all rule")
        return [("DeviceAllow", Variant("a(ss)", [])), ("DevicePolicy", Variant("s", "strict"))]
    allow = []
    for t, major, minor, perms, _ in emu.clean_rules():
        group = "block-" if t == "b" else "char-"
        if major == WILDCARD:
            if minor != WILDCARD:
                log.warn(f"systemd doesn't support '*:n' device rules -- temporarily ignoring rule: {t} *:{minor} {perms}")
                continue
            path = group + "*"
        elif minor == WILDCARD:
            if version >= 240:
                path = group + str(major)
            else:
                path = _device_group(t, major)
                if not path:
                    continue
        else:
            path = f"/dev/{'block' if t == 'b' else 'char'}/{major}:{minor}"
        allow.append((path, perms))
    return [("DeviceAllow", Variant("a(ss)", [])), ("DevicePolicy", Variant("s", "strict")),
            ("DeviceAllow", Variant("a(ss)", allow))]


def _device_group(t: str, major: int) -> str:
    """The /proc/devices group name of a major (systemd < 240)."""
    want = "Block devices:" if t == "b" else "Character devices:"
    current = ""
    try:
        with open("/proc/devices") as f:
            for line in f:
                line = line.strip()
                if line.endswith("devices:"):
                    current = line
                elif current == want and line.split(" ", 1)[0] == str(major):
                    return ("block-" if t == "b" else "char-") + line.split(" ", 1)[1]
    except OSError:
        pass
    return ""


def v1_properties(r: dict, version: int) -> tuple[list, dict]:
    """runc's genV1ResourcesProperties; returns the properties and the
    resources as the cgroup files must get them (the quota systemd rounds)."""
    props: list = []
    mem = r.get("memory") or {}
    cpu = r.get("cpu") or {}
    if mem.get("limit"):
        props.append(("MemoryLimit", Variant("t", _u64(mem["limit"]))))
    if cpu.get("shares"):
        props.append(("CPUShares", Variant("t", cpu["shares"])))
    r = _with_quota(r, _cpu_quota(props, cpu, version))
    if (r.get("blockIO") or {}).get("weight"):
        props.append(("BlockIOWeight", Variant("t", r["blockIO"]["weight"])))
    if (r.get("pids") or {}).get("limit") is not None:
        props.append(("TasksMax", Variant("t", _tasks_max(r["pids"]["limit"]))))
    _cpuset(props, cpu, version)
    return props, r


def v2_properties(r: dict, version: int) -> tuple[list, dict]:
    """runc's genV2ResourcesProperties (the unified map included)."""
    from .resources import convert_cpu_shares_to_weight, convert_memory_swap_to_v2
    props: list = []
    mem = r.get("memory") or {}
    cpu = r.get("cpu") or {}
    if mem.get("limit"):
        props.append(("MemoryMax", Variant("t", _u64(mem["limit"]))))
    if mem.get("reservation"):
        props.append(("MemoryLow", Variant("t", _u64(mem["reservation"]))))
    swap = convert_memory_swap_to_v2(mem.get("swap") or 0, mem.get("limit") or 0)
    if swap:
        props.append(("MemorySwapMax", Variant("t", _u64(swap))))
    idle = cpu.get("idle") == 1 and version >= 252
    if idle:
        props.append(("CPUWeight", Variant("t", 0)))  # systemd's way of saying cpu.idle=1
    if cpu.get("shares"):
        if idle:
            log.warn("unable to apply both CPUWeight and CpuIdle to systemd, ignoring CPUWeight")
        else:
            props.append(("CPUWeight", Variant("t", convert_cpu_shares_to_weight(cpu["shares"]))))
    r = _with_quota(r, _cpu_quota(props, cpu, version))
    if (r.get("pids") or {}).get("limit") is not None:
        props.append(("TasksMax", Variant("t", _tasks_max(r["pids"]["limit"]))))
    _cpuset(props, cpu, version)
    props += unified_properties(r.get("unified") or {}, version)
    return props, r


def _with_quota(r: dict, quota: int | None) -> dict:
    cpu = r.get("cpu") or {}
    if quota is None or not cpu.get("quota") or quota == cpu["quota"]:
        return r
    return {**r, "cpu": {**cpu, "quota": quota}}


_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
                   "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}


def unified_properties(unified: dict, version: int) -> list:
    """The linux.resources.unified keys systemd has properties for; the
    others go to the cgroup files only (runc's unifiedResToSystemdProps)."""
    props: list = []
    for k, v in unified.items():
        if "/" in k:
            raise PyruncError(f'unified resource "{k}" must be a file name (no slashes)')
        if k.find(".") <= 0:
            raise PyruncError(f'unified resource "{k}" must be in the form CONTROLLER.PARAMETER')
        v = str(v).strip()
        try:
            if k == "cpu.idle":
                if v == "1" and version >= 252:
                    props.append(("CPUWeight", Variant("t", 0)))
            elif k == "cpu.max":
                sv = v.split()
                if not 1 <= len(sv) <= 2:
                    raise PyruncError(f'unified resource "{k}" value invalid: "{v}"')
                quota = 0 if sv[0] == "max" else int(sv[0])
                period = int(sv[1]) if len(sv) == 2 else DEF_CPU_QUOTA_PERIOD
                _cpu_quota(props, {"quota": quota, "period": period}, version)
            elif k == "cpu.weight":
                if str(unified.get("cpu.idle", "")).strip() == "1" and version >= 252:
                    log.warn("unable to apply both cpu.weight and cpu.idle to systemd, ignoring cpu.weight")
                    continue
                props.append(("CPUWeight", Variant("t", _uint(v))))
            elif k in ("cpuset.cpus", "cpuset.mems"):
                if version >= 244:
                    name = "AllowedCPUs" if k == "cpuset.cpus" else "AllowedMemoryNodes"
                    props.append((name, Variant("ay", range_to_bits(v))))
            elif k in _UNIFIED_MEMORY:
                props.append((_UNIFIED_MEMORY[k], Variant("t", MAX_UINT64 if v == "max" else _uint(v))))
            elif k == "pids.max":
                props.append(("TasksMax", Variant("t", MAX_UINT64 if v == "max" else (_uint(v) or 1))))
        except ValueError:
            raise PyruncError(f'unified resource "{k}" value conversion error: "{v}"') from None
    return props


def _uint(v: str) -> int:
    n = int(v)
    if n < 0 or n > MAX_UINT64:
        raise ValueError(v)
    return n


# -- org.systemd.property.* annotations ---------------------------------------------------

ANNOTATION_PREFIX = "org.systemd.property."


def annotation_properties(annotations: dict | None) -> list:
    """Unit properties from org.systemd.property.<Name> annotations, whose
    values are in GVariant text form ("uint64 5", "true", "'text'", ...).
    A name ending in lower-case+"Sec" is converted to "USec", as runc does."""
    props = []
    for key, value in sorted((annotations or {}).items()):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX):]
        if len(name) < 3 or not name.isascii() or not name.isalpha():
            why = "too short" if len(name) < 3 else "contains non-alphabetic character"
            raise ConfigError(f"annotation {key} name incorrect: {why}", _annotation(key))
        try:
            var = parse_gvariant(str(value))
        except ValueError as e:
            raise ConfigError(f"annotation {key}={value} value parse error: {e}", _annotation(key)) from e
        if name.endswith("Sec") and len(name) > 3 and "a" <= name[-4] <= "z":
            if var.signature not in ("y", "n", "q", "i", "u", "x", "t", "d"):
                raise ConfigError(f"annotation {key}={value} value parse error: not a number", _annotation(key))
            name = name[:-3] + "USec"
            var = Variant("t", int(var.value * 1000000) & MAX_UINT64)
        props.append((name, var))
    return props


def _annotation(key: str) -> str:
    """An annotation's field path, for a ConfigError."""
    from ..fastjson import key_path
    return key_path("annotations", key)


_GV_TYPES = {"boolean": "b", "byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
             "int64": "x", "uint64": "t", "double": "d", "string": "s", "objectpath": "o", "signature": "g"}
_INT_RANGES = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1),
               "i": (-(1 << 31), (1 << 31) - 1), "u": (0, (1 << 32) - 1),
               "x": (-(1 << 63), (1 << 63) - 1), "t": (0, MAX_UINT64)}


def parse_gvariant(text: str) -> Variant:
    """The GVariant text forms annotations use: a typed ("uint64 5",
    "@t 5") or plain number (int32 as godbus, or double), true/false, a
    quoted string, or an array of these ("['a', 'b']", "@au [1, 2]")."""
    text = text.strip()
    sig = ""
    if text.startswith("@"):
        sig, _, text = text[1:].partition(" ")
    else:
        word, _, rest = text.partition(" ")
        if word in _GV_TYPES and rest:
            sig, text = _GV_TYPES[word], rest
    text = text.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError("unterminated array")
        items = [_gv_scalar(t, sig[1:] if sig.startswith("a") else "") for t in _split_items(text[1:-1])]
        elem = sig[1:] if sig.startswith("a") else (items[0].signature if items else "s")
        if any(i.signature != elem for i in items):
            raise ValueError("array elements of different types")
        return Variant("a" + elem, [i.value for i in items])
    if sig.startswith("a"):
        raise ValueError(f"expected an array for type @{sig}")
    return _gv_scalar(text, sig)


def _split_items(body: str) -> list[str]:
    items, cur, quote = [], "", ""
    for ch in body:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch == ",":
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur.strip())
    return items


def _gv_scalar(text: str, sig: str) -> Variant:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        if sig not in ("", "s", "o", "g"):
            raise ValueError(f"a string is not of type {sig}")
        # backslash escapes decoded, other characters (UTF-8 too) kept
        body = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return Variant(sig or "s", body)
    if text in ("true", "false"):
        if sig not in ("", "b"):
            raise ValueError(f"a boolean is not of type {sig}")
        return Variant("b", text == "true")
    if sig == "d" or (not sig and any(c in text for c in ".eE") and not text.lower().startswith("0x")):
        return Variant("d", float(text))
    sig = sig or "i"
    if sig not in _INT_RANGES:
        raise ValueError(f"cannot parse {text!r} as type {sig}")
    n = int(text, 0)
    lo, hi = _INT_RANGES[sig]
    if not lo <= n <= hi:
        raise ValueError(f"{text} is out of range for type {sig}")
    return Variant(sig, n)


# -- the connection ----------------------------------------------------------------------

_conn: Connection | None = None
_version: int | None = None


def connection() -> Connection:
    """One connection per process: systemd's private socket for root (no
    bus daemon needed, as go-systemd falls back to it), else the system bus."""
    global _conn
    if _conn is None:
        errors = []
        candidates = [(PRIVATE_SOCKET, False)] if os.geteuid() == 0 else []
        bus = parse_address(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")) or SYSTEM_BUS
        candidates.append((bus, True))
        for path, hello in candidates:
            try:
                conn = Connection.open(path, hello)
                if hello:  # signals reach bus clients only when they ask
                    conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                              "type='signal',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'")
                    conn.call(SYSTEMD, OBJECT, MANAGER, "Subscribe")
                _conn = conn
                break
            except (OSError, DBusError) as e:
                errors.append(f"{path}: {getattr(e, 'strerror', None) or e}")
        else:
            raise PyruncError("failed to connect to systemd over D-Bus (" + "; ".join(errors) + ")")
    return _conn


def call(member: str, sig: str = "", *args) -> list:
    try:
        return connection().call(SYSTEMD, OBJECT, MANAGER, member, sig, *args)
    except OSError as e:
        raise DBusError("", f"D-Bus connection to systemd failed: {e.strerror or e}") from None


def systemd_version() -> int:
    """The manager's version ("252.38-1~deb12u1" -> 252), -1 if unknown."""
    global _version
    if _version is None:
        _version = -1
        try:
            var = connection().call(SYSTEMD, OBJECT, "org.freedesktop.DBus.Properties", "Get", "ss",
                                    MANAGER, "Version")[0]
            digits = ""
            for ch in str(var.value).lstrip('"v'):
                if not ch.isdigit():
                    break
                digits += ch
            _version = int(digits) if digits else -1
        except (DBusError, OSError, PyruncError) as e:
            log.error(f"unable to get systemd version: {e}")
    return _version


def _wait_job(job: str, timeout: float = JOB_TIMEOUT) -> str:
    msg = connection().wait_signal(
        lambda m: m.member == "JobRemoved" and m.interface == MANAGER and len(m.body) >= 4 and m.body[1] == job,
        timeout)
    return msg.body[3] if msg else ""


def start_unit(unit: str, props: list) -> None:
    """StartTransientUnit and wait for its job ("done"); a leftover failed
    unit of the same name is reset and the start tried once more."""
    for attempt in (1, 2):
        try:
            job = call("StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "replace", props, [])[0]
        except DBusError as e:
            if "org.freedesktop.systemd1.UnitExists" not in e.name:
                raise PyruncError(f"unable to start unit \"{unit}\": {e}") from None
            if attempt == 2:
                raise PyruncError(f"unable to start unit \"{unit}\": {e}") from None
            reset_failed(unit)
            continue
        result = _wait_job(job)
        if result != "done":
            reset_failed(unit)
            if not result:
                raise PyruncError(f"Timeout waiting for systemd to create {unit}")
            raise PyruncError(f"error creating systemd unit `{unit}`: got `{result}`")
        return


def stop_unit(unit: str) -> None:
    """StopUnit and wait; a unit already gone is fine (systemd drops an
    empty transient scope by itself)."""
    try:
        job = call("StopUnit", "ss", unit, "replace")[0]
    except DBusError as e:
        if "NoSuchUnit" not in e.name and e.name:
            log.warn(f"unable to stop unit {unit}: {e}")
        elif not e.name:
            raise PyruncError(str(e)) from None
    else:
        result = _wait_job(job)
        if not result:
            raise PyruncError(f"Timed out while waiting for systemd to remove {unit}")
        if result != "done":
            log.warn(f"error removing unit `{unit}`: got `{result}`. Continuing...")
    reset_failed(unit)


def stop_late_start(unit: str, window: float = 0.25) -> None:
    """After the unit of a create killed while it asked for it is stopped:
    that StartTransientUnit came on the dead create's own connection, which
    systemd may serve after ours, so the unit can appear after our stop.
    Look for it for `window` seconds, and stop it each time it is there."""
    import time
    end = time.monotonic() + window
    while True:
        try:
            call("GetUnit", "s", unit)
            stop_unit(unit)
        except DBusError as e:
            if "NoSuchUnit" not in e.name:
                return  # systemd cannot say: the stop already done stands
        except PyruncError as e:
            log.warn(str(e))
            return
        if time.monotonic() >= end:
            return
        time.sleep(0.025)


def reset_failed(unit: str) -> None:
    try:
        call("ResetFailedUnit", "s", unit)
    except DBusError:
        pass


def set_unit_properties(unit: str, props: list) -> None:
    if not props:
        return
    try:
        call("SetUnitProperties", "sba(sv)", unit, True, props)
    except DBusError as e:
        raise PyruncError(f"unable to set unit properties: {e}") from None


# -- the manager ---------------------------------------------------------------------------

class SystemdManager(Manager):
    """A Manager whose cgroup is a systemd unit. The paths are where systemd
    puts the unit, so the cgroupfs code (resources, stats, freezer, exec)
    works on them unchanged."""

    def __init__(self, paths: dict[str, str], unit: str, parent: str, name: str,
                 extra_props: list | None = None) -> None:
        super().__init__(paths, rootless=False, explicit=True)
        self.unit = unit
        self.parent = parent
        self.name = name
        self.extra_props = extra_props or []
        self.pid = 0  # the init, once the unit holds it

    @classmethod
    def for_container(cls, cgroups_path: str, cid: str, rootless: bool = False,
                      annotations: dict | None = None) -> "SystemdManager":
        if not is_running_systemd():
            raise PyruncError("systemd cgroup flag passed, but systemd support for managing cgroups is not "
                              "available (systemd is not running on this host: no /run/systemd/system)")
        if rootless:
            raise PyruncError("rootless containers with the systemd cgroup driver (a user's systemd "
                              "instance) are not supported by pyrunc")
        parent, prefix, name = parse_cgroups_path(cgroups_path, cid)
        unit = unit_name(prefix, name)
        slice_path = expand_slice(parent) if parent else "/system.slice"
        paths = {key: os.path.join(mp, slice_path.lstrip("/"), unit)
                 for key, (mp, _) in hierarchies().items()}
        return cls(paths, unit, parent or "system.slice", name, annotation_properties(annotations))

    @classmethod
    def from_state(cls, st: dict) -> "SystemdManager":
        sd = st["systemd"]
        return cls(st.get("cgroup_paths") or {}, sd["unit"], sd.get("slice", ""), sd.get("name", ""))

    def state(self) -> dict:
        """What later commands need to find the unit again."""
        return {"unit": self.unit, "slice": self.parent, "name": self.name}

    def _v2(self) -> bool:
        from .resources import is_v2
        return is_v2(self.paths)

    def create(self) -> None:
        """Nothing yet: systemd creates the unit's cgroup once it has the pid."""

    def add(self, pid: int) -> None:
        if self.pid:  # a further process: the unit's cgroup exists
            return super().add(pid)
        self.start(pid)
        self.pid = pid
        self._join(pid, create=True)

    def _join(self, pid: int, create: bool = False) -> None:
        """systemd manages only some v1 hierarchies: the others get the same
        directory from us (runc's joinCgroups), and the pid."""
        from . import _mkdir_p, _write
        for key, path in self.paths.items():
            if key == "name=systemd":
                continue
            if create:
                _mkdir_p(path, copy_cpuset="cpuset" in key.split(","))
            _write(os.path.join(path, "cgroup.procs"), str(pid).encode())

    def start(self, pid: int) -> None:
        props: list = [("Description", Variant("s", f"libcontainer container {self.name}"))]
        if self.unit.endswith(".slice"):
            props.append(("Wants", Variant("as", [self.parent])))
        else:
            props += [("Slice", Variant("s", self.parent)), ("Delegate", Variant("b", True))]
        props.append(("PIDs", Variant("au", [pid])))
        props += [("MemoryAccounting", Variant("b", True)), ("CPUAccounting", Variant("b", True)),
                  ("IOAccounting" if self._v2() else "BlockIOAccounting", Variant("b", True)),
                  ("TasksAccounting", Variant("b", True)), ("DefaultDependencies", Variant("b", False))]
        props += self.extra_props
        start_unit(self.unit, props)

    def plan(self, resources: dict, linux_devices: list | None = None) -> None:
        """Nothing ahead: the unit's properties go first, when applied."""

    def apply(self, resources: dict, linux_devices: list | None = None) -> None:
        self._set(resources or {}, linux_devices, skip_devices=False)

    def set(self, resources: dict, skip_devices: bool = True) -> None:
        self._set(resources or {}, None, skip_devices)

    def _set(self, r: dict, linux_devices: list | None, skip_devices: bool) -> None:
        """Unit properties first (what systemd will keep), then the files.
        A value the files would refuse never reaches systemd: the cgroupfs
        driver's own checks come first."""
        from .resources import apply_resources, check_memory_usage, validate
        v2 = self._v2()
        validate(r, v2)
        version = systemd_version()
        if v2:
            if r.get("memory"):  # before MemoryMax: systemd would OOM-kill the unit
                check_memory_usage(self.paths[""], r["memory"])
            props, r = v2_properties(r, version)
        else:
            props, r = v1_properties(r, version)
        if not skip_devices:
            props = device_properties(r, linux_devices, version) + props
        set_unit_properties(self.unit, props)
        if self.pid and not v2:
            # A v1 controller that a property turns on for the unit (devices,
            # with DevicePolicy) is realized anew, and systemd moves the
            # unit's processes up to the parent slice's cgroup there first:
            # runc 1.1's containers end up in devices:/system.slice, free of
            # their device rules. The init is the only process yet: back in.
            self._join(self.pid)
        apply_resources(self.paths, r, linux_devices, skip_devices=skip_devices)

    def destroy(self) -> None:
        """Stop the unit (systemd removes its cgroups), then remove the
        directories we made in the hierarchies systemd does not manage."""
        try:
            stop_unit(self.unit)
        except PyruncError as e:
            log.warn(str(e))
        super().destroy()
