"""Image transports: one module per transport name, imported only when a
reference names it. open_source/open_destination dispatch on the parsed
reference; the interface they return is image/transport.py's."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...errors import PyruncError
from ..reference import Reference, parse
from ..transport import ImageDestination, ImageSource, Options

if TYPE_CHECKING:
    from types import ModuleType


def _module(ref: Reference, writing: bool = False) -> ModuleType:
    t = ref.transport
    if t == "docker":
        from . import docker
        return docker
    if t == "oci":
        from . import oci
        return oci
    if t == "oci-archive":
        from . import ociarchive
        return ociarchive
    if t == "docker-archive" and writing:
        from . import dockerarchive_writer
        return dockerarchive_writer
    if t == "docker-archive":
        from . import dockerarchive
        return dockerarchive
    # parse() refuses other transports
    raise PyruncError(f"unknown transport {t!r}")


def open_source(ref: Reference | str, opts: Optional[Options] = None) -> ImageSource:
    """The transport module's `open_source(ref, opts)`."""
    if isinstance(ref, str):
        ref = parse(ref)
    return _module(ref).open_source(ref, opts or Options())


def open_destination(ref: Reference | str, opts: Optional[Options] = None) -> ImageDestination:
    """The transport module's `open_destination(ref, opts)`."""
    if isinstance(ref, str):
        ref = parse(ref)
    return _module(ref, writing=True).open_destination(ref, opts or Options())
