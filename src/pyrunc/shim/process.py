"""The shim's process model, as containerd 1.6 expects of a v2 shim.

containerd runs the shim binary twice per container group. `start` (cwd: the
bundle; options Any on stdin; shim/start.py) must print the ttrpc address of
a shim for the container and return: the address comes from containerd's
address, the namespace and the group (the container id, or the pod's sandbox
id from the bundle's annotations, so that every container of a pod shares
one shim; socket_address here). The server it forks leaves the session and
stdio of `start` (containerd reads start's output until every copy of its
stdout is closed) and serves until a Shutdown finds no task left (serve
here). `delete` is containerd's clean-up of a bundle whose shim is gone: it
prints a DeleteResponse (exit status 137).
"""
from __future__ import annotations

import os
import posixpath
from time import time_ns

try:  # the builtin module: hashlib would load OpenSSL (3 ms of `start`)
    from _sha256 import sha256
except ImportError:  # Python >= 3.12
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256
import _socket as socket  # `socket` imports enum: 2 ms of `start` for names

# containerd 1.6's runtime/v2/shim/util_unix.go: the shims' sockets live
# under defaults.DefaultStateDir/s, whatever the daemon's own state dir
SOCKET_ROOT = "/run/containerd/s"
# annotations that group containers into one shim, first found wins:
# ours, and the CRI plugin's sandbox id (all containers of a pod)
GROUP_ANNOTATIONS = ("io.containerd.pyrunc.v1.group", "io.kubernetes.cri.sandbox-id")


class ShimError(Exception):
    """A failure of start/delete/serve, one line for stderr."""


def _go_join(*parts: str) -> str:
    """Go's filepath.Join: empty parts dropped, the result cleaned."""
    joined = "/".join(p for p in parts if p)
    if not joined:
        return ""
    cleaned = posixpath.normpath(joined)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def socket_address(containerd_address: str, namespace: str, group: str) -> str:
    """unix:///run/containerd/s/<sha256 of address/namespace/group>, as
    containerd 1.6's shim.SocketAddress."""
    digest = sha256(_go_join(containerd_address, namespace, group).encode()).hexdigest()
    return f"unix://{SOCKET_ROOT}/{digest}"


def socket_path(address: str) -> str:
    return address[len("unix://"):] if address.startswith("unix://") else "\0" + address


def grouping_key(bundle: str, container_id: str) -> str:
    """The group the container's shim serves: a grouping annotation of the
    bundle's config.json, else the container id."""
    from pyrunc.fastjson import JSONError, loads
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            spec = loads(f.read())
    except OSError as e:
        raise ShimError(f"open {path}: {os.strerror(e.errno or 0).lower()}") from None
    except (JSONError, ValueError):
        raise ShimError(f"{path}: invalid JSON") from None
    annotations = spec.get("annotations") if isinstance(spec, dict) else None
    if isinstance(annotations, dict):
        for key in GROUP_ANNOTATIONS:
            value = annotations.get(key)
            if isinstance(value, str) and value:
                return value
    return container_id


def can_connect(path: str, kind: int = socket.SOCK_STREAM) -> bool:
    """Something listens on the unix socket at `path` (a shim, or with
    SOCK_SEQPACKET a zygote)."""
    s = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    s.settimeout(2)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _listen(path: str) -> socket.socket:
    """A listening socket at `path` (mode 0600, its directory made)."""
    if not path.startswith("\0"):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.bind(path)
        if not path.startswith("\0"):
            os.chmod(path, 0o600)
        s.listen(128)
    except OSError:
        s.close()
        raise
    return s


def write_address(bundle: str, address: str) -> None:
    """The bundle's `address` file, written atomically (shim.WriteAddress):
    containerd reads it to reconnect after a restart."""
    tmp = os.path.join(bundle, ".address")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, address.encode())
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(bundle, "address"))


def remove_socket(address: str) -> None:
    path = socket_path(address)
    if not path.startswith("\0"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# -- delete ----------------------------------------------------------------------------

def delete(flags: dict[str, object] | None = None, bundle: str = "") -> bytes:
    """`delete`: containerd's clean-up after the shim died. The container
    (under the runtime root the shim used: the bundle's options' root, else
    /run/containerd/pyrunc/<namespace>) is killed and deleted through the
    library, the rootfs unmounted from <bundle>/rootfs; then the
    DeleteResponse containerd reads from stdout (exit status 137, now)."""
    if flags and flags.get("id") and bundle:
        _cleanup(str(flags["id"]), str(flags.get("namespace") or "default"), bundle)
    if bundle:
        _remove_dead_socket(bundle)
    from pyrunc.shim.deleted import EXIT_STATUS_KILLED, delete_response
    return delete_response(EXIT_STATUS_KILLED, time_ns())


def _remove_dead_socket(bundle: str) -> None:
    """A shim killed under its tasks leaves its socket in /run/containerd/s
    (runc's shim too): removed once nothing listens on it. A group's shim
    still serving other containers answers, and keeps it."""
    try:
        with open(os.path.join(bundle, "address")) as f:
            address = f.read().strip()
    except OSError:
        return
    if not address.startswith("unix://"):
        return
    path = socket_path(address)
    if path.startswith("\0") or not os.path.exists(path) or can_connect(path):
        return
    remove_socket(address)


def leave_session() -> None:
    """A forked shim's own session, its stdio on /dev/null: containerd
    reads `start`'s output until every copy of its stdout is closed."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _cleanup(cid: str, namespace: str, bundle: str) -> None:
    """Best effort, as runc's shim: what cannot be removed is left to the
    error containerd gets from the next step."""
    root = os.path.join(_options_root(bundle) or "/run/containerd/pyrunc", namespace)
    rootfs = os.path.join(bundle, "rootfs")
    # containerd runs `delete` after every task's end too: when the shim
    # cleaned up itself, there is nothing to import the library for
    if not os.path.exists(os.path.join(root, cid)) and not os.path.ismount(rootfs):
        return
    import pyrunc
    from pyrunc.errors import PyruncError
    from pyrunc.shim.mounts import unmount_all
    try:
        c = pyrunc.Container(cid, root)
        try:
            c.kill(9, all_processes=True)
        except PyruncError:
            pass
        c.delete(force=True)
    except PyruncError:
        pass
    try:
        unmount_all(rootfs)
    except OSError:
        pass


def _options_root(bundle: str) -> str:
    """The runc options' root containerd stored with the bundle
    (options.json, as CRI gives it), if any."""
    try:
        with open(os.path.join(bundle, "options.json"), "rb") as f:
            data = f.read()
    except OSError:
        return ""  # the usual case: no JSON parser imported for `delete`
    from pyrunc.fastjson import loads
    try:
        d = loads(data)
    except ValueError:
        return ""
    return str(d.get("Root") or d.get("root") or "") if isinstance(d, dict) else ""


# -- serve -----------------------------------------------------------------------------

def serve(listener: socket.socket, flags: dict[str, object], bundle: str, address: str | None) -> int:
    """Serve the Task service on `listener` until Shutdown (or SIGTERM /
    SIGINT); the socket file is removed on the way out."""
    import signal
    import socket as std_socket

    from pyrunc.shim import messages as m
    from pyrunc.shim.service import TaskService
    from pyrunc.shim.ttrpc import Server, spawn

    if not isinstance(listener, std_socket.socket):  # start's _socket.socket
        listener = std_socket.socket(fileno=listener.detach())
    _open_log(bundle)
    # a pipe, not an Event: a signal handler that took the Event's lock
    # while the main thread held it would deadlock; a write cannot
    stop_r, stop_w = os.pipe2(os.O_CLOEXEC)

    def stop(*_: object) -> None:
        try:
            os.write(stop_w, b"x")
        except OSError:
            pass

    # containerd's Create comes next: the cgroup lock's grace period runs
    # while it connects (pyrunc.cgroups.rearm_migration)
    from pyrunc.cgroups import rearm_migration
    rearm_migration()
    server = Server()
    publisher = None
    if os.environ.get("TTRPC_ADDRESS"):
        from pyrunc.shim.events import Publisher
        publisher = Publisher(os.environ["TTRPC_ADDRESS"], str(flags.get("namespace") or ""))
    def shutdown() -> None:
        # the socket goes before Shutdown's reply (as runc's shim): a `start`
        # for the same id right after must bind anew, not reach this shim
        if address:
            remove_socket(address)
        stop()

    service = TaskService(on_shutdown=shutdown, namespace=str(flags.get("namespace") or ""), publisher=publisher)
    service.start_reaper()
    server.register(m.TASK_SERVICE, service.handlers())
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    spawn(server.serve, listener)
    os.read(stop_r, 1)  # retried after a signal's handler (PEP 475)
    try:
        server.shutdown()
        service.flush_events()
    finally:
        if address:
            remove_socket(address)
        listener.close()
    return 0


def _open_log(bundle: str) -> None:
    """containerd 1.6 reads the shim's log from the bundle's `log` FIFO:
    make it the server's stderr when containerd has it open."""
    try:
        fd = os.open(os.path.join(bundle, "log"), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    os.set_blocking(fd, True)
    os.dup2(fd, 2)
    os.close(fd)
