"""Image tools (skopeo's and umoci's jobs) as a library.

    import pyrunc.image
    pyrunc.image.copy("oci-archive:busybox.tar", "oci:/images:busybox", quiet=True)
    pyrunc.image.unpack("/images/busybox:latest", "/containers/bb")
    info = pyrunc.image.inspect("docker-archive:/images/bb.tar")

Every function imports its module when called: `import pyrunc` costs the
runtime nothing for them. Errors are pyrunc.errors.PyruncError with a
one-line message.
"""
from __future__ import annotations


def unpack(image: str, bundle: str, uid_map=None, gid_map=None, rootless: bool = False):
    """A runtime bundle from DIR[:REF] (an OCI layout); see image/bundle.py."""
    from .bundle import unpack as _unpack
    return _unpack(image, bundle, uid_map, gid_map, rootless)


def copy(src, dst, **kw):
    """Copy an image between transports as skopeo copy does (see
    image/copier.py: src_opts, dst_opts, all, quiet, progress); returns a
    CopyResult (manifest digest, media type, blobs copied and skipped)."""
    from .copier import copy as _copy
    return _copy(src, dst, **kw)


def inspect(image: str, *, no_tags: bool = False, manifest_digest: str | None = None, **options):
    """skopeo inspect TRANSPORT:REF as an ImageInfo (image/inspector.py);
    `options` are transport.Options' fields (tls_verify, creds, authfile,
    cert_dir, os, arch, variant). `.to_json()` is skopeo's output."""
    from .inspector import inspect as _inspect
    from .transport import Options
    return _inspect(image, Options(**options), no_tags, manifest_digest)


def list_tags(repository: str, opts=None) -> list[str]:
    """The tags of docker://NAME, as skopeo list-tags lists them (opts: a
    pyrunc.image.transport.Options: tls_verify, creds, authfile, cert_dir)."""
    from .transport import Options
    from .transports.docker import repository_tags
    return repository_tags(repository, opts or Options())[1]
