"""Issue 11 item 6: every field of config.json is type-checked before anything
is made. A wrong type is one line on stderr naming the field, a non-zero exit
and nothing left behind; the same for exec's process.json and update's
resources. A fuzz test mutates a config many ways (type swaps, deletions,
out-of-range numbers, wrong containers, nulls, new fields) and runs each:
every outcome is a run or one clear line, never a Python exception's text."""

from __future__ import annotations

import copy
import os
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# (dotted path; indices are numbers), value, pyrunc's message. The base
# config is the `bundle` fixture's, running /bin/true, with a seccomp
# profile and a prestart hook so that those paths exist.
WRONG = [
    ("process.capabilities.bounding", "CAP_KILL",
     "process.capabilities.bounding: expected an array of strings, got a string"),
    ("process.user.uid", "0", "process.user.uid: expected an integer from 0 to 4294967295, got a string"),
    ("process.user.uid", -1, "process.user.uid: expected an integer from 0 to 4294967295, got -1"),
    ("process.user.gid", 2**40, "process.user.gid: expected an integer from 0 to 4294967295, got 1099511627776"),
    ("process.user.additionalGids", [1, "2"],
     "process.user.additionalGids[1]: expected an integer from 0 to 4294967295, got a string"),
    ("process.user.umask", 1.5, "process.user.umask: expected an integer from 0 to 4294967295, got a non-integer number"),
    ("process.args", "true", "process.args: expected an array of strings, got a string"),
    ("process.env", ["A=1", 5], "process.env[1]: expected a string, got an integer"),
    ("process.terminal", "false", "process.terminal: expected a boolean, got a string"),
    ("process.cwd", ["/"], "process.cwd: expected a string, got an array"),
    ("process.rlimits.0.hard", -1, "process.rlimits[0].hard: expected an integer from 0 to 18446744073709551615, got -1"),
    ("process.rlimits.0.soft", "1024",
     "process.rlimits[0].soft: expected an integer from 0 to 18446744073709551615, got a string"),
    ("process.noNewPrivileges", 1, "process.noNewPrivileges: expected a boolean, got an integer"),
    ("process.oomScoreAdj", "100", "process.oomScoreAdj: expected an integer, got a string"),
    ("process.consoleSize", [80, 24], "process.consoleSize: expected an object, got an array"),
    ("root.readonly", "yes", "root.readonly: expected a boolean, got a string"),
    ("root.path", 7, "root.path: expected a string, got an integer"),
    ("hostname", 42, "hostname: expected a string, got an integer"),
    ("ociVersion", 1.0, "ociVersion: expected a string, got a number"),
    ("mounts.2.options.0", 1, "mounts[2].options[0]: expected a string, got an integer"),
    ("mounts", {}, "mounts: expected an array of objects, got an object"),
    ("linux.namespaces.0", "pid", "linux.namespaces[0]: expected an object, got a string"),
    ("linux.resources.memory.limit", "1g", "linux.resources.memory.limit: expected an integer, got a string"),
    ("linux.resources.pids.limit", 1.5, "linux.resources.pids.limit: expected an integer, got a non-integer number"),
    ("linux.resources.cpu.shares", -1,
     "linux.resources.cpu.shares: expected an integer from 0 to 18446744073709551615, got -1"),
    ("linux.resources.blockIO.weight", 70000,
     "linux.resources.blockIO.weight: expected an integer from 0 to 65535, got 70000"),
    ("linux.sysctl", {"kernel.shmmax": 1}, 'linux.sysctl["kernel.shmmax"]: expected a string, got an integer'),
    ("linux.seccomp.syscalls.0.args.0.index", "1",
     "linux.seccomp.syscalls[0].args[0].index: expected an integer from 0 to 18446744073709551615, got a string"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": -1}],
     "linux.devices[0].fileMode: expected an integer from 0 to 4294967295, got -1"),
    ("linux.maskedPaths", "/proc/kcore", "linux.maskedPaths: expected an array of strings, got a string"),
    ("hooks.prestart.0.timeout", "5", "hooks.prestart[0].timeout: expected an integer, got a string"),
    ("annotations", {"a": 1}, 'annotations["a"]: expected a string, got an integer'),
    # beyond what Go's decoder refuses (runc accepts these)
    ("linux.uidMappings", [{"containerID": 0, "hostID": 1000}], "linux.uidMappings[0].size: required field is missing"),
    ("process.env", ["A=\x00"], "process.env[0]: must not contain a NUL character"),
]
PYRUNC_ONLY = {"linux.uidMappings", "process.env"}


def set_path(cfg: dict, path: str, value) -> None:
    cur = cfg
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        cur = cur[k] if isinstance(k, int) else cur.setdefault(k, {})
    cur[keys[-1]] = value


def base_config(cfg: dict) -> dict:
    cfg["process"]["args"] = ["true"]
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]}]}
    cfg["hooks"] = {"prestart": [{"path": "/bin/true"}]}
    return cfg


@pytest.mark.parametrize("path, value, msg", WRONG, ids=[f"{p}={json.dumps(v)[:20]}" for p, v, _ in WRONG])
def test_wrong_type_is_one_line_naming_the_field(rt, bundle, leakcheck, path, value, msg):
    if rt.is_runc and path in PYRUNC_ONLY:
        pytest.skip("Go's decoder accepts it (runc checks types only)")
    with bundle.edit() as cfg:
        base_config(cfg)
        set_path(cfg, path, value)
    cid = rt.new_id()
    res = rt.fail("run", "--bundle", bundle.path, cid, one_line=True)
    if not rt.is_runc:  # runc: "json: cannot unmarshal ... into Go struct field ..."
        assert res.error_message == msg
    assert res.stdout == ""
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_base_config_runs(rt, bundle):
    """The cases above fail because of their one change, not the base."""
    with bundle.edit() as cfg:
        base_config(cfg)
    rt.run_fg(rt.new_id(), bundle).expect_ok()


@pytest.mark.parametrize("mode", [["create"], ["run", "-d"]])
def test_wrong_type_create_modes(rt, bundle, leakcheck, mode):
    with bundle.edit() as cfg:
        cfg["process"]["capabilities"]["bounding"] = "CAP_KILL"
    res = rt.fail(*mode, "--bundle", bundle.path, rt.new_id(), one_line=True)
    assert "process.capabilities.bounding" in res.stderr
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@pytest.fixture
def running(rt, bundle):
    bundle.set_args("sleep", "3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    return cid


@pytest.mark.parametrize("proc, msg", [
    ({"args": "id", "cwd": "/"}, "process.args: expected an array of strings, got a string"),
    ({"args": ["id"], "cwd": "/", "user": {"uid": -5}}, "process.user.uid: expected an integer from 0 to 4294967295, got -5"),
    ({"args": ["id"], "cwd": "/", "env": [None]}, "process.env[0]: expected a string, got null"),
    ({"args": ["id"], "cwd": "/", "capabilities": {"bounding": "CAP_KILL"}},
     "process.capabilities.bounding: expected an array of strings, got a string"),
    ({"args": ["id"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1}]},
     "process.rlimits[0].soft: required field is missing"),
])
def test_exec_process_json_types(rt, running, tmp_path, proc, msg):
    if rt.is_runc:
        pytest.skip("pyrunc's messages")
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps(proc))
    res = rt.fail("exec", "-p", pj, running, rc=255, one_line=True)
    assert res.error_message == f"exec failed: {msg}"  # runc's prefix for exec's errors
    assert rt.exec_(running, "true").rc == 0  # the container is unharmed


def test_exec_user_flag_out_of_range(rt, running):
    if rt.is_runc:
        pytest.skip("pyrunc's messages")
    res = rt.fail("exec", "-u", "4294967296", running, "id", rc=255, one_line=True)
    assert res.error_message == "exec failed: process.user.uid: expected an integer from 0 to 4294967295, got 4294967296"


@pytest.mark.parametrize("res_json, msg", [
    ({"memory": {"limit": "1g"}}, "resources.memory.limit: expected an integer, got a string"),
    ({"pids": {"limit": 1.5}}, "resources.pids.limit: expected an integer, got a non-integer number"),
    ({"cpu": {"shares": -2}}, "resources.cpu.shares: expected an integer from 0 to 18446744073709551615, got -2"),
    ({"blockIO": {"weightDevice": [{"major": 8}]}}, "resources.blockIO.weightDevice[0].minor: required field is missing"),
    ({"cpu": []}, "resources.cpu: expected an object, got an array"),
])
def test_update_resources_types(rt, running, tmp_path, res_json, msg):
    if rt.is_runc:
        pytest.skip("pyrunc's messages")
    f = tmp_path / "r.json"
    f.write_text(json.dumps(res_json))
    before = rt.state(running)
    res = rt.fail("update", "-r", f, running, one_line=True)
    assert res.error_message == msg
    assert rt.state(running) == before


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 panics on a null memory limit; 1.5 takes it as unset")
def test_update_null_means_unchanged(rt, running, tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"memory": {"limit": None}, "pids": {"limit": 99}}))
    rt.ok("update", "-r", f, running)


# --- fuzz -------------------------------------------------------------------------------

_PY_TEXT = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|'NoneType'|object has no attribute|"
                      r"invalid literal for int\(\)|not subscriptable|not iterable|unhashable type|"
                      r"positional argument|object is not|<class |embedded null|too large to convert|"
                      r"unsupported operand|must be (str|int|an integer|real number)|NoneType")
_STRINGS = ["", "/", "a", "/tmp", "/dev/null", "rw", "x y", "\u00e9t\u00e9", "\ud800", "a\x00b", "0", "-1", "0-1",
            "RLIMIT_NOFILE", "RLIMIT_FOO", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_CMP_EQ", "SCMP_ARCH_X86",
            "CAP_CHOWN", "c", "p", "pid", "user", "net.ipv4.ip_forward", "2MB", "SCHED_FIFO", "IOPRIO_CLASS_BE",
            "LINUX32", "MPOL_BIND", "a" * 300]
_WRONGS = ["x", 7, -1, 1.5, True, None, [], {}, ["x"], [1], {"a": 1}, 2**64, -2**63 - 1]
# fields whose well-typed random values could reach the host: left alone
_FIXED = {("linux", "cgroupsPath"), ("root", "path"), ("process", "args")}


def _schema():
    from pyrunc.spec import schema
    return schema


def _typed_value(t: tuple, depth: int = 0) -> st.SearchStrategy:
    k = t[0]
    if k == "s":
        return st.sampled_from(_STRINGS) | st.text(max_size=4)
    if k == "b":
        return st.booleans()
    if k == "i":
        edges = [v for v in (0, 1, -1, 7, 1000, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1, -2**63) if t[1] <= v <= t[2]]
        return st.sampled_from(edges) | st.integers(t[1], t[2])
    if k == "*":
        return st.none() | st.integers() | st.text(max_size=3)
    if k == "a":
        return st.lists(_typed_value(t[1], depth + 1), max_size=2 if depth < 3 else 0)
    if k == "m":
        return st.dictionaries(st.sampled_from(_STRINGS[:8]), _typed_value(t[1], depth + 1), max_size=2 if depth < 3 else 0)
    fields, req = t[1], t[2]
    opt = {f: _typed_value(ft, depth + 1) for f, ft in fields.items() if f not in req} if depth < 3 else {}
    return st.fixed_dictionaries({f: _typed_value(fields[f], depth + 1) for f in req}, optional=opt)


def _nodes(v, t, path=()):
    """(path, value, type or None) of every node of the config."""
    yield path, v, t
    if isinstance(v, dict):
        for k, x in v.items():
            ft = t[1].get(k) if t and t[0] == "o" else t[1] if t and t[0] == "m" else None
            yield from _nodes(x, ft, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _nodes(x, t[1] if t and t[0] == "a" else None, path + (i,))


def _absent(v, t, path=()):
    """(path, type) of every field the table knows that the config lacks."""
    if t is None or t[0] == "*":
        return
    if t[0] == "o" and isinstance(v, dict):
        for f, ft in t[1].items():
            if f in v:
                yield from _absent(v[f], ft, path + (f,))
            else:
                yield path + (f,), ft
    elif t[0] == "m" and isinstance(v, dict):
        for k, x in v.items():
            yield from _absent(x, t[1], path + (k,))
    elif t[0] == "a" and isinstance(v, list):
        for i, x in enumerate(v):
            yield from _absent(x, t[1], path + (i,))


def _at(cfg, path):
    for k in path[:-1]:
        cfg = cfg[k]
    return cfg


@st.composite
def mutated(draw, base: dict):
    cfg = copy.deepcopy(base)
    S = _schema()
    done = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["swap", "delete", "range", "container", "null", "add", "reroll"]))
        nodes = [(p, v, t) for p, v, t in _nodes(cfg, S.SPEC) if p and p[-2:] not in _FIXED]
        if op == "add":
            absent = [(p, t) for p, t in _absent(cfg, S.SPEC) if p[-2:] not in _FIXED]
            path, t = draw(st.sampled_from(absent))
            _at(cfg, path)[path[-1]] = draw(_typed_value(t))
        else:
            if op == "range":
                nodes = [n for n in nodes if n[2] and n[2][0] == "i"] or nodes
            elif op == "reroll":
                nodes = [n for n in nodes if n[2]] or nodes
            path, v, t = draw(st.sampled_from(nodes))
            parent = _at(cfg, path)
            if op == "delete":
                del parent[path[-1]]
            elif op == "null":
                parent[path[-1]] = None
            elif op == "swap":
                parent[path[-1]] = draw(st.sampled_from(_WRONGS))
            elif op == "container":
                parent[path[-1]] = [v] if not isinstance(v, list) else {"0": v}
            elif op == "range" and t and t[0] == "i":
                parent[path[-1]] = draw(st.sampled_from([t[1] - 1, t[2] + 1, t[1], t[2], 2**64, -2**63 - 1]))
            elif t:
                parent[path[-1]] = draw(_typed_value(t))
        done.append(f"{op} {'.'.join(map(str, path))}")
    return cfg, done


def _fuzz_base(cfg: dict) -> dict:
    base_config(cfg)
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                                 {"type": "RLIMIT_NPROC", "hard": 1000, "soft": 1000}]
    cfg["process"]["oomScoreAdj"] = 100
    cfg["process"]["user"].update({"umask": 18, "additionalGids": [1, 2]})
    cfg["hostname"] = "fuzz"
    cfg["annotations"] = {"org.example": "x"}
    cfg["hooks"]["poststop"] = [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}]
    cfg["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]})
    lx = cfg["linux"]
    lx.setdefault("resources", {}).update({"memory": {"limit": 256 << 20}, "pids": {"limit": 200}})
    lx["sysctl"] = {"kernel.shmmax": "68719476736"}
    lx["devices"] = [{"path": "/dev/fuzz0", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}]
    lx["personality"] = {"domain": "LINUX"}
    return cfg


def test_fuzz_base_runs(rt, bundle):
    if rt.is_runc:
        pytest.skip("pyrunc's own contract")
    with bundle.edit() as cfg:
        _fuzz_base(cfg)
    rt.run_fg(rt.new_id(), bundle).expect_ok()


@pytest.mark.slow
def test_fuzz_mutated_configs(rt, bundle, leakcheck):
    """Each mutated config either runs, or fails with exactly one clear line
    (never a Python exception's name or text); nothing is left behind."""
    if rt.is_runc:
        pytest.skip("pyrunc's own contract (runc prints Go's decoder errors, and accepts some)")
    from pyrunc.errors import PyruncError
    base = _fuzz_base(copy.deepcopy(bundle.config))
    S = _schema()

    @settings(max_examples=int(os.environ.get("PYRUNC_FUZZ_EXAMPLES", "70")), deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(mutated(base))
    def one(case):
        cfg, ops = case
        bundle.config = cfg
        bundle.save()
        res = rt.run_fg(rt.new_id(), bundle)
        errors = [ln for ln in res.err_lines if "level=warning" not in ln]
        what = f"{ops}\n{res}"
        assert not res.timed_out, what
        assert not _PY_TEXT.search(res.stderr), "Python text on stderr: " + what
        if errors:  # pyrunc refused (otherwise the container ran; its exit status is its own)
            assert res.rc != 0 and len(errors) == 1, what
        try:  # a type error: the message is exactly the walk's, naming the field
            S.check(json.loads(bundle.config_path.read_text()))
        except PyruncError as e:
            assert errors and res.error_message == str(e), what
        assert rt.container_dirs() == [], what
        leakcheck.assert_clean()

    one()


@pytest.mark.parametrize("text", ['{"ociVersion": "1.0.2", "process": {"a" 1}}', '{"ociVersion": "1.0.2",}',
                                  '{"process": {"user": {"uid": 1' + "0" * 5000 + '}}}'],
                         ids=["missing-colon", "trailing-comma", "5001-digit-number"])
def test_malformed_json_is_one_plain_line(rt, bundle, leakcheck, text):
    """No Python internals (the JSON scanner's SystemError, the int digit limit)."""
    bundle.config_path.write_text(text)
    res = rt.fail("run", "--bundle", bundle.path, rt.new_id(), one_line=True)
    assert not _PY_TEXT.search(res.stderr) and "Scanner" not in res.stderr and "sys.set_int" not in res.stderr, res
    assert rt.container_dirs() == []
    leakcheck.assert_clean()
