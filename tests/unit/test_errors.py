"""The exception classes a library caller catches by type (errors.py): their
hierarchy, their export from `pyrunc`, and the field path a ConfigError
carries for configs loaded and validated as `create` does. The command
line's text is each exception's str(), so the messages are checked too."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

import pyrunc
from pyrunc import errors as E
from pyrunc.spec import config as C
from pyrunc.spec import example as ex

NEW = ("ConfigError", "ContainerNotFound", "InvalidState", "InitError")


# --- the classes ------------------------------------------------------------------

@pytest.mark.parametrize("name", NEW)
def test_each_is_a_pyrunc_error_exported_by_pyrunc(name):
    cls = getattr(E, name)
    assert issubclass(cls, E.PyruncError)
    assert getattr(pyrunc, name) is cls
    assert name in pyrunc.__all__
    from pyrunc import ConfigError, ContainerNotFound, InitError, InvalidState  # noqa: F401


def test_old_name_is_the_same_class():
    assert E.ContainerNotExist is E.ContainerNotFound
    assert pyrunc.ContainerNotExist is pyrunc.ContainerNotFound


def test_attributes_and_text():
    e = E.ConfigError("process.args: expected an array of strings, got a string", "process.args")
    assert (str(e), e.path, e.code) == ("process.args: expected an array of strings, got a string", "process.args", 1)
    assert E.ConfigError("config cannot be null").path is None
    nf = E.ContainerNotFound("web")
    assert (str(nf), nf.id) == ("container does not exist", "web")  # the CLI's line, as runc's
    assert E.ContainerNotFound().id is None
    st = E.InvalidState("container not running", "stopped")
    assert (str(st), st.status) == ("container not running", "stopped")
    ie = E.InitError("pyrunc create failed: unable to start container process: error during container init: x",
                     "x", "create")
    assert (ie.reason, ie.op) == ("x", "create")
    assert E.InitError("y").reason == "y"


@pytest.mark.parametrize("e", [E.PyruncError("p", 3), E.ConfigError("m", "process.args"), E.ContainerNotFound("web"),
                               E.InvalidState("container paused", "paused"), E.InitError("line", "why", "exec")],
                         ids=lambda e: type(e).__name__)
def test_pickles_with_its_attributes(e):
    """As multiprocessing and concurrent.futures hand them between processes
    (BaseException's pickling: the class called with `args`, then the
    attributes restored; so every __init__ must take just the message)."""
    import pickle
    got = pickle.loads(pickle.dumps(e))
    assert (type(got), got.args, vars(got)) == (type(e), e.args, vars(e))


def test_errors_module_imports_nothing():
    """Every command imports errors.py: it must stay classes only."""
    tree = ast.parse(open(E.__file__).read())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]


def test_import_pyrunc_stays_lazy():
    src = os.path.dirname(os.path.dirname(pyrunc.__file__))
    out = subprocess.run([sys.executable, "-c", "import sys, pyrunc; print(sorted(m for m in sys.modules "
                          "if m.startswith('pyrunc')))"], env={**os.environ, "PYTHONPATH": src},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['pyrunc']"


# --- ConfigError.path: configs loaded through the library --------------------------

@pytest.fixture
def bundle_dir(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def load(bundle_dir, change=None, raw: bytes | None = None):
    """Write config.json (the example, changed), then load and validate it as
    create does; the ConfigError raised."""
    if raw is None:
        d = ex.example()
        if change:
            change(d)
        raw = json.dumps(d).encode()
    (bundle_dir / "config.json").write_bytes(raw)
    with pytest.raises(E.ConfigError) as e:
        C.validate(pyrunc.load_config(str(bundle_dir)), str(bundle_dir))
    return e.value


def _ns(d, t):
    return next(i for i, n in enumerate(d["linux"]["namespaces"]) if n["type"] == t)


def _drop_ns(d, t):
    del d["linux"]["namespaces"][_ns(d, t)]


BAD = [
    # the type walk (schema.py)
    (lambda d: d["process"].update(args="sh"), "process.args"),
    (lambda d: d["process"]["user"].update(uid=-1), "process.user.uid"),
    (lambda d: d["linux"].setdefault("resources", {}).update(memory={"limit": "1g"}),
     "linux.resources.memory.limit"),
    (lambda d: d["mounts"][1].update(options=["nosuid", 5]), "mounts[1].options[1]"),
    (lambda d: d["linux"].update(sysctl={"net.ipv4.ip_forward": 1}), 'linux.sysctl["net.ipv4.ip_forward"]'),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1}]), "process.rlimits[0].soft"),
    # runc's validator (config.py)
    (lambda d: d["process"].update(args=[]), "process.args"),
    (lambda d: d["process"].update(cwd="relative"), "process.cwd"),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1},
                                            {"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]),
     "process.rlimits[1].type"),
    (lambda d: d.update(root={"path": ""}), "root.path"),
    (lambda d: d.update(root={"path": "missing"}), "root.path"),
    (lambda d: d["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[5].type"),
    (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[5].type"),
    (lambda d: d["linux"]["namespaces"].append({"type": "user", "path": "/no/such/ns"}), "linux.namespaces[5].path"),
    (lambda d: (d.update(hostname="h"), _drop_ns(d, "uts")), "hostname"),
    (lambda d: _drop_ns(d, "mount"), "linux.maskedPaths"),
    (lambda d: d["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]), "linux.uidMappings"),
    (lambda d: d["linux"].update(sysctl={"kernel.bogus": "1"}), 'linux.sysctl["kernel.bogus"]'),
    (lambda d: d["linux"].update(sysctl={"net.ipv4.ip_forward": "1"}) or _drop_ns(d, "network"),
     'linux.sysctl["net.ipv4.ip_forward"]'),
    (lambda d: d["linux"].update(devices=[{"path": "/dev/x", "type": "q"}]), "linux.devices[0].type"),
    (lambda d: d["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 5000}]), "linux.devices[0].major"),
    (lambda d: d["linux"].update(memoryPolicy={"mode": "MPOL_BOGUS"}), "linux.memoryPolicy.mode"),
    (lambda d: d["linux"].update(memoryPolicy={"mode": "MPOL_BIND", "nodes": ""}), "linux.memoryPolicy.nodes"),
    (lambda d: d["mounts"].append({"destination": ""}), "mounts[7].destination"),
    (lambda d: d["mounts"].append({"destination": "/m", "type": "tmpfs", "options": ["idmap"]}), "mounts[7].type"),
    (lambda d: d.update(hooks={"prestart": [{"path": "/bin/true"}, {"path": "rel"}]}), "hooks.prestart[1].path"),
    (lambda d: d["linux"].update(intelRdt={"closID": "x"}), "linux.intelRdt"),
]


@pytest.mark.parametrize("change, path", BAD)
def test_config_error_names_the_field(bundle_dir, change, path):
    e = load(bundle_dir, change)
    assert e.path == path, str(e)


def test_config_paths_match_the_example():
    """The indexes BAD relies on: 5 namespaces and 7 mounts in the example."""
    d = ex.example()
    assert (len(d["linux"]["namespaces"]), len(d["mounts"])) == (5, 7)


def test_whole_file_errors_have_no_path_and_keep_their_cause(bundle_dir):
    e = load(bundle_dir, raw=b"{ not JSON")
    assert e.path is None and isinstance(e.__cause__, ValueError)
    assert str(e).endswith("config.json: invalid JSON: " + str(e.__cause__))
    assert load(bundle_dir, raw=b"null").path is None
    assert load(bundle_dir, raw=b"[]").path is None
    e = load(bundle_dir, raw=b"7")
    assert str(e) == f"{bundle_dir}/config.json: config must be a JSON object"
    os.unlink(bundle_dir / "config.json")
    with pytest.raises(E.ConfigError) as ei:
        pyrunc.load_config(str(bundle_dir))
    assert ei.value.path is None and isinstance(ei.value.__cause__, FileNotFoundError)
    assert str(ei.value) == f"JSON specification file {bundle_dir}/config.json not found"


def test_the_message_is_unchanged_by_the_path(bundle_dir):
    """The CLI prints str(e): the path is extra, never added to the text."""
    e = load(bundle_dir, lambda d: d["process"].update(cwd="relative"))
    assert str(e) == "Cwd must be an absolute path"
    e = load(bundle_dir, lambda d: d["linux"].update(sysctl={"kernel.bogus": "1"}))
    assert str(e) == "sysctl 'kernel.bogus' is not in a separate kernel namespace"


# --- the validators create runs after config.py's --------------------------------

def _raises(fn, *args, **kw) -> E.ConfigError:
    with pytest.raises(E.ConfigError) as e:
        fn(*args, **kw)
    return e.value


@pytest.mark.parametrize("process, linux, path", [
    ({"scheduler": {"policy": "SCHED_BOGUS"}}, None, "process.scheduler.policy"),
    ({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RESET_ON_FORK", "x"]}}, None,
     "process.scheduler.flags[1]"),
    ({"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}, None, "process.scheduler.nice"),
    ({"scheduler": {"policy": "SCHED_OTHER", "period": 5}}, None, "process.scheduler.period"),
    ({"scheduler": {"policy": "SCHED_FIFO", "priority": 0}}, None, "process.scheduler.priority"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BOGUS"}}, None, "process.ioPriority.class"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 9}}, None, "process.ioPriority.priority"),
    ({"execCPUAffinity": {"final": "3-1"}}, None, "process.execCPUAffinity.final"),
    ({}, {"personality": {"domain": "BOGUS"}}, "linux.personality.domain"),
])
def test_process_attributes(process, linux, path):
    from pyrunc.security import attrs
    assert _raises(attrs.validate, process, linux).path == path


def test_cpu_affinity_error_keeps_its_cause():
    from pyrunc.security import attrs
    e = _raises(attrs.validate, {"execCPUAffinity": {"initial": "x"}}, None)
    assert e.path == "process.execCPUAffinity.initial"
    assert str(e) == 'bad CPUAffinity.Initial: strconv.ParseUint: parsing "x": invalid syntax'
    assert type(e.__cause__) is E.PyruncError and str(e.__cause__) in str(e)


@pytest.mark.parametrize("seccomp, path", [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "bogus"]},
     "linux.seccomp.architectures[1]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["bogus"]}, "linux.seccomp.flags[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                                                      {"names": ["write"], "action": "bogus"}]},
     "linux.seccomp.syscalls[1].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}, {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[1].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath"),
])
def test_seccomp(seccomp, path):
    from pyrunc.security import seccomp as S
    assert _raises(S.parse, seccomp).path == path


@pytest.mark.parametrize("resources, v2, path", [
    ({"memory": {"swappiness": 200}}, False, "linux.resources.memory.swappiness"),
    ({"memory": {"limit": 100, "swap": 50}}, True, "linux.resources.memory.swap"),
    ({"memory": {"swap": 50}}, True, "linux.resources.memory.swap"),
    ({"unified": {"pids.max": "5"}}, False, "linux.resources.unified"),
    ({"unified": {"a/b": "5"}}, True, 'linux.resources.unified["a/b"]'),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}, {"pageSize": "", "limit": 1}]}, False,
     "linux.resources.hugepageLimits[1].pageSize"),
    ({"network": {"priorities": [{"name": "a b", "priority": 1}]}}, False, "linux.resources.network.priorities[0].name"),
])
def test_resources(resources, v2, path):
    from pyrunc.cgroups import resources as R
    assert _raises(R.validate, resources, v2).path == path


@pytest.mark.parametrize("rule, path", [
    ({"allow": True, "access": ""}, "linux.resources.devices[1].access"),
    ({"allow": True, "type": "x", "access": "rwm"}, "linux.resources.devices[1].type"),
    ({"allow": True, "type": "c", "major": -5, "access": "rwm"}, "linux.resources.devices[1].major"),
])
def test_device_rules(rule, path):
    from pyrunc.cgroups.devices import spec_rules
    assert _raises(spec_rules, {"devices": [{"allow": False, "access": "rwm"}, rule]}).path == path


def test_namespace_rules():
    from pyrunc.spec import nsrules
    e = _raises(nsrules.validate, {"timeOffsets": {"monotonic": {"secs": 1}}}, {"pid": ""})
    assert e.path == "linux.timeOffsets"
    linux = {"namespaces": [{"type": "pid"}, {"type": "user", "path": "/no/such/userns"}]}
    e = _raises(nsrules.validate, linux, {"pid": "", "user": "/no/such/userns"})
    assert e.path == "linux.namespaces[1].path" and isinstance(e.__cause__, FileNotFoundError)


def test_systemd_cgroups_path_and_annotations():
    from pyrunc.cgroups import systemd as SD
    assert _raises(SD.parse_cgroups_path, "no-colons", "id").path == "linux.cgroupsPath"
    assert _raises(SD.expand_slice, "a--b.slice").path == "linux.cgroupsPath"
    e = _raises(SD.annotation_properties, {"org.systemd.property.TimeoutStopSec": "'text'"})
    assert e.path == 'annotations["org.systemd.property.TimeoutStopSec"]'


def test_netdevices():
    from pyrunc.container import netdev
    if os.geteuid() != 0:
        pytest.skip("the device checks come after the root check")
    e = _raises(netdev.validate, {"netDevices": {"bad/name": {}}}, {"network": ""})
    assert e.path == 'linux.netDevices["bad/name"]'
    e = _raises(netdev.validate, {"netDevices": {"nosuchdev0": {"name": "a b"}}}, {"network": ""})
    assert e.path == 'linux.netDevices["nosuchdev0"].name'
    e = _raises(netdev.validate, {"netDevices": {"nosuchdev0": {}}}, {"network": ""})
    assert e.path == 'linux.netDevices["nosuchdev0"]' and isinstance(e.__cause__, OSError)
    assert _raises(netdev.validate, {"netDevices": {"lo": {}}}, {}).path == "linux.netDevices"


def test_model_and_update_and_exec_inputs():
    """The other ways a library caller hands in configuration."""
    from pyrunc.container.exec import ExecOptions as X
    from pyrunc.container.exec import build_process
    from pyrunc.spec.model import Spec
    from pyrunc.spec.schema import RESOURCES, check
    e = _raises(Spec.from_dict, {"process": {"env": "A=1"}})
    assert e.path == "process.env"
    assert _raises(check, {"pids": {"limit": "max"}}, RESOURCES, "resources").path == "resources.pids.limit"
    assert _raises(build_process, {"cwd": "/"}, X([])).path == "process.args"
    assert _raises(build_process, {"cwd": "/"}, X(["true"], user="bob")).path == "process.user"
    e = _raises(build_process, {"cwd": "/"}, X(["true", 5]))
    assert e.path == "process.args[1]"
