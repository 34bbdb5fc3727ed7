"""OOM notifications from a container's memory cgroup, as a pollable fd.

v1: an eventfd registered on memory.oom_control through cgroup.event_control
(runc's registerMemoryEvent); the kernel also signals it when the cgroup is
removed, which is told apart by cgroup.event_control being gone.
v2: memory.events, whose changes the kernel reports to poll() as POLLPRI
(the same kernfs notification runc watches with inotify); an OOM is an
increase of its oom_kill counter (runc: oom_kill > 0 after a change).

    n = OOMNotifier.open(paths)     # None when there is no memory cgroup
    poll.register(n.fileno(), n.events)
    ... when it polls ready: n.read() -> 1 for an OOM event (as runc, one
        per wake-up), 0 for none, -1 when the cgroup is gone
"""
from __future__ import annotations

import os
import select

from ..errors import PyruncError
from .resources import controller_dir, is_v2


class OOMNotifier:
    def __init__(self, fd: int, events: int, v2: bool, path: str, extra_fd: int = -1) -> None:
        self.fd = fd
        self.events = events
        self.v2 = v2
        self.path = path
        self._extra = extra_fd
        self._last = 0

    @classmethod
    def open(cls, paths: dict[str, str]) -> "OOMNotifier | None":
        if is_v2(paths):
            d = paths[""]
            try:
                fd = os.open(os.path.join(d, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None  # no memory controller in this cgroup
            n = cls(fd, select.POLLPRI | select.POLLERR, True, d)
            n._last = n._oom_kill()
            return n
        mdir = controller_dir(paths, "memory")
        if not mdir:
            return None
        try:
            ofd = os.open(os.path.join(mdir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            with open(os.path.join(mdir, "cgroup.event_control"), "w") as f:
                f.write(f"{efd} {ofd}")
        except OSError as e:
            os.close(efd)
            os.close(ofd)
            raise PyruncError(f"cannot register for OOM notifications on {mdir}: {e.strerror}") from None
        return cls(efd, select.POLLIN, False, mdir, extra_fd=ofd)

    def fileno(self) -> int:
        return self.fd

    def _oom_kill(self) -> int:
        os.lseek(self.fd, 0, os.SEEK_SET)
        data = b""
        while True:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                break
            data += chunk
        for line in data.decode().splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def read(self) -> int:
        """Consume what made the fd ready: 1 if there was an OOM since the
        last call, 0 if not, -1 when the cgroup has been removed."""
        if self.v2:
            try:
                n = self._oom_kill()
            except OSError:
                return -1
            new, self._last = n > self._last, n
            return 1 if new else 0
        try:
            count = int.from_bytes(os.read(self.fd, 8), "little")
        except BlockingIOError:
            return 0
        if not os.path.exists(os.path.join(self.path, "cgroup.event_control")):
            return -1
        return 1 if count else 0

    def close(self) -> None:
        for fd in (self.fd, self._extra):
            if fd >= 0:
                os.close(fd)
        self.fd = self._extra = -1
