"""Item 6: bad input fails cleanly: non-zero exit, one clear line on stderr, no
traceback, and nothing left behind (state dir, cgroup, mount, process)."""

from __future__ import annotations

import shutil

import pytest

# how the container is started: (argv before the id, extra checks)
MODES = {
    "create": ["create"],
    "run": ["run"],
    "run-d": ["run", "-d"],
}


def _break(bundle, how: str) -> str:
    """Break `bundle` in the way named `how`; return a regex the error must match."""
    cfg_path = bundle.path / "config.json"
    if how == "invalid-json":
        cfg_path.write_text('{"ociVersion": "1.0.2", "process": {')
        return r"json|invalid|unexpected|EOF|parse|character"
    if how == "empty-config":
        cfg_path.write_text("")
        return r"json|EOF|empty|parse|config"
    if how == "config-not-object":
        cfg_path.write_text("[]")
        return r"json|unmarshal|object|config|array"
    if how == "missing-config":
        cfg_path.unlink()
        return r"config\.json"
    if how == "missing-rootfs":
        shutil.rmtree(bundle.rootfs)
        return r"rootfs"
    if how == "missing-executable":
        bundle.set_args("/no/such")
        return r"/no/such"
    if how == "not-in-path":
        bundle.set_args("no-such-cmd")
        return r"no-such-cmd"
    if how == "not-executable":
        bundle.set_args("/etc/passwd")
        return r"/etc/passwd|permission"
    if how == "directory-executable":
        bundle.set_args("/bin")
        return r"/bin|permission|directory"
    if how == "empty-args":
        bundle.set_args()
        return r"args"
    if how == "no-args-key":
        del bundle.config["process"]["args"]
        bundle.save()
        return r"args"
    if how == "no-process":
        del bundle.config["process"]
        bundle.save()
        return r"process"
    if how == "bad-cwd":
        bundle.config["process"]["cwd"] = "relative/dir"
        bundle.save()
        return r"cwd|relative|absolute"
    raise AssertionError(how)


CASES = [
    "invalid-json",
    "empty-config",
    "config-not-object",
    "missing-config",
    "missing-rootfs",
    "missing-executable",
    "not-in-path",
    "not-executable",
    "directory-executable",
    "empty-args",
    "no-args-key",
    "no-process",
    "bad-cwd",
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("how", CASES)
def test_bad_bundle(rt, bundle, leakcheck, how, mode):
    match = _break(bundle, how)
    cid = rt.new_id()
    res = rt.fail(*MODES[mode], "--bundle", bundle.path, cid, match=match, one_line=True)
    assert res.stdout == ""
    assert rt.container_dirs() == [], "state dir left behind"
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


@pytest.mark.parametrize("mode", list(MODES))
def test_missing_bundle_dir(rt, tmp_path, leakcheck, mode):
    missing = tmp_path / "no-such-bundle"
    rt.fail(*MODES[mode], "--bundle", missing, rt.new_id(), match="no-such-bundle|no such file", one_line=True)
    assert rt.container_dirs() == []
    assert not missing.exists()
    leakcheck.assert_clean()


def test_bundle_is_a_file(rt, tmp_path, leakcheck):
    f = tmp_path / "file"
    f.write_text("x")
    rt.fail("create", "--bundle", f, rt.new_id(), one_line=True)
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_bad_input_does_not_disturb_others(rt, make_bundle, leakcheck):
    good = make_bundle()
    cid = rt.new_id()
    rt.run_d(cid, good)
    st = rt.state(cid)
    bad = make_bundle(args=["/no/such"])
    rt.fail("create", "--bundle", bad.path, rt.new_id(), match="/no/such", one_line=True)
    assert rt.container_dirs() == [cid]
    assert rt.state(cid) == st


UNKNOWN_ID_COMMANDS = [
    ["start"],
    ["state"],
    ["kill"],
    ["kill", "{id}", "KILL"],
    ["delete"],
    ["exec", "{id}", "true"],
    ["exec", "-d", "{id}", "true"],
    ["pause"],
    ["resume"],
    ["ps"],
]


@pytest.mark.parametrize("cmd", UNKNOWN_ID_COMMANDS, ids=lambda c: "-".join(x for x in c if x != "{id}"))
def test_unknown_container(rt, cmd):
    cid = rt.new_id("missing")
    argv = [a.replace("{id}", cid) for a in cmd] if "{id}" in cmd else [*cmd, cid]
    res = rt.fail(*argv, match="does not exist", one_line=True)
    assert res.stdout == ""
    assert rt.container_dirs() == []


def test_unknown_container_exec_exit_code(rt):
    """exec.bats: `exec` of a missing container exits 255."""
    rt.fail("exec", "no-such-ctr", "true", rc=255, match="does not exist", one_line=True)


def test_garbage_state_dir_is_not_a_container(rt, tmp_path):
    """An empty directory in the root (an aborted create) is not a container;
    delete --force removes it (runc's "container's directory could exist but
    libcontainer does not see it")."""
    (rt.root / "half-made").mkdir()
    rt.fail("state", "half-made", match="does not exist")
    rt.ok("delete", "--force", "half-made")
    assert not (rt.root / "half-made").exists()


def test_preserve_fds_out_of_range(rt, bundle):
    """An int flag past int64 is refused as urfave does; a huge one in range
    (10^12) finishes instead of looping over fds that cannot exist."""
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.fail("exec", "--preserve-fds", "99999999999999999999", cid, "true", match="value out of range", one_line=True)
    if not rt.is_runc:  # runc 1.1.5 appends an ExtraFiles entry per fd: hours
        assert rt.exec_(cid, "true", flags=["--preserve-fds", str(10**12)], timeout=20).rc == 0
