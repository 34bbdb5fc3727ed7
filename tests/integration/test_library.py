"""`import pyrunc`: the library runs the same code as the command line, so a
container made from Python is visible to `pyrunc` commands and vice versa."""
from __future__ import annotations

import os
import sys

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
