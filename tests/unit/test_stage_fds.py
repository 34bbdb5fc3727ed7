"""What the stage child keeps of its parent's descriptors (init/stage.py):
everything below `first` (stdio, the preserved range) and the fds named."""
from __future__ import annotations

import os

from pyrunc.init.stage import close_fds_from


def _fds_left(first: int, keep: tuple, opened: list[int]) -> set[int]:
    """Which of `opened` a forked child still has after close_fds_from."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            close_fds_from(first, (*keep, w, None))
            left = [fd for fd in opened if os.path.exists(f"/proc/self/fd/{fd}")]
            os.write(w, " ".join(map(str, left)).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 65536).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return {int(x) for x in data.split()}


def test_only_kept_fds_and_those_below_first_stay():
    opened = [os.open("/dev/null", os.O_RDONLY) for _ in range(8)]
    try:
        first = opened[2]
        keep = (opened[5],)
        assert _fds_left(first, keep, opened) == {opened[0], opened[1], opened[5]}
    finally:
        for fd in opened:
            os.close(fd)


def test_nothing_kept():
    opened = [os.open("/dev/null", os.O_RDONLY) for _ in range(4)]
    try:
        assert _fds_left(opened[0], (), opened) == set()
    finally:
        for fd in opened:
            os.close(fd)
