"""Which compression a blob uses, from its first bytes, as containers/image's
pkg/compression detects it (gzip, bzip2, xz, zstd), and a reader that
undoes it.

A media type can say gzip over a plain tar: containers/image's docker-archive
manifests name every layer `...diff.tar.gzip` while serving it uncompressed,
and its copy goes by the bytes, not the name. Whoever decompresses a layer
it did not write itself should ask `detect` rather than the media type.
"""
from __future__ import annotations

from typing import Optional

from ..errors import PyruncError

GZIP, BZIP2, XZ, ZSTD = "gzip", "bzip2", "xz", "zstd"
_MAGIC = ((b"\x1f\x8b\x08", GZIP), (b"BZh", BZIP2), (b"\xfd7zXZ\x00", XZ), (b"\x28\xb5\x2f\xfd", ZSTD))
HEAD = 6   # enough bytes for every magic


def detect(head: bytes) -> Optional[str]:
    """The compression whose magic `head` starts with; None for plain data."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def decompressing(kind: str, raw):
    """A reader of `raw` (a stream compressed with `kind`) decompressed."""
    if kind == GZIP:
        import gzip
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == BZIP2:
        import bz2
        return bz2.BZ2File(raw, "rb")
    if kind == XZ:
        import lzma
        return lzma.LZMAFile(raw, "rb")
    try:
        import zstandard
    except ImportError:
        raise PyruncError("zstd-compressed data: the Python module 'zstandard' is not installed") from None
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


class Peeked:
    """A stream whose first bytes were read to `detect` its compression and
    are given back first."""

    def __init__(self, raw) -> None:
        self._raw = raw
        head = b""
        while len(head) < HEAD:   # a network stream may return short reads
            chunk = raw.read(HEAD - len(head))
            if not chunk:
                break
            head += chunk
        self.head = head
        self._pending = head

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n is None or n < 0:
                data, self._pending = self._pending + self._raw.read(), b""
                return data
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        return self._raw.read(n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass
