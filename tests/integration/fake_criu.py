#!/usr/bin/env python3
"""A stand-in for `criu swrk 3`, for testing pyrunc's side of the RPC where
the real CRIU cannot run. It speaks the protocol (one criu_req / criu_resp
per SOCK_SEQPACKET message, notifications acknowledged with notify_success)
but checkpoints nothing real:

* VERSION: 3.17.1; FEATURE_CHECK: everything supported.
* DUMP / PRE_DUMP: records the request's options and the dumped pid's
  command line in <images dir>/fake-criu.json (the images dir is the
  caller's fd images_dir_fd, reached through /proc/<peer>/fd as CRIU does),
  notifies post-dump, and (DUMP without leave_running) kills the pid.
* RESTORE: notifies setup-namespaces, starts the recorded command as a
  sibling of itself (CLONE_PARENT, as rst_sibling asks: the caller's child),
  notifies post-restore with its pid, answers RESTORE.

FAKE_CRIU_FAIL=<TYPE> makes that request fail (success false, cr_errno 5),
after writing a log line as CRIU does; so does a file named by
FAKE_CRIU_FAIL_FILE that holds <TYPE> (for a CRIU started by a long-lived
caller, such as a shim under containerd, whose environment is fixed).
The restored process's fds 0-2 are /dev/null, except those that the request's
inherit_fd names (CRIU's own fd, inherited from its caller, as CRIU does).
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import struct
import sys

sys.path.insert(0, os.environ["FAKE_CRIU_SRC"])
from pyrunc.criu import proto as P  # noqa: E402

T = P.REQ_TYPES


def peer_pid(sock: socket.socket) -> int:
    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", cred)[0]


def send(sock: socket.socket, msg: dict) -> None:
    sock.send(P.encode("criu_resp", msg))


def notify(sock: socket.socket, script: str, pid: int = 0) -> None:
    send(sock, {"type": T["NOTIFY"], "success": True, "notify": {"script": script, "pid": pid}})
    ack = P.decode("criu_req", sock.recv(65536))
    assert ack == {"type": T["NOTIFY"], "notify_success": True}, ack


def images_dir(sock: socket.socket, opts: dict) -> str:
    return os.readlink(f"/proc/{peer_pid(sock)}/fd/{opts['images_dir_fd']}")


def clone_sibling(argv: list[str], keep: set[int] = frozenset()) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_PARENT = 0x00008000
    pid = libc.syscall(56, CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)  # x86_64 clone
    if pid == 0:
        try:
            os.setsid()
            null = os.open("/dev/null", os.O_RDWR)
            for fd in {0, 1, 2} - keep:
                os.dup2(null, fd)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def main() -> None:
    sock = socket.socket(fileno=3)
    req = P.decode("criu_req", sock.recv(1 << 20))
    t, opts = req["type"], req.get("opts") or {}
    fail = os.environ.get("FAKE_CRIU_FAIL", "")
    if os.environ.get("FAKE_CRIU_FAIL_FILE"):
        try:
            with open(os.environ["FAKE_CRIU_FAIL_FILE"]) as f:
                fail = f.read().strip()
        except FileNotFoundError:
            pass
    if fail == P.REQ_TYPE_NAMES[t]:
        d = images_dir(sock, opts)
        with open(os.path.join(d, opts.get("log_file", "x.log")), "w") as f:
            f.write("(00.000001) Error (criu/fake.c:1): fake: refused as asked\n")
        send(sock, {"type": t, "success": False, "cr_errno": 5})
        return
    if t == T["VERSION"]:
        send(sock, {"type": t, "success": True, "version": {"major_number": 3, "minor_number": 17, "sublevel": 1}})
    elif t == T["FEATURE_CHECK"]:
        send(sock, {"type": t, "success": True, "features": {"mem_track": True, "lazy_pages": True}})
    elif t in (T["DUMP"], T["PRE_DUMP"]):
        d = images_dir(sock, opts)
        pid = opts["pid"]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        with open(os.path.join(d, "fake-criu.json"), "w") as f:
            json.dump({"type": P.REQ_TYPE_NAMES[t], "argv": argv, "opts": opts}, f)
        if t == T["DUMP"]:
            notify(sock, "post-dump")
            if not opts.get("leave_running"):
                os.kill(pid, signal.SIGKILL)
        send(sock, {"type": t, "success": True})
    elif t == T["RESTORE"]:
        d = images_dir(sock, opts)
        with open(os.path.join(d, "fake-criu.json")) as f:
            dumped = json.load(f)
        with open(os.path.join(d, "fake-criu-restore.json"), "w") as f:
            json.dump({"opts": opts}, f)
        notify(sock, "setup-namespaces")
        keep = {e["fd"] for e in opts.get("inherit_fd") or [] if e.get("fd", -1) in (0, 1, 2)}
        pid = clone_sibling(dumped["argv"], keep)
        notify(sock, "post-restore", pid)
        send(sock, {"type": t, "success": True, "restore": {"pid": pid}})
    else:
        send(sock, {"type": t, "success": False, "cr_errno": 22})


if __name__ == "__main__":
    assert sys.argv[1:] == ["swrk", "3"], sys.argv
    main()
