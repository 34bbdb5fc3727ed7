"""What `pyrunc features` prints: the runtime-spec features.json document.

Engines read this to learn what the runtime recognises (containerd and
CRI-O look at mountOptions, e.g. "rro"; podman at idmap support). The shape
and key order follow runtime-spec v1.3.0 specs-go/features and the values
follow current runc's features.go, limited to what pyrunc implements or
plans to implement per DESIGN.md (all of runtime-spec 1.3's Linux fields).

Deliberate differences from runc:

* linux.capabilities lists only what both our table and the running kernel
  know (runc lists everything its library knows, even if the kernel does not).
* linux.seccomp comes from the libseccomp found at run time through ctypes
  (runc: compiled in). No libseccomp -> {"enabled": false}. archs are runc's
  list filtered by what that libseccomp resolves.
* cgroup.systemd is true (the driver talks to systemd as root);
  systemdUser is false: a user's systemd instance is not supported.
* Annotations: pyrunc's own under "org.opencontainers.pyrunc." (version);
  no "org.opencontainers.runc.*" keys, which describe runc itself, and no
  checkpoint annotation: `checkpoint`/`restore` talk to CRIU as runc does
  but have not been exercised end to end with a CRIU that works (CRIU 3.17
  cannot start on the kernel they were written on), so engines are not
  told to rely on them. The libseccomp version uses the
  shared key "io.github.seccomp.libseccomp.version", as runc and crun do.

Output: `dumps()` matches Go's json.Encoder with SetIndent("", "    ") as
runc uses it: four spaces, annotations sorted (Go sorts map keys) and a
trailing newline.
"""

from __future__ import annotations

from pyrunc.hooks import HOOK_NAMES
from pyrunc.linux.consts import MPOL_FLAGS, MPOL_MODES
from pyrunc.security.capabilities import known_capabilities

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.3.0"

#: The systemd cgroup driver (cgroups/systemd.py), for root's systemd only.
SYSTEMD_CGROUP = True
SYSTEMD_USER_CGROUP = False

ANNOTATION_VERSION = "org.opencontainers.pyrunc.version"
ANNOTATION_LIBSECCOMP_VERSION = "io.github.seccomp.libseccomp.version"


# runc HEAD specconv: mountFlags + mountPropagationMapping + recAttrFlags +
# extensionFlags ("tmpcopyup"). "acl"/"noacl" were dropped by runc (#3738);
# idmap/ridmap are advertised through mountExtensions.idmap, as runc does.
MOUNT_OPTIONS = tuple(
    sorted(
        (
            # mount(2) flags
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync",
            "exec", "iversion", "lazytime", "loud", "mand", "noatime", "nodev",
            "nodiratime", "noexec", "noiversion", "nolazytime", "nomand",
            "norelatime", "nostrictatime", "nosuid", "nosymfollow", "rbind",
            "relatime", "remount", "ro", "rw", "silent", "strictatime", "suid",
            "sync", "symfollow",
            # propagation
            "private", "rprivate", "rshared", "rslave", "runbindable",
            "shared", "slave", "unbindable",
            # recursive mount_setattr(2) attributes
            "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec",
            "rexec", "rnodiratime", "rdiratime", "rrelatime", "rnorelatime",
            "rnoatime", "ratime", "rstrictatime", "rnostrictatime",
            "rnosymfollow", "rsymfollow",
            # extensions
            "tmpcopyup",
        )
    )
)  # fmt: skip

NAMESPACES = ("cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts")

SECCOMP_ACTIONS = (
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
)

SECCOMP_OPERATORS = (
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
)

SECCOMP_ARCHS = (
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
)

# Flag -> (min libseccomp API level, min libseccomp version) needed to set
# it; the same checks libseccomp-golang makes for runc. TSYNC is recognised
# and ignored (one thread applies the filter right before exec). Order as
# runc's (not sorted).
SECCOMP_FLAGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "SECCOMP_FILTER_FLAG_TSYNC": (0, (0, 0, 0)),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, (2, 5, 0)),
    "SECCOMP_FILTER_FLAG_LOG": (3, (2, 4, 0)),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (7, (2, 6, 0)),
}

# libseccomp-golang refuses anything older.
_LIBSECCOMP_MIN = (2, 3, 1)

# Annotations pyrunc (like runc) may act on; engines should not let
# untrusted users set them. A trailing "." means a prefix.
POTENTIALLY_UNSAFE_ANNOTATIONS = ("bundle", "org.systemd.property.", "org.criu.config")


class LibseccompInfo:
    """What the loaded libseccomp offers, probed once through ctypes.

    Kept here, private to features, until linux/ grows the libseccomp
    binding that security/seccomp will need; then this should use it.
    """

    def __init__(self, version: tuple[int, int, int], api: int, archs: list[str]):
        self.version = version
        self.api = api
        self.archs = archs

    def flag_supported(self, flag: str) -> bool:
        api, version = SECCOMP_FLAGS[flag]
        return self.api >= api and self.version >= version


_NOT_PROBED = object()
_libseccomp: object = _NOT_PROBED


def libseccomp() -> LibseccompInfo | None:
    """Probe libseccomp.so.2 (cached); None if missing or too old."""
    global _libseccomp
    if _libseccomp is _NOT_PROBED:
        _libseccomp = _probe_libseccomp()
    return _libseccomp  # type: ignore[return-value]  # probed: a LibseccompInfo or None


def _probe_libseccomp() -> LibseccompInfo | None:
    import ctypes

    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    try:
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        lib.seccomp_version.argtypes = []
        v = lib.seccomp_version().contents
        version = (v.major, v.minor, v.micro)
    except (AttributeError, ValueError):  # no symbol / NULL pointer
        return None
    if version < _LIBSECCOMP_MIN:
        return None

    api = 0
    get_api = getattr(lib, "seccomp_api_get", None)  # libseccomp >= 2.4
    if get_api is not None:
        get_api.restype = ctypes.c_uint
        get_api.argtypes = []
        api = get_api()

    resolve = lib.seccomp_arch_resolve_name
    resolve.restype = ctypes.c_uint32
    resolve.argtypes = [ctypes.c_char_p]
    archs = [
        a for a in SECCOMP_ARCHS if resolve(a[len("SCMP_ARCH_"):].lower().encode())
    ]
    return LibseccompInfo(version, api, archs)


def _version() -> str | None:
    """pyrunc's version string, if the package declares one. The package
    is always loaded before this submodule, so it is read from sys.modules:
    spec/ does not import the library's facade above it (docs/design.md)."""
    import sys
    v = getattr(sys.modules.get("pyrunc"), "__version__", None)
    return None if v is None else str(v)


def features(version: str | None = None) -> dict:
    """Return the features document (a fresh dict, in spec field order).

    `version` goes into the pyrunc version annotation; by default
    pyrunc.__version__ when the package defines it.
    """
    t = True
    linux: dict = {
        "namespaces": list(NAMESPACES),
        "capabilities": known_capabilities(),
        "cgroup": {
            "v1": t,
            "v2": t,
            "systemd": SYSTEMD_CGROUP,
            "systemdUser": SYSTEMD_USER_CGROUP,
            "rdma": t,
        },
        "seccomp": {"enabled": False},
        # as runc: supported by the runtime (security/lsm.py), whether or
        # not this host runs the LSM; intelRdt configs get a clear error, so
        # it is not claimed
        "apparmor": {"enabled": t},
        "selinux": {"enabled": t},
        "intelRdt": {"enabled": False},
        # security/mempolicy.py; sorted, as runc's KnownMemoryPolicyModes/Flags
        "memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},
        "mountExtensions": {"idmap": {"enabled": t}},
        "netDevices": {"enabled": t},
    }
    annotations: dict[str, str] = {}

    info = libseccomp()
    if info is not None:
        linux["seccomp"] = {
            "enabled": t,
            "actions": list(SECCOMP_ACTIONS),
            "operators": list(SECCOMP_OPERATORS),
            "archs": info.archs,
            "knownFlags": list(SECCOMP_FLAGS),
            "supportedFlags": [f for f in SECCOMP_FLAGS if info.flag_supported(f)],
        }
        annotations[ANNOTATION_LIBSECCOMP_VERSION] = "%d.%d.%d" % info.version

    if version is None:
        version = _version()
    if version:
        annotations[ANNOTATION_VERSION] = version

    doc: dict = {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_NAMES),
        "mountOptions": list(MOUNT_OPTIONS),
        "linux": linux,
    }
    if annotations:  # Go: omitempty on the map
        doc["annotations"] = dict(sorted(annotations.items()))
    doc["potentiallyUnsafeConfigAnnotations"] = list(POTENTIALLY_UNSAFE_ANNOTATIONS)
    return doc


def dumps(doc: dict) -> str:
    """Serialise like runc: json.Encoder, 4-space indent, trailing newline."""
    import json

    from pyrunc.fastjson import go_escape

    return go_escape(json.dumps(doc, indent=4, ensure_ascii=False)) + "\n"
