"""Item 2: `spec` writes a usable config.json (cwd or --bundle), never overwrites."""

from __future__ import annotations

import json
import os

import pytest


def _load(path):
    return json.loads(path.read_text())


def test_spec_in_cwd(rt, tmp_path):
    d = tmp_path / "cwd"
    d.mkdir()
    res = rt.ok("spec", cwd=d)
    assert res.stdout == ""
    cfg = _load(d / "config.json")
    assert cfg["ociVersion"]
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["process"]["terminal"] is True
    assert cfg["process"]["cwd"] == "/"
    assert {"type": "mount"} in cfg["linux"]["namespaces"]
    assert {"type": "pid"} in cfg["linux"]["namespaces"]
    # no user namespace unless --rootless
    assert not any(ns["type"] == "user" for ns in cfg["linux"]["namespaces"])
    dests = [m["destination"] for m in cfg["mounts"]]
    assert "/proc" in dests and "/dev" in dests
    assert oct(os.stat(d / "config.json").st_mode & 0o777) in ("0o644", "0o666", "0o600")


@pytest.mark.parametrize("flag", ["--bundle", "-b"])
def test_spec_bundle_flag(rt, tmp_path, flag):
    b = tmp_path / "b"
    b.mkdir()
    rt.ok("spec", flag, b)
    assert (b / "config.json").exists()
    assert not (tmp_path / "config.json").exists()  # not in cwd
    _load(b / "config.json")


def test_spec_refuses_to_overwrite(rt, tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    (b / "config.json").write_text('{"keep": "me"}')
    # runc: "File config.json exists. Remove it first"
    rt.fail("spec", "--bundle", b, match=r"exists", one_line=True)
    assert _load(b / "config.json") == {"keep": "me"}
    rt.fail("spec", cwd=b, match=r"exists", one_line=True)
    assert _load(b / "config.json") == {"keep": "me"}


def test_spec_missing_bundle_dir(rt, tmp_path):
    rt.fail("spec", "--bundle", tmp_path / "nope", match="nope|no such file", one_line=True)
    assert not (tmp_path / "nope").exists()


def test_spec_rootless(rt, tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    rt.ok("spec", "--rootless", "--bundle", b)
    cfg = _load(b / "config.json")
    linux = cfg["linux"]
    assert any(ns["type"] == "user" for ns in linux["namespaces"])
    # no network namespace in rootless (runc drops it), a mapping of the current user
    assert not any(ns["type"] == "network" for ns in linux["namespaces"])
    uid = os.geteuid()
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux or not linux["resources"].get("devices")


def test_spec_config_runs(rt, bundle):
    """The generated config (only args/terminal tweaked) runs a container."""
    bundle.set_args("sh", "-c", "echo spec-ok")
    res = rt.run_fg(rt.new_id(), bundle)
    res.expect_ok()
    assert res.stdout == "spec-ok\n"
