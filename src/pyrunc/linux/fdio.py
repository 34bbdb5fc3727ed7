"""A file descriptor read to its end with os-level calls: a buffered open()
adds four system calls per file (fstat, ioctl, two lseeks), and these reads
lie on the create path (the container's passwd, the seccomp builder's
pipe). `state`'s own read of state.json keeps its loop: importing this
package would cost that command's start-up a tenth of a millisecond."""
from __future__ import annotations

import os


def read_all(fd: int) -> bytes:
    """Everything `fd` gives until EOF (the fd stays open)."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def stat_fields(path: str) -> list[bytes]:
    """The fields of a /proc/<pid>[/task/<tid>]/stat file after the command
    name, in one read: the list's item N is field N+3 (the state first)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096).rsplit(b")", 1)[1].split()
    finally:
        os.close(fd)
