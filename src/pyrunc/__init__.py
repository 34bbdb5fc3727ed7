"""pyrunc: an OCI container runtime, usable as `pyrunc` and as `import pyrunc`.

The library API (Container, load_config, ...) is imported lazily so that the
command line pays only for what a command uses.
"""
from __future__ import annotations

__version__ = "0.1.0"
_ERRORS = ("PyruncError", "ConfigError", "ContainerNotFound", "ContainerNotExist", "InvalidState", "InitError")
__all__ = ["Container", "ExecOptions", "State", "load_config", *_ERRORS]


def __getattr__(name: str):
    if name == "Container":
        from .container.container import Container
        return Container
    if name == "ExecOptions":
        from .container.exec import ExecOptions
        return ExecOptions
    if name == "State":
        from .container.state import State
        return State
    if name == "load_config":
        from .spec.config import load_config
        return load_config
    if name in _ERRORS:
        from . import errors
        return getattr(errors, name)
    raise AttributeError(name)
