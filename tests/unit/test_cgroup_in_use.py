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
