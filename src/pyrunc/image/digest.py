"""Content digests, checked while a blob streams.

A layout's blobs are named by their digest; nothing read from one is
trusted until the whole stream has hashed to that name (and had the size
the descriptor claims). The check is made as the bytes go by, so a layer
is never read twice.
"""
from __future__ import annotations

import hashlib
import json
import re

from ..errors import PyruncError

_ALGS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


class DigestError(PyruncError):
    """A blob that does not hash to its name, or a name that is no digest."""


def parse(digest: object) -> tuple[str, str]:
    """(algorithm, hex) of a digest the layout may hold; raises DigestError
    (for any value: descriptors come from untrusted JSON)."""
    m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None  # `$` would pass a final newline
    if not m:
        shown = json.dumps(digest) if isinstance(digest, (str, int, float, bool, type(None))) else "(not a string)"
        raise DigestError(f"invalid digest {shown}")
    alg, hexpart = m.groups()
    if alg not in _ALGS:
        raise DigestError(f"unsupported digest algorithm {alg!r} in {digest}")
    if len(hexpart) != _ALGS[alg] or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise DigestError(f"invalid digest {digest!r}")
    return alg, hexpart


class VerifyingReader:
    """A read-only stream that hashes what passes; `finish()` drains the
    rest and raises DigestError unless size and digest are as announced."""

    def __init__(self, raw, digest: object, size: int | None = None, what: str = "blob") -> None:
        alg, self._hex = parse(digest)
        self._raw = raw
        self._hash = hashlib.new(alg)
        self._size = size
        self._read = 0
        self.digest = str(digest)  # parse() took only a str
        self.what = what

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self._read += len(data)
        if self._size is not None and self._read > self._size:
            raise DigestError(f"{self.what} {self.digest}: larger than its descriptor's size {self._size}")
        return data

    def readable(self) -> bool:
        return True

    def finish(self) -> None:
        while self.read(1 << 16):
            pass
        if self._size is not None and self._read != self._size:
            raise DigestError(f"{self.what} {self.digest}: size {self._read} does not match its descriptor's {self._size}")
        if self._hash.hexdigest() != self._hex:
            raise DigestError(f"{self.what} {self.digest}: content does not match its digest "
                              f"(got {self._hash.name}:{self._hash.hexdigest()})")

    def close(self) -> None:
        self._raw.close()


def read_at_most(stream, limit: int) -> bytes | None:
    """All of a stream (read until EOF: a network stream may return short
    reads), or None when it holds more than `limit` bytes."""
    parts: list[bytes] = []
    n = 0
    while n <= limit:
        chunk = stream.read(min(1 << 20, limit + 1 - n))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        n += len(chunk)
    return None
