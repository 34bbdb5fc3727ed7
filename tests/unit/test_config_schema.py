"""The typed config (spec/schema.py): every kind of type error names its field,
Go's integer ranges hold, null means absent, unknown fields are ignored; and
the library's classes (spec/model.py) agree with the table and round-trip."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import timeit
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc.errors import PyruncError
from pyrunc.spec import example as ex
from pyrunc.spec import model as M
from pyrunc.spec import schema as S


def err(doc, t=S.SPEC, root=""):
    with pytest.raises(PyruncError) as e:
        S.check(doc, t, root)
    return str(e.value)


def spec_with(path: str, value):
    """The example spec with the dotted `path` set (intermediate objects made)."""
    d = ex.example()
    cur = d
    keys = path.split(".")
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur.setdefault(k, {})
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return d


# --- valid documents --------------------------------------------------------------

@pytest.mark.parametrize("cgroupns", [True, False])
def test_spec_output_passes(cgroupns):
    d = ex.example(cgroupns)
    S.check(d)
    ex.to_rootless(d)
    S.check(d)


def test_valid_config_is_left_as_is():
    d = ex.example()
    before = copy.deepcopy(d)
    S.check(d)
    assert d == before


def test_every_field_in_use():
    """A config using every section of the table passes."""
    S.check(_full_spec())


# --- the kinds of type error, each naming its field ---------------------------------------

@pytest.mark.parametrize("path, value, msg", [
    ("process.capabilities.bounding", "CAP_KILL",
     "process.capabilities.bounding: expected an array of strings, got a string"),
    ("process.capabilities.bounding", ["CAP_KILL", 1],
     "process.capabilities.bounding[1]: expected a string, got an integer"),
    ("process.terminal", "false", "process.terminal: expected a boolean, got a string"),
    ("process.terminal", 0, "process.terminal: expected a boolean, got an integer"),
    ("process.user", [], "process.user: expected an object, got an array"),
    ("process.user.uid", "0", "process.user.uid: expected an integer from 0 to 4294967295, got a string"),
    ("process.user.uid", True, "process.user.uid: expected an integer from 0 to 4294967295, got a boolean"),
    ("process.user.uid", 1.0, "process.user.uid: expected an integer from 0 to 4294967295, got a non-integer number"),
    ("process.args", "sh", "process.args: expected an array of strings, got a string"),
    ("process.rlimits", {}, "process.rlimits: expected an array of objects, got an object"),
    ("process.rlimits.0", "RLIMIT_NOFILE", "process.rlimits[0]: expected an object, got a string"),
    ("hostname", 7, "hostname: expected a string, got an integer"),
    ("annotations", {"a": 1}, 'annotations["a"]: expected a string, got an integer'),
    ("annotations", ["a"], "annotations: expected an object with string values, got an array"),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1},
     'linux.sysctl["net.ipv4.ip_forward"]: expected a string, got an integer'),
    ("linux.resources.memory.limit", "1g", "linux.resources.memory.limit: expected an integer, got a string"),
    ("linux.resources.rdma", {"mlx": 1}, 'linux.resources.rdma["mlx"]: expected an object, got an integer'),
    ("linux.timeOffsets", {"boottime": {"secs": "1"}},
     'linux.timeOffsets["boottime"].secs: expected an integer, got a string'),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                                      "args": [{"index": -1, "value": 0, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index: expected an integer from 0 to 18446744073709551615, got -1"),
    ("mounts.2.options", ["nosuid", None], "mounts[2].options[1]: expected a string, got null"),
    ("mounts.0.uidMappings", [{"containerID": 0, "hostID": 1, "size": "1"}],
     "mounts[0].uidMappings[0].size: expected an integer from 0 to 4294967295, got a string"),
    ("hooks.prestart", [{"path": "/bin/true", "timeout": "5"}],
     "hooks.prestart[0].timeout: expected an integer, got a string"),
    ("windows", {"layerFolders": "C:\\"}, "windows.layerFolders: expected an array of strings, got a string"),
    ("vm", {"kernel": {"path": 1}}, "vm.kernel.path: expected a string, got an integer"),
    ("solaris", [], "solaris: expected an object, got an array"),
    ("zos", {"namespaces": [{"type": 1}]}, "zos.namespaces[0].type: expected a string, got an integer"),
    ("freebsd", {"jail": {"allow": {"mount": [1]}}}, "freebsd.jail.allow.mount[0]: expected a string, got an integer"),
])
def test_type_errors_name_the_field(path, value, msg):
    assert err(spec_with(path, value)) == msg


def test_missing_required_field():
    assert err(spec_with("linux.uidMappings", [{"containerID": 0, "hostID": 1000}])) == \
        "linux.uidMappings[0].size: required field is missing"
    assert err(spec_with("linux.namespaces", [{"path": "/proc/1/ns/pid"}])) == \
        "linux.namespaces[0].type: required field is missing"
    assert err(spec_with("linux.seccomp", {"syscalls": []})) == "linux.seccomp.defaultAction: required field is missing"


def test_nul_and_lone_surrogates_are_refused():
    assert err(spec_with("process.env", ["A=1\x00"])) == "process.env[0]: must not contain a NUL character"
    assert err(spec_with("hostname", "a\ud800")) == "hostname: is not valid Unicode (a lone surrogate escape)"
    assert err(spec_with("annotations", {"k\x00": "v"})) == 'annotations["k\\u0000"]: key must not contain a NUL character'
    S.check(spec_with("hostname", "h\u00e9llo-\U0001f600"))  # any real Unicode is fine


def test_root_label_names_the_document():
    assert err({"args": [1]}, S.PROCESS, "process") == "process.args[0]: expected a string, got an integer"
    assert err([], S.PROCESS, "process") == "process: expected an object, got an array"
    assert err({"memory": {"limit": "x"}}, S.RESOURCES, "resources") == \
        "resources.memory.limit: expected an integer, got a string"
    assert err(None, S.SPEC) == "config: expected an object, got null"


# --- integer ranges (Go's types) ----------------------------------------------------------

@pytest.mark.parametrize("path, lo, hi", [
    ("process.user.uid", 0, 2**32 - 1),
    ("process.user.umask", 0, 2**32 - 1),
    ("process.scheduler.nice", -2**31, 2**31 - 1),
    ("process.rlimits.0.hard", 0, 2**64 - 1),
    ("process.oomScoreAdj", -2**63, 2**63 - 1),
    ("linux.resources.memory.limit", -2**63, 2**63 - 1),
    ("linux.resources.blockIO.weight", 0, 2**16 - 1),
    ("linux.resources.network.classID", 0, 2**32 - 1),
])
def test_integer_ranges(path, lo, hi):
    extra = {"process.scheduler.nice": ("process.scheduler.policy", "SCHED_OTHER")}.get(path)
    for v, ok in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
        d = spec_with(path, v)
        if extra:
            d["process"]["scheduler"]["policy"] = extra[1]
        if ok:
            S.check(d)
        else:
            m = err(d)
            assert m.startswith(path.replace(".0.", "[0].") + ": expected an integer") and m.endswith(f"got {v}"), m


def test_uid_beyond_32_bits_is_refused_not_wrapped():
    assert err(spec_with("process.user.uid", 2**40)) == \
        "process.user.uid: expected an integer from 0 to 4294967295, got 1099511627776"
    assert err(spec_with("process.user.uid", 10**40)).endswith("got a larger integer")


# --- null and unknown fields, as Go's decoder ---------------------------------------------

def test_null_field_means_absent():
    d = spec_with("hostname", None)
    d["process"]["capabilities"] = None
    d["linux"]["resources"] = None
    S.check(d)
    assert "hostname" not in d and "capabilities" not in d["process"] and "resources" not in d["linux"]


def test_null_required_field_is_missing():
    assert err(spec_with("linux.namespaces", [{"type": None}])) == "linux.namespaces[0].type: required field is missing"


def test_null_items_and_map_values_are_refused():
    assert err(spec_with("process.args", ["sh", None])) == "process.args[1]: expected a string, got null"
    assert err(spec_with("linux.sysctl", {"a": None})) == 'linux.sysctl["a"]: expected a string, got null'


def test_unknown_fields_are_ignored():
    d = spec_with("process.fancy", {"anything": [1, None]})
    d["linux"]["notYetInTheSpec"] = 7
    d["whatever"] = None
    S.check(d)
    assert d["whatever"] is None  # unknown: not even nulls are touched


def test_describe():
    assert S.describe(S._arr(S.STR)) == "an array of strings"
    assert S.describe(S._arr(S._arr(S.U32))) == "an array of arrays of integers from 0 to 4294967295"
    assert S.describe(S._map(S.STR)) == "an object with string values"
    assert S.describe(S.I64) == "an integer"


def test_check_is_fast():
    """DESIGN.md: the walk costs well under a millisecond on a typical config."""
    d = ex.example()
    n = 200
    per = timeit.timeit(lambda: S.check(d), number=n) / n
    assert per < 1e-3, f"{per * 1e6:.0f} us per check"


def test_create_path_imports_stay_light():
    """The walk and its table import nothing heavy, and the CLI's create
    path never loads the model classes (dataclasses, typing)."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    code = ("import sys; sys.path.insert(0, %r); import pyrunc.spec.schema, pyrunc.container.launch; "
            "print(' '.join(sorted(m for m in ('dataclasses', 'typing', 'json', 're', 'pyrunc.spec.model') "
            "if m in sys.modules)))" % src)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- strategies from the table: valid documents and one-leaf breakage ----------------------

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)


def valid(t: tuple, depth: int = 0) -> st.SearchStrategy:
    k = t[0]
    if k == "s":
        return _TEXT
    if k == "b":
        return st.booleans()
    if k == "i":
        return st.integers(t[1], t[2])
    if k == "*":
        return st.none() | st.integers() | _TEXT
    if k == "a":
        return st.lists(valid(t[1], depth + 1), max_size=2 if depth < 4 else 0)
    if k == "m":
        return st.dictionaries(_TEXT, valid(t[1], depth + 1), max_size=2 if depth < 4 else 0)
    fields, required = t[1], t[2]
    opt = {f: valid(ft, depth + 1) for f, ft in fields.items() if f not in required} if depth < 5 else {}
    return st.fixed_dictionaries({f: valid(fields[f], depth + 1) for f in required}, optional=opt)


@settings(max_examples=150, deadline=None)
@given(valid(S.SPEC))
def test_generated_valid_configs_pass_and_round_trip(d):
    S.check(d)
    expected = dict(d)
    expected.setdefault("ociVersion", M.Spec().ociVersion)  # the model's default
    assert M.Spec.from_dict(d).to_dict() == expected


def _leaves(v, t, path=()):
    """(path, type) of every typed value in a valid document."""
    yield path, t
    if t[0] == "o":
        for k, x in v.items():
            yield from _leaves(x, t[1][k], path + (k,))
    elif t[0] == "m":
        for k, x in v.items():
            yield from _leaves(x, t[1], path + ((k,),))
    elif t[0] == "a":
        for i, x in enumerate(v):
            yield from _leaves(x, t[1], path + (i,))


_WRONG = {"s": [1, True, [], {}], "b": ["true", 0, []], "i": ["1", 1.5, True, [], {}], "a": ["x", 1, {}],
          "m": ["x", 1, []], "o": ["x", 1, []], "*": []}


@settings(max_examples=150, deadline=None)
@given(valid(S.SPEC), st.data())
def test_one_wrong_leaf_is_named(d, data):
    candidates = [(p, t) for p, t in _leaves(d, S.SPEC) if p and _WRONG[t[0]]]
    if not candidates:
        return
    path, t = data.draw(st.sampled_from(candidates))
    bad = data.draw(st.sampled_from(_WRONG[t[0]]))
    cur = d
    for k in path[:-1]:
        cur = cur[k[0] if isinstance(k, tuple) else k]
    last = path[-1]
    cur[last[0] if isinstance(last, tuple) else last] = bad
    msg = err(d)
    assert msg == f"{S._path('', list(reversed(path)))}: expected {S.describe(t)}, got {S._got(bad, t)}"


# --- the library's typed classes ------------------------------------------------------------

def _model_classes():
    return [c for c in vars(M).values() if isinstance(c, type) and issubclass(c, M._Model) and c is not M._Model]


def _table_objects():
    found = {}

    def walk(t):
        if t[0] == "o":
            assert found.setdefault(t[3], t) is t, f"two tables named {t[3]}"
            for ft in t[1].values():
                walk(ft)
        elif t[0] in ("a", "m"):
            walk(t[1])
    walk(S.SPEC)
    return found


def _matches(hint, t) -> bool:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is not None and type(None) in typing.get_args(hint):
        hint = args[0] if len(args) == 1 else hint
        args = list(typing.get_args(hint))
    k = t[0]
    if hint is str:
        return k == "s"
    if hint is bool:
        return k == "b"
    if hint is int:
        return k == "i"
    if isinstance(hint, type) and issubclass(hint, M._Model):
        return k == "o" and t[3] == hint.__name__
    origin = typing.get_origin(hint)
    if origin is list:
        return k == "a" and _matches(args[0], t[1])
    if origin is dict:
        if args[1] is typing.Any:
            return k == "o"
        return k == "m" and args[0] is str and _matches(args[1], t[1])
    return False


def test_model_agrees_with_table():
    """Same fields (JSON names), same required set, same types: the classes
    and the table the command line checks with never drift apart."""
    objects = _table_objects()
    classes = {c.__name__: c for c in _model_classes()}
    linux_side = {n for n in objects if not n.startswith(("Solaris", "Windows", "VM", "ZOS", "FreeBSD"))}
    assert set(classes) == linux_side
    for name, cls in classes.items():
        t = objects[name]
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("json", f.name): f for f in dataclasses.fields(cls)}
        assert set(fields) == set(t[1]), name
        required = {k for k, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        assert required == set(t[2]), name
        for k, f in fields.items():
            assert _matches(hints[f.name], t[1][k]), f"{name}.{k}: {hints[f.name]} vs {t[1][k]}"
        assert not hasattr(cls(**{f.name: None for f in fields.values()}), "__dict__"), f"{name} has no slots"


def test_model_round_trip():
    spec = M.Spec(
        root=M.Root(path="rootfs", readonly=True),
        process=M.Process(args=["sh", "-c", "true"], cwd="/", user=M.User(uid=1000, gid=1000, additionalGids=[5]),
                          rlimits=[M.Rlimit(type="RLIMIT_NOFILE", hard=1024, soft=1024)],
                          ioPriority=M.IOPriority(class_="IOPRIO_CLASS_BE", priority=4)),
        mounts=[M.Mount(destination="/proc", type="proc", source="proc")],
        hooks=M.Hooks(poststop=[M.Hook(path="/bin/true", timeout=3)]),
        annotations={"a": "b"},
        linux=M.Linux(namespaces=[M.Namespace(type="pid"), M.Namespace(type="mount")],
                      resources=M.Resources(memory=M.Memory(limit=1 << 26), rdma={"mlx5_0": M.Rdma(hcaHandles=3)}),
                      seccomp=M.Seccomp(defaultAction="SCMP_ACT_ALLOW", syscalls=[
                          M.Syscall(names=["mkdir"], action="SCMP_ACT_ERRNO",
                                    args=[M.SeccompArg(index=0, value=1, op="SCMP_CMP_EQ")])]),
                      timeOffsets={"boottime": M.TimeOffset(secs=5)}),
        vm={"kernel": {"path": "/vmlinuz"}})
    d = spec.to_dict()
    assert d["process"]["ioPriority"] == {"class": "IOPRIO_CLASS_BE", "priority": 4}
    assert "hostname" not in d  # None: absent
    S.check(copy.deepcopy(d))
    assert M.Spec.from_dict(d) == spec
    assert M.Spec.from_dict(d).to_dict() == d


def test_model_reads_spec_output():
    d = ex.example()
    spec = M.Spec.from_dict(d)
    assert isinstance(spec.process.capabilities, M.Capabilities)
    assert spec.linux.namespaces[0] == M.Namespace(type="pid")
    assert spec.to_dict() == d


def test_model_from_dict_checks_and_leaves_input_alone():
    d = {"process": {"user": {"uid": -1}}, "hostname": None}
    with pytest.raises(PyruncError, match=r"^process\.user\.uid: expected an integer from 0 to 4294967295, got -1$"):
        M.Spec.from_dict(d)
    assert d == {"process": {"user": {"uid": -1}}, "hostname": None}
    with pytest.raises(PyruncError, match=r"^process\.args: expected an array of strings"):
        M.Process.from_dict({"args": "sh"})
    with pytest.raises(PyruncError, match=r"^resources\.pids\.limit: expected an integer"):
        M.Resources.from_dict({"pids": {"limit": "max"}})


def _full_spec() -> dict:
    d = ex.example()
    d["process"].update({
        "consoleSize": {"height": 24, "width": 80}, "commandLine": "", "noNewPrivileges": True,
        "apparmorProfile": "", "oomScoreAdj": -100, "selinuxLabel": "",
        "scheduler": {"policy": "SCHED_OTHER", "nice": 0, "priority": 0, "flags": [], "runtime": 0, "deadline": 0,
                      "period": 0},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 0},
        "execCPUAffinity": {"initial": "0", "final": "0-1"}})
    d["process"]["user"].update({"umask": 18, "additionalGids": [1], "username": ""})
    d["mounts"].append({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"],
                        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    d["hooks"] = {k: [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 1}]
                  for k in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")}
    d["annotations"] = {"a": "b"}
    d["domainname"] = "d"
    dev = {"major": 8, "minor": 0}
    d["linux"].update({
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "cgroupsPath": "/x",
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 8630, "uid": 0, "gid": 0}],
        "netDevices": {"eth1": {"name": "eth1"}},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
                    "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/run/l.sock", "listenerMetadata": "m",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                                  "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]},
        "rootfsPropagation": "private", "mountLabel": "",
        "intelRdt": {"closID": "c", "schemata": ["L3:0=f"], "l3CacheSchema": "", "memBwSchema": "MB:0=100",
                     "enableMonitoring": False},
        "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
        "personality": {"domain": "LINUX", "flags": []},
        "timeOffsets": {"boottime": {"secs": 1, "nanosecs": 2}, "monotonic": {"secs": -1}},
    })
    d["linux"]["resources"].update({
        "memory": {"limit": 1, "reservation": 1, "swap": 1, "kernel": 1, "kernelTCP": 1, "swappiness": 1,
                   "disableOOMKiller": False, "useHierarchy": True, "checkBeforeUpdate": False},
        "cpu": {"shares": 1, "quota": -1, "burst": 1, "period": 1, "realtimeRuntime": 1, "realtimePeriod": 1,
                "cpus": "0", "mems": "0", "idle": 0},
        "pids": {"limit": -1},
        "blockIO": {"weight": 10, "leafWeight": 10, "weightDevice": [{**dev, "weight": 10, "leafWeight": 10}],
                    **{k: [{**dev, "rate": 1}] for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                                                         "throttleReadIOPSDevice", "throttleWriteIOPSDevice")}},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
        "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
        "rdma": {"mlx5_0": {"hcaHandles": 1, "hcaObjects": 1}},
        "unified": {"memory.high": "max"},
    })
    d["solaris"] = {"milestone": "", "anet": [{"linkname": "l"}], "cappedCPU": {"ncpus": "1"},
                    "cappedMemory": {"physical": "1", "swap": "1"}}
    d["windows"] = {"layerFolders": ["C:\\l"], "devices": [{"id": "x", "idType": "class"}],
                    "resources": {"memory": {"limit": 1}, "cpu": {"count": 1, "shares": 1, "maximum": 1,
                                                                   "affinity": [{"mask": 1, "group": 0}]},
                                  "storage": {"iops": 1, "bps": 1, "sandboxSize": 1}},
                    "credentialSpec": {"any": ["thing"]}, "servicing": False, "ignoreFlushesDuringBoot": False,
                    "hyperv": {"utilityVMPath": ""}, "network": {"endpointList": [], "DNSSearchList": []}}
    d["vm"] = {"hypervisor": {"path": "/h", "parameters": []}, "kernel": {"path": "/k", "initrd": "/i"},
               "image": {"path": "/i", "format": "raw"},
               "hwconfig": {"vcpus": 1, "memory": 1, "dtdevs": [], "iomems": [{"firstGFN": 1, "firstMFN": 1, "nrMFNs": 1}],
                            "irqs": [1]}}
    d["zos"] = {"namespaces": [{"type": "pid", "path": ""}]}
    d["freebsd"] = {"devices": [{"path": "/dev/null", "mode": 438}],
                    "jail": {"parent": "p", "host": "new", "ip4Addr": ["1.2.3.4"], "enforceStatfs": 1,
                             "allow": {"mount": ["tmpfs"], "setHostname": True}}}
    return d


def test_full_spec_round_trips_through_the_model():
    d = _full_spec()
    assert M.Spec.from_dict(d).to_dict() == d


def test_big_config_is_fast():
    """A config the size of Docker's (its default seccomp profile has ~370
    syscall names in ~30 rules): still well under a millisecond."""
    d = _full_spec()
    d["linux"]["seccomp"]["syscalls"] = [{"names": [f"sys{i}_{j}" for j in range(12)], "action": "SCMP_ACT_ALLOW"}
                                        for i in range(30)]
    d["mounts"] *= 4
    d["process"]["env"] = [f"V{i}=x" for i in range(50)]
    n = 100
    per = timeit.timeit(lambda: S.check(d), number=n) / n
    assert per < 1e-3, f"{per * 1e6:.0f} us per check"


# --- decoding config.json (fastjson), before the walk -----------------------------------------

@pytest.mark.parametrize("text, msg", [
    ('{"a": 1,}', "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"),
    ('{"a" 1}', "Expecting ':' delimiter: line 1 column 6 (char 5)"),
    ('{"a": tru}', "Expecting value: line 1 column 7 (char 6)"),
    ('{"a": "\\x"}', "Invalid \\escape: line 1 column 8 (char 7)"),
    ('{}}', "Extra data: line 1 column 3 (char 2)"),
    ('{"a": ' + "1" * 5000 + "}", f"a number has more than {sys.get_int_max_str_digits()} digits"),
])
def test_json_errors_are_worded_not_python_internals(text, msg):
    """The C scanner reports through json.decoder, which pyrunc does not
    import: without help a syntax error surfaced as SystemError's text."""
    from pyrunc.fastjson import JSONError, loads
    with pytest.raises(JSONError) as e:
        loads(text)
    assert str(e.value) == msg


def test_invalid_utf8_is_replaced_as_go_does():
    from pyrunc.fastjson import loads
    assert loads(b'{"a": "x\xffy"}') == {"a": "x\ufffdy"}


# -- Go's case-insensitive field names -----------------------------------------

def test_keys_match_fields_case_insensitively():
    """runc's decoder (Go's encoding/json) takes "pagesize" for pageSize; runc's
    own cgroups.bats writes hugepageLimits that way."""
    doc = {"linux": {"resources": {"hugepageLimits": [{"pagesize": "2MB", "LIMIT": 1 << 21}]}},
           "Process": {"Args": ["sh"], "cwd": "/"}}
    S.check(doc)
    assert doc["linux"]["resources"]["hugepageLimits"] == [{"pageSize": "2MB", "limit": 1 << 21}]
    assert doc["process"] == {"args": ["sh"], "cwd": "/"} and "Process" not in doc


def test_folded_key_is_type_checked_under_its_field():
    with pytest.raises(PyruncError, match=r"^process\.user\.UID: expected an integer"):  # the key as written
        S.check({"process": {"user": {"UID": "0"}}})


@pytest.mark.parametrize("doc, want", [
    ({"pageSize": "1GB", "pagesize": "2MB"}, "2MB"),  # the later one wins, as in Go
    ({"pagesize": "2MB", "pageSize": "1GB"}, "1GB"),
    ({"pagesize": None, "pageSize": "1GB"}, "1GB"),
])
def test_folded_and_exact_key_later_wins(doc, want):
    d = {"linux": {"resources": {"hugepageLimits": [dict(doc, limit=1)]}}}
    S.check(d)
    assert d["linux"]["resources"]["hugepageLimits"][0] == {"pageSize": want, "limit": 1}
