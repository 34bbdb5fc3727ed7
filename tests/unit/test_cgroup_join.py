"""`exec --cgroup`: runc's argument parsing (getSubCgroupPaths) and the
joins of setnsProcess.addIntoCgroup{V1,V2}, against fake cgroup trees."""
from __future__ import annotations

import pytest

from pyrunc.cgroups import join as J
from pyrunc.errors import PyruncError


@pytest.mark.parametrize("args, want", [
    ([], {}),
    (["sub"], {"": "sub"}),
    (["/"], {"": "/"}),
    (["memory:m"], {"memory": "m"}),
    (["cpu,cpuacct:c", "memory:m"], {"cpu": "c", "cpuacct": "c", "memory": "m"}),
    (["pids:a:b"], {"pids": "a:b"}),
])
def test_parse(args, want):
    assert J.parse_sub_cgroups(args) == want


@pytest.mark.parametrize("args, msg", [
    ([":x"], r"invalid --cgroup argument: :x \(empty <controller> prefix\)"),
    (["cpu,:x"], r"invalid --cgroup argument: cpu,:x \(empty <controller> prefix\)"),
    (["memory:a", "memory:b"], r"invalid --cgroup argument\(s\): controller memory specified multiple times"),
    (["cpu,cpu:a"], r"invalid --cgroup argument\(s\): controller cpu specified multiple times"),
    (["a", "b"], r"invalid --cgroup argument: a \(missing <controller>: prefix\)"),
    (["memory:a", "b"], r"invalid --cgroup argument: b \(missing <controller>: prefix\)"),
])
def test_parse_errors(args, msg):
    with pytest.raises(PyruncError, match=f"^{msg}$"):
        J.parse_sub_cgroups(args)


@pytest.mark.parametrize("sub, want", [
    ("", "/cg/ctr"), ("/", "/cg/ctr"), ("a", "/cg/ctr/a"), ("/a/b/", "/cg/ctr/a/b"), ("a/../b", "/cg/ctr/b"),
])
def test_sub_path(sub, want):
    assert J.sub_path("/cg/ctr", sub) == want


@pytest.mark.parametrize("sub", ["..", "../other", "a/../../ctr2", "../ctrX"])
def test_sub_path_must_stay_below(sub):
    # runc's string-prefix check would let "../ctrX" reach a sibling; pyrunc does not
    with pytest.raises(PyruncError, match="^bad sub cgroup path: "):
        J.sub_path("/cg/ctr", sub)


def _tree(tmp_path, keys, subs=()):
    paths = {}
    for key in keys:
        d = tmp_path / (key.replace(",", "_").replace("=", "_") or "unified") / "ctr"
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
        for s in subs:
            (d / s).mkdir()
            (d / s / "cgroup.procs").write_text("")
        paths[key] = str(d)
    return paths


def _procs(path):
    with open(path + "/cgroup.procs") as f:
        return f.read()


V1 = ["cpu,cpuacct", "memory", "pids", "name=systemd", ""]  # a hybrid host: "" holds no controller


def test_v1_no_sub_joins_every_hierarchy(tmp_path):
    paths = _tree(tmp_path, V1)
    J.join_exec(paths, 42)
    assert all(_procs(p) == "42" for p in paths.values())


def test_v1_one_sub_everywhere_but_the_unified(tmp_path):
    paths = _tree(tmp_path, V1, subs=["s"])
    J.join_exec(paths, 42, {"": "s"})
    for key, p in paths.items():
        assert _procs(p + "/s" if key else p) == "42"


def test_v1_per_controller(tmp_path):
    paths = _tree(tmp_path, V1, subs=["s"])
    J.join_exec(paths, 42, {"memory": "s", "cpuacct": "s", "name=systemd": "/s"})
    assert _procs(paths["memory"] + "/s") == "42"
    assert _procs(paths["cpu,cpuacct"] + "/s") == "42"  # co-mounted: one hierarchy
    assert _procs(paths["name=systemd"] + "/s") == "42"
    assert _procs(paths["pids"]) == "42" and _procs(paths["pids"] + "/s") == ""
    assert _procs(paths[""]) == "42"


@pytest.mark.parametrize("subs, msg", [
    ({"": "missing"}, r"^error adding pid 42 to cgroups: failed to write 42: openat2 .*/missing/cgroup.procs: "
                      r"no such file or directory$"),
    ({"memory": "missing"}, r"^error adding pid 42 to cgroups: failed to write 42: openat2 .*memory/ctr/missing/"),
    ({"": ".."}, r"^error adding pid 42 to cgroups: bad sub cgroup path: \.\.$"),
    ({"memory": ".."}, r"^bad sub cgroup path: \.\.$"),
    ({"whaaat": "/"}, r"^unknown controller whaaat in SubCgroupPaths$"),
])
def test_v1_errors(tmp_path, subs, msg):
    paths = _tree(tmp_path, V1)
    with pytest.raises(PyruncError, match=msg):
        J.join_exec(paths, 42, subs)


def test_v2_sub(tmp_path):
    paths = _tree(tmp_path, [""], subs=["foobar"])
    J.join_exec(paths, 7, {"": "foobar"})
    assert _procs(paths[""] + "/foobar") == "7" and _procs(paths[""]) == ""


def test_v2_falls_back_to_the_init_cgroup(tmp_path, monkeypatch):
    """exec.bats "runc exec [init changes cgroup]": the container's cgroup is
    gone; the exec joins the cgroup the init moved to."""
    base = tmp_path / "unified"
    moved = base / "moved"
    moved.mkdir(parents=True)
    (moved / "cgroup.procs").write_text("")
    monkeypatch.setattr("pyrunc.cgroups.hierarchies", lambda: {"": (str(base), "/")})
    real_open = open

    def fake_open(path, *a, **kw):
        if path == "/proc/99/cgroup":
            import io
            return io.StringIO("0::/moved\n")
        return real_open(path, *a, **kw)
    monkeypatch.setattr("builtins.open", fake_open)
    J.join_exec({"": str(base / "gone")}, 7, None, init_pid=99)
    assert _procs(str(moved)) == "7"
    # an explicit --cgroup never falls back
    with pytest.raises(PyruncError, match="^error adding pid 7 to cgroups: failed to write 7: openat2 .*gone/cgroup.procs"):
        J.join_exec({"": str(base / "gone")}, 7, {"": "/"}, init_pid=99)
