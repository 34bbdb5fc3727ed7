"""Item 9: OCI hooks (prestart, createRuntime, createContainer, startContainer,
poststart, poststop): state on stdin, args, env, failures, timeouts."""

from __future__ import annotations

import json
import os
import time

import pytest

from integration_conftest import processes_mentioning, wait_until

HOST_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# hooks that run in the runtime's namespaces (write to the host path of bundle.hostdir);
# createContainer runs in the container's mount namespace but before pivot_root, so the
# host path is still reachable; startContainer runs after pivot_root (uses /host).
IN_CONTAINER = {"startContainer"}
ALL_HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def recorder(bundle, name: str) -> dict:
    d = "/host" if name in IN_CONTAINER else str(bundle.hostdir)
    script = f'cat > {d}/{name}.json; echo "$0|$1|$2" > {d}/{name}.args; env > {d}/{name}.env; echo {name} >> {d}/order'
    return {
        "path": "/bin/sh",
        "args": ["sh", "-c", script, "arg0", "x1", "x 2"],
        "env": [f"HOOKVAR=v-{name}", HOST_PATH],
    }


def set_hooks(bundle, **hooks) -> None:
    with bundle.edit() as cfg:
        cfg["hooks"] = hooks


def record_all(bundle, names=ALL_HOOKS) -> None:
    set_hooks(bundle, **{n: [recorder(bundle, n)] for n in names})


def hook_state(bundle, name: str) -> dict:
    return json.loads(bundle.host(f"{name}.json").read_text())


def ran(bundle, name: str) -> bool:
    return bundle.host(f"{name}.json").exists()


def order(bundle) -> list[str]:
    p = bundle.host("order")
    return p.read_text().split() if p.exists() else []


def test_hooks_get_state_on_stdin(rt, bundle):
    record_all(bundle)
    cid = rt.new_id()
    rt.create(cid, bundle)
    pid = rt.state(cid)["pid"]
    for name in ("prestart", "createRuntime", "createContainer"):
        assert ran(bundle, name), f"{name} did not run at create"
    assert not ran(bundle, "startContainer")
    assert not ran(bundle, "poststop")
    rt.start(cid)
    bundle.wait_host_file("startContainer.json")
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)
    assert ran(bundle, "poststop")

    for name in ALL_HOOKS:
        st = hook_state(bundle, name)
        assert st["ociVersion"] == bundle.config["ociVersion"], (name, st)
        assert st["id"] == cid, (name, st)
        assert st["bundle"] == str(bundle.path), (name, st)
    for name in ("prestart", "createRuntime", "createContainer"):
        assert hook_state(bundle, name)["status"] == "creating", name
    assert hook_state(bundle, "startContainer")["status"] == "created"
    assert hook_state(bundle, "poststop")["status"] == "stopped"
    # runtime-namespace hooks see the host pid; in-container ones runc gives the
    # pid as seen in the container (1), either is accepted there
    for name in ("prestart", "createRuntime"):
        assert hook_state(bundle, name)["pid"] == pid, name
    for name in ("createContainer", "startContainer"):
        assert hook_state(bundle, name)["pid"] in (1, pid), name
    assert hook_state(bundle, "poststop").get("pid", 0) in (0, pid)
    # annotations are passed along when present (none here)
    assert not hook_state(bundle, "createRuntime").get("annotations")


def test_hooks_order(rt, bundle):
    record_all(bundle, [n for n in ALL_HOOKS if n != "poststart"])
    bundle.set_args("true")
    rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert order(bundle) == ["prestart", "createRuntime", "createContainer", "startContainer", "poststop"]


def test_hook_namespaces(rt, bundle):
    """createRuntime runs in the runtime's mount namespace, createContainer and
    startContainer in the container's."""
    d = str(bundle.hostdir)
    script = 'readlink /proc/self/ns/mnt > {d}/{n}.mnt; cat > /dev/null'
    hooks = {}
    for n in ("createRuntime", "createContainer", "startContainer"):
        dd = "/host" if n in IN_CONTAINER else d
        hooks[n] = [{"path": "/bin/sh", "args": ["sh", "-c", script.format(d=dd, n=n)], "env": [HOST_PATH]}]
    set_hooks(bundle, **hooks)
    bundle.sh("readlink /proc/self/ns/mnt > /host/ctr.mnt; exec sleep 3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    ctr = bundle.wait_host_file("ctr.mnt")
    assert bundle.host("createRuntime.mnt").read_text() == os.readlink("/proc/self/ns/mnt") + "\n"
    assert bundle.host("createContainer.mnt").read_text() == ctr
    assert bundle.host("startContainer.mnt").read_text() == ctr


@pytest.mark.runc_ref_differs(
    reason="runc (1.1.5 and 1.5.1 alike) runs poststart hooks at the end of `create` (status created); "
    "pyrunc follows the runtime-spec: after the process started (status running)"
)
def test_poststart_runs_after_start(rt, bundle):
    record_all(bundle, ["startContainer", "poststart"])
    cid = rt.new_id()
    rt.create(cid, bundle)
    time.sleep(0.2)
    assert not ran(bundle, "poststart"), "poststart ran before start"
    rt.start(cid)
    st = hook_state(bundle, "poststart")
    assert st["status"] == "running"
    assert st["pid"] == rt.state(cid)["pid"]
    assert ran(bundle, "startContainer")


def test_hook_args_and_env(rt, bundle):
    record_all(bundle, ["createRuntime", "startContainer", "poststop"])
    bundle.set_args("true")
    rt.run_fg(rt.new_id(), bundle, env={"PYRUNC_TEST_SECRET": "leak"}).expect_ok()
    for name in ("createRuntime", "startContainer", "poststop"):
        # argv[0] and the arguments exactly as configured
        assert bundle.host(f"{name}.args").read_text() == "arg0|x1|x 2\n", name
        env = bundle.host(f"{name}.env").read_text()
        assert f"HOOKVAR=v-{name}" in env.splitlines(), (name, env)
        # the runtime's own environment does not leak into hooks with an env
        assert "PYRUNC_TEST_SECRET" not in env, (name, env)


def test_hook_argv0_preserved(rt, bundle):
    """hooks.bats "hook's argv is preserved": busybox dispatches on argv[0]."""
    set_hooks(bundle, startContainer=[{"path": "/bin/busybox", "args": ["cat", "/nosuchfile"]}])
    bundle.set_args("true")
    res = rt.run_fg(rt.new_id(), bundle)
    res.expect_fail()
    assert "/nosuchfile" in res.stderr


@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook(rt, bundle, leakcheck, hook):
    set_hooks(bundle, **{hook: [{"path": "/bin/true"}, {"path": "/bin/false"}]})
    bundle.sh("echo ran > /host/ran; exec sleep 3600")
    cid = rt.new_id()
    rt.fail("create", "--bundle", bundle.path, cid, match="hook")
    assert not bundle.host("ran").exists()
    rt.fail("state", cid, match="does not exist")
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer", "startContainer"])
def test_failing_hook_fails_run(rt, bundle, leakcheck, hook):
    set_hooks(bundle, **{hook: [{"path": "/bin/true"}, {"path": "/bin/false"}]})
    bundle.set_args("echo", "Hello World")
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle)
    res.expect_fail(match="hook")
    assert "Hello World" not in res.stdout
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@pytest.mark.runc_ref_differs(reason='runc 1.1.5 says "error running hook #1: ..."; newer runc names the hook kind')
@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer"])
def test_failing_hook_message_names_hook(rt, bundle, hook):
    set_hooks(bundle, **{hook: [{"path": "/bin/true"}, {"path": "/bin/false"}]})
    rt.fail("create", "--bundle", bundle.path, rt.new_id(), match=f"error running {hook} hook #1:")


@pytest.mark.parametrize("mode", [["create"], ["run"], ["run", "-d"]])
@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer"])
def test_failing_hook_one_line(rt, bundle, hook, mode):
    """The failure is reported once, on one line."""
    set_hooks(bundle, **{hook: [{"path": "/bin/false"}]})
    rt.fail(*mode, "--bundle", bundle.path, rt.new_id(), match="hook", one_line=True)


def test_missing_hook_binary(rt, bundle, leakcheck):
    set_hooks(bundle, createRuntime=[{"path": "/no/such/hook"}])
    rt.fail("create", "--bundle", bundle.path, rt.new_id(), match="hook|/no/such/hook")
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_failing_poststop_only_warns_on_run(rt, bundle):
    set_hooks(bundle, poststop=[{"path": "/bin/false"}])
    bundle.set_args("sh", "-c", "exit 7")
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle)
    assert res.rc == 7, res  # the container's status, not the hook's
    assert "hook" in res.stderr
    assert "Traceback" not in res.stderr
    rt.fail("state", cid, match="does not exist")
    assert rt.container_dirs() == []


def test_failing_poststop_still_deletes(rt, bundle):
    """runc 1.1.5 exits 0 from `delete`, newer runc 1 (#4201, "do not ignore
    error from destroy"): only the outcome is checked."""
    set_hooks(bundle, poststop=[{"path": "/bin/false"}, recorder(bundle, "poststop")])
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    res = rt.run("delete", cid)
    assert "Traceback" not in res.stderr
    assert "hook" in res.stderr, res
    rt.fail("state", cid, match="does not exist")
    assert rt.container_dirs() == []


@pytest.mark.slow
def test_hook_timeout(rt, bundle, leakcheck):
    # exec'd directly: a shell's orphaned child would keep the hook's stdio open
    marker = f"sleep 30.{int(rt.token, 16)}"
    set_hooks(bundle, createRuntime=[{"path": "/bin/sleep", "args": marker.split(), "timeout": 1}])
    t0 = time.monotonic()
    cid = rt.new_id()
    rt.fail("create", "--bundle", bundle.path, cid, match="timeout|timed out")
    assert time.monotonic() - t0 < 10
    wait_until(lambda: not processes_mentioning(marker), timeout=5, what="the hook to be killed")
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_hook_timeout_not_reached(rt, bundle):
    set_hooks(bundle, createRuntime=[{"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.1"], "timeout": 5}])
    bundle.set_args("true")
    rt.run_fg(rt.new_id(), bundle).expect_ok()


def test_hook_sees_annotations(rt, bundle):
    with bundle.edit() as cfg:
        cfg["annotations"] = {"org.test": "yes"}
    record_all(bundle, ["createRuntime"])
    bundle.set_args("true")
    rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert hook_state(bundle, "createRuntime").get("annotations") == {"org.test": "yes"}


def test_start_container_hook_runs_as_the_container_user(rt, bundle):
    """As runc: the init takes the process's ids, groups and capabilities
    before it waits for `start`, so startContainer hooks run as the
    container's user (and under its no_new_privs), not as root."""
    script = "id -u > /host/sc.uid; id -G > /host/sc.groups; grep CapEff /proc/self/status > /host/sc.caps; cat > /dev/null"
    set_hooks(bundle, startContainer=[{"path": "/bin/sh", "args": ["sh", "-c", script], "env": [HOST_PATH]}])
    with bundle.edit() as cfg:
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [100]}
        cfg["process"]["capabilities"] = {k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
    os.chmod(bundle.hostdir, 0o777)  # the hook writes there as uid 1000
    bundle.set_args("true")
    rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert bundle.host("sc.uid").read_text().split() == ["1000"]
    assert bundle.host("sc.groups").read_text().split() == ["1000", "100"]
    assert bundle.host("sc.caps").read_text().split() == ["CapEff:", "0000000000000000"]


# -- poststart failures: an error that stops the container (runtime-spec 1.2, runc 1.2+) ----------
NEWER_POSTSTART = pytest.mark.runc_ref_differs(reason="runc 1.1.5 only warns when a poststart hook fails")
FAILING_POSTSTART = [{"path": "/bin/true"}, {"path": "/bin/false"}]


@NEWER_POSTSTART
def test_failing_poststart_fails_run(rt, bundle, leakcheck):
    """hooks.bats "runc run [hook fails]" for poststart: the run fails with
    the hook's error, the container is stopped and deleted."""
    set_hooks(bundle, poststart=FAILING_POSTSTART, poststop=[recorder(bundle, "poststop")])
    bundle.sh(f"exec sleep 30.{int(rt.token, 16)}")
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle)
    res.expect_fail(match="error running poststart hook #1: exit status 1", one_line=True)
    assert ran(bundle, "poststop"), "the deleted container's poststop hooks did not run"
    assert not processes_mentioning(f"sleep 30.{int(rt.token, 16)}")
    rt.fail("state", cid, match="does not exist")
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@NEWER_POSTSTART
def test_failing_poststart_fails_detached_run(rt, bundle, leakcheck):
    set_hooks(bundle, poststart=FAILING_POSTSTART)
    marker = f"sleep 30.{int(rt.token, 16)}"
    bundle.sh(f"exec {marker}")
    cid = rt.new_id()
    rt.fail("run", "-d", "--bundle", bundle.path, cid, match="error running poststart hook #1:", one_line=True)
    wait_until(lambda: not processes_mentioning(marker), timeout=5, what="the container to be killed")
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


@NEWER_POSTSTART
def test_failing_poststart_fails_start_and_stops_the_container(rt, bundle, leakcheck):
    """`start` fails and the container is stopped, not deleted: `delete`
    (lifecycle step 12) removes it and runs the poststop hooks."""
    set_hooks(bundle, poststart=FAILING_POSTSTART, poststop=[recorder(bundle, "poststop")])
    bundle.sh("echo started > /host/started; exec sleep 3600")
    cid = rt.new_id()
    rt.create(cid, bundle)
    pid = rt.state(cid)["pid"]
    rt.fail("start", cid, match="error running poststart hook #1: exit status 1", one_line=True)
    assert rt.state(cid)["status"] == "stopped"
    wait_until(lambda: not os.path.exists(f"/proc/{pid}/cmdline") or
               open(f"/proc/{pid}/cmdline").read() == "", timeout=5, what="the init to die")
    assert not ran(bundle, "poststop")
    rt.delete(cid)
    assert ran(bundle, "poststop")
    leakcheck.assert_clean()


@NEWER_POSTSTART
def test_failing_poststart_with_keep_leaves_it_stopped(rt, bundle, leakcheck):
    set_hooks(bundle, poststart=FAILING_POSTSTART)
    bundle.sh("exec sleep 3600")
    cid = rt.new_id()
    rt.fail("run", "--keep", "--bundle", bundle.path, cid, match="error running poststart hook #1:")
    assert rt.state(cid)["status"] == "stopped"
    rt.delete(cid)
    leakcheck.assert_clean()


# -- startContainer hooks ----------------------------------------------------------------------
@pytest.mark.runc_ref_differs(reason="runc 1.1.5 adds no HOME to the process environment the hooks get")
def test_start_container_hook_inherits_process_environment(rt, bundle):
    """hooks.bats: a startContainer hook without an env of its own gets the
    process's environment (HOME included); one with an env gets only that."""
    check = "#!/bin/sh -ue\ntest $ONE = two\ntest $FOO = bar\necho \"HOME=$HOME\" > /host/home\n"
    script = bundle.rootfs / "check-env.sh"
    script.write_text(check)
    os.chmod(script, 0o755)
    own = {"path": "/bin/sh", "args": ["sh", "-c", "env > /host/own.env"], "env": ["ONLY=this"]}
    set_hooks(bundle, startContainer=[{"path": "/check-env.sh"}, own])
    with bundle.edit() as cfg:
        cfg["process"]["env"] = ["ONE=two", "FOO=bar"]
    bundle.set_args("/bin/true")
    rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert bundle.host("home").read_text() == "HOME=/root\n"
    own_env = bundle.host("own.env").read_text().split()
    assert "ONLY=this" in own_env and "ONE=two" not in own_env


def test_hooks_working_directory(rt, bundle):
    """As runc: prestart, createRuntime and poststart hooks run from the
    bundle directory (runc chdirs there for create and run), createContainer
    hooks from the rootfs, startContainer hooks from the process's cwd; here
    the runtime is called from elsewhere with --bundle."""
    d = str(bundle.hostdir)

    def pwd(name: str, where: str = d) -> dict:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {where}/{name}.pwd; cat > /dev/null"],
                "env": [HOST_PATH]}
    set_hooks(bundle, prestart=[pwd("prestart")], createRuntime=[pwd("createRuntime")],
              createContainer=[pwd("createContainer")], startContainer=[pwd("startContainer", "/host")],
              poststart=[pwd("poststart")])
    with bundle.edit() as cfg:
        cfg["process"]["cwd"] = "/tmp"
    bundle.set_args("true")
    cid = rt.new_id()
    assert os.getcwd() != str(bundle.path)
    rt.create(cid, bundle)
    rt.start(cid)
    for name in ("prestart", "createRuntime", "poststart"):
        assert bundle.host(f"{name}.pwd").read_text() == f"{bundle.path}\n", name
    assert bundle.host("createContainer.pwd").read_text() == f"{bundle.rootfs}\n"
    assert bundle.host("startContainer.pwd").read_text() == "/tmp\n"


_READ_PIDS_MAX = """
import json, os, sys
pid = json.load(sys.stdin)["pid"]
if sys.argv[2] == "rootfs":  # createContainer: from the rootfs (its cwd), as the container will see it
    where = "sys/fs/cgroup/pids" if os.path.exists("sys/fs/cgroup/pids") else "sys/fs/cgroup"
else:
    lines = [ln.rstrip("\\n").split(":", 2) for ln in open(f"/proc/{pid}/cgroup")]
    v1 = [path for _, ctrls, path in lines if "pids" in ctrls.split(",")]
    where = f"/sys/fs/cgroup/pids{v1[0]}" if v1 else "/sys/fs/cgroup" + next(p for n, c, p in lines if n == "0")
open(sys.argv[1], "w").write(open(where + "/pids.max").read().strip())
"""


@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer"])
def test_the_resources_are_written_before_the_hooks_run(rt, bundle, hook):
    """As runc's procHooks: the cgroup limits are in place when the prestart,
    createRuntime and createContainer hooks run (the init waits for them
    only when there are such hooks)."""
    import sys
    out = bundle.hostdir / f"{hook}.pids"
    where = "rootfs" if hook == "createContainer" else "host"
    with bundle.edit() as cfg:
        cfg.setdefault("linux", {}).setdefault("resources", {})["pids"] = {"limit": 42}
        cfg["hooks"] = {hook: [{"path": sys.executable, "args": ["python3", "-c", _READ_PIDS_MAX, str(out), where]}]}
    bundle.set_args("true")
    rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert out.read_text() == "42"
