"""start, kill, delete and state of an existing container, with runc's rules
and messages."""
from __future__ import annotations

import _signal
import os

from .. import log
from ..errors import InvalidState, PyruncError
from .state import StateDir, load, load_state, oci_state, open_pidfd, proc_start_time, state_doc, status_of, wait_pidfd  # noqa: F401 - load, state_doc: ops' API


def start(root: str, cid: str) -> None:
    sd, st, status = load(root, cid)
    try:
        if status == "stopped":
            raise InvalidState("cannot start a container that has stopped", status)
        if status == "running":
            raise InvalidState("cannot start an already running container", status)
        if status == "paused":
            raise InvalidState("cannot start a paused container", status)
        _release_fifo(sd.fifo, st["pid"])
        if log.debug_enabled():
            log.debug(f"start: container {cid} started, init pid {st['pid']}")
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
    import select
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as e:  # another start took it
        raise InvalidState("cannot start an already running container", "running") from e
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        while True:
            if p.poll(100):
                data = os.read(fd, 1)
                if not data:
                    raise InvalidState("cannot start an already running container", "running")
                break
            if proc_start_time(pid) is None:
                raise InvalidState("container process is already dead", "stopped")
    finally:
        os.close(fd)
    os.unlink(path)


def _signals() -> dict[str, int]:
    """Signal names and numbers, made on first use (not by every command that imports ops)."""
    return {n: getattr(_signal, n) for n in dir(_signal)
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
    signals = _signals()
    if name in signals:
        return signals[name]
    if name.startswith("SIGRTMIN+") and name[9:].isdigit():
        return _signal.SIGRTMIN + int(name[9:])
    raise PyruncError(f'unknown signal "{s}"')


def kill(root: str, cid: str, sig: int, all_procs: bool = False) -> None:
    sd, st, status = load(root, cid, shared=True)
    try:
        if sig == _signal.SIGKILL and not own_pid_ns(st):
            # runc: without a pid namespace of its own, killing the init
            # leaves its other processes running: kill all of its cgroup,
            # a stopped container's leftovers too
            from ..cgroups import manager_from_state
            if manager_from_state(st).kill_all():
                if status == "paused":
                    _thaw(st)
                return
        if status == "stopped":
            if all_procs:  # runc: with --all a stopped container is not an error
                _signal_all(st, sig)
                return
            raise InvalidState("container not running", status)
        if all_procs:
            _signal_all(st, sig)
        else:
            os.kill(st["pid"], sig)
            if sig == _signal.SIGKILL and status == "paused":
                _thaw(st)  # runc: a v1 frozen process dies only once thawed
    finally:
        sd.unlock()


def own_pid_ns(st: dict) -> bool:
    """Whether the container has a pid namespace of its own (runc's
    IsPrivate(NEWPID)): a new one, not one joined by path. Killing its init
    then kills every process in it; otherwise the cgroup says who is left."""
    nss = ((st.get("config") or {}).get("linux") or {}).get("namespaces") or []
    return any(n.get("type") == "pid" and not n.get("path") for n in nss)


def _signal_all(st: dict, sig: int) -> None:
    from ..cgroups import Manager
    if sig == _signal.SIGKILL:
        Manager(st.get("cgroup_paths") or {}).kill_all()
        return
    for pid in Manager(st.get("cgroup_paths") or {}).pids():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def delete(root: str, cid: str, force: bool = False) -> None:
    sd = StateDir(root, cid)
    if not os.path.isdir(sd.path):
        from ..errors import ContainerNotFound
        raise ContainerNotFound(cid)
    sd.lock()
    try:
        st = sd.load()
    except PyruncError as e:
        # a create killed before its state existed (runc removes the
        # directory even without --force), or a corrupt state: what the
        # create planned to make, if it said, goes too
        from ..errors import ContainerNotFound
        if force or isinstance(e, ContainerNotFound):
            plan = sd.load_plan()
            if plan:
                destroy(sd, plan, "stopped")
                unit = (plan.get("systemd") or {}).get("unit")
                if unit:
                    from ..cgroups.systemd import stop_late_start
                    stop_late_start(unit)
            else:
                sd.remove()
        if force:
            return
        raise
    status = status_of(st, sd.fifo)
    if status in ("running", "paused") and not force:
        sd.unlock()
        raise InvalidState(f"cannot delete container {cid} that is not stopped: {status}", status)
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
    if not own_pid_ns(st) or status != "stopped":
        cg.kill_all()  # runc's destroy: the processes the init leaves behind
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
    if log.debug_enabled():
        log.debug(f"delete: container {st.get('id')} removed (it was {status})")


def _thaw(st: dict) -> None:
    path = st.get("freezer")
    if not isinstance(path, str) or not path:
        return  # no freezer cgroup recorded
    for name, value in (("freezer.state", b"THAWED"), ("cgroup.freeze", b"0")):
        try:
            with open(os.path.join(path, name), "wb") as f:
                f.write(value)
        except OSError:
            pass


def _wait_stopped(st: dict, timeout: float = 10.0) -> None:
    """Wait (on a pidfd, no polling) until the init is gone, and reap it if
    it is our child."""
    pid = st.get("pid", 0)
    fd = open_pidfd(pid, st.get("init_start"))
    if fd < 0:
        return
    try:
        if wait_pidfd(fd, timeout):
            try:
                os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                pass
    finally:
        os.close(fd)


def wait(root: str, cid: str, timeout: float | None = None) -> int | None:
    """Block until the container's init exits; its exit status (128+N for
    signal N) when this process reaps it (it is the init's parent: a child
    subreaper above the create, or the create was a `run`), else None."""
    sd, st = load_state(root, cid, shared=True)  # no status: the pidfd says it
    sd.unlock()
    fd = open_pidfd(st.get("pid", 0), st.get("init_start"))
    if fd < 0:
        return None  # gone already, reaped by someone
    try:
        if not wait_pidfd(fd, timeout):
            raise TimeoutError(f"container {cid}: still running after {timeout} seconds")
        try:
            res = os.waitid(os.P_PIDFD, fd, os.WEXITED)
        except ChildProcessError:
            return None
    finally:
        os.close(fd)
    if res is None:
        return None
    from .foreground import exit_status_of
    return exit_status_of(res.si_code, res.si_status)


def _freeze(st: dict, frozen: bool) -> None:
    """v1 freezer.state or v2 cgroup.freeze, then wait until the kernel agrees."""
    path = st.get("freezer")
    if not path:
        raise PyruncError("cannot pause: no freezer cgroup (the freezer controller is not available)")
    from ..cgroups import set_frozen
    if not set_frozen(path, frozen):
        raise PyruncError("timed out waiting for the freezer")


def pause(root: str, cid: str) -> None:
    sd, st, status = load(root, cid)
    try:
        if status not in ("running", "created"):
            raise InvalidState("container not running" if status == "stopped" else f"container {status}", status)
        _freeze(st, True)
    finally:
        sd.unlock()


def resume(root: str, cid: str) -> None:
    sd, st, status = load(root, cid)
    try:
        if status != "paused":
            raise InvalidState("container not paused", status)
        _freeze(st, False)
    finally:
        sd.unlock()
