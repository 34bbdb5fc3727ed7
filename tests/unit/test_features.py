"""`pyrunc features` shape, capabilities, and comparison with runc's."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pyrunc.hooks import HOOK_NAMES
from pyrunc.security import capabilities as caps
from pyrunc.spec import features as feat

RUNC = "/usr/sbin/runc"
needs_runc = pytest.mark.skipif(not os.path.exists(RUNC), reason="no runc at /usr/sbin/runc")


@pytest.fixture(scope="module")
def runc_features() -> tuple[str, dict]:
    raw = subprocess.run([RUNC, "features"], check=True, capture_output=True, text=True).stdout
    return raw, json.loads(raw)


def kernel_last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def test_capability_table():
    assert len(caps.CAPABILITIES) == 41
    assert caps.cap_number("CAP_CHOWN") == 0
    assert caps.cap_number("CAP_SYS_ADMIN") == 21
    assert caps.cap_number("CAP_CHECKPOINT_RESTORE") == 40
    assert caps.cap_number("cap_chown") is None  # exact names only, like runc
    assert caps.cap_number("CAP_NOPE") is None
    assert caps.cap_name(5) == "CAP_KILL" and caps.cap_name(41) is None
    assert caps.cap_name(-1) is None
    assert all(caps.cap_number(n) == i for i, n in enumerate(caps.CAPABILITIES))


def test_last_cap_reads_kernel():
    assert caps.last_cap() == kernel_last_cap()


def test_capabilities_match_kernel():
    last = min(kernel_last_cap(), caps.CAP_LAST_KNOWN)
    assert feat.features()["linux"]["capabilities"] == list(caps.CAPABILITIES[: last + 1])


def test_shape_and_order():
    doc = feat.features(version="9.9.9")
    assert list(doc) == [
        "ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux",
        "annotations", "potentiallyUnsafeConfigAnnotations",
    ]  # fmt: skip
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == "1.3.0"
    assert doc["hooks"] == list(HOOK_NAMES)
    assert doc["mountOptions"] == sorted(doc["mountOptions"])
    assert {"rro", "rbind", "tmpcopyup", "nosymfollow"} <= set(doc["mountOptions"])
    linux = doc["linux"]
    assert list(linux) == [
        "namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux",
        "intelRdt", "memoryPolicy", "mountExtensions", "netDevices",
    ]  # fmt: skip
    # runc 1.5's KnownMemoryPolicyModes / KnownMemoryPolicyFlags (sorted)
    assert linux["memoryPolicy"] == {
        "modes": ["MPOL_BIND", "MPOL_DEFAULT", "MPOL_INTERLEAVE", "MPOL_LOCAL", "MPOL_PREFERRED",
                  "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"],
        "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"],
    }
    assert linux["namespaces"] == ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
    assert list(linux["cgroup"]) == ["v1", "v2", "systemd", "systemdUser", "rdma"]
    # the systemd driver talks to root's systemd; a user's instance is not supported
    assert linux["cgroup"]["systemd"] is True and linux["cgroup"]["systemdUser"] is False
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}
    assert doc["annotations"]["org.opencontainers.pyrunc.version"] == "9.9.9"
    assert list(doc["annotations"]) == sorted(doc["annotations"])


def test_seccomp_with_libseccomp():
    info = feat.libseccomp()
    if info is None:
        pytest.skip("no libseccomp")
    sc = feat.features()["linux"]["seccomp"]
    assert sc["enabled"] is True
    assert list(sc) == ["enabled", "actions", "operators", "archs", "knownFlags", "supportedFlags"]
    assert "SCMP_ARCH_X86_64" in sc["archs"]
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_TSYNC" in sc["supportedFlags"]
    v = feat.features()["annotations"]["io.github.seccomp.libseccomp.version"]
    assert v == "%d.%d.%d" % info.version


def test_seccomp_without_libseccomp(monkeypatch):
    monkeypatch.setattr(feat, "_libseccomp", None)
    doc = feat.features(version="")
    assert doc["linux"]["seccomp"] == {"enabled": False}
    assert "annotations" not in doc  # empty map omitted, as Go's omitempty


def test_dumps_format():
    out = feat.dumps(feat.features())
    assert out.endswith("}\n") and out.startswith('{\n    "ociVersionMin": "1.0.0",\n')
    assert json.loads(out) == feat.features()


@needs_runc
def test_dumps_reproduces_runc_formatting(runc_features):
    raw, doc = runc_features
    assert feat.dumps(doc) == raw


@needs_runc
def test_compare_with_runc(runc_features):
    _, runc = runc_features
    ours = feat.features()
    assert ours["ociVersionMin"] == runc["ociVersionMin"]
    assert ours["hooks"] == runc["hooks"]
    # runc 1.1.5 still lists "acl"/"noacl" (dropped by current runc, #3738).
    assert set(runc["mountOptions"]) - set(ours["mountOptions"]) <= {"acl", "noacl"}
    # Namespaces: we add "time" (runtime-spec 1.2), as current runc does.
    assert set(ours["linux"]["namespaces"]) - set(runc["linux"]["namespaces"]) == {"time"}
    assert ours["linux"]["capabilities"] == runc["linux"]["capabilities"][: kernel_last_cap() + 1]
    for key in ("v1", "v2"):
        assert ours["linux"]["cgroup"][key] == runc["linux"]["cgroup"][key]
    rs, os_ = runc["linux"]["seccomp"], ours["linux"]["seccomp"]
    if os_["enabled"]:
        assert os_["actions"] == rs["actions"]
        assert os_["operators"] == rs["operators"]
        assert set(rs["archs"]) <= set(os_["archs"])
        k = "io.github.seccomp.libseccomp.version"
        assert ours["annotations"][k] == runc["annotations"][k]
