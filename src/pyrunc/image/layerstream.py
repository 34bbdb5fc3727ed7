"""A layer's tar bytes, read, verified and decompressed on other threads.

zlib, zstandard and hashlib release the GIL on large buffers, so reading
the blob and checking its digest, decompressing it, and hashing the result
for its diff_id each run on a thread of their own while the main thread
parses headers and writes files (decompression is the longest of them).
Chunks go through small queues; an error anywhere stops all, and
`finish()` reports the digest checks.
"""
from __future__ import annotations

import queue
import threading
import zlib

from ..errors import PyruncError
from .layout import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class _Reader(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...

GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip",
              "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
              "application/vnd.docker.image.rootfs.diff.tar.gzip",
              "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",
              "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
TAR_TYPES = ("application/vnd.oci.image.layer.v1.tar",
             "application/vnd.oci.image.layer.nondistributable.v1.tar")
CHUNK = 1 << 18  # compressed bytes per read: zlib is fastest with outputs that stay in cache
OUT_CHUNK = 1 << 20  # decompressed bytes per chunk handed to the main thread
_END = object()


class Gunzip:
    """A gzip stream's content (concatenated members too, NUL padding after
    the last one ignored, as Go's and Python's readers accept); CRC and
    length are checked by zlib. read(n) returns at most n bytes (all that
    is left for n < 0), as a file does."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self._pending = b""  # input zlib has not consumed yet
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(OUT_CHUNK), b""))
        while n:
            if self._pending:
                data, self._pending = self._pending, b""
            else:
                if self._done:
                    break
                data = self._raw.read(CHUNK)
                if not data:
                    self._done = True
                    if not self._d.eof:
                        raise EOFError("compressed data ended before the end-of-stream marker was reached")
                    break
            if self._d.eof:
                if not data.strip(b"\0"):
                    continue  # padding after the last member
                self._d = zlib.decompressobj(31)
            out = self._d.decompress(data, n)
            self._pending = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
            if out:
                return out
        return b""


def decompressor(media_type: str, raw):
    """A reader of the layer's tar bytes. The media type must be a layer's;
    the compression is then taken from the bytes, as containers/image takes
    it: a docker-archive copied as it is holds plain tars labelled gzip."""
    if media_type not in GZIP_TYPES + ZSTD_TYPES + TAR_TYPES:
        raise ImageError(f"unsupported layer media type {media_type!r}")
    return _Sniffing(raw)


class _Prefixed:
    """`raw` with `head` (already read from it) put back in front."""

    def __init__(self, head: bytes, raw) -> None:
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0 or n >= len(self._head):
                out, self._head = self._head, b""
            else:
                out, self._head = self._head[:n], self._head[n:]
            return out
        return self._raw.read(n)


class _Sniffing:
    """Decides on its first read, from the stream's magic bytes, whether the
    layer is gzip, zstd (bzip2, xz) or a plain tar."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._r: _Reader | None = None

    def read(self, n: int = -1) -> bytes:
        if self._r is None:
            from .compression import GZIP, decompressing, detect
            head = b""
            while len(head) < 8:  # enough for every magic
                more = self._raw.read(CHUNK)
                if not more:
                    break
                head += more
            src = _Prefixed(head, self._raw)
            kind = detect(head)
            if kind is None:
                self._r = src
            elif kind == GZIP:
                self._r = Gunzip(src)
            else:
                try:
                    self._r = decompressing(kind, src)
                except PyruncError as e:
                    raise ImageError(str(e)) from None
        return self._r.read(n)


class _QueueReader:
    """The read() side of a queue of chunks (an exception in the queue is
    raised, _END is the end)."""

    def __init__(self, q: queue.Queue) -> None:
        self._q = q
        self._ended = False

    def read(self, n: int = -1) -> bytes:
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

    def drain(self) -> None:
        while not self._ended:
            try:
                self.read()
            except BaseException:
                pass


class LayerStream:
    """Chunks of a layer's tar stream, made by three threads: one reads the
    blob (hashing it for its digest), one decompresses, one hashes the tar
    stream for the diff_id; the main thread takes the chunks with
    next_chunk(). `blob` is the layout's verifying reader, `media_type`
    the layer's, `diff_id` the config's digest of the tar stream (or None)."""

    def __init__(self, blob, media_type: str, diff_id: str | None) -> None:
        from .digest import VerifyingReader
        self._blob = blob
        self._stop = False
        self._raw_q: queue.Queue = queue.Queue(maxsize=16)
        self._out_q: queue.Queue = queue.Queue(maxsize=16)
        self._hash_q: queue.Queue | None = queue.Queue() if diff_id else None
        self._raw = _QueueReader(self._raw_q)
        self._tar = decompressor(media_type, self._raw)
        self._out = _QueueReader(self._out_q)
        self._diff = (VerifyingReader(_QueueReader(self._hash_q), diff_id, None, "layer diff_id")
                      if self._hash_q is not None else None)  # a queue when diff_id
        self.errors: list[BaseException | None] = [None, None, None]
        self._threads = [threading.Thread(target=f, name=f"layer-{f.__name__.strip('_')}", daemon=True)
                         for f in (self._fetch, self._inflate, self._hash)]
        for t in self._threads:
            t.start()

    def _fetch(self) -> None:
        try:
            while not self._stop:
                data = self._blob.read(CHUNK)
                if not data:
                    self._blob.finish()
                    break
                self._raw_q.put(data)
        except BaseException as e:
            self.errors[0] = e
            self._raw_q.put(e)
            return
        self._raw_q.put(_END)

    def _inflate(self) -> None:
        end: object = _END
        try:
            while not self._stop:
                chunk = self._tar.read(OUT_CHUNK)
                if not chunk:
                    break
                if self._hash_q is not None:
                    self._hash_q.put(chunk)
                self._out_q.put(chunk)
        except BaseException as e:
            self.errors[1] = end = e
        finally:
            if self._hash_q is not None:
                self._hash_q.put(_END)
            self._out_q.put(end)
            self._raw.drain()  # the fetch thread never blocks on a full queue

    def _hash(self) -> None:
        if self._diff is None:
            return
        try:
            while self._diff.read(CHUNK):
                pass
            if self.errors[1] is None and not self._stop:
                self._diff.finish()
        except BaseException as e:
            self.errors[2] = e

    def next_chunk(self) -> bytes:
        return self._out.read()

    def finish(self) -> None:
        """Consume the rest (what follows the end-of-archive blocks) and
        raise the digest checks' error, if any."""
        while self.next_chunk():
            pass
        for t in self._threads:
            t.join()
        for e in self.errors:
            if e is not None:
                raise e

    def close(self) -> None:
        """Stop the threads (on an error of the main side)."""
        self._stop = True
        self._out.drain()
        for t in self._threads:
            t.join()
