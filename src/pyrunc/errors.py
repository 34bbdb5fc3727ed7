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
