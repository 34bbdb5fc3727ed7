"""The library's stdio= option (Container.create, ExecOptions): exactly
three fds, checked before anything is made."""
from __future__ import annotations

import pytest

from pyrunc.container.exec import ExecOptions, three_fds
from pyrunc.errors import PyruncError


def test_three_fds_taken_from_any_sequence():
    assert three_fds([0, 1, 2]) == (0, 1, 2)
    assert three_fds(None) is None


@pytest.mark.parametrize("bad", [(0, 1), (0, 1, 2, 3), (0, 1, -1), (0, True, 2), ("0", 1, 2)])
def test_anything_but_three_fds_is_one_clear_error(bad):
    with pytest.raises(PyruncError, match=r"^stdio: expected three file descriptors"):
        three_fds(bad)
    with pytest.raises(PyruncError, match=r"^stdio: expected three file descriptors"):
        ExecOptions(args=["true"], stdio=bad)
