"""container/launch.create: how a failure of the create path reads."""
from __future__ import annotations

import pytest

from pyrunc.container import launch
from pyrunc.errors import PyruncError


class _StateDir:
    def __init__(self, root: str, cid: str) -> None:
        pass

    def create(self) -> None:
        pass


@pytest.mark.parametrize("exc, text", [
    (OSError("cannot do that"), "pyrunc create failed: cannot do that"),
    (OSError(2, "No such file or directory"), "pyrunc create failed: No such file or directory"),
    (OSError(2, "No such file or directory", "/x"), "pyrunc create failed: /x: No such file or directory"),
])
def test_an_oserror_becomes_one_line(monkeypatch, exc, text):
    # an OSError made with a message alone has no strerror: the error text
    # was built from None (found by mypy: an AttributeError, a traceback)
    def fail(c: launch._Create) -> None:
        raise exc

    o = launch.CreateOptions(bundle="/bundle")
    o.config = {}
    monkeypatch.setattr(launch, "validate", lambda c: None)
    monkeypatch.setattr(launch, "StateDir", _StateDir)
    monkeypatch.setattr(launch, "prepare_host", fail)
    monkeypatch.setattr(launch, "_undo_create", lambda c: None)
    with pytest.raises(PyruncError) as ei:
        launch.create("/run/test", "ctr", o)
    assert str(ei.value) == text
