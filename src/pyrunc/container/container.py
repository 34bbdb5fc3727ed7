"""`pyrunc.Container`: the library face of the lifecycle, for Python programs
that want containers without a daemon or a subprocess.

    from pyrunc import Container
    c = Container.create("web", bundle="/mycontainer")   # status: created
    c.start()                                             # status: running
    c.exec(["ps"], env=["TERM=xterm"])                   # its exit status
    c.kill(15); c.delete(force=True)
    status = Container.run("job", bundle="/mycontainer")  # create, start, wait, delete

Every method is the same code the command line runs, so behaviour (errors,
cleanup, state on disk) is identical and other tools (`pyrunc list`, an
engine) see the container too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import ops
from .launch import CreateOptions, create


if TYPE_CHECKING:
    from ..spec.model import Resources, Spec
    from .exec import ExecOptions
    from .state import State


def _config_dict(config: "Spec | Resources | dict", what: str = "config") -> dict:
    """A private JSON copy of the caller's object (the state keeps it as JSON,
    and the type check drops its nulls)."""
    from ..errors import ConfigError
    from ..fastjson import dumps, loads
    d = config.to_dict() if hasattr(config, "to_dict") else config
    if not isinstance(d, dict):
        kind = "a Spec" if what == "config" else "Resources"
        raise ConfigError(f"{what}: expected {kind} or a dict, got {type(d).__name__}")
    try:
        return loads(dumps(d))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: not representable as JSON: {e}") from e


_DEFAULT_ROOT = "/run/pyrunc"


class Container:
    """A container under a state root (default /run/pyrunc)."""

    def __init__(self, cid: str, root: str = _DEFAULT_ROOT) -> None:
        from .state import validate_id
        validate_id(cid)
        self.id = cid
        self.root = root

    @staticmethod
    def _options(bundle: str, config, mode: str, detach: bool, **kw) -> CreateOptions:
        o = CreateOptions(bundle=bundle, mode=mode, detach=detach, **kw)
        if config is not None:
            o.config = _config_dict(config)
        return o

    @classmethod
    def create(cls, cid: str, bundle: str, root: str = _DEFAULT_ROOT, *, config: "Spec | dict | None" = None,
               pid_file: str = "", console_socket: str = "", pidfd_socket: str = "", no_pivot: bool = False,
               no_new_keyring: bool = False, preserve_fds: int = 0,
               systemd_cgroup: bool = False, stdio: "tuple[int, int, int] | None" = None) -> "Container":
        """Set the container up; its init waits for start(). config: the
        configuration as a pyrunc.spec.model.Spec or a config.json-shaped
        dict, in place of <bundle>/config.json (the bundle still anchors a
        relative root.path and is the state's `bundle`); it is type-checked
        as config.json is, and kept in the container's state.
        console_socket: where the terminal's master goes (process.terminal).
        systemd_cgroup: a systemd unit holds its cgroup (--systemd-cgroup).
        stdio: three fds that become the container's stdin, stdout and
        stderr in place of this process's (a shim hands its FIFOs over so)."""
        o = cls._options(bundle, config, "create", True, pid_file=pid_file, console_socket=console_socket,
                         pidfd_socket=pidfd_socket, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                         preserve_fds=preserve_fds, systemd_cgroup=systemd_cgroup)
        from .exec import three_fds
        o.stdio = three_fds(stdio)
        create(root, cid, o).sd.unlock()
        return cls(cid, root)

    @classmethod
    def run(cls, cid: str, bundle: str, root: str = _DEFAULT_ROOT, *, config: "Spec | dict | None" = None,
            detach: bool = False, keep: bool = False, pid_file: str = "", console_socket: str = "",
            pidfd_socket: str = "", no_pivot: bool = False, no_new_keyring: bool = False,
            preserve_fds: int = 0, systemd_cgroup: bool = False) -> int:
        """`pyrunc run`: create and start the container, run its poststart
        hooks, and (unless detach) stay with it until it exits: signals this
        process receives are forwarded to it, a terminal (process.terminal
        without console_socket) is proxied to this process's stdio, and the
        container is deleted afterwards unless keep. Returns its exit status
        (128+N when signal N killed it); 0 once started when detached.
        In the foreground, call it from the main thread (signal handling);
        the process's signal handlers and subreaper setting are restored."""
        if not detach:
            import threading
            if threading.current_thread() is not threading.main_thread():
                from ..errors import PyruncError
                raise PyruncError("Container.run in the foreground needs the main thread (it forwards signals); "
                                  "use detach=True, or create() and start(), from other threads")
        from .run import run
        o = cls._options(bundle, config, "run", detach, pid_file=pid_file, console_socket=console_socket,
                         pidfd_socket=pidfd_socket, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                         preserve_fds=preserve_fds, systemd_cgroup=systemd_cgroup)
        return run(root, cid, o, keep=keep)

    def start(self) -> None:
        """Run the user's process in the created container (and its
        poststart hooks)."""
        ops.start(self.root, self.id)

    def state(self) -> "State":
        """The OCI state (oci_version, id, status, pid, bundle, rootfs,
        created, owner, annotations); .to_dict() is `pyrunc state`'s JSON."""
        from .state import State
        return State.from_dict(ops.state_doc(self.root, self.id))

    @property
    def status(self) -> str:
        return self.state().status

    @property
    def pid(self) -> int:
        return self.state().pid

    def kill(self, sig: int | str = 15, all_processes: bool = False) -> None:
        signum = ops.parse_signal(sig) if isinstance(sig, str) else sig
        ops.kill(self.root, self.id, signum, all_processes)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the container's init exits (on a pidfd: no polling)
        and return its exit status, 128+N for signal N, reaping it. That
        needs this process to be the init's parent: the one that created
        it with a new pid namespace and no user or time namespace (the
        library forks such an init itself), or a child subreaper (prctl
        PR_SET_CHILD_SUBREAPER, as a shim is) that created it; else the
        init is someone else's to reap and this returns None once it has
        exited (also when it was gone already). TimeoutError after
        `timeout` seconds."""
        return ops.wait(self.root, self.id, timeout)

    def delete(self, force: bool = False) -> None:
        ops.delete(self.root, self.id, force)

    def pause(self) -> None:
        """Freeze every process of the container (status: paused)."""
        ops.pause(self.root, self.id)

    def resume(self) -> None:
        ops.resume(self.root, self.id)

    def update(self, resources: "Resources | dict") -> None:
        """Change the container's resources (linux.resources format, or a
        pyrunc.spec.model.Resources); kept in its state, as `pyrunc update` does."""
        from .update import update
        update(self.root, self.id, _config_dict(resources, "resources"))

    def stats(self) -> dict:
        """cgroup statistics, as `pyrunc events --stats` reports them."""
        from ..cgroups import Manager
        sd, st, _ = ops.load(self.root, self.id, shared=True)
        sd.unlock()
        return Manager(st.get("cgroup_paths") or {}).stats()

    def exec(self, args: "list[str] | tuple[str, ...] | ExecOptions" = (), **options) -> int:
        """Run a process inside; returns its exit status (128+N for signal
        N; 0 when detached). args: the command, or an ExecOptions; options:
        ExecOptions' fields (env, cwd, user, tty, detach, console_socket,
        pid_file, pidfd_socket, process, capabilities, no_new_privs,
        apparmor, label, cgroup, ignore_paused, preserve_fds, ...)."""
        from .exec import ExecOptions, execute
        if isinstance(args, ExecOptions):
            if options:
                raise TypeError("exec: pass either an ExecOptions or keyword options")
            o = args
        else:
            o = ExecOptions(args, **options)
        return execute(self.root, self.id, o)

    @classmethod
    def list(cls, root: str = _DEFAULT_ROOT) -> list["Container"]:
        from .state import list_ids
        return [cls(cid, root) for cid in list_ids(root)]

    def __repr__(self) -> str:
        return f"Container({self.id!r}, root={self.root!r})"
