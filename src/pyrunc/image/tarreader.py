"""A small, strict reader of tar streams (POSIX ustar, PAX, GNU) for layers.

tarfile costs tens of microseconds per member (TarInfo objects, its own
buffering, a file object per member); a layer of 7000 entries spends most of
its Python time there. This reader parses the 512-byte headers itself from
chunks of the decompressed stream and hands file data out as memoryviews of
those chunks (no copy on the way to os.write).

Supported: ustar (with prefix), GNU long names and link names ('L', 'K'),
PAX extended headers ('x', path/linkpath/size/uid/gid/mtime/atime and
SCHILY.xattr.*) and global headers ('g'), base-256 numbers. A header whose
checksum does not match, a truncated stream or a sparse file is an error
(TarError, one line).
"""
from __future__ import annotations

from typing import Callable, Iterator

BLOCK = 512
REG, AREG, LNK, SYM, CHR, BLK, DIR, FIFO, CONT = b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"
PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK = b"x", b"g", b"L", b"K"
XATTR = "SCHILY.xattr."
MAX_META = 1 << 20  # a PAX header or GNU long name larger than this is no layer


class TarError(Exception):
    """A stream that is not a tar archive this reader accepts."""


class Entry:
    """One member: its header fields, PAX records applied."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime_ns", "atime_ns",
                 "linkname", "devmajor", "devminor", "xattrs")
    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str
    devmajor: int
    devminor: int

    def __init__(self) -> None:
        self.atime_ns: int | None = None
        self.xattrs: dict[str, bytes] | None = None


def _num(field: bytes, what: str) -> int:
    """A numeric header field: octal ASCII, or base-256 (GNU/star) when the
    first byte has its high bit set."""
    if field and field[0] & 0x80:
        v = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        if field[0] & 0x40:  # negative, two's complement
            v -= 1 << (8 * len(field) - 1)
        return v
    s = field.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise TarError(f"invalid tar header: bad {what} field {s[:20]!r}") from None


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _time_ns(value: str, what: str) -> int:
    """A PAX time ("1600000000.123456789", maybe negative) in nanoseconds."""
    neg = value.startswith("-")
    whole, _, frac = value.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise TarError(f"invalid PAX {what} {value[:40]!r}")
    ns = int(whole) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    return -ns if neg else ns


def parse_pax(data: bytes) -> dict[str, bytes]:
    """The records of a PAX extended header, "LEN KEY=VALUE\\n" each."""
    out: dict[str, bytes] = {}
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] == 0:  # NUL padding at the end
            break
        sp = data.find(b" ", pos, pos + 20)
        if sp < 0 or not data[pos:sp].isdigit():
            raise TarError("invalid PAX header: bad record length")
        length = int(data[pos:sp])
        end = pos + length
        if length <= sp - pos + 1 or end > n or data[end - 1] != 0x0A:
            raise TarError("invalid PAX header: bad record")
        eq = data.find(b"=", sp + 1, end)
        if eq < 0:
            raise TarError("invalid PAX header: record without '='")
        out[data[sp + 1:eq].decode("utf-8", "surrogateescape")] = data[eq + 1:end - 1]
        pos = end
    return out


class TarReader:
    """Entries of a tar stream given as chunks: `next_chunk()` returns the
    next bytes of the stream, b"" at its end. Iterate for entries; for a
    regular file, `data(entry)` yields its content as memoryviews (it must
    be consumed, or skipped with `skip_data`, before the next entry)."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next = next_chunk
        self._buf = b""
        self._mv = memoryview(b"")
        self._pos = 0
        self._global: dict[str, bytes] = {}

    def _fill(self, n: int) -> bool:
        """At least n bytes buffered from _pos (False at the stream's end)."""
        have = len(self._buf) - self._pos
        if have >= n:
            return True
        parts = [self._buf[self._pos:]]
        while have < n:
            c = self._next()
            if not c:
                break
            parts.append(c)
            have += len(c)
        self._buf = b"".join(parts)
        self._mv = memoryview(self._buf)
        self._pos = 0
        return have >= n

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise TarError("unexpected end of tar stream")
        p = self._pos
        self._pos = p + n
        return self._buf[p:p + n]

    def data(self, size: int) -> Iterator[memoryview]:
        """`size` bytes of member data (then its padding is skipped)."""
        pad = -size % BLOCK
        while size:
            avail = len(self._buf) - self._pos
            if not avail:
                c = self._next()
                if not c:
                    raise TarError("unexpected end of tar stream")
                self._buf, self._mv, self._pos = c, memoryview(c), 0
                avail = len(c)
            take = avail if avail < size else size
            p = self._pos
            self._pos = p + take
            size -= take
            yield self._mv[p:p + take]
        if pad:
            self._take(pad)

    def skip_data(self, size: int) -> None:
        for _ in self.data(size):
            pass

    def _meta(self, size: int) -> bytes:
        if size > MAX_META:
            raise TarError(f"tar metadata entry too large ({size} bytes)")
        data = self._take(size)
        if size % BLOCK:
            self._take(-size % BLOCK)
        return data

    def __iter__(self) -> Iterator[Entry]:
        pax: dict[str, bytes] = {}
        longname = longlink = None
        while True:
            if not self._fill(BLOCK):
                if len(self._buf) - self._pos:
                    raise TarError("unexpected end of tar stream")
                return  # no end-of-archive blocks: accepted, as Go's reader does
            h = self._take(BLOCK)
            if h.count(0) == BLOCK:
                return  # end of archive; what follows is drained by the caller
            chk = _num(h[148:156], "checksum")
            s = sum(h) - sum(h[148:156]) + 8 * 32
            if chk != s and chk != s - 256 * sum(1 for b in h if b > 127):  # old tars sum signed bytes
                raise TarError("invalid tar header: checksum mismatch")
            t = h[156:157]
            size = _num(h[124:136], "size")
            if size < 0:
                raise TarError("invalid tar header: negative size")
            if t == PAX or t == PAX_GLOBAL:
                recs = parse_pax(self._meta(size))
                if t == PAX:
                    pax.update(recs)
                else:
                    self._global.update(recs)
                continue
            if t == GNU_LONGNAME:
                longname = self._meta(size).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            if t == GNU_LONGLINK:
                longlink = self._meta(size).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            e = Entry()
            name = _str(h[0:100])
            magic = h[257:265]
            if magic[:6] == b"ustar\0" and h[345] != 0:
                name = _str(h[345:500]) + "/" + name
            e.name = longname if longname is not None else name
            e.linkname = longlink if longlink is not None else _str(h[157:257])
            if t == AREG and e.name.endswith("/"):
                t = DIR  # old tars mark directories by the trailing slash only
            e.type = t
            e.mode = _num(h[100:108], "mode")
            e.uid = _num(h[108:116], "uid")
            e.gid = _num(h[116:124], "gid")
            e.size = size
            e.mtime_ns = _num(h[136:148], "mtime") * 1_000_000_000
            e.devmajor = _num(h[329:337], "devmajor") if t == CHR or t == BLK else 0
            e.devminor = _num(h[337:345], "devminor") if t == CHR or t == BLK else 0
            if self._global:
                pax = {**self._global, **pax}
            if pax:
                self._apply_pax(e, pax)
            if t in (LNK, SYM, CHR, BLK, DIR, FIFO):
                e.size = 0  # header-only types: no data follows whatever size says (as Go's reader)
            elif t not in (REG, AREG, CONT):
                if t == b"S" or "GNU.sparse.major" in pax or "GNU.sparse.size" in pax:
                    raise TarError(f"{e.name}: sparse files are not supported in layers")
                raise TarError(f"{e.name}: unsupported tar entry type {t!r}")
            pax, longname, longlink = {}, None, None
            yield e

    @staticmethod
    def _apply_pax(e: Entry, pax: dict[str, bytes]) -> None:
        for k, v in pax.items():
            if k.startswith(XATTR):
                if e.xattrs is None:
                    e.xattrs = {}
                e.xattrs[k[len(XATTR):]] = v
            elif k == "path":
                e.name = v.decode("utf-8", "surrogateescape")
            elif k == "linkpath":
                e.linkname = v.decode("utf-8", "surrogateescape")
            elif k in ("size", "uid", "gid"):
                if not v.isdigit():
                    raise TarError(f"invalid PAX {k} {v[:40]!r}")
                setattr(e, k, int(v))
            elif k == "mtime":
                e.mtime_ns = _time_ns(v.decode("ascii", "replace"), k)
            elif k == "atime":
                e.atime_ns = _time_ns(v.decode("ascii", "replace"), k)
