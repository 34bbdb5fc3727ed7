"""Talking to CRIU as runc does: `criu swrk 3`, one protobuf criu_req /
criu_resp per SOCK_SEQPACKET message over a socketpair (the server end is
the child's fd 3; files CRIU must inherit follow at 4, 5, ...).

CRIU may answer a request with NOTIFY messages first (notify_scripts): each
is handed to a callback and acknowledged (notify_success) before CRIU goes
on; the last message is the answer to the request itself.
"""
from __future__ import annotations

import os
import shutil
import socket

from ..errors import PyruncError
from . import proto as P

BUF = 10 * 4096  # runc's receive buffer


class CriuError(PyruncError):
    """CRIU refused or failed; the message says how, in one line."""


def find_criu() -> str:
    path = shutil.which("criu")
    if not path:
        raise CriuError('exec: "criu": executable file not found in $PATH')
    return path


class Swrk:
    """One `criu swrk` process and its socket."""

    def __init__(self, extra_fds: tuple[int, ...] = (), inherit_stdio: bool = False,
                 stdio: tuple[int, int, int] | None = None) -> None:
        criu = find_criu()
        self.sock, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.pid = os.fork()
        except OSError:
            self.sock.close()
            server.close()
            raise
        if self.pid == 0:  # pragma: no cover - the child execs criu
            try:
                fds = [server.fileno(), *extra_fds]
                moved = [os.dup(fd) for fd in [*fds, *(stdio or ())]]  # above every target number
                for n, fd in enumerate(moved[len(fds):]):  # a restore's process stdio (the shim's)
                    os.dup2(fd, n, inheritable=True)
                for i, fd in enumerate(moved[:len(fds)]):
                    os.dup2(fd, 3 + i, inheritable=True)
                os.closerange(3 + len(fds), 1 << 20)
                if not inherit_stdio and stdio is None:
                    null = os.open("/dev/null", os.O_RDWR)
                    for n in (0, 1, 2):
                        os.dup2(null, n)
                os.execv(criu, [criu, "swrk", "3"])
            finally:
                os._exit(127)
        server.close()
        self.status: int | None = None

    def send(self, req: dict) -> None:
        try:
            self.sock.send(P.encode("criu_req", req))
        except OSError as e:
            raise CriuError(f"criu failed: {e.strerror}") from None

    def recv(self) -> tuple[dict, list[int]]:
        """The next criu_resp, with any file descriptors it carries."""
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, BUF, 4)
        except OSError as e:
            raise CriuError(f"criu failed: {e.strerror}") from None
        if not data:
            raise CriuError("criu failed: unexpected EOF")
        if len(data) == BUF:
            raise CriuError("criu failed: buffer is too small")
        try:
            return P.decode("criu_resp", data), list(fds)
        except ValueError as e:
            raise CriuError(f"criu failed: bad response: {e}") from None

    def wait(self) -> int:
        """Close our end and reap CRIU; its wait status."""
        self.sock.close()
        if self.status is None:
            while True:
                try:
                    _, self.status = os.waitpid(self.pid, 0)
                    break
                except ChildProcessError:
                    self.status = 0
                    break
                except InterruptedError:
                    continue
        return self.status


def _type_name(t: int) -> str:
    return P.REQ_TYPE_NAMES.get(t, str(t))


def call(req: dict, notify=None, extra_fds: tuple[int, ...] = (), inherit_stdio: bool = False,
         on_start=None, stdio: tuple[int, int, int] | None = None) -> dict:
    """Send one request to a new `criu swrk`, serve its notifications
    (notify(resp, fds) -> None; raising aborts), return the final response.
    `on_start(pid)` runs once CRIU is started (runc applies the cgroups of a
    restore to CRIU there). `stdio`: CRIU's fds 0, 1, 2 (what a restore's
    inherit_fd entries for the process's stdio refer to) instead of ours."""
    s = Swrk(extra_fds, inherit_stdio, stdio)
    want = req["type"]
    try:
        if on_start is not None:
            on_start(s.pid)
        s.send(req)
        while True:
            resp, fds = s.recv()
            try:
                if not resp.get("success"):
                    msg = f"criu failed: type {_type_name(resp.get('type', 0))} errno {resp.get('cr_errno', 0)}"
                    if resp.get("cr_errmsg"):
                        msg += f": {resp['cr_errmsg']}"
                    raise CriuError(msg)
                t = resp.get("type")
                if t == P.REQ_TYPES["NOTIFY"]:
                    if notify is not None:
                        notify(resp, fds)
                    s.send({"type": t, "notify_success": True})
                    continue
                if t not in (want, P.REQ_TYPES["FEATURE_CHECK"], P.REQ_TYPES["VERSION"]):
                    raise CriuError(f"criu failed: unable to parse the response type {_type_name(t or 0)}")
                break
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
    except BaseException:
        try:
            os.kill(s.pid, 9)
        except ProcessLookupError:
            pass
        s.wait()
        raise
    status = s.wait()
    # a pre-dump leaves CRIU waiting for more: its exit status does not count
    if status != 0 and want != P.REQ_TYPES["PRE_DUMP"]:
        code = os.waitstatus_to_exitcode(status)
        how = f"exit status {code}" if code >= 0 else f"signal: {-code}"
        raise CriuError(f"criu failed: {how}")
    return resp


def version() -> int:
    """CRIU's version as runc computes it (major*10000 + minor*100 + sublevel;
    a git build counts as the next minor)."""
    try:
        resp = call({"type": P.REQ_TYPES["VERSION"]})
    except CriuError as e:
        raise CriuError(f"CRIU version check failed: {e}") from None
    v = resp.get("version") or {}
    n = v.get("major_number", 0) * 10000 + v.get("minor_number", 0) * 100 + v.get("sublevel", 0)
    if v.get("gitid"):
        n = n - n % 100 + 100
    return n


def check_version(have: int, minimum: int) -> None:
    if have < minimum:
        raise CriuError(f"CRIU version {have} must be {minimum} or higher")


def features(wanted: dict) -> None:
    """FEATURE_CHECK: fails with runc's message naming what CRIU lacks."""
    try:
        resp = call({"type": P.REQ_TYPES["FEATURE_CHECK"], "features": wanted})
    except CriuError as e:
        raise CriuError(f"CRIU feature check failed: {e}") from None
    got = resp.get("features") or {}
    names = {"mem_track": "MemTrack", "lazy_pages": "LazyPages"}
    missing = [names.get(k, k) for k, v in wanted.items() if v and k in got and not got[k]]
    if missing:
        raise CriuError(f"criu is missing features: [{' '.join(missing)}]")


def first_log_error(path: str) -> str:
    """The first "Error" line of a CRIU log, for a one-line message."""
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if "Error" in line:
                    line = line.strip()
                    # "(00.013802) Error (criu/vdso.c:381): vdso: ..." -> "vdso: ..."
                    if line.startswith("(") and ") " in line:
                        line = line.split(") ", 1)[1]
                    if line.startswith("Error (") and "): " in line:
                        line = line.split("): ", 1)[1]
                    return line
    except OSError:
        pass
    return ""
