"""Item 4: container id validation and duplicate ids."""

from __future__ import annotations

import json

import pytest

# runc: allowed characters are [A-Za-z0-9_+.-], and the id must not be "." or ".."
INVALID_IDS = {
    "dotdot": "..",
    "dot": ".",
    "slash": "a/b",
    "abs": "/abs",
    "traversal": "../escape",
    "space": "a b",
    "dollar": "a$b",
    "colon": "ab:c",
    "newline": "a\nb",
    "unicode": "caf\u00e9",
    "star": "a*",
}


@pytest.mark.parametrize("cmd", ["create", "run"])
@pytest.mark.parametrize("cid", list(INVALID_IDS.values()), ids=list(INVALID_IDS))
def test_invalid_id_rejected(rt, bundle, leakcheck, cmd, cid):
    flags = ["-d"] if cmd == "run" else []
    rt.fail(cmd, *flags, "--bundle", bundle.path, "--", cid, match="invalid|id", one_line=True)
    assert rt.container_dirs() == []
    assert not (rt.root.parent / "escape").exists()
    leakcheck.assert_clean()


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_empty_id_rejected(rt, bundle, leakcheck, cmd):
    # runc: "container id cannot be empty"
    rt.fail(cmd, "--bundle", bundle.path, "", match="empty|invalid", one_line=True)
    rt.fail(cmd, "--bundle", bundle.path, match="id|argument|usage", one_line=True)
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@pytest.mark.parametrize("length", [300, 1100])
def test_too_long_id_rejected(rt, bundle, leakcheck, length):
    # runc 1.1.5 lets the file system refuse it: "lstat <root>/xxx...: file name too long"
    cid = "x" * length
    rt.fail("create", "--bundle", bundle.path, cid, match="too long|invalid", one_line=True)
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@pytest.mark.parametrize("cmd", [["state"], ["start"], ["kill"], ["delete"], ["delete", "--force"], ["exec"]])
@pytest.mark.parametrize("cid", ["..", "a/b", "../state"])
def test_invalid_id_on_other_commands(rt, tmp_path, cmd, cid):
    marker = tmp_path / "keep"
    marker.write_text("x")
    extra = ["true"] if cmd == ["exec"] else []
    rt.fail(*cmd, cid, *extra, match="invalid|does not exist", one_line=True)
    # `delete --force ..` must not have removed anything outside the root
    assert marker.exists() and rt.root.is_dir()


@pytest.mark.parametrize("cid", ["A_b.c-1", "a..b", "ab+c", "-leading-dash", "1", "x" * 200])
def test_unusual_valid_ids(rt, bundle, cid):
    rt.ok("create", "--bundle", bundle.path, "--", cid)
    assert json.loads(rt.ok("state", "--", cid).stdout)["id"] == cid
    assert rt.ok("list", "-q").stdout == cid + "\n"
    rt.ok("delete", "--force", "--", cid)
    assert rt.container_dirs() == []


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_duplicate_id(rt, make_bundle, cmd):
    b1 = make_bundle()
    b2 = make_bundle()
    b2.sh("echo second > /host/second; sleep 3600")
    cid = rt.new_id()
    rt.run_d(cid, b1)
    st = rt.state(cid)
    flags = ["-d"] if cmd == "run" else []
    # runc: "container with given ID already exists"
    rt.fail(cmd, *flags, "--bundle", b2.path, cid, match="exist", one_line=True)
    st2 = rt.state(cid)
    assert st2 == st, "the original container was changed"
    assert st2["bundle"] == str(b1.path)
    assert not b2.host("second").exists()
    assert rt.container_dirs() == [cid]


def test_duplicate_id_of_stopped_container(rt, make_bundle):
    b1 = make_bundle(args=["true"])
    cid = rt.new_id()
    rt.run_fg(cid, b1, "--keep").expect_ok()
    rt.fail("create", "--bundle", make_bundle().path, cid, match="exist", one_line=True)
    assert rt.state(cid)["status"] == "stopped"
    rt.delete(cid)
    # the id is free again once deleted
    rt.create(cid, b1)
