"""The default config.json that `pyrunc spec` writes.

Mirrors runc's libcontainer/specconv/example.go (Example, ToRootless) so
that `pyrunc spec` produces the same starter bundle config as `runc spec`,
byte for byte except for these deliberate choices:

* ociVersion is "1.3.0": the newest runtime-spec pyrunc implements, and what
  current runc (runtime-spec v1.3.0) writes. Debian's runc 1.1.5 writes
  "1.0.2-dev".
* No "ambient" capability set: current runc dropped it (commit 0de19533,
  "do not add ambient capabilities"): ambient capabilities need the same
  inheritable ones, which the example does not set, so they never worked.
  runc 1.1.5 still writes an ambient set.
* hostname stays "runc", as runc writes it: tools and tests that diff
  `spec` output or look for the hostname keep working.
* The cgroup namespace is added only on a cgroup v2 unified host, exactly
  as runc does (cgroups.IsCgroup2UnifiedMode()).

The dicts are built in the Go struct field order so that `dumps` reproduces
runc's key order without sorting.
"""

from __future__ import annotations

import os

from ..fastjson import go_escape

OCI_VERSION = "1.3.0"

_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


def cgroup2_unified() -> bool:
    """True if /sys/fs/cgroup is a cgroup v2 (unified) mount.

    runc uses statfs(2) f_type == CGROUP2_SUPER_MAGIC; the root of a
    cgroup2 mount always has cgroup.controllers and tmpfs/cgroup v1 roots
    never do, so one stat answers the same question without ctypes.
    """
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def example(cgroupns: bool | None = None) -> dict:
    """Return a fresh copy of the example spec (see module docstring).

    `cgroupns` forces the cgroup namespace in (True) or out (False);
    None decides like runc, from the host's cgroup mode.
    """
    spec: dict = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_CAPS),
                "effective": list(_CAPS),
                "permitted": list(_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }
    if cgroupns is None:
        cgroupns = cgroup2_unified()
    if cgroupns:
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    return spec


def to_rootless(spec: dict) -> None:
    """Adapt `spec` in place for a rootless container, as runc's ToRootless.

    - drop the network namespace (an unprivileged user cannot configure
      one) and any user namespace, then append a user namespace;
    - map container uid/gid 0 to the caller's euid/egid, size 1;
    - replace the /sys mount by a read-only rbind of the host /sys (sysfs
      cannot be mounted without owning the network namespace);
    - strip uid=/gid= options from every mount (only one id is mapped);
    - remove linux.resources (no cgroup delegation is assumed).

    The /sys/fs/cgroup mount is kept, as runc keeps it.
    """
    linux = spec.get("linux") or {}
    namespaces = [
        ns for ns in linux.get("namespaces") or () if ns.get("type") not in ("network", "user")
    ]
    namespaces.append({"type": "user"})

    mounts = []
    for m in spec.get("mounts") or ():
        dest = m.get("destination", "")
        if dest.startswith("/") and os.path.normpath(dest).lstrip("/") == "sys":
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
            continue
        m = dict(m)
        opts = [o for o in m.get("options") or () if not o.startswith(("gid=", "uid="))]
        if opts:
            m["options"] = opts
        else:
            m.pop("options", None)  # Go: nil slice, omitted by omitempty
        mounts.append(m)
    if mounts or "mounts" in spec:
        spec["mounts"] = mounts

    # Rebuild linux so that the mappings come first, like Go's field order.
    new_linux: dict = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
    }
    for key, value in linux.items():
        if key in ("uidMappings", "gidMappings", "resources"):
            continue
        if key == "namespaces":
            value = namespaces
        new_linux[key] = value
    if "namespaces" not in new_linux:
        new_linux["namespaces"] = namespaces
    spec["linux"] = new_linux


def dumps(spec: dict) -> str:
    """Serialise like Go's json.MarshalIndent(spec, "", "\\t").

    Same layout (tab indent, `"key": value`, no trailing newline: runc
    writes the bytes as they come), UTF-8 kept as is, and Go's HTML-safe
    escapes of <, >, & and U+2028/U+2029. Those characters can only occur
    inside JSON strings, so replacing them in the output is exact.
    Key order is the dict's order.
    """
    import json

    s = json.dumps(spec, indent="\t", ensure_ascii=False)
    return go_escape(s)
