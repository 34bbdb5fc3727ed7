"""The plan a create records before making anything (StateDir.record_plan):
an xattr of the state dir, or a file where the file system has none."""
from __future__ import annotations

import errno
import os

from pyrunc.container.state import PLAN_FILE, StateDir


def test_plan_round_trip(tmp_path):
    sd = StateDir(str(tmp_path), "c1")
    sd.create()
    assert sd.load_plan() is None
    sd.record_plan({"id": "c1", "cgroup_paths": {"": "/sys/fs/cgroup/c1"}})
    sd.record_plan({"id": "c1", "cgroup_paths": {"": "/sys/fs/cgroup/c1"}, "host_mount": 42})  # replaced
    assert sd.load_plan() == {"id": "c1", "cgroup_paths": {"": "/sys/fs/cgroup/c1"}, "host_mount": 42}
    sd.remove()
    assert not os.path.exists(sd.path)


def test_plan_without_xattrs_is_a_file(tmp_path, monkeypatch):
    def no_xattrs(*a):
        raise OSError(errno.ENOTSUP, "Operation not supported")
    monkeypatch.setattr(os, "setxattr", no_xattrs)
    monkeypatch.setattr(os, "getxattr", no_xattrs)
    sd = StateDir(str(tmp_path), "c2")
    sd.create()
    sd.record_plan({"id": "c2"})
    assert os.listdir(sd.path) == [PLAN_FILE]
    assert sd.load_plan() == {"id": "c2"}
    sd.remove()
    assert not os.path.exists(sd.path)


def test_unreadable_plan_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getxattr", lambda *a: b"{not json")
    sd = StateDir(str(tmp_path), "c3")
    sd.create()
    assert sd.load_plan() is None
    sd.remove()
