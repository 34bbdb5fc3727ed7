"""The answer to the `delete` containerd runs each time a shim has ended
(and waits for): a DeleteResponse, and the record of it the shim's Delete
leaves in the bundle. Imported by `delete`'s path and by the server: stdlib
only."""
from __future__ import annotations

import os

EXIT_STATUS_KILLED = 128 + 9  # what runc's shim reports from `delete`


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def delete_response(exit_status: int, exited_ns: int) -> bytes:
    """DeleteResponse{exit_status, exited_at} encoded by hand: containerd
    runs `delete` after every shim's Shutdown and waits for it, and the
    message classes cost a millisecond and a half of imports."""
    secs, nanos = divmod(exited_ns, 1_000_000_000)
    stamp = (b"\x08" + _varint(secs) if secs else b"") + (b"\x10" + _varint(nanos) if nanos else b"")
    return b"\x10" + _varint(exit_status) + b"\x1a" + _varint(len(stamp)) + stamp


# the answer, left in the bundle by the shim's own Delete of the task
# (record_deleted): the installed launcher (scripts/shim-launcher.sh) prints
# it without starting an interpreter when nothing is left to clean up
DELETE_RECORD = ".pyrunc-delete-response"


def record_deleted(bundle: str, exited_ns: int, shim: tuple[int, int] | None = None) -> None:
    """The task of `bundle` is deleted and its rootfs unmounted: `delete`'s
    answer, as printf(1) escapes (the launcher is a POSIX sh script), then
    the shim that serves on: its pid and start time (/proc/<pid>/stat's
    22nd field), by which the launcher tells the shim's socket, still there
    while the shim serves a pod's other containers, from a dead shim's."""
    text = "".join(f"\\{b:03o}" for b in delete_response(EXIT_STATUS_KILLED, exited_ns)) + "\n"
    if shim is not None:
        text += f"{shim[0]} {shim[1]}\n"
    tmp = os.path.join(bundle, DELETE_RECORD + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(bundle, DELETE_RECORD))


def forget_deleted(bundle: str) -> None:
    """A task is being made in `bundle`: an earlier task's record must not
    answer for it."""
    try:
        os.unlink(os.path.join(bundle, DELETE_RECORD))
    except FileNotFoundError:
        pass


def own_start_time() -> int:
    """This process's start time in clock ticks since boot (/proc/self/stat's
    22nd field: with the pid, it names the process for good)."""
    with open("/proc/self/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])
