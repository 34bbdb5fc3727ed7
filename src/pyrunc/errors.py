"""The exceptions pyrunc raises: the CLI turns any of them into one line on
stderr (their text, unchanged by the class); a library caller tells them
apart by type instead of by message. Classes only: every command imports
this module, so it imports nothing."""
from __future__ import annotations


class PyruncError(Exception):
    """A failure with a message fit for the user; `code` is the exit status."""

    def __init__(self, msg: str, code: int = 1) -> None:
        super().__init__(msg)
        self.code = code


class ConfigError(PyruncError):
    """The configuration is invalid (config.json, a Spec or dict given to
    Container.create, exec's process, update's resources), found before
    anything was made. `path` names the faulty field as the messages do
    ("linux.resources.memory.limit", "mounts[2].options[0]",
    'linux.sysctl["net.ipv4.ip_forward"]'), or is None when the error is not
    about one field (unreadable file, invalid JSON, a rule between fields)."""

    def __init__(self, msg: str, path: str | None = None, code: int = 1) -> None:
        super().__init__(msg, code)
        self.path = path


class ContainerNotFound(PyruncError):
    """No container with that id under the state root; `id` is the id asked
    for, when the raiser knew it."""

    def __init__(self, cid: str | None = None) -> None:
        super().__init__("container does not exist")
        self.id = cid


ContainerNotExist = ContainerNotFound  # the name before the library API had its own


class InvalidState(PyruncError):
    """The container's status forbids the operation (start of a running
    container, pause of a stopped one, delete of a running one without
    force, exec into a stopped one, ...); `status` is the status the
    container had ("created", "running", "paused", "stopped")."""

    def __init__(self, msg: str, status: str | None = None, code: int = 1) -> None:
        super().__init__(msg, code)
        self.status = status


class InitError(PyruncError):
    """Setting the container's process up failed inside the container: the
    init (or exec's process) reported an error over the sync channel before
    the user's program ran, or died without a word (e.g. the OOM killer).
    The text is the runtime's full line ("pyrunc create failed: unable to
    start container process: error during container init: ..."); `reason`
    is the container side's own message, and `op` the operation
    ("create", "run" or "exec")."""

    def __init__(self, msg: str, reason: str = "", op: str = "", code: int = 1) -> None:
        super().__init__(msg, code)
        self.reason = reason or msg
        self.op = op


class ExecveError(PyruncError):
    """execve itself failed (the executable was found; its interpreter or
    format was not): as in runc 1.5, the process's own failure rather than the
    runtime's. The process prints `exec PATH: ERROR` on its stderr and exits
    255; the runtime's command has already succeeded (runc closes its sync
    socket before execve: opencontainers/runc#4171)."""
