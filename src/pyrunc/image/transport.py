"""What every image transport gives the copy engine and inspect.

A transport (docker://, oci:, oci-archive:, docker-archive:) opens an
ImageSource to read and an ImageDestination to write, as containers/image's
types.ImageSource and ImageDestination do. The copy engine (copier.py) only
speaks these two interfaces: it chooses the platform, streams blobs from one
to the other (verifying each against its digest as it goes), and writes the
manifests last, so a destination never names a blob it does not hold.

Each transport lives in its own module under image/transports/, imported
only when a reference names it (transports.open_source, open_destination).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from .reference import Reference


@dataclass
class Options:
    """One side's settings (skopeo's --src-*/--dest-* flags; inspect's)."""

    tls_verify: Optional[bool] = None   # None: verify, HTTP only for a registry configured insecure
    creds: Optional[str] = None         # USER[:PASS]
    authfile: Optional[str] = None      # None: skopeo's lookup (registry/auth.py)
    cert_dir: Optional[str] = None      # CA/client certs; None: /etc/containers/certs.d/HOST
    os: Optional[str] = None            # --override-os
    arch: Optional[str] = None          # --override-arch
    variant: Optional[str] = None       # --override-variant
    additional_tags: tuple[str, ...] = ()   # copy --additional-tag: more NAME:TAGs (docker-archive destinations)


class BlobStream(Protocol):
    """A blob as a transport hands it out: read it to the end, then close."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class VerifiedStream(BlobStream, Protocol):
    """A blob as the copy engine hands it to a destination (a
    digest.VerifyingReader): finish() raises unless it read the whole blob
    with the expected size and digest."""

    def finish(self) -> None: ...


class ImageSource:
    """A readable image. Blob streams are raw (as stored: compressed
    layers stay compressed); the caller verifies them (digest.VerifyingReader)."""

    reference: Reference

    def get_manifest(self, instance: Optional[str] = None) -> tuple[bytes, str]:
        """(raw bytes, media type) of the top-level manifest or index, or, with
        `instance` (a digest), of that manifest of the top-level index. The bytes
        are exactly as stored: their digest is the image's digest."""
        raise NotImplementedError

    def get_blob(self, desc: dict) -> BlobStream:
        """A raw stream of the blob `desc` describes (config or layer)."""
        raise NotImplementedError

    def tags(self) -> list[str]:
        """Tags of the repository (registries); [] where a transport has none."""
        return []

    def close(self) -> None:
        """Release connections and temporary files."""


class ImageDestination:
    """A writable image. Nothing is visible under the destination's name
    until `commit()`; `close()` without commit removes whatever was written."""

    reference: Reference
    # True where layers must be stored uncompressed (docker-archive): the
    # engine then decompresses each layer, verifies it against its diff_id and
    # passes it with desc {"digest": diff_id, "size": -1 (unknown until the
    # stream ends), "mediaType": tar}.
    needs_uncompressed_layers: bool = False
    # False where only one image can be written (docker-archive): --all of
    # an index is then refused, as skopeo refuses it ("copying multiple
    # images: destination transport ... does not support ...").
    supports_index: bool = True

    def has_blob(self, desc: dict) -> bool:
        """True when the destination holds the blob already (skip the copy)."""
        return False

    def put_blob(self, desc: dict, stream: VerifiedStream) -> None:
        """Store the blob. `stream` is a digest.VerifyingReader: the destination
        must call stream.finish() after reading it and before the blob becomes
        visible, so a mismatch leaves no partial file behind. May be called from
        several threads at once (layers are copied in parallel)."""
        raise NotImplementedError

    def put_manifest(self, raw: bytes, media_type: str, instance: Optional[str] = None) -> None:
        """Store a manifest (or index) byte for byte. `instance` is None for the
        top-level one; with --all each instance comes first, under its digest."""
        raise NotImplementedError

    def commit(self) -> None:
        """Make the image visible (index.json entry, archive written, tag pushed)."""

    def close(self) -> None:
        """Release resources; without commit(), remove what was written."""
