"""Image transports: one module per transport name, imported only when a
reference names it. open_source/open_destination dispatch on the parsed
reference; the interface they return is image/transport.py's."""
from __future__ import annotations

from typing import Optional

from ...errors import PyruncError
from ..reference import Reference, parse
from ..transport import ImageDestination, ImageSource, Options


def _module(ref: Reference, writing: bool = False):
    t = ref.transport
    if t == "docker":
        from . import docker as m
    elif t == "oci":
        from . import oci as m
    elif t == "oci-archive":
        from . import ociarchive as m
    elif t == "docker-archive" and writing:
        from . import dockerarchive_writer as m
    elif t == "docker-archive":
        from . import dockerarchive as m
    else:  # parse() refuses other transports
        raise PyruncError(f"unknown transport {t!r}")
    return m


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
