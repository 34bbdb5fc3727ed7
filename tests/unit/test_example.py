"""`pyrunc spec` output against runc's, and the rootless conversion."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pyrunc.spec import example as ex

RUNC = "/usr/sbin/runc"
needs_runc = pytest.mark.skipif(not os.path.exists(RUNC), reason="no runc at /usr/sbin/runc")


def runc_spec(tmp_path, *flags: str) -> str:
    subprocess.run([RUNC, "spec", *flags], cwd=tmp_path, check=True)
    return (tmp_path / "config.json").read_text()


def apply_documented_differences(spec: dict) -> dict:
    """What pyrunc changes on purpose relative to runc 1.1.5 (see example.py)."""
    spec["ociVersion"] = ex.OCI_VERSION
    spec["process"]["capabilities"].pop("ambient", None)
    return spec


@needs_runc
def test_dumps_reproduces_go_formatting(tmp_path):
    raw = runc_spec(tmp_path)
    assert ex.dumps(json.loads(raw)) == raw


@needs_runc
def test_example_matches_runc_spec(tmp_path):
    expected = apply_documented_differences(json.loads(runc_spec(tmp_path)))
    # byte for byte, key order included
    assert ex.dumps(ex.example()) == ex.dumps(expected)


@needs_runc
def test_rootless_matches_runc_spec_rootless(tmp_path):
    expected = apply_documented_differences(json.loads(runc_spec(tmp_path, "--rootless")))
    spec = ex.example()
    ex.to_rootless(spec)
    assert ex.dumps(spec) == ex.dumps(expected)


def test_example_fields():
    spec = ex.example(cgroupns=False)
    assert spec["ociVersion"] == "1.3.0"
    p = spec["process"]
    assert p["terminal"] is True and p["user"] == {"uid": 0, "gid": 0}
    assert p["args"] == ["sh"] and p["cwd"] == "/" and p["noNewPrivileges"] is True
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert p["capabilities"] == {"bounding": caps, "effective": caps, "permitted": caps}
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["hostname"] == "runc"
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
    ]  # fmt: skip
    assert [n["type"] for n in spec["linux"]["namespaces"]] == [
        "pid", "network", "ipc", "uts", "mount",
    ]  # fmt: skip
    assert spec["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}


def test_cgroup_namespace_follows_cgroup_mode():
    assert ex.example(cgroupns=True)["linux"]["namespaces"][-1] == {"type": "cgroup"}
    auto = ex.example()["linux"]["namespaces"]
    assert ({"type": "cgroup"} in auto) == ex.cgroup2_unified()


def test_example_returns_fresh_copies():
    a = ex.example()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["mounts"][2]["options"].clear()
    b = ex.example()
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["bounding"]
    assert "gid=5" in b["mounts"][2]["options"]


def test_to_rootless():
    spec = ex.example(cgroupns=True)
    ex.to_rootless(spec)
    linux = spec["linux"]
    assert list(linux)[:2] == ["uidMappings", "gidMappings"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert [n["type"] for n in linux["namespaces"]] == [
        "pid", "ipc", "uts", "mount", "cgroup", "user",
    ]  # fmt: skip
    assert "resources" not in linux
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/sys"] == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert "gid=5" not in mounts["/dev/pts"]["options"]
    assert "/sys/fs/cgroup" in mounts  # runc keeps it
    assert "options" not in mounts["/proc"]


def test_to_rootless_edge_cases(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 100)
    spec = {
        "ociVersion": "1.3.0",
        "mounts": [
            {"destination": "//sys/", "type": "sysfs", "source": "sysfs"},
            {"destination": "/x", "type": "tmpfs", "source": "t", "options": ["uid=1", "gid=2"]},
            {"destination": "/y", "type": "tmpfs", "source": "t", "options": ["ro", "uid=1"]},
        ],
        "linux": {
            "namespaces": [{"type": "user", "path": "/proc/1/ns/user"}, {"type": "network"}],
            "uidMappings": [{"containerID": 0, "hostID": 5, "size": 9}],
            "sysctl": {"a": "b"},
        },
    }
    ex.to_rootless(spec)
    assert spec["mounts"][0]["type"] == "none" and spec["mounts"][0]["source"] == "/sys"
    assert "options" not in spec["mounts"][1]  # all stripped: omitted, like Go
    assert spec["mounts"][2]["options"] == ["ro"]
    assert spec["linux"] == {
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 100, "size": 1}],
        "namespaces": [{"type": "user"}],
        "sysctl": {"a": "b"},
    }


def test_dumps_escapes_like_go():
    out = ex.dumps({"a": "<b>&c\u2028 é"})
    assert out == '{\n\t"a": "\\u003cb\\u003e\\u0026c\\u2028 é"\n}'
    assert json.loads(out) == {"a": "<b>&c\u2028 é"}
    assert not out.endswith("\n")  # runc writes no trailing newline
