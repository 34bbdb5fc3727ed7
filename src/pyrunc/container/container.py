"""`pyrunc.Container`: the library face of the lifecycle, for Python programs
that want containers without a daemon or a subprocess.

    from pyrunc import Container
    c = Container.create("web", bundle="/mycontainer")   # status: created
    c.start()                                             # status: running
    c.kill(15); c.delete(force=True)

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


class Container:
    """A container under a state root (default /run/pyrunc)."""

    def __init__(self, cid: str, root: str = "/run/pyrunc") -> None:
        from .state import validate_id
        validate_id(cid)
        self.id = cid
        self.root = root

    @classmethod
    def create(cls, cid: str, bundle: str, root: str = "/run/pyrunc", *, config: "Spec | dict | None" = None,
               pid_file: str = "", console_socket: str = "", no_pivot: bool = False,
               no_new_keyring: bool = False, preserve_fds: int = 0,
               systemd_cgroup: bool = False) -> "Container":
        """Set the container up; its init waits for start(). config: the
        configuration as a pyrunc.spec.model.Spec or a config.json-shaped
        dict, in place of <bundle>/config.json (the bundle still anchors a
        relative root.path); it is type-checked as config.json is.
        systemd_cgroup: a systemd unit holds its cgroup (--systemd-cgroup)."""
        o = CreateOptions(bundle=bundle, pid_file=pid_file, console_socket=console_socket,
                          no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                          preserve_fds=preserve_fds, mode="create", detach=True,
                          systemd_cgroup=systemd_cgroup)
        if config is not None:
            o.config = _config_dict(config)
        create(root, cid, o).sd.unlock()
        return cls(cid, root)

    def start(self) -> None:
        ops.start(self.root, self.id)

    def state(self) -> dict:
        """The OCI state document (id, pid, status, bundle, ...)."""
        return ops.state_doc(self.root, self.id)

    @property
    def status(self) -> str:
        return self.state()["status"]

    @property
    def pid(self) -> int:
        return self.state()["pid"]

    def kill(self, sig: int | str = 15, all_processes: bool = False) -> None:
        signum = ops.parse_signal(sig) if isinstance(sig, str) else sig
        ops.kill(self.root, self.id, signum, all_processes)

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

    def exec(self, args: list[str], *, env: list[str] | None = None, cwd: str = "",
             user: str = "", detach: bool = False, pid_file: str = "") -> int:
        """Run a process inside; returns its exit status (0 when detached)."""
        from .exec import execute
        opts = {"env": env or [], "cwd": cwd, "user": user, "detach": detach, "pid-file": pid_file}
        return execute(self.root, self.id, opts, list(args))

    @classmethod
    def list(cls, root: str = "/run/pyrunc") -> list["Container"]:
        from .state import list_ids
        return [cls(cid, root) for cid in list_ids(root)]

    def __repr__(self) -> str:
        return f"Container({self.id!r}, root={self.root!r})"
