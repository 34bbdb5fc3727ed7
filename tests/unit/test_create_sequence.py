"""The parent's side of the create handshake (container/launch.py: Handshake),
driven without forking: a fake channel plays a scripted init, recorders
stand in for the host actions (id maps, cgroup, hooks, rlimits), and the
test asserts the parent's replies and actions, in order."""
from __future__ import annotations

import ast
import os

import pytest

from pyrunc.container import launch
from pyrunc.errors import InitError, PyruncError
from pyrunc.init.sync import Msg

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src", "pyrunc")


class FakeChannel:
    """The init's end, scripted: recv() returns the next message (EOF once
    the script is over); send() records the parent's replies."""

    def __init__(self, script, events, fail_send_at: str | None = None) -> None:
        self.script = list(script)
        self.events = events
        self.fail_send_at = fail_send_at
        self.closed = False

    def recv(self):
        if not self.script:
            return Msg.EOF, b"", []
        tag, payload, *fds = self.script.pop(0)
        return tag, payload, list(fds)

    def send(self, tag, payload=b"", fds=None):
        if tag == self.fail_send_at:
            raise BrokenPipeError(32, "Broken pipe")
        self.events.append(("reply", tag, payload if isinstance(payload, str) else payload.decode()))

    def close(self):
        self.closed = True


class FakeCgroup:
    paths: dict = {}
    rootless = False

    def __init__(self, events) -> None:
        self.events = events

    def join_fds(self, pid):
        self.events.append(("join cgroup", pid))
        return [], ["cgroup.procs"]

    def plan(self, resources, devices):
        self.events.append(("plan resources", resources))

    def apply(self, resources, devices):
        self.events.append(("apply resources", resources))

    def state(self):
        return {}


class FakeStateDir:
    def __init__(self, events) -> None:
        self.events = events

    def save(self, state):
        self.events.append(("save state", state["pid"]))


SPEC = {
    "ociVersion": "1.2.0",
    "process": {"args": ["true"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]},
    "root": {"path": "rootfs"},
    "hooks": {"prestart": [{"path": "/bin/true"}], "createRuntime": [{"path": "/bin/true"}]},
    "linux": {"resources": {"pids": {"limit": 10}},
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]},
}


@pytest.fixture
def events(monkeypatch):
    ev: list = []
    monkeypatch.setattr(launch, "_write_id_maps", lambda pid, linux: ev.append(("write id maps", pid)))
    monkeypatch.setattr(launch, "_write_time_offsets", lambda pid, linux: ev.append(("write time offsets", pid)))
    monkeypatch.setattr(launch, "_set_rlimits", lambda pid, rl: ev.append(("set rlimits", pid, len(rl))))
    monkeypatch.setattr(launch, "proc_start_time", lambda pid: 4242)
    from pyrunc import hooks
    from pyrunc.security import attrs
    monkeypatch.setattr(attrs, "reset_affinity", lambda pid: None)
    monkeypatch.setattr(hooks, "run_hooks", lambda name, hs, st, cwd=None: ev.append(("run hooks", name, st["pid"])))
    return ev


def _create(events, script, mode="create", fail_send_at=None) -> launch._Create:
    o = launch.CreateOptions(bundle="/bundle", mode=mode)
    o.config = SPEC
    c = launch._Create("/run/test", "ctr", o)
    c.linux, c.process, c.nss = SPEC["linux"], SPEC["process"], {"user": ""}
    c.state = {"id": "ctr", "pid": 0, "bundle": "/bundle", "rootfs": "/bundle/rootfs", "created": "now"}
    c.cg, c.sd = FakeCgroup(events), FakeStateDir(events)
    c.ch = FakeChannel(script, events, fail_send_at)
    c.pid_s = 1234  # the stage child, which is the init itself here (no new pid namespace)
    return c


def test_the_full_sequence_in_order(events):
    c = _create(events, [(Msg.USERNS, b""), (Msg.INIT_PID, b"1234"), (Msg.HOOKS, b""),
                         (Msg.CONSOLE, b""), (Msg.READY, b"")])
    launch.Handshake(c).serve()
    assert events == [
        ("write id maps", 1234),
        ("reply", Msg.USERNS_DONE, ""),
        ("join cgroup", 1234),
        ("reply", Msg.CGROUP_JOINED, "1234\ncgroup.procs"),
        ("save state", 1234),
        ("plan resources", {"pids": {"limit": 10}}),  # while the init mounts
        ("apply resources", {"pids": {"limit": 10}}),
        ("run hooks", "prestart", 1234),
        ("run hooks", "createRuntime", 1234),
        ("reply", Msg.HOOKS_DONE, ""),
        ("set rlimits", 1234, 1),
    ]
    assert c.init_pid == 1234 and c.state["pid"] == 1234 and c.state["config"] is SPEC
    assert c.ch.script == []  # READY ended the handshake: nothing more was read


def test_time_offsets_then_ready_applies_the_resources_once(events):
    c = _create(events, [(Msg.TIMENS, b""), (Msg.INIT_PID, b"1234"), (Msg.READY, b"")])
    launch.Handshake(c).serve()
    assert [e[0] for e in events] == ["write time offsets", "reply", "join cgroup", "reply", "save state",
                                      "plan resources", "apply resources", "set rlimits"]
    assert events[1] == ("reply", Msg.TIMENS_DONE, "")


def test_an_error_message_is_an_init_error(events):
    c = _create(events, [(Msg.INIT_PID, b"1234"), (Msg.ERROR, b"error mounting proc: permission denied")])
    with pytest.raises(InitError) as e:
        launch.Handshake(c).serve()
    assert str(e.value) == ("pyrunc create failed: unable to start container process: error during container "
                            "init: error mounting proc: permission denied")
    assert e.value.reason == "error mounting proc: permission denied" and e.value.op == "create"


def test_eof_is_the_init_dying(events):
    c = _create(events, [(Msg.USERNS, b"")], mode="run")
    with pytest.raises(InitError, match="^pyrunc run failed: container init exited unexpectedly$"):
        launch.Handshake(c).serve()


def test_the_child_gone_while_we_reply_reports_its_last_word(events):
    c = _create(events, [(Msg.USERNS, b""), (Msg.ERROR, b"unshare: operation not permitted")],
                fail_send_at=Msg.USERNS_DONE)
    with pytest.raises(InitError) as e:
        launch.Handshake(c).serve()
    assert e.value.reason == "unshare: operation not permitted"


@pytest.mark.parametrize("tag", ["Z", Msg.CGROUP_JOINED, Msg.GO])
def test_an_unknown_message_is_one_line(events, tag):
    c = _create(events, [(tag, b"")])
    with pytest.raises(PyruncError) as e:
        launch.Handshake(c).serve()
    assert not isinstance(e.value, InitError)
    assert str(e.value) == f"pyrunc create failed: unexpected sync message {tag!r} from the container's init"
    assert "\n" not in str(e.value) and events == []


def test_the_inits_requests_before_its_pid_wait_for_it(events, monkeypatch):
    """The init runs on while the stage child reports its pid: its mount
    source request may come first, and is served once the pid is known."""
    from pyrunc.rootfs import idmap
    monkeypatch.setattr(idmap, "mount_source", lambda m, bundle, pid, kind: events.append(("mount source", pid)) or -1)
    monkeypatch.setattr(launch.os, "waitpid", lambda pid, flags: events.append(("reap", pid)) or (pid, 0))
    spec = dict(SPEC, mounts=[{"destination": "/m", "source": "/s", "type": "bind"}])
    c = _create(events, [(Msg.USERNS, b""), (Msg.MOUNT_SOURCE, b"0 idmap"), (Msg.INIT_PID, b"1235"),
                         (Msg.READY, b"")])
    c.spec = spec
    launch.Handshake(c).serve()
    assert [e[:2] for e in events] == [
        ("write id maps", 1234), ("reply", Msg.USERNS_DONE), ("join cgroup", 1235), ("reply", Msg.CGROUP_JOINED),
        ("reap", 1234), ("save state", 1235), ("plan resources", {"pids": {"limit": 10}}), ("mount source", 1235),
        ("reply", Msg.MOUNT_SOURCE_FD), ("apply resources", {"pids": {"limit": 10}}), ("set rlimits", 1235)]


def test_an_fd_held_for_the_init_pid_is_closed_on_failure(events):
    r, w = os.pipe()
    os.close(w)
    c = _create(events, [(Msg.CONSOLE, b"", r), (Msg.ERROR, b"boom")])
    with pytest.raises(InitError):
        launch.Handshake(c).serve()
    with pytest.raises(OSError):
        os.fstat(r)


def test_a_second_init_pid_is_refused(events):
    c = _create(events, [(Msg.INIT_PID, b"1234"), (Msg.INIT_PID, b"999")])
    with pytest.raises(PyruncError, match="unexpected second init pid from the stage child"):
        launch.Handshake(c).serve()
    assert ("join cgroup", 999) not in events


def test_every_request_has_a_handler_and_the_tags_are_distinct():
    names = [n for n in vars(Msg) if n.isupper()]
    values = [getattr(Msg, n) for n in names]
    assert len(set(values)) == len(values) and all(len(v) <= 1 for v in values)
    requests = {Msg.USERNS, Msg.TIMENS, Msg.INIT_PID, Msg.HOOKS, Msg.MOUNT_SOURCE, Msg.CONSOLE,
                Msg.READY, Msg.ERROR, Msg.EOF}
    c = launch._Create.__new__(launch._Create)
    assert set(launch.Handshake(c).handlers) == requests


def test_checks_are_named_and_run_in_order(tmp_path):
    (tmp_path / "rootfs").mkdir()
    names = [n for n, _ in launch.CHECKS]
    assert names == ["config", "namespaces", "process attributes", "network devices", "seccomp",
                     "terminal", "preserve fds"]
    o = launch.CreateOptions(bundle=str(tmp_path), preserve_fds=-1)
    o.config = {"ociVersion": "1.2.0", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}}
    with pytest.raises(PyruncError, match="^--preserve-fds must not be negative$"):
        launch.validate(launch._Create("/run/test", "ctr", o))
    o.config = dict(o.config, process={"args": [], "cwd": "/"})
    with pytest.raises(PyruncError, match="args must not be empty"):  # the first check stops it
        launch.validate(launch._Create("/run/test", "ctr", o))


def _tag_literals(path: str) -> list[str]:
    """Calls of send/expect/expect_msg with a string literal as the tag."""
    tree = ast.parse(open(path).read())
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                n.func.attr in ("send", "expect", "expect_msg") and n.args and \
                isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
            bad.append(f"{path}:{n.lineno}")
    return bad


def test_no_tag_is_spelled_outside_sync_py():
    files = ["container/launch.py", "container/exec.py", "container/run.py", "init/child.py", "init/stage.py"]
    assert [b for f in files for b in _tag_literals(os.path.join(SRC, f))] == []
