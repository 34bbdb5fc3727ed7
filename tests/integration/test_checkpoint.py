"""`checkpoint` / `restore` (issue 11, item 19): runc 1.5's flags and
checks (checkpoint.go, restore.go, tests/integration/checkpoint.bats), a
one-line error when CRIU is missing or cannot work, the container untouched
by a failed checkpoint and nothing left by a failed restore; the whole cycle
where CRIU works on this kernel (`criu check`), skipped elsewhere; and
pyrunc's side of the RPC (requests, notifications, state, cgroup, the
foreground wait) against a stand-in CRIU, fake_criu.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.runc_ref_differs(reason="runc 1.1.5's messages and checks differ")]

CRIU = shutil.which("criu")


def _criu_works() -> str:
    """'' where CRIU can checkpoint here, else why not."""
    if not CRIU:
        return "criu is not installed"
    res = subprocess.run([CRIU, "check", "--log-file", "/dev/stderr"], capture_output=True, text=True)
    if res.returncode != 0:
        err = next((ln for ln in (res.stderr + res.stdout).splitlines() if "Error" in ln), "")
        return f"`criu check` fails on this kernel: {err.strip() or 'exit status %d' % res.returncode}"
    return ""


CRIU_BROKEN = _criu_works()
needs_criu = pytest.mark.skipif(bool(CRIU_BROKEN), reason=CRIU_BROKEN or "criu works")
needs_broken_criu = pytest.mark.skipif(not CRIU or not CRIU_BROKEN, reason="needs an installed CRIU that fails here")


@pytest.fixture
def running(rt, bundle):
    bundle.set_args("sleep", "300")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    yield cid
    rt.run("delete", "-f", cid)


def _still_running(rt, cid) -> None:
    st = rt.state(cid)
    assert st["status"] == "running" and os.path.exists(f"/proc/{st['pid']}")


@pytest.mark.parametrize("flags, msg", [
    (["--parent-path", "/abs"], "--parent-path must be relative"),
    (["--parent-path", "nope"], "invalid --parent-path: stat {img}/nope: no such file or directory"),
    (["--page-server", "foo"], "Use --page-server ADDRESS:PORT to specify page server"),
    (["--page-server", "host:port"], "Invalid port number"),
    (["--empty-ns", "pid"], 'namespace "pid" is not supported'),
    (["--manage-cgroups-mode", "bogus"], "invalid manage-cgroups-mode value"),
])
def test_checkpoint_bad_flags(rt, running, leakcheck, tmp_path, flags, msg):
    img = tmp_path / "img"
    res = rt.run("checkpoint", "--image-path", img, *flags, running).expect_fail(one_line=True)
    assert res.error_message == msg.format(img=img), res
    assert not img.exists()  # made for this call, removed again
    _still_running(rt, running)


def test_parent_path_must_be_a_directory(rt, running, tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    (img / "f").write_text("")
    res = rt.run("checkpoint", "--image-path", img, "--parent-path", "f", running).expect_fail(one_line=True)
    assert res.error_message == f"invalid --parent-path: {img}/f: not a directory"
    assert img.is_dir()  # the caller's: kept


def test_checkpoint_needs_a_running_container(rt, bundle, leakcheck, tmp_path):
    rt.fail("checkpoint", "nope", match="container does not exist", one_line=True)
    rt.fail("checkpoint", match='checkpoint.{0,3} requires exactly 1 argument', one_line=True)
    bundle.set_args("true")
    cid = rt.new_id()
    rt.create(cid, bundle)
    res = rt.run("checkpoint", "--image-path", tmp_path / "img", cid).expect_fail(one_line=True)
    assert res.error_message == "Container cannot be checkpointed in created state"
    rt.ok("delete", "-f", cid)


def test_checkpoint_without_criu(rt, running, tmp_path):
    """CRIU missing from PATH: runc's message, one line; the container keeps running."""
    img = tmp_path / "img"
    res = rt.run("checkpoint", "--image-path", img, running, env={"PATH": "/nonexistent"}).expect_fail(one_line=True)
    assert res.error_message == 'CRIU version check failed: exec: "criu": executable file not found in $PATH'
    assert not img.exists()
    _still_running(rt, running)


@needs_broken_criu
def test_checkpoint_with_criu_failing(rt, running, tmp_path):
    """CRIU starts but cannot dump on this kernel (e.g. CRIU 3.17 and its vDSO
    check): one line with CRIU's own error and its log; the container is
    untouched and can still be deleted."""
    img = tmp_path / "img"
    res = rt.run("checkpoint", "--image-path", img, running).expect_fail(one_line=True)
    assert res.error_message.startswith("criu failed: type DUMP errno"), res
    assert f"(log: {img}/dump.log)" in res.error_message
    _still_running(rt, running)
    assert rt.exec_(running, "true").rc == 0


@pytest.mark.parametrize("flags, msg", [
    (["--manage-cgroups-mode", "x"], "invalid manage-cgroups-mode value"),
    (["--empty-ns", "ipc"], 'namespace "ipc" is not supported'),
    (["--page-server", "a:1"], "flag provided but not defined: -page-server"),
    (["--parent-path", "p"], "flag provided but not defined: -parent-path"),
])
def test_restore_bad_flags(rt, bundle, leakcheck, tmp_path, flags, msg):
    img = tmp_path / "img"
    res = rt.run("restore", "--image-path", img, "-b", bundle.path, *flags, rt.new_id()).expect_fail(one_line=True)
    assert msg in res.error_message, res
    assert not img.exists()
    leakcheck.assert_clean()


def test_restore_without_a_checkpoint(rt, bundle, leakcheck, tmp_path):
    """No descriptors.json: runc's open error (CRIU must run first: the test
    needs it installed), and nothing left: no state, no images dir we made."""
    if not CRIU:
        pytest.skip("criu is not installed")
    img = tmp_path / "img"
    cid = rt.new_id()
    res = rt.run("restore", "--image-path", img, "-b", bundle.path, cid).expect_fail(one_line=True)
    if CRIU_BROKEN and "CRIU version check failed" in res.error_message:
        pytest.skip(f"CRIU cannot even report its version here: {res.error_message}")
    assert res.error_message == f"open {img}/descriptors.json: no such file or directory", res
    assert not img.exists()
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


def test_restore_without_criu(rt, bundle, leakcheck, tmp_path):
    res = rt.run("restore", "--image-path", tmp_path, "-b", bundle.path, rt.new_id(),
                 env={"PATH": "/nonexistent"}).expect_fail(one_line=True)
    assert res.error_message == 'CRIU version check failed: exec: "criu": executable file not found in $PATH'
    leakcheck.assert_clean()


@needs_broken_criu
def test_restore_with_criu_failing_leaves_nothing(rt, bundle, leakcheck, tmp_path):
    """A RESTORE that CRIU refuses: one line, and no state dir, cgroup,
    criu-root mount or process left."""
    img = tmp_path / "img"
    img.mkdir()
    (img / "descriptors.json").write_text('["/dev/null","/dev/null","/dev/null"]')
    cid = rt.new_id()
    res = rt.run("restore", "--image-path", img, "-b", bundle.path, "-d", cid).expect_fail(one_line=True)
    if "CRIU version check failed" in res.error_message:
        pytest.skip(f"CRIU cannot even report its version here: {res.error_message}")
    assert res.error_message.startswith("criu failed: type RESTORE errno"), res
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


def test_restore_of_existing_id_is_refused(rt, running, bundle, tmp_path):
    if not CRIU:
        pytest.skip("criu is not installed")
    img = tmp_path / "img"
    img.mkdir()
    (img / "descriptors.json").write_text('["/dev/null","/dev/null","/dev/null"]')
    res = rt.run("restore", "--image-path", img, "-b", bundle.path, running).expect_fail(one_line=True)
    if "CRIU version check failed" in res.error_message:
        pytest.skip(f"CRIU cannot even report its version here: {res.error_message}")
    assert running in res.error_message and "exists" in res.error_message
    _still_running(rt, running)


def test_help_lists_runc_flags(rt):
    out = rt.ok("checkpoint", "--help").stdout
    for flag in ("--image-path", "--work-path", "--parent-path", "--leave-running", "--tcp-established",
                 "--tcp-skip-in-flight", "--link-remap", "--ext-unix-sk", "--shell-job", "--lazy-pages",
                 "--status-fd", "--page-server", "--file-locks", "--pre-dump", "--manage-cgroups-mode",
                 "--empty-ns", "--auto-dedup"):
        assert flag in out
    out = rt.ok("restore", "--help").stdout
    for flag in ("--console-socket", "--image-path", "--work-path", "--tcp-established", "--ext-unix-sk",
                 "--shell-job", "--file-locks", "--manage-cgroups-mode", "--bundle", "--detach", "--pid-file",
                 "--no-subreaper", "--no-pivot", "--empty-ns", "--auto-dedup", "--lazy-pages", "--lsm-profile",
                 "--lsm-mount-context"):
        assert flag in out


# -- the whole cycle: only where CRIU works --------------------------------------------------


@needs_criu
def test_checkpoint_and_restore_cycle(rt, bundle, leakcheck, tmp_path):
    """checkpoint.bats "checkpoint and restore": a counter survives the cycle."""
    bundle.sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done")
    bundle.update(lambda c: c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                                "options": ["nosuid", "nodev"]}))
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    img = tmp_path / "img"
    rt.ok("checkpoint", "--image-path", img, "--work-path", tmp_path / "work", cid)
    rt.fail("state", cid, match="does not exist")
    before = int((img / "descriptors.json").exists())
    assert before
    rt.ok("restore", "-d", "--image-path", img, "--work-path", tmp_path / "work", "-b", bundle.path, cid)
    assert rt.state(cid)["status"] == "running"
    n = int(rt.exec_(cid, "cat", "/tmp/count").expect_ok().stdout)
    assert n > 0
    rt.ok("delete", "-f", cid)
    leakcheck.assert_clean()


@needs_criu
def test_checkpoint_leave_running_and_pre_dump(rt, running, tmp_path):
    rt.ok("checkpoint", "--pre-dump", "--image-path", tmp_path / "img" / "parent", running)
    _still_running(rt, running)
    rt.ok("checkpoint", "--leave-running", "--image-path", tmp_path / "img", "--parent-path", "parent", running)
    _still_running(rt, running)


# -- pyrunc's side of the RPC, against a stand-in CRIU (fake_criu.py) ------------------------

HERE = Path(__file__).resolve().parent


@pytest.fixture
def fake_criu(tmp_path):
    """env for the runtime: a `criu` on PATH that is fake_criu.py."""
    d = tmp_path / "fakebin"
    d.mkdir()
    (d / "criu").write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_criu.py"} "$@"\n')
    (d / "criu").chmod(0o755)
    return {"PATH": f"{d}:{os.environ.get('PATH', '/usr/bin:/bin')}", "FAKE_CRIU_SRC": str(HERE.parent.parent / "src")}


def _fake_record(img: Path, name: str = "fake-criu.json") -> dict:
    return json.loads((img / name).read_text())


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the fake CRIU clones with x86_64's syscall number")
def test_fake_criu_checkpoint_then_restore(rt, bundle, leakcheck, tmp_path, fake_criu):
    bundle.set_args("sleep", "300")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    st = rt.state(cid)
    img = tmp_path / "img"
    rt.run("checkpoint", "--image-path", img, "--tcp-established", "--manage-cgroups-mode", "full",
           "--page-server", "127.0.0.1:27", cid, env=fake_criu).expect_ok()
    rt.fail("state", cid, match="does not exist")  # dumped (CRIU killed it) and deleted
    rec = _fake_record(img)
    opts = rec["opts"]
    assert rec["type"] == "DUMP" and rec["argv"] == ["sleep", "300"]
    assert opts["pid"] == st["pid"] and opts["root"] == st["rootfs"] and opts["log_file"] == "dump.log"
    assert opts["tcp_established"] and opts["notify_scripts"] and opts["orphan_pts_master"] and opts["manage_cgroups"]
    assert opts["manage_cgroups_mode"] == 4 and opts["ps"] == {"address": "127.0.0.1", "port": 27}
    assert opts["empty_ns"] == 0x40000000 and opts["config_file"] == "/etc/criu/runc.conf"
    assert {"key": "/dev/null", "val": "/dev/null"} in opts["ext_mnt"]
    assert len(json.loads((img / "descriptors.json").read_text())) == 3

    pid_file = tmp_path / "pid"
    rt.run("restore", "-d", "--image-path", img, "-b", bundle.path, "--pid-file", pid_file, cid,
           env=fake_criu).expect_ok()
    st2 = rt.state(cid)
    assert st2["status"] == "running" and int(pid_file.read_text()) == st2["pid"]
    ropts = _fake_record(img, "fake-criu-restore.json")["opts"]
    assert ropts["rst_sibling"] and ropts["evasive_devices"] and ropts["root"].endswith("/criu-root")
    assert ropts["log_file"] == "restore.log" and ropts["cg_root"]
    assert not any("criu-root" in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
    with open(f"/proc/{st2['pid']}/cgroup") as f:  # the restored tree is in the container's cgroup
        assert any(cid in line for line in f)
    rt.ok("delete", "-f", cid)
    leakcheck.assert_clean()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the fake CRIU clones with x86_64's syscall number")
def test_fake_criu_restore_in_the_foreground(rt, bundle, leakcheck, tmp_path, fake_criu):
    """restore without -d stays with the restored process and returns its status."""
    bundle.set_args("sh", "-c", "sleep 0.5; exit 3")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    img = tmp_path / "img"
    rt.run("checkpoint", "--image-path", img, "--leave-running", cid, env=fake_criu).expect_ok()
    _still_running(rt, cid)
    rt.ok("delete", "-f", cid)
    res = rt.run("restore", "--image-path", img, "-b", bundle.path, cid, env=fake_criu)
    assert res.rc == 3, res
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


def test_fake_criu_pre_dump(rt, running, tmp_path, fake_criu):
    img = tmp_path / "img"
    (img / "p0").mkdir(parents=True)
    rt.run("checkpoint", "--pre-dump", "--image-path", img, "--parent-path", "p0", running, env=fake_criu).expect_ok()
    _still_running(rt, running)
    rec = _fake_record(img)
    assert rec["type"] == "PRE_DUMP" and rec["opts"]["parent_img"] == "p0" and rec["opts"]["track_mem"]
    assert "ext_mnt" not in rec["opts"] and not (img / "descriptors.json").exists()


def test_fake_criu_dump_refused(rt, running, tmp_path, fake_criu):
    img = tmp_path / "img"
    res = rt.run("checkpoint", "--image-path", img, running,
                 env={**fake_criu, "FAKE_CRIU_FAIL": "DUMP"}).expect_fail(one_line=True)
    assert res.error_message == f"criu failed: type DUMP errno 5: fake: refused as asked (log: {img}/dump.log)"
    _still_running(rt, running)


def test_fake_criu_restore_refused_leaves_nothing(rt, running, bundle, leakcheck, tmp_path, fake_criu):
    img = tmp_path / "img"
    rt.run("checkpoint", "--image-path", img, "--leave-running", running, env=fake_criu).expect_ok()
    cid = rt.new_id()
    res = rt.run("restore", "-d", "--image-path", img, "-b", bundle.path, cid,
                 env={**fake_criu, "FAKE_CRIU_FAIL": "RESTORE"}).expect_fail(one_line=True)
    assert res.error_message == f"criu failed: type RESTORE errno 5: fake: refused as asked (log: {img}/restore.log)"
    rt.fail("state", cid, match="does not exist")
    _still_running(rt, running)
    rt.ok("delete", "-f", running)
    leakcheck.assert_clean()


def test_fake_criu_checkpoint_of_a_paused_container(rt, running, tmp_path, fake_criu):
    """runc checkpoints a paused container too: CRIU gets its freezer cgroup."""
    rt.ok("pause", running)
    img = tmp_path / "img"
    rt.run("checkpoint", "--image-path", img, running, env=fake_criu).expect_ok()
    opts = _fake_record(img)["opts"]
    assert opts["freeze_cgroup"] and os.path.isabs(opts["freeze_cgroup"])
    rt.fail("state", running, match="does not exist")


def test_restore_terminal_needs_console_socket(rt, bundle, leakcheck, tmp_path, fake_criu):
    img = tmp_path / "img"
    img.mkdir()
    (img / "descriptors.json").write_text('["/dev/null","/dev/null","/dev/null"]')
    bundle.update(lambda c: c["process"].update(terminal=True))
    res = rt.run("restore", "--image-path", img, "-b", bundle.path, rt.new_id(), env=fake_criu).expect_fail(one_line=True)
    assert res.error_message == "restoring a container with a terminal needs --console-socket"
    leakcheck.assert_clean()
