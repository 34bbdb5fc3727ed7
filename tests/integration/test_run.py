"""Item 5: `run` (foreground and detached), exit statuses, signal forwarding,
--pid-file, --preserve-fds, --no-pivot, --no-new-keyring."""

from __future__ import annotations

import os
import signal
import time

import pytest

from integration_conftest import descendants, processes_mentioning


def no_pid_namespace(cfg):
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]


# --------------------------------------------------------------------------- foreground


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_run_exit_status(rt, bundle, code):
    bundle.sh(f"exit {code}")
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle)
    assert res.rc == code, res
    assert "Traceback" not in res.stderr
    rt.fail("state", cid, match="does not exist")  # deleted after the run
    assert rt.container_dirs() == []


def test_run_passes_stdio_through(rt, bundle, tmp_path):
    data = tmp_path / "stdin.txt"
    data.write_text("from stdin\n")
    bundle.sh("cat; echo to-stdout; echo to-stderr >&2")
    with open(data, "rb") as stdin:
        res = rt.run_fg(rt.new_id(), bundle, stdin=stdin)
    res.expect_ok()
    assert res.stdout == "from stdin\nto-stdout\n"
    assert res.stderr == "to-stderr\n"


def test_run_sees_its_own_namespaces(rt, bundle):
    with bundle.edit() as cfg:
        cfg["hostname"] = "pyrunc-test"
    bundle.sh("echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; pwd")
    res = rt.run_fg(rt.new_id(), bundle).expect_ok()
    pid, host, cmdline, uid, cwd = res.stdout.splitlines()
    assert pid == "1"
    assert host == "pyrunc-test"
    assert cmdline.startswith("sh -c ")
    assert uid == "0"
    assert cwd == "/"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1])
def test_run_killed_by_signal_inside(rt, bundle, sig):
    """A container process killed by signal N makes `run` exit 128+N. (Without a
    pid namespace: PID 1 of a namespace ignores signals it has no handler for.)"""
    bundle.update(no_pid_namespace)
    bundle.sh(f"kill -{int(sig)} $$; sleep 5")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 128 + int(sig), res
    assert "Traceback" not in res.stderr


def test_run_killed_from_outside(rt, bundle):
    """`kill KILL` of a foreground container: `run` exits 137. (Only SIGKILL:
    PID 1 of a pid namespace ignores other signals it has no handler for.)"""
    cid = rt.new_id()
    proc = rt.popen("run", "--bundle", bundle.path, cid)
    rt.wait_status(cid, "running")
    rt.kill(cid, "KILL")
    res = proc.finish(timeout=15)
    assert res.rc == 137, res
    assert rt.container_dirs() == []


def test_run_keep(rt, bundle):
    bundle.sh("exit 3")
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle, "--keep")
    assert res.rc == 3, res
    st = rt.state(cid)
    assert st["status"] == "stopped"
    assert st["pid"] == 0
    rt.delete(cid)
    rt.fail("state", cid, match="does not exist")


# --------------------------------------------------------------------------- signal forwarding


@pytest.mark.slow
def test_run_forwards_signals(rt, bundle):
    bundle.sh(
        "trap 'echo USR1 >> /host/sigs' USR1; trap 'echo HUP >> /host/sigs' HUP; "
        "trap 'echo USR2 >> /host/sigs' USR2; "
        "trap 'echo TERM >> /host/sigs; exit 3' TERM; "
        "echo ready > /host/ready; while :; do sleep 1 & wait $!; done"
    )
    cid = rt.new_id()
    proc = rt.popen("run", "--bundle", bundle.path, cid)
    bundle.wait_host_file("ready")
    expected = []
    for sig, name in [(signal.SIGUSR1, "USR1"), (signal.SIGHUP, "HUP"), (signal.SIGUSR2, "USR2")]:
        proc.send_signal(sig)
        expected.append(name)
        bundle.wait_host_file("sigs", contains=name)
        assert proc.poll() is None, "the runtime died of a forwarded signal"
    proc.send_signal(signal.SIGTERM)
    res = proc.finish(timeout=15)
    assert res.rc == 3, res
    assert bundle.host("sigs").read_text().split() == expected + ["TERM"]
    assert rt.container_dirs() == []


# --------------------------------------------------------------------------- detached


def test_run_detached(rt, bundle, leakcheck):
    bundle.sh("echo started > /host/started; exec sleep 3600")
    cid = rt.new_id()
    t0 = time.monotonic()
    res = rt.run_d(cid, bundle)
    assert time.monotonic() - t0 < 5, "run -d did not return promptly"
    assert res.stdout == "" and res.stderr == ""
    st = rt.state(cid)
    assert st["status"] == "running"
    assert bundle.wait_host_file("started") == "started\n"
    # no runtime process stays behind: nothing (but the container) mentions our root,
    # and nothing new hangs below the test process
    left = [(pid, cmd) for pid, cmd in processes_mentioning(str(rt.root)) if pid != st["pid"]]
    assert left == [], left
    assert descendants(os.getpid()) - leakcheck.children == set()
    # the container process is not a child of ours (the runtime exited; it was reparented)
    with open(f"/proc/{st['pid']}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()


def test_run_detached_output_goes_to_runtime_stdio(rt, bundle):
    """Without a terminal, a detached container inherits the runtime's stdio."""
    bundle.sh("echo detached-out; echo detached-err >&2; echo done > /host/done; exec sleep 3600")
    p = rt.popen("run", "-d", "--bundle", bundle.path, rt.new_id())
    assert p.popen.wait(timeout=30) == 0
    bundle.wait_host_file("done")
    res = p.finish()
    assert res.stdout == "detached-out\n", res
    assert res.stderr == "detached-err\n", res


# --------------------------------------------------------------------------- pid file


@pytest.mark.parametrize("how", ["create", "run-d"])
def test_pid_file_absolute(rt, bundle, tmp_path, how):
    pidfile = tmp_path / "ctr.pid"
    cid = rt.new_id()
    if how == "create":
        rt.create(cid, bundle, "--pid-file", pidfile)
    else:
        rt.run_d(cid, bundle, "--pid-file", pidfile)
    pid = rt.state(cid)["pid"]
    # exactly the decimal pid: containerd's go-runc does strconv.Atoi on the content
    assert pidfile.read_text() == str(pid)


def test_pid_file_relative_to_cwd(rt, bundle, tmp_path):
    """create.bats "--pid-file with new CWD": a relative pid file is relative to
    the runtime's working directory, not to the bundle."""
    work = tmp_path / "work"
    work.mkdir()
    cid = rt.new_id()
    rt.ok("create", "--pid-file", "pid.txt", "--bundle", bundle.path, cid, cwd=work)
    assert (work / "pid.txt").read_text() == str(rt.state(cid)["pid"])
    assert not (bundle.path / "pid.txt").exists()


def test_pid_file_bad_directory(rt, bundle, leakcheck, tmp_path):
    cid = rt.new_id()
    rt.fail("create", "--pid-file", tmp_path / "no" / "such" / "pid", "--bundle", bundle.path, cid, one_line=True)
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


# --------------------------------------------------------------------------- preserve fds


def test_preserve_fds(rt, bundle, tmp_path):
    f3 = tmp_path / "fd3.txt"
    f4 = tmp_path / "fd4.txt"
    f3.write_text("three\n")
    f4.write_text("four\n")
    bundle.sh("cat <&3; cat <&4; echo written >&3")
    res = rt.run("run", "--preserve-fds", "2", "--bundle", bundle.path, rt.new_id(), extra_fds={3: f3, 4: f4})
    res.expect_ok()
    assert res.stdout == "three\nfour\n"
    assert f3.read_text() == "three\nwritten\n"


def test_preserve_fds_detached(rt, bundle, tmp_path):
    f3 = tmp_path / "fd3.txt"
    f3.write_text("")
    bundle.sh("echo from-container >&3; readlink /proc/self/fd/3 > /host/fd3; exec sleep 3600")
    cid = rt.new_id()
    rt.run("run", "-d", "--preserve-fds", "1", "--bundle", bundle.path, cid, extra_fds={3: f3}).expect_ok()
    bundle.wait_host_file("fd3")
    assert f3.read_text() == "from-container\n"


def test_fds_not_preserved_by_default(rt, bundle, tmp_path):
    f3 = tmp_path / "fd3.txt"
    f3.write_text("secret\n")
    bundle.sh("if cat <&3; then echo LEAKED; fi; ls /proc/self/fd")
    res = rt.run("run", "--bundle", bundle.path, rt.new_id(), extra_fds={3: f3})
    assert "secret" not in res.stdout and "LEAKED" not in res.stdout, res
    # only stdio and the fd `ls` opens itself
    assert len(res.stdout.split()) <= 4, res


# --------------------------------------------------------------------------- flags


def test_no_pivot(rt, bundle):
    bundle.sh("ls /; echo hi > /host/no-pivot; cat /proc/self/mountinfo | head -1")
    res = rt.run("run", "--no-pivot", "--bundle", bundle.path, rt.new_id())
    res.expect_ok()
    listing = res.stdout.split()
    for d in ("bin", "etc", "proc", "host"):
        assert d in listing, res
    assert bundle.host("no-pivot").read_text() == "hi\n"


def _keyrings() -> str:
    try:
        with open("/proc/keys") as f:
            return f.read()
    except OSError:
        pytest.skip("no /proc/keys")


def test_new_session_keyring_by_default(rt, bundle):
    """The container joins a fresh session keyring named after it (runc:
    "_ses.<id>") unless --no-new-keyring; seen from the host in /proc/keys."""
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    keys = _keyrings()
    assert cid in keys


def test_no_new_keyring(rt, bundle):
    cid = rt.new_id()
    bundle.sh("echo ok > /host/ok; exec sleep 3600")
    rt.run_d(cid, bundle, "--no-new-keyring")
    assert bundle.wait_host_file("ok") == "ok\n"
    assert rt.state(cid)["status"] == "running"
    assert cid not in _keyrings()


# --------------------------------------------------------------------------- large configs


@pytest.mark.parametrize("how", ["run", "create"])
def test_config_larger_than_one_sync_packet(rt, bundle, how):
    """The stage child gets its arguments in one SEQPACKET message of at most
    64 KiB, or through a memfd beyond that: a 300 KiB config (big annotations
    and environment) must arrive whole."""
    big = "x" * 1000
    with bundle.edit() as cfg:
        cfg["annotations"] = {f"org.example.a{i}": big for i in range(150)}
        cfg["process"]["env"] += [f"BIG{i}={big}" for i in range(150)]
    bundle.sh('echo "${#BIG149}"; env | grep -c "^BIG"')
    cid = rt.new_id()
    if how == "run":
        res = rt.run_fg(cid, bundle).expect_ok()
        assert res.stdout.split() == ["1000", "150"]
    else:
        rt.ok("create", "--bundle", bundle.path, cid)
        st = rt.state(cid)
        assert st["annotations"]["org.example.a149"] == big
        rt.ok("start", cid)
        rt.ok("delete", "--force", cid)


@pytest.mark.parametrize("mode", ["run", "run-no-pidns", "create"])
def test_new_network_namespace_has_lo_up(rt, bundle, mode):
    """runc brings up `lo` in a new network namespace before the process
    starts; pyrunc's stage child does it (it shares the namespace) while the
    init mounts, or the init itself without a pid namespace."""
    with bundle.edit() as cfg:
        if mode == "run-no-pidns":
            no_pid_namespace(cfg)
        assert any(ns["type"] == "network" and not ns.get("path") for ns in cfg["linux"]["namespaces"])
    cid = rt.new_id()
    if mode == "create":
        bundle.sh("sleep 1000")
        rt.create(cid, bundle)
        text = rt.exec_(cid, "cat", "/sys/class/net/lo/flags").expect_ok().stdout
        rt.delete(cid, force=True).expect_ok()
    else:
        bundle.sh("cat /sys/class/net/lo/flags")
        text = rt.run_fg(cid, bundle).expect_ok().stdout
    flags = int(text.strip(), 16)
    assert flags & 0x1, f"lo is down: flags {text.strip()}"  # IFF_UP
