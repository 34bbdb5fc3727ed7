"""Image tools (skopeo's and umoci's jobs) as a library.

    import pyrunc.image
    pyrunc.image.unpack("/images/busybox:latest", "/containers/bb")

Every function imports its module when called: `import pyrunc` costs the
runtime nothing for them. Errors are pyrunc.errors.PyruncError with a
one-line message.
"""
from __future__ import annotations


def unpack(image: str, bundle: str, uid_map=None, gid_map=None, rootless: bool = False):
    """A runtime bundle from DIR[:REF] (an OCI layout); see image/bundle.py."""
    from .bundle import unpack as _unpack
    return _unpack(image, bundle, uid_map, gid_map, rootless)
