"""Pure logic of the core: flag parsing, mount options, JSON, signals, ids,
the list table, status derivation and cgroup path resolution."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, strategies as st

from pyrunc import fastjson
from pyrunc.cli.list import tabwrite
from pyrunc.cli.main import GLOBAL_ALIASES, GLOBAL_FLAGS, check_args, parse_flags
from pyrunc.container import state as S
from pyrunc.container.ops import parse_signal
from pyrunc.errors import PyruncError
from pyrunc.linux import consts as C
from pyrunc.rootfs import options as O


# -- flags ----------------------------------------------------------------------
RUN_FLAGS = {"bundle": ("str", ""), "detach": ("bool", False), "preserve-fds": ("int", 0),
             "env": ("list", [])}


def test_flags_stop_at_first_positional():
    opts, rest = parse_flags(RUN_FLAGS, {"b": "bundle", "d": "detach"},
                             ["-d", "--bundle", "/b", "id", "--detach", "x"])
    assert opts["detach"] is True and opts["bundle"] == "/b"
    assert rest == ["id", "--detach", "x"]


def test_flags_equals_forms_and_lists():
    opts, rest = parse_flags(RUN_FLAGS, {"e": "env"},
                             ["--bundle=/x", "-e", "A=1", "--env=B=2", "--detach=false", "--preserve-fds=2", "--", "-id"])
    assert opts == {"bundle": "/x", "detach": False, "preserve-fds": 2, "env": ["A=1", "B=2"]}
    assert rest == ["-id"]


def test_flag_lists_are_not_shared_between_calls():
    a, _ = parse_flags(RUN_FLAGS, {}, ["--env", "A=1"])
    b, _ = parse_flags(RUN_FLAGS, {}, [])
    assert a["env"] == ["A=1"] and b["env"] == []


@pytest.mark.parametrize("argv, msg", [
    (["--nope"], "flag provided but not defined: -nope"),
    (["--bundle"], "flag needs an argument: -bundle"),
    (["--preserve-fds", "x"], "invalid value"),
    (["--detach=maybe"], "invalid boolean"),
])
def test_flag_errors(argv, msg):
    with pytest.raises(PyruncError, match=msg):
        parse_flags(RUN_FLAGS, {}, argv)


def test_flags_after_arguments_when_reordering():
    """urfave/cli v1's reorderArgs (every runc command but exec and ps):
    known flags anywhere, unknown ones after an argument are arguments,
    `--` ends flags."""
    def p(argv):
        return parse_flags(RUN_FLAGS, {"b": "bundle", "d": "detach"}, argv, stop_at_positional=False)
    opts, rest = p(["id", "-d", "--bundle", "/b", "x", "--env=A=1"])
    assert (opts["detach"], opts["bundle"], opts["env"], rest) == (True, "/b", ["A=1"], ["id", "x"])
    opts, rest = p(["id", "--nope", "-d"])
    assert opts["detach"] is True and rest == ["id", "--nope"]
    opts, rest = p(["id", "--", "-d", "--bundle"])
    assert opts["detach"] is False and rest == ["id", "-d", "--bundle"]
    with pytest.raises(PyruncError, match="flag provided but not defined: -nope"):
        p(["--nope", "id"])
    with pytest.raises(PyruncError, match="flag needs an argument: -bundle"):
        p(["id", "--bundle"])


def test_global_flags():
    opts, rest = parse_flags(GLOBAL_FLAGS, GLOBAL_ALIASES, ["--root", "/r", "--log-format=json", "--debug", "state", "x"])
    assert (opts["root"], opts["log-format"], opts["debug"], rest) == ("/r", "json", True, ["state", "x"])


def test_check_args_messages():
    check_args("state", ["a"], 1)
    with pytest.raises(PyruncError, match='"state" requires exactly 1 argument'):
        check_args("state", [], 1)
    with pytest.raises(PyruncError, match='"kill" requires a minimum of 1 argument'):
        check_args("kill", [], 1, "min")
    with pytest.raises(PyruncError, match='"kill" requires a maximum of 2 argument'):
        check_args("kill", ["a", "b", "c"], 2, "max")


# -- mount options ----------------------------------------------------------------
def test_mount_flags_set_and_clear_in_order():
    o = O.parse(["ro", "nosuid", "nodev", "rw", "suid"])
    assert o.flags == C.MS_NODEV


def test_mount_flags_remember_what_was_cleared():
    """runc remounts a bind when an option clears a flag ("rw", "dev"), and
    refuses to clear a locked one: the cleared set is kept apart."""
    o = O.parse(["ro", "rw", "nodev", "dev", "nosuid"])
    assert o.flags == C.MS_NOSUID
    assert o.cleared == C.MS_RDONLY | C.MS_NODEV
    assert O.parse(["rw", "ro"]).cleared == 0
    assert O.parse(["acl"]).data_str == "acl"  # filesystem data, as in runc


def test_statfs_flags_to_mount_flags():
    assert O.statfs_to_mount_flags(1 | 2 | 1024) == C.MS_RDONLY | C.MS_NOSUID | C.MS_NOATIME
    assert O.statfs_to_mount_flags(4096 | 2048) == C.MS_RELATIME | C.MS_NODIRATIME
    assert O.statfs_to_mount_flags(0x2000) == C.MS_NOSYMFOLLOW | C.MS_STRICTATIME  # no atime flag: strict
    assert O.flag_names(C.MS_RDONLY | C.MS_NODEV) == "MS_RDONLY|MS_NODEV"
    assert O.flag_names(1 << 30) == hex(1 << 30)


def test_mount_data_propagation_and_extensions():
    o = O.parse(["rbind", "rslave", "mode=755", "size=1m", "tmpcopyup", "idmap"])
    assert o.flags == C.MS_BIND | C.MS_REC
    assert o.propagation == [C.MS_SLAVE | C.MS_REC]
    assert o.data_str == "mode=755,size=1m"
    assert o.extensions == {"tmpcopyup", "idmap"}


def test_recursive_attrs_and_atime_family():
    o = O.parse(["rro", "rnosuid", "rnoatime", "rstrictatime"])
    assert o.attr_set & C.MOUNT_ATTR_RDONLY and o.attr_set & C.MOUNT_ATTR_NOSUID
    assert o.attr_set & C.MOUNT_ATTR__ATIME == C.MOUNT_ATTR_STRICTATIME  # last of the family wins
    assert o.attr_clr & C.MOUNT_ATTR__ATIME == C.MOUNT_ATTR__ATIME
    o = O.parse(["rro", "rrw"])
    assert not o.attr_set & C.MOUNT_ATTR_RDONLY and o.attr_clr & C.MOUNT_ATTR_RDONLY


# -- fastjson ----------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text() |
    st.floats(allow_nan=False, allow_infinity=False),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20)


@given(json_values)
def test_fastjson_matches_json(v):
    assert fastjson.dumps(v) == json.dumps(v, separators=(",", ":"))
    assert fastjson.dumps(v, indent=2) == json.dumps(v, indent=2)
    assert fastjson.loads(json.dumps(v)) == v


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "nul", '{"a" 1}'])
def test_fastjson_errors_are_value_errors(bad):
    with pytest.raises(ValueError):
        fastjson.loads(bad)


# -- signals, ids, table -----------------------------------------------------------
@pytest.mark.parametrize("s, n", [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9), ("TERM", 15),
                                  ("0", 0), ("SIGRTMIN+1", 35), ("USR1", 10)])
def test_parse_signal(s, n):
    assert parse_signal(s) == n


@pytest.mark.parametrize("s", ["FOO", "SIGFOO", "65", "-1", ""])
def test_parse_signal_unknown(s):
    with pytest.raises(PyruncError, match="unknown signal"):
        parse_signal(s)


@pytest.mark.parametrize("cid", ["a", "my-container_1.2+x", "A" * 255])
def test_valid_ids(cid):
    S.validate_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", "a b", "é", "A" * 256, "a\nb"])
def test_invalid_ids(cid):
    with pytest.raises(PyruncError, match="invalid container ID format"):
        S.validate_id(cid)


def test_tabwrite_like_go_tabwriter():
    out = tabwrite([["ID", "PID", "STATUS"], ["x1", "7755", "created"]])
    assert out == "ID          PID         STATUS\nx1          7755        created\n"
    out = tabwrite([["ID", "B"], ["a-very-long-container-id", "z"]])
    assert out.splitlines()[1] == "a-very-long-container-id   z"


def test_rfc3339nano():
    assert S.rfc3339nano(1_700_000_000_123_456_700) == "2023-11-14T22:13:20.1234567Z"
    assert S.rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


# -- status -------------------------------------------------------------------------
def test_status_guards_pid_reuse(tmp_path):
    me = os.getpid()
    start = S.proc_start_time(me)
    fifo = tmp_path / "exec.fifo"
    st_ = {"pid": me, "init_start": start}
    assert S.status_of(st_, str(fifo)) == "running"
    fifo.write_text("")
    assert S.status_of(st_, str(fifo)) == "created"
    assert S.status_of({"pid": me, "init_start": start + 1}, str(fifo)) == "stopped"
    assert S.status_of({"pid": 0}, str(fifo)) == "stopped"


def test_oci_state_field_order():
    doc = S.oci_state({"id": "x", "pid": 5, "bundle": "/b", "rootfs": "/b/r", "created": "t",
                       "annotations": {"k": "v"}}, "running")
    assert list(doc) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                         "annotations", "owner"]
    assert S.oci_state({"id": "x", "pid": 5, "bundle": "/b", "rootfs": "/b/r", "created": "t"},
                       "stopped")["pid"] == 0


# -- cgroup paths (fake mount table) ---------------------------------------------------
def test_cgroup_paths_follow_runc(monkeypatch):
    from pyrunc import cgroups
    monkeypatch.setattr(cgroups, "hierarchies", lambda: {
        "cpu,cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "memory": ("/sys/fs/cgroup/memory", "/"),
        "": ("/sys/fs/cgroup/unified", "/"),
    })
    monkeypatch.setattr(cgroups, "_own_cgroups", lambda: {"cpu": "/", "cpuacct": "/", "memory": "/user/1", "": "/sess"})
    rel = cgroups.resolve_paths("", "ctr")
    assert rel == {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/ctr",
                   "memory": "/sys/fs/cgroup/memory/user/1/ctr",
                   "": "/sys/fs/cgroup/unified/sess/ctr"}
    absolute = cgroups.resolve_paths("/machine/ctr", "ignored")
    assert absolute["memory"] == "/sys/fs/cgroup/memory/machine/ctr"
    assert cgroups.resolve_paths("/a/../b", "x")[""] == "/sys/fs/cgroup/unified/b"


def test_init_death_names_the_oom_killer(tmp_path):
    from pyrunc.cgroups import Manager
    from pyrunc.container.launch import _died
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    cg = Manager({"memory": str(tmp_path)})
    assert _died(cg) == "container init exited unexpectedly"
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert "OOM killer" in _died(cg)
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert "OOM killer" in _died(Manager({"": str(v2)}))
    assert _died(None) == "container init exited unexpectedly"
