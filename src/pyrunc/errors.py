"""The one exception type the CLI turns into a single line on stderr."""
from __future__ import annotations


class PyruncError(Exception):
    """A failure with a message fit for the user; `code` is the exit status."""

    def __init__(self, msg: str, code: int = 1) -> None:
        super().__init__(msg)
        self.code = code


class ContainerNotExist(PyruncError):
    def __init__(self) -> None:
        super().__init__("container does not exist")


class ExecveError(PyruncError):
    """execve itself failed (the executable was found; its interpreter or
    format was not): as in runc 1.5, the process's own failure rather than the
    runtime's. The process prints `exec PATH: ERROR` on its stderr and exits
    255; the runtime's command has already succeeded (runc closes its sync
    socket before execve: opencontainers/runc#4171)."""
