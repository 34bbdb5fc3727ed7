"""A layer's tar bytes, read, verified and decompressed on a second thread.

zlib, zstandard and hashlib release the GIL on large buffers, so reading
the blob, checking its digest, decompressing it and hashing the result for
its diff_id run while the main thread parses headers and writes files. The
thread hands over chunks of about a megabyte through a small queue; an
error on either side stops both, and `finish()` reports the digest checks.
"""
from __future__ import annotations

import queue
import threading
import zlib

from .layout import ImageError

CHUNK = 1 << 20
_END = object()


class Gunzip:
    """A gzip stream's content (concatenated members too, NUL padding after
    the last one ignored, as Go's and Python's readers accept); CRC and
    length are checked by zlib."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self._done = False

    def read(self, n: int = CHUNK) -> bytes:
        while not self._done:
            data = self._raw.read(CHUNK)
            if not data:
                self._done = True
                if not self._d.eof:
                    raise EOFError("compressed data ended before the end-of-stream marker was reached")
                break
            out = []
            while data:
                if self._d.eof:
                    if not data.strip(b"\0"):
                        break  # padding
                    self._d = zlib.decompressobj(31)
                out.append(self._d.decompress(data))
                data = self._d.unused_data if self._d.eof else b""
            if out:
                joined = b"".join(out) if len(out) > 1 else out[0]
                if joined:
                    return joined
        return b""


def decompressor(media_type: str, raw):
    """A reader of the layer's tar bytes, by the descriptor's media type."""
    from .layers import GZIP_TYPES, TAR_TYPES, ZSTD_TYPES
    if media_type in GZIP_TYPES:
        return Gunzip(raw)
    if media_type in ZSTD_TYPES:
        try:
            import zstandard
        except ImportError:
            raise ImageError("zstd-compressed layer: the Python module 'zstandard' is not installed") from None
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if media_type in TAR_TYPES:
        return raw
    raise ImageError(f"unsupported layer media type {media_type!r}")


class LayerStream:
    """Chunks of a layer's tar stream; `blob` is the layout's verifying
    reader, `tar` the reader of its decompressed bytes (a VerifyingReader
    for the diff_id, or the plain decompressor)."""

    def __init__(self, blob, tar) -> None:
        self._blob = blob
        self._tar = tar
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._stop = False
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="layer-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                chunk = self._tar.read(CHUNK)
                if not chunk:
                    finish = getattr(self._tar, "finish", None)
                    if finish is not None:
                        finish()
                    self._blob.finish()
                    break
                self._q.put(chunk)
            self._q.put(_END)
        except BaseException as e:  # handed to the main thread, raised there
            self._q.put(e)

    def next_chunk(self) -> bytes:
        if self._ended:
            return b""
        item = self._q.get()
        if item is _END:
            self._ended = True
            return b""
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        return item

    def finish(self) -> None:
        """Consume the rest (what follows the end-of-archive blocks) and
        raise the digest checks' error, if any."""
        while self.next_chunk():
            pass
        self._thread.join()

    def close(self) -> None:
        """Stop the thread (on an error of the main side)."""
        self._stop = True
        while not self._ended:
            try:
                self.next_chunk()
            except BaseException:
                pass
        self._thread.join()
