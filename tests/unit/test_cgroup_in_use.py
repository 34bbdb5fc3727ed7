"""A container's cgroup that exists before create: refused when it holds
processes or is frozen (runc 1.2+), from fake v1 and v2 cgroup trees."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyrunc.cgroups import Manager, is_frozen
from pyrunc.errors import PyruncError


def mk(d: Path, files: dict[str, str]) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for k, v in files.items():
        (d / k).write_text(v)
    return str(d)


def test_missing_cgroup_is_fresh(tmp_path):
    Manager({"": str(tmp_path / "nope"), "freezer": str(tmp_path / "nope2")}).check_unused()
    Manager({}).check_unused()


def test_empty_cgroup_is_fresh(tmp_path):
    paths = {"": mk(tmp_path / "v2", {"cgroup.procs": "", "cgroup.freeze": "0\n"}),
             "freezer": mk(tmp_path / "freezer", {"cgroup.procs": "", "freezer.state": "THAWED\n"})}
    Manager(paths).check_unused()


def test_processes_anywhere_below_are_refused(tmp_path):
    top = tmp_path / "v2"
    mk(top, {"cgroup.procs": "12\n"})
    mk(top / "sub", {"cgroup.procs": "13\n14\n"})
    with pytest.raises(PyruncError, match=r"^container's cgroup is not empty: 3 process\(es\) found$"):
        Manager({"": str(top)}).check_unused()


def test_v1_processes_are_refused(tmp_path):
    paths = {"pids": mk(tmp_path / "pids", {"cgroup.procs": "7\n"})}
    with pytest.raises(PyruncError, match="not empty: 1 process"):
        Manager(paths).check_unused()


@pytest.mark.parametrize("files, frozen", [
    ({"freezer.state": "FROZEN\n", "freezer.self_freezing": "1\n"}, True),
    ({"freezer.state": "FROZEN\n"}, True),  # an old kernel without self_freezing
    ({"freezer.state": "FROZEN\n", "freezer.self_freezing": "0\n"}, False),  # an ancestor's (runc: thawed)
    ({"freezer.state": "THAWED\n", "freezer.self_freezing": "0\n"}, False),
])
def test_v1_freezer(tmp_path, files, frozen):
    paths = {"freezer": mk(tmp_path / "freezer", {"cgroup.procs": "", **files})}
    assert is_frozen(paths) is frozen


@pytest.mark.parametrize("value, frozen", [("1\n", True), ("0\n", False)])
def test_v2_freeze(tmp_path, value, frozen):
    assert is_frozen({"": mk(tmp_path / "v2", {"cgroup.procs": "", "cgroup.freeze": value})}) is frozen


def test_hybrid_unified_freeze_counts(tmp_path):
    """A hybrid host: the v1 freezer is thawed, the unified cgroup frozen."""
    paths = {"freezer": mk(tmp_path / "freezer", {"freezer.state": "THAWED\n"}),
             "": mk(tmp_path / "unified", {"cgroup.procs": "", "cgroup.freeze": "1\n"})}
    with pytest.raises(PyruncError, match=r"^container's cgroup unexpectedly frozen$"):
        Manager(paths).check_unused()


# -- killing every process of a cgroup (runc's signalAllProcesses) ------------

def test_kill_all_of_a_missing_cgroup(tmp_path):
    assert Manager({"": str(tmp_path / "nope")}).kill_all() is False


def test_kill_all_uses_cgroup_kill(tmp_path):
    import subprocess
    p = subprocess.Popen(["sleep", "30"])
    try:
        top = mk(tmp_path / "v2", {"cgroup.procs": f"{p.pid}\n", "cgroup.kill": ""})
        assert Manager({"": top}).kill_all() is True
        assert (tmp_path / "v2" / "cgroup.kill").read_text() == "1"
        assert p.poll() is None  # the kernel's job here, not a kill of each pid
    finally:
        p.kill()
        p.wait()


def test_kill_all_without_cgroup_kill_freezes_kills_and_thaws(tmp_path):
    import subprocess
    p = subprocess.Popen(["sleep", "30"])
    try:
        paths = {"freezer": mk(tmp_path / "freezer", {"cgroup.procs": f"{p.pid}\n", "freezer.state": "THAWED\n"}),
                 "": mk(tmp_path / "unified", {"cgroup.procs": f"{p.pid}\n"})}  # an old kernel: no cgroup.kill
        writes = []
        import pyrunc.cgroups as cg
        real = cg._write

        def spy(path, data):
            writes.append((path.rsplit("/", 1)[1], data))
            real(path, data)
        cg._write = spy
        try:
            assert Manager(paths).kill_all() is True
        finally:
            cg._write = real
        assert p.wait(timeout=5) == -9
        assert ("freezer.state", b"FROZEN") in writes and writes[-1] == ("freezer.state", b"THAWED")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
