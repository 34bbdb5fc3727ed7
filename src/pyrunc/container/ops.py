"""start, kill, delete and state of an existing container, with runc's rules
and messages."""
from __future__ import annotations

import _signal
import os
import select
import time

from .. import log
from ..errors import PyruncError
from .state import StateDir, oci_state, proc_start_time, status_of


def load(root: str, cid: str, shared: bool = False) -> tuple[StateDir, dict, str]:
    """Lock, load and derive the status of a container."""
    sd = StateDir(root, cid)
    if not os.path.isdir(sd.path):
        from ..errors import ContainerNotExist
        raise ContainerNotExist()
    sd.lock(shared=shared)
    st = sd.load()
    return sd, st, status_of(st, sd.fifo)


def state_doc(root: str, cid: str) -> dict:
    sd, st, status = load(root, cid, shared=True)
    sd.unlock()
    return oci_state(st, status)


def start(root: str, cid: str) -> None:
    sd, st, status = load(root, cid)
    try:
        if status == "stopped":
            raise PyruncError("cannot start a container that has stopped")
        if status == "running":
            raise PyruncError("cannot start an already running container")
        if status == "paused":
            raise PyruncError("cannot start a paused container")
        _release_fifo(sd.fifo, st["pid"])
        run_poststart(st)
    finally:
        sd.unlock()


def run_poststart(st: dict) -> None:
    """The poststart hooks, once the user's process runs. As runtime-spec
    1.2 and runc 1.2+: a failure is an error and stops the container (every
    process killed); the caller deletes it, or `delete` does later."""
    hooks = (st.get("config", {}).get("hooks") or {}).get("poststart") or []
    if not hooks:
        return
    from .. import hooks as H
    try:
        H.run_hooks("poststart", hooks, oci_state(st, "running"), cwd=st.get("bundle"))
    except PyruncError:
        stop(st)
        raise


def stop(st: dict) -> None:
    """SIGKILL the init and everything in the container's cgroup, and wait
    until the init is gone (reaped, if it is our child)."""
    try:
        os.kill(st["pid"], _signal.SIGKILL)
    except ProcessLookupError:
        pass
    _signal_all(st, _signal.SIGKILL)
    _wait_stopped(st)


def _release_fifo(path: str, pid: int) -> None:
    """Open the exec fifo for reading: the init, blocked opening it for
    writing, writes one byte and goes on to exec the user's process."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyruncError("cannot start an already running container") from None
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        while True:
            if p.poll(100):
                data = os.read(fd, 1)
                if not data:
                    raise PyruncError("cannot start an already running container")
                break
            if proc_start_time(pid) is None:
                raise PyruncError("container process is already dead")
    finally:
        os.close(fd)
    os.unlink(path)


_SIGNALS = {n: getattr(_signal, n) for n in dir(_signal)
            if n.startswith("SIG") and not n.startswith("SIG_") and isinstance(getattr(_signal, n), int)}


def parse_signal(s: str) -> int:
    """KILL, SIGKILL, kill or 9, as runc accepts them."""
    if s.isdigit():
        n = int(s)
        if 0 <= n < 65:
            return n
        raise PyruncError(f"unknown signal {s!r}")
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name in _SIGNALS:
        return _SIGNALS[name]
    if name.startswith("SIGRTMIN+") and name[9:].isdigit():
        return _signal.SIGRTMIN + int(name[9:])
    raise PyruncError(f'unknown signal "{s}"')


def kill(root: str, cid: str, sig: int, all_procs: bool = False) -> None:
    sd, st, status = load(root, cid, shared=True)
    try:
        if status == "stopped":
            if all_procs:  # runc: with --all a stopped container is not an error
                _signal_all(st, sig)
                return
            raise PyruncError("container not running")
        if all_procs:
            _signal_all(st, sig)
        else:
            os.kill(st["pid"], sig)
    finally:
        sd.unlock()


def _signal_all(st: dict, sig: int) -> None:
    from ..cgroups import Manager
    for pid in Manager(st.get("cgroup_paths") or {}).pids():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def delete(root: str, cid: str, force: bool = False) -> None:
    sd = StateDir(root, cid)
    if not os.path.isdir(sd.path):
        from ..errors import ContainerNotExist
        raise ContainerNotExist()
    sd.lock()
    try:
        st = sd.load()
    except PyruncError:
        if force:  # a half-written container: remove what is there
            sd.remove()
            return
        raise
    status = status_of(st, sd.fifo)
    if status in ("running", "paused") and not force:
        sd.unlock()
        raise PyruncError(f"cannot delete container {cid} that is not stopped: {status}")
    destroy(sd, st, status)


def destroy(sd: StateDir, st: dict, status: str) -> None:
    """Kill what is left, remove the cgroup, run poststop hooks, drop the state."""
    from ..cgroups import manager_from_state
    cg = manager_from_state(st)
    if status != "stopped":
        try:
            os.kill(st["pid"], _signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status == "paused":
            _thaw(st)
    pid_ns_owned = "pid" in (st.get("namespaces") or {}) and not \
        (st.get("config", {}).get("linux", {}).get("namespaces") and
         any(n.get("type") == "pid" and n.get("path") for n in st["config"]["linux"]["namespaces"]))
    if not pid_ns_owned or status != "stopped":
        _signal_all(st, _signal.SIGKILL)
    _wait_stopped(st)
    if st.get("host_mount"):  # no mount namespace: the container's mounts are the host's
        from ..rootfs import hostns
        hostns.release(st["rootfs"], st["host_mount"])
    try:
        cg.destroy()
    except OSError as e:
        log.warn(f"failed to remove cgroup: {e}")
    hooks = (st.get("config", {}).get("hooks") or {}).get("poststop") or []
    if hooks:
        from .. import hooks as H
        try:
            H.run_hooks("poststop", hooks, oci_state(st, "stopped"))
        except PyruncError as e:
            log.warn(str(e))
    sd.remove()


def _thaw(st: dict) -> None:
    path = st.get("freezer")
    for name, value in (("freezer.state", b"THAWED"), ("cgroup.freeze", b"0")):
        try:
            with open(os.path.join(path, name), "wb") as f:
                f.write(value)
        except (OSError, TypeError):
            pass


def _wait_stopped(st: dict, timeout: float = 10.0) -> None:
    pid, start = st.get("pid", 0), st.get("init_start")
    end = time.monotonic() + timeout
    delay = 0.0005
    while pid and proc_start_time(pid) == start and time.monotonic() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _freeze(st: dict, frozen: bool) -> None:
    """v1 freezer.state or v2 cgroup.freeze, then wait until the kernel agrees."""
    path = st.get("freezer")
    if not path:
        raise PyruncError("cannot pause: no freezer cgroup (the freezer controller is not available)")
    v1 = os.path.exists(os.path.join(path, "freezer.state"))
    name = "freezer.state" if v1 else "cgroup.freeze"
    want = (b"FROZEN" if frozen else b"THAWED") if v1 else (b"1" if frozen else b"0")
    for _ in range(1000):
        with open(os.path.join(path, name), "wb") as f:
            f.write(want)
        if v1:
            with open(os.path.join(path, name), "rb") as f:
                if f.read().strip() == want:
                    return
        else:
            with open(os.path.join(path, "cgroup.events"), "rb") as f:
                if (b"frozen 1" in f.read()) == frozen:
                    return
        time.sleep(0.001)
    raise PyruncError("timed out waiting for the freezer")


def pause(root: str, cid: str) -> None:
    sd, st, status = load(root, cid)
    try:
        if status not in ("running", "created"):
            raise PyruncError("container not running" if status == "stopped" else f"container {status}")
        _freeze(st, True)
    finally:
        sd.unlock()


def resume(root: str, cid: str) -> None:
    sd, st, status = load(root, cid)
    try:
        if status != "paused":
            raise PyruncError("container not paused")
        _freeze(st, False)
    finally:
        sd.unlock()
