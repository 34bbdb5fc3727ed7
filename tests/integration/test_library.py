"""`import pyrunc`: the library runs the same code as the command line, so a
container made from Python is visible to `pyrunc` commands and vice versa."""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))

import pyrunc  # noqa: E402


@pytest.fixture(autouse=True)
def _pyrunc_only(rt):
    if rt.is_runc:
        pytest.skip("the library is pyrunc's own")




def test_container_lifecycle_from_python(rt, bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        assert c.status == "created" and c.pid > 0
        c.start()
        assert c.status == "running"
        assert c.exec(["sh", "-c", "exit 3"]) == 3
        assert [x.id for x in pyrunc.Container.list(root)] == [c.id]
        res = rt.ok("state", c.id, root=root)  # the command line sees it
        assert '"running"' in res.stdout
        c.kill("KILL")
    finally:
        c.delete(force=True)
    assert pyrunc.Container.list(root) == []


def test_errors_are_pyrunc_errors(tmp_path):
    with pytest.raises(pyrunc.PyruncError, match="invalid container ID format"):
        pyrunc.Container("a/b")
    with pytest.raises(pyrunc.PyruncError, match="container does not exist"):
        pyrunc.Container("nope", root=str(tmp_path)).state()
    with pytest.raises(pyrunc.PyruncError, match="not found|no such directory"):
        pyrunc.load_config(str(tmp_path / "missing"))


def test_failed_create_leaves_nothing(bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    bundle.set_args("/no/such/binary")
    with pytest.raises(pyrunc.PyruncError, match="no such file"):
        pyrunc.Container.create("lib-bad", bundle=str(bundle.path), root=root)
    assert pyrunc.Container.list(root) == []


def _model_spec(bundle):
    """The bundle's config as model objects."""
    from pyrunc.spec.model import Spec
    return Spec.from_dict(bundle.config)


def test_create_from_a_spec_object(rt, bundle, tmp_path):
    """Container.create(config=Spec(...)): no config.json is read."""
    from pyrunc.spec.model import Process, Spec, User
    root = str(tmp_path / "lib-root")
    spec = _model_spec(bundle)
    spec.process = Process(args=["sh", "-c", "echo made-in-python > /host/out"], cwd="/",
                           env=["PATH=/bin"], user=User(uid=0, gid=0))
    spec.hostname = "from-model"
    (bundle.path / "config.json").write_text("{ not even JSON")  # proves it is not read
    assert isinstance(spec, Spec)
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root, config=spec)
    try:
        assert c.status == "created"
        assert c.state()["bundle"] == str(bundle.path)
        c.start()
        bundle.wait_host_file("out", contains="made-in-python")
    finally:
        c.delete(force=True)


def test_create_from_a_dict(rt, bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    cfg = dict(bundle.config, hostname=None)  # null: absent, as in config.json
    cfg["process"] = dict(cfg["process"], args=["true"])
    before = repr(cfg)
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root, config=cfg)
    c.delete(force=True)
    assert repr(cfg) == before  # the caller's dict is not touched


@pytest.mark.parametrize("change, msg", [
    (lambda s: setattr(s.process.user, "uid", -1), "process.user.uid: expected an integer from 0 to 4294967295, got -1"),
    (lambda s: setattr(s.process.capabilities, "bounding", "CAP_KILL"),
     "process.capabilities.bounding: expected an array of strings, got a string"),
    (lambda s: setattr(s, "hostname", 7), "hostname: expected a string, got an integer"),
    (lambda s: setattr(s.mounts[0], "options", [1]), "mounts[0].options[0]: expected a string, got an integer"),
])
def test_create_with_a_bad_spec_names_the_field(rt, bundle, tmp_path, leakcheck, change, msg):
    root = str(tmp_path / "lib-root")
    spec = _model_spec(bundle)
    change(spec)
    with pytest.raises(pyrunc.PyruncError) as e:
        pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root, config=spec)
    assert str(e.value) == msg
    assert pyrunc.Container.list(root) == []
    leakcheck.assert_clean()


def test_create_with_a_non_json_config(rt, bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    with pytest.raises(pyrunc.PyruncError, match="^config: not representable as JSON"):
        pyrunc.Container.create("lib-x", bundle=str(bundle.path), root=root, config={"annotations": {"a": {1, 2}}})
    with pytest.raises(pyrunc.PyruncError, match="^config: expected a Spec or a dict, got list"):
        pyrunc.Container.create("lib-x", bundle=str(bundle.path), root=root, config=[])
    assert pyrunc.Container.list(root) == []


def test_update_takes_model_resources(rt, bundle, tmp_path):
    from pyrunc.spec.model import Pids, Resources
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        c.update(Resources(pids=Pids(limit=57)))
        import json
        with open(os.path.join(root, c.id, "state.json")) as f:
            assert json.load(f)["config"]["linux"]["resources"]["pids"]["limit"] == 57
        upd = {"pids": {"limit": "max"}, "memory": None}
        with pytest.raises(pyrunc.PyruncError, match=r"^resources\.pids\.limit: expected an integer, got a string$"):
            c.update(upd)
        assert upd == {"pids": {"limit": "max"}, "memory": None}  # the caller's dict is not touched
    finally:
        c.delete(force=True)


# --- errors by type ---------------------------------------------------------------

def _raises(cls, fn, *args, **kw):
    with pytest.raises(cls) as e:
        fn(*args, **kw)
    return e.value


def test_container_not_found(tmp_path):
    c = pyrunc.Container("nope", root=str(tmp_path))
    for op in (c.state, c.start, c.kill, c.delete, c.pause, c.resume, c.stats,
               lambda: c.exec(["true"]), lambda: c.update({"pids": {"limit": 5}})):
        e = _raises(pyrunc.ContainerNotFound, op)
        assert str(e) == "container does not exist" and e.id == "nope"
    assert isinstance(e, pyrunc.ContainerNotExist)  # the old name still catches it


def test_invalid_state_for_each_forbidden_transition(rt, bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)

    def forbidden(op, msg):
        e = _raises(pyrunc.InvalidState, op)
        assert str(e) == msg and e.status == c.status

    try:
        forbidden(c.resume, "container not paused")
        c.start()
        forbidden(c.start, "cannot start an already running container")
        forbidden(c.resume, "container not paused")
        forbidden(c.delete, f"cannot delete container {c.id} that is not stopped: running")
        c.pause()
        assert c.status == "paused"
        forbidden(c.start, "cannot start a paused container")
        forbidden(c.pause, "container paused")
        forbidden(lambda: c.exec(["true"]), "cannot exec in a paused container (use --ignore-paused to override)")
        forbidden(c.delete, f"cannot delete container {c.id} that is not stopped: paused")
        c.resume()
        c.kill("KILL")
        for _ in range(200):
            if c.status == "stopped":
                break
            time.sleep(0.01)
        forbidden(c.start, "cannot start a container that has stopped")
        forbidden(c.kill, "container not running")
        forbidden(c.pause, "container not running")
        forbidden(lambda: c.exec(["true"]), "cannot exec in a stopped container")
        forbidden(lambda: c.update({"pids": {"limit": 5}}), "container not running")
        c.delete()  # stopped: no force needed
    finally:
        if pyrunc.Container.list(root):
            c.delete(force=True)


def test_init_error_carries_the_containers_reason(rt, bundle, tmp_path, leakcheck):
    root = str(tmp_path / "lib-root")
    bundle.set_args("/no/such/binary")
    e = _raises(pyrunc.InitError, pyrunc.Container.create, "lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    assert str(e).startswith("pyrunc create failed: unable to start container process: exec:")
    assert e.op == "create" and e.reason.startswith('exec: "/no/such/binary"') and e.reason in str(e)
    assert pyrunc.Container.list(root) == []
    bundle.set_args("sleep", "3600")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        e = _raises(pyrunc.InitError, c.exec, ["/no/such/binary"])
        assert e.op == "exec" and str(e) == "exec failed: unable to start container process: " + e.reason
        e = _raises(pyrunc.InitError, c.exec, ["true"], cwd="/no/such/dir")
        assert e.op == "exec" and "/no/such/dir" in e.reason
    finally:
        c.delete(force=True)
    leakcheck.assert_clean()


@pytest.mark.parametrize("change, path", [
    (lambda d: d["process"].update(args=[]), "process.args"),
    (lambda d: d["process"].update(scheduler={"policy": "SCHED_BOGUS"}), "process.scheduler.policy"),
    (lambda d: d["linux"].update(seccomp={"defaultAction": "SCMP_ACT_BOGUS"}), "linux.seccomp.defaultAction"),
    # checked once the state dir exists: it goes again
    (lambda d: d["linux"].update(resources={"memory": {"swappiness": 101}}), "linux.resources.memory.swappiness"),
    (lambda d: d["linux"].update(resources={"devices": [{"allow": True, "type": "x", "access": "r"}]}),
     "linux.resources.devices[0].type"),
])
def test_create_raises_config_error_with_the_path(rt, bundle, tmp_path, leakcheck, change, path):
    import copy
    root = str(tmp_path / "lib-root")
    cfg = copy.deepcopy(bundle.config)
    change(cfg)
    e = _raises(pyrunc.ConfigError, pyrunc.Container.create, "lib-" + rt.new_id(), bundle=str(bundle.path),
                root=root, config=cfg)
    assert e.path == path
    assert pyrunc.Container.list(root) == []
    leakcheck.assert_clean()


def test_update_raises_config_error(rt, bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        e = _raises(pyrunc.ConfigError, c.update, {"pids": {"limit": "max"}})
        assert e.path == "resources.pids.limit"
        e = _raises(pyrunc.ConfigError, c.update, {"unified": {"a/b": "1"}})  # the merged whole is checked
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        assert e.path == ('linux.resources.unified["a/b"]' if v2 else "linux.resources.unified"), str(e)
    finally:
        c.delete(force=True)


# --- docs/library.md ------------------------------------------------------------

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "library.md")


def _doc_example() -> str:
    """The first python block under docs/library.md's sandbox heading, verbatim."""
    with open(DOC) as f:
        text = f.read()
    section = text[text.index("## A sandbox runner"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```\n", start)]


def test_the_docs_sandbox_example_runs(rt, bundle, tmp_path, leakcheck):
    """The worked example, exactly as documented: exit statuses come back,
    an allocation over the memory limit is killed (137), nothing is left."""
    root = str(tmp_path / "lib-root")
    ns: dict = {"__name__": "sandbox"}
    exec(compile(_doc_example(), DOC, "exec"), ns)  # noqa: S102 - the documented code itself
    sandbox = ns["sandbox"]
    assert sandbox(str(bundle.path), ["sh", "-c", "test $(hostname) = runc && exit 3"], root=root) == 3
    assert sandbox(str(bundle.path), ["sh", "-c", "touch /x 2>/dev/null || exit 4"], root=root) == 4  # read-only
    assert sandbox(str(bundle.path), ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
                   memory_mb=64, root=root) == 137
    assert sandbox(str(bundle.path), ["dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1"],
                   memory_mb=64, root=root) == 0
    assert pyrunc.Container.list(root) == []
    leakcheck.assert_clean()


def _kill_when_running(cid: str, root: str, sig: str) -> None:
    """From another thread (the library's kill needs no signal handling)."""
    import threading

    def kill() -> None:
        c = pyrunc.Container(cid, root)
        for _ in range(1000):
            try:
                if c.status == "running":
                    c.kill(sig)
                    return
            except pyrunc.PyruncError:
                pass
            time.sleep(0.01)
    threading.Thread(target=kill, daemon=True).start()


def test_run_returns_the_status_and_deletes(rt, bundle, tmp_path, leakcheck):
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    cid = "lib-" + rt.new_id()
    _kill_when_running(cid, root, "KILL")
    assert pyrunc.Container.run(cid, bundle=str(bundle.path), root=root) == 128 + 9
    bundle.set_args("sh", "-c", "exit 5")
    cid = "lib-" + rt.new_id()
    assert pyrunc.Container.run(cid, bundle=str(bundle.path), root=root, keep=True) == 5
    c = pyrunc.Container(cid, root)
    assert c.status == "stopped" and c.state().pid == 0  # kept, as --keep
    c.delete()
    assert pyrunc.Container.list(root) == []
    leakcheck.assert_clean()


def test_run_restores_the_callers_signal_handling(rt, bundle, tmp_path):
    import signal
    root = str(tmp_path / "lib-root")
    mine = lambda *a: None  # noqa: E731
    old = signal.signal(signal.SIGUSR1, mine)
    try:
        bundle.set_args("true")
        assert pyrunc.Container.run("lib-" + rt.new_id(), bundle=str(bundle.path), root=root) == 0
        assert signal.getsignal(signal.SIGUSR1) is mine
        import ctypes
        prev = ctypes.c_int(-1)
        ctypes.CDLL(None).prctl(37, ctypes.byref(prev))  # PR_GET_CHILD_SUBREAPER
        assert prev.value == 0
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_foreground_run_outside_the_main_thread_is_refused(rt, bundle, tmp_path):
    import threading
    root = str(tmp_path / "lib-root")
    errors: list = []

    def attempt() -> None:
        try:
            pyrunc.Container.run("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
        except pyrunc.PyruncError as e:
            errors.append(str(e))
    t = threading.Thread(target=attempt)
    t.start()
    t.join(30)
    assert errors and "main thread" in errors[0] and "\n" not in errors[0]
    assert pyrunc.Container.list(root) == []


def test_run_detached_then_state_and_typed_exec(rt, bundle, tmp_path):
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    cid = "lib-" + rt.new_id()
    assert pyrunc.Container.run(cid, bundle=str(bundle.path), root=root, detach=True) == 0
    c = pyrunc.Container(cid, root)
    try:
        s = c.state()
        assert isinstance(s, pyrunc.State) and s.status == "running" and s.id == cid and s.pid > 0
        assert s.bundle == str(bundle.path) and s["pid"] == s.pid
        import json
        assert s.to_dict() == json.loads(rt.ok("state", cid, root=root).stdout)  # what the command prints
        assert list(s.to_dict()) == list(json.loads(rt.ok("state", cid, root=root).stdout))
        assert c.exec(["sh", "-c", 'test "$A" = 1 && test $(id -u) = 7 && test $PWD = /tmp && exit 9'],
                      env=["A=1"], user="7:7", cwd="/tmp") == 9
        assert c.exec(pyrunc.ExecOptions(process={"args": ["/bin/sh", "-c", "exit 6"], "cwd": "/"})) == 6
        assert c.exec(["true"], detach=True, ignore_paused=True) == 0
        with pytest.raises(pyrunc.ConfigError, match="process args cannot be empty"):
            c.exec([])
        with pytest.raises(TypeError):
            c.exec(["true"], no_such_option=1)
    finally:
        c.delete(force=True)


def test_run_with_a_config_and_a_failing_process(rt, bundle, tmp_path, leakcheck):
    root = str(tmp_path / "lib-root")
    cfg = dict(bundle.config, process=dict(bundle.config["process"], args=["/no/such/binary"]))
    with pytest.raises(pyrunc.InitError) as e:
        pyrunc.Container.run("lib-" + rt.new_id(), bundle=str(bundle.path), root=root, config=cfg)
    assert e.value.op == "run" and str(e.value).startswith("pyrunc run failed: ")
    assert pyrunc.Container.list(root) == []
    leakcheck.assert_clean()


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out


def test_stdio_fds_become_the_containers_and_the_execs(rt, bundle, tmp_path, leakcheck):
    """Container.create(stdio=...) and ExecOptions.stdio: the process's 0, 1
    and 2 are the given fds (a shim's FIFOs), not the caller's."""
    root = str(tmp_path / "lib-root")
    bundle.set_args("sh", "-c", "read x; echo out:$x; echo err >&2")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root,
                                stdio=(in_r, out_w, err_w))
    try:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        os.write(in_w, b"hello\n")
        os.close(in_w)
        c.start()
        assert _read_all(out_r) == b"out:hello\n" and _read_all(err_r) == b"err\n"
        r, w = os.pipe()
        c2 = "lib-" + rt.new_id()
        bundle.set_args("sleep", "3600")
        pyrunc.Container.create(c2, bundle=str(bundle.path), root=root).start()
        try:
            assert pyrunc.Container(c2, root).exec(pyrunc.ExecOptions(["sh", "-c", "echo from exec; ls -l /proc/self/fd/1"],
                                                                       detach=True, stdio=(0, w, w))) == 0
            os.close(w)
            out = _read_all(r).decode()
            assert out.startswith("from exec\n") and "pipe:" in out, out
        finally:
            pyrunc.Container(c2, root).delete(force=True)
    finally:
        c.delete(force=True)


@pytest.fixture
def subreaper():
    """This test process as a child subreaper (as a shim is), restored after."""
    from pyrunc.container.foreground import become_subreaper, restore_subreaper
    prev = become_subreaper()
    yield
    restore_subreaper(prev)


def test_wait_returns_the_exit_status(rt, bundle, tmp_path, leakcheck, subreaper):
    """Container.wait(): a pidfd wait for the init, which this subreaper
    reaps: its exit status, 128+N for a signal; the container is stopped."""
    root = str(tmp_path / "lib-root")
    bundle.set_args("sh", "-c", "exit 7")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        c.start()
        assert c.wait(timeout=10) == 7
        assert c.status == "stopped"
        assert c.wait() is None  # reaped already: nothing left to collect
    finally:
        c.delete(force=True)
    bundle.set_args("sleep", "3600")
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        c.start()
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            c.wait(timeout=0.2)
        assert time.monotonic() - t >= 0.2
        c.kill("KILL")
        assert c.wait(timeout=10) == 128 + 9
        with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
            os.waitpid(-1, os.WNOHANG)
    finally:
        c.delete(force=True)


def test_wait_without_being_the_parent(rt, bundle, tmp_path, leakcheck):
    """Not the init's reaper: wait() returns None once the init has exited.
    A user namespace takes the command line's order: the stage child forks
    the init and exits, and the init goes to the host's init, as we are
    no subreaper."""
    from helpers_userns import make_reachable
    from pyrunc.container.foreground import become_subreaper, restore_subreaper
    prev = become_subreaper()
    restore_subreaper(0)  # certainly not a subreaper
    root = str(tmp_path / "lib-root")
    bundle.update(_user_namespace)
    bundle.set_args("sleep", "3600")
    make_reachable(bundle.path)
    c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
    try:
        c.start()
        pid = c.pid
        assert _parent_of(pid) != os.getpid()
        c.kill("KILL")
        assert c.wait(timeout=10) is None
        assert not os.path.exists(f"/proc/{pid}/stat") or c.status == "stopped"
    finally:
        c.delete(force=True)
        if prev:
            become_subreaper()


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def test_library_forks_the_init_into_its_pid_namespace(rt, bundle, tmp_path, leakcheck):
    """With a new pid namespace (and no user or time namespace) the library
    forks the init itself, straight into the namespace (unshare of this
    thread's pid_for_children, then back): no stage child in between, so
    the init is this process's child even though it is no subreaper.
    wait() collects its status; a container never waited for is reaped by
    delete (no zombie left); this thread's later children are in our own
    pid namespace again; and the init's CPU mask, narrowed at its fork to
    the CPUs beside ours, is every CPU again, as runc leaves it."""
    from pyrunc.container.foreground import become_subreaper, restore_subreaper
    prev = become_subreaper()
    restore_subreaper(0)
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    try:
        c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
        try:
            pid = c.pid
            assert _parent_of(pid) == os.getpid()
            # every CPU its cpuset allows: at least ours, where the fork's
            # narrowing (ours but one) would be less
            assert os.sched_getaffinity(pid) >= os.sched_getaffinity(0)
            with open(f"/proc/{pid}/status") as f:
                nspid = [ln.split()[1:] for ln in f if ln.startswith("NSpid:")][0]
            assert nspid == [str(pid), "1"]  # its namespace's PID 1
            assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
            assert os.readlink("/proc/thread-self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
            c.start()
            c.kill("KILL")
            assert c.wait(timeout=10) == 137
        finally:
            c.delete(force=True)
        c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
        pid = c.pid
        try:
            c.start()
            c.kill("KILL")
        finally:
            c.delete(force=True)  # never waited for: delete reaps it
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        assert not os.path.exists(f"/proc/{pid}")
    finally:
        if prev:
            become_subreaper()


def test_library_seccomp_builder_leaves_no_zombie(rt, bundle, tmp_path, leakcheck, capfd):
    """The seccomp builder is forked by the init, inside the new pid
    namespace: it is reaped before the exec, so the container's PID 1 has
    no zombie child. Its SIGCHLD reaches the init, which must not inherit
    Container.run's signal wakeup fd (closed there): Python would print
    its failed write, a traceback, on the container's stderr."""
    from helpers_userns import make_reachable
    bundle.update(_seccomp_no_mkdir)
    # the builder is the namespace's pid 2; `exec test`: no fork, so the
    # shell never waits (which would reap any zombie child it inherited)
    bundle.set_args("sh", "-c", "exec test ! -e /proc/2")
    make_reachable(bundle.path)
    root = str(tmp_path / "lib-root")
    assert pyrunc.Container.run("lib-" + rt.new_id(), bundle=str(bundle.path), root=root) == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "wakeup" not in err, err


def test_library_init_shows_nothing_of_the_caller(rt, bundle, tmp_path):
    """A program that creates a container through the library: the waiting
    init's /proc/1/environ and cmdline, read from inside with CAP_SYS_PTRACE,
    show neither that program's environment nor its command line (the
    library reads where they lie just before it forks)."""
    import subprocess

    def with_ptrace(c: dict) -> None:
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k] = sorted(set(c["process"]["capabilities"][k]) | {"CAP_SYS_PTRACE"})
    bundle.update(with_ptrace)
    bundle.set_args("true")
    root = str(tmp_path / "lib-root")
    cid = "lib-" + rt.new_id()
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    prog = ("import sys; sys.path.insert(0, sys.argv[1]); import pyrunc; "
            "pyrunc.Container.create(sys.argv[2], bundle=sys.argv[3], root=sys.argv[4])")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYRUNC_TEST_SECRET": "s3cr3t-value"}
    err = tmp_path / "create.err"  # a file: the init keeps the caller's stdio open
    with open(err, "w") as f:
        r = subprocess.run([sys.executable, "-c", prog, src, cid, str(bundle.path), root, "argv-marker-x"],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=30)
    assert r.returncode == 0, err.read_text()
    c = pyrunc.Container(cid, root)
    try:
        assert c.status == "created"
        assert c.exec(["sh", "-c", "tr '\\0' ' ' < /proc/1/environ > /host/seen; echo; "
                                   "tr '\\0' ' ' < /proc/1/cmdline >> /host/seen"]) == 0
        seen = bundle.host("seen").read_text()
        assert "s3cr3t-value" not in seen and "argv-marker-x" not in seen and cid not in seen, seen
        assert "pyrunc" in seen, seen  # the init's own name is what shows
    finally:
        c.delete(force=True)


def _children() -> list[int]:
    """This process's children (live or zombie), from /proc."""
    me = str(os.getpid())
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rfind(b")") + 2:].split()[1].decode() == me:
                kids.append(int(d))
    return kids


def test_create_failing_after_the_early_fork_leaves_no_process(rt, bundle, tmp_path, leakcheck, subreaper):
    """The library forks the stage child once the config is checked, and
    that child makes the namespaces and forks the init before the state
    dir exists. A create that fails then (the id is taken) ends both: no
    process is left, not even a zombie for this subreaper to reap."""
    root = str(tmp_path / "lib-root")
    bundle.set_args("sleep", "3600")
    cid = "lib-" + rt.new_id()
    c = pyrunc.Container.create(cid, bundle=str(bundle.path), root=root)
    try:
        before = _children()
        for _ in range(3):
            with pytest.raises(pyrunc.PyruncError, match="container with id exists"):
                pyrunc.Container.create(cid, bundle=str(bundle.path), root=root)
        assert _children() == before
        assert c.status == "created"  # the first one is untouched
    finally:
        c.delete(force=True)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_library_container_holds_none_of_the_callers_fds(rt, bundle, tmp_path, leakcheck):
    """The caller's descriptors, inheritable or not, open before and during
    the create (the state dir's lock), stay out of the container: its
    waiting init has stdio and the exec fifo, its process stdio only."""
    root = str(tmp_path / "lib-root")
    bundle.set_args("sh", "-c", "ls /proc/self/fd > /host/fds; ls /proc/1/fd > /host/fds1")
    r, w = os.pipe()
    os.set_inheritable(r, True)
    extra = os.open("/", os.O_RDONLY | os.O_DIRECTORY)  # a host directory: CVE-2024-21626's kind
    try:
        c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root,
                                    stdio=(r, w, w))
        try:
            fds = {int(x): os.readlink(f"/proc/{c.pid}/fd/{x}") for x in os.listdir(f"/proc/{c.pid}/fd")}
            # stdio and the exec fifo it waits to open (an O_PATH fd, as runc's init)
            assert sorted(fds) == [0, 1, 2, 3] and fds[3].endswith("/exec.fifo"), fds
            c.start()
            bundle.wait_host_file("fds1")
        finally:
            c.delete(force=True)
    finally:
        for fd in (r, w, extra):
            os.close(fd)
    # ls's own directory fd (3) is the only one past stdio
    assert bundle.host("fds").read_text().split() == ["0", "1", "2", "3"]


def _seccomp_no_mkdir(c: dict) -> None:
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


def _user_namespace(c: dict) -> None:
    from helpers_userns import userns_config
    userns_config(c)


@pytest.mark.parametrize("configure, script, status", [
    # made before the arguments come, the filter built by the early stage child
    (_seccomp_no_mkdir, "mkdir /x && exit 0 || exit 7", 7),
    # the user namespace takes the command line's order (the parent writes its maps)
    (_user_namespace, "grep -q 100000 /proc/self/uid_map && exit 5", 5),
])
def test_library_namespaces_early_and_not(rt, bundle, tmp_path, leakcheck, configure, script, status):
    """Container.run through both orders of the stage child: the early one
    (new namespaces only; here with a seccomp filter, whose builder is
    forked before the unshare) and the command line's (a user namespace)."""
    from helpers_userns import make_reachable
    bundle.update(configure)
    bundle.set_args("sh", "-c", script)
    make_reachable(bundle.path)
    root = str(tmp_path / "lib-root")
    assert pyrunc.Container.run("lib-" + rt.new_id(), bundle=str(bundle.path), root=root) == status
    assert pyrunc.Container.list(root) == []


def test_library_callers_sigchld_handler_stays_in_the_caller(rt, bundle, tmp_path, leakcheck):
    """A caller's Python SIGCHLD handler runs in the caller only: not in the
    init, which gets the seccomp builder's SIGCHLD while it sets up."""
    import signal
    mark = tmp_path / "sigchld"

    def handler(signum, frame):
        with open(mark, "a") as f:
            f.write(f"{os.getpid()}\n")
    bundle.update(_seccomp_no_mkdir)
    bundle.set_args("true")
    root = str(tmp_path / "lib-root")
    old = signal.signal(signal.SIGCHLD, handler)
    try:
        c = pyrunc.Container.create("lib-" + rt.new_id(), bundle=str(bundle.path), root=root)
        try:
            c.start()
            c.wait(timeout=10)
        finally:
            c.delete(force=True)
    finally:
        signal.signal(signal.SIGCHLD, old)
    pids = set(mark.read_text().split()) if mark.exists() else set()
    assert pids <= {str(os.getpid())}, pids


def test_library_creates_from_several_threads_at_once(rt, bundle, tmp_path, leakcheck):
    """The pid namespace is made per thread (this thread's pid_for_children)
    and the init forked by that thread: three threads creating, starting,
    killing and deleting containers at once each get their own init, its
    status, and leave every thread's children in our pid namespace."""
    import threading
    bundle.update(_seccomp_no_mkdir)  # a builder child in each init too
    bundle.set_args("sleep", "3600")
    root = str(tmp_path / "lib-root")
    ours = os.readlink("/proc/self/ns/pid")
    errors: list[str] = []
    seen: list[tuple[str, str]] = []

    def worker(t: int) -> None:
        try:
            for i in range(4):
                c = pyrunc.Container.create(f"lib-{rt.new_id()}-t{t}-{i}", bundle=str(bundle.path), root=root)
                try:
                    c.start()
                    seen.append((os.readlink(f"/proc/{c.pid}/ns/pid"),
                                 os.readlink("/proc/thread-self/ns/pid_for_children")))
                    c.kill("KILL")
                    assert c.wait(timeout=10) == 137
                finally:
                    c.delete(force=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    assert len(seen) == 12
    assert all(init_ns != ours and children == ours for init_ns, children in seen)
    assert pyrunc.Container.list(root) == []

