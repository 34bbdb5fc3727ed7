"""`start`: the address of the shim that serves a new container.

containerd runs `<shim> start` in the bundle (the runc options on stdin) and
reads its output until every copy of its stdout is closed. The address is
the group's (shim/process.py's socket_address): a shim of the group that
answers there is shared; otherwise the socket is bound here, the bundle's
`address` file written, and the server forked, by this containerd's zygote
when one answers (shim/zygote.py), else here.
"""
from __future__ import annotations

import errno
import os
import sys

import _socket as socket  # `socket` imports enum: 2 ms of `start` for names

from pyrunc.shim.process import (ShimError, can_connect, _listen, grouping_key, leave_session, remove_socket,
                                 serve, socket_address, socket_path, write_address)




def start(flags: dict[str, object], bundle: str) -> str:
    """`start`: the address of the shim that serves this container (a
    running one of its group, else a new one forked here)."""
    from pyrunc.shim import zygote
    idle = zygote.idle_seconds(os.environ)
    zpath = zygote.zygote_path(str(flags["address"])) if idle else ""
    zconn = zygote.connect(zpath) if zpath else None  # first: it warms the cgroup lock
    try:
        return _start(flags, bundle, zpath, zconn, idle)
    finally:
        if zconn is not None:
            zconn.close()  # (a shared shim: no request)


def _start(flags: dict[str, object], bundle: str, zpath: str, zconn, idle: float) -> str:
    address = socket_address(str(flags["address"]), str(flags["namespace"]),
                             grouping_key(bundle, str(flags["id"])))
    options = _read_options()
    path = socket_path(address)
    try:
        listener = _listen(path)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise ShimError(f"create new shim socket: {path}: {os.strerror(e.errno or 0).lower()}") from None
        if can_connect(path):  # the group's shim is up: share it
            write_address(bundle, address)
            return address
        remove_socket(address)  # a dead shim's socket
        try:
            listener = _listen(path)
        except OSError as e2:
            raise ShimError(f"create new shim socket: {path}: {os.strerror(e2.errno or 0).lower()}") from None
    pid = 0
    try:
        write_address(bundle, address)
        pid = _fork_server(listener, flags, bundle, address, zpath, zconn, idle)
        listener.close()
        _adjust_oom_score(pid)
        if options is not None and options.shim_cgroup:
            _join_cgroup(pid, options.shim_cgroup)
    except BaseException:  # nothing left behind: no server, socket or address file
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        listener.close()
        remove_socket(address)
        try:
            os.unlink(os.path.join(bundle, "address"))
        except OSError:
            pass
        raise
    return address


def _fork_server(listener: socket.socket, flags: dict[str, object], bundle: str, address: str,
                 zpath: str, zconn, idle: float) -> int:
    """The new shim's pid: forked by this containerd's zygote when one
    answers (warm), else here, and then a zygote launched for the next
    `start` (unless PYRUNC_SHIM_ZYGOTE_IDLE=0: no zpath)."""
    if not zpath:
        return _spawn(listener, flags, bundle, address)
    from pyrunc.shim import zygote
    pid = zygote.fork_shim(zconn, listener, flags, bundle, address)
    if pid is None:
        pid = _spawn(listener, flags, bundle, address)
        zpid = zygote.launch(zpath, idle)
        if zpid:
            _adjust_oom_score(zpid)  # as its shims: the OOM killer takes it before containerd
    return pid


def _read_options():
    """The runc Options containerd passes on stdin (an Any), if any."""
    try:
        if os.isatty(0):
            return None
        data = b""
        while chunk := os.read(0, 1 << 16):
            data += chunk
    except OSError:
        return None
    if not data:
        return None
    from pyrunc.shim import messages as m
    from pyrunc.shim.protobuf import Any, DecodeError
    try:
        any_ = Any.decode(data)
        if any_.type_url.rpartition("/")[2] == m.Options.NAME:
            return m.Options.decode(any_.value)
    except DecodeError:
        raise ShimError("invalid shim options on stdin") from None
    return None


def _spawn(listener: socket.socket, flags: dict[str, object], bundle: str, address: str) -> int:
    """Fork the server: a new session, stdio on /dev/null, the listener
    already bound (a client that connects before the server runs waits in
    its backlog). The child never returns."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        leave_session()
        code = serve(listener, flags, bundle, address)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _adjust_oom_score(pid: int) -> None:
    """The shim's oom_score_adj: containerd's plus one (shim.AdjustOOMScore),
    so the OOM killer takes a shim before the daemon."""
    try:
        with open(f"/proc/{os.getppid()}/oom_score_adj") as f:
            score = int(f.read().strip())
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(min(score + 1, 1000)))
    except (OSError, ValueError):
        pass  # e.g. a parent already at the maximum, or a read-only /proc


def _join_cgroup(pid: int, cgroup: str) -> None:
    """Options.shim_cgroup (cgroup v2): move the shim there."""
    path = os.path.join("/sys/fs/cgroup", cgroup.lstrip("/"), "cgroup.procs")
    try:
        with open(path, "w") as f:
            f.write(str(pid))
    except OSError as e:
        raise ShimError(f"failed to join cgroup {cgroup}: {os.strerror(e.errno or 0).lower()}") from None
