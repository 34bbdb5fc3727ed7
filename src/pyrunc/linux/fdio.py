"""A file descriptor read to its end with os-level calls: a buffered open()
adds four system calls per file (fstat, ioctl, two lseeks), and these reads
lie on the start-up paths (the state file, the container's passwd, a
builder's pipe)."""
from __future__ import annotations

import os


def read_all(fd: int) -> bytes:
    """Everything `fd` gives until EOF (the fd stays open)."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
