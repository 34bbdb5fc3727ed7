"""The layer tar reader (src/pyrunc/image/tarreader.py) on archives written
by tarfile in its three formats, and on broken ones: each must parse as
tarfile reads it, or fail with one line."""
from __future__ import annotations

import io
import tarfile

import pytest

from pyrunc.image.tarreader import DIR, LNK, REG, SYM, TarError, TarReader, parse_pax


def _tar(members, fmt=tarfile.PAX_FORMAT, pax_headers=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _ti(name, kind=tarfile.REGTYPE, size=0, **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = kind, size
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def _rechk(d: bytes) -> bytes:
    """The first header's checksum made right again after an edit."""
    d = bytearray(d)
    d[148:156] = b"%06o\0 " % (sum(d[:148]) + sum(d[156:512]) + 256)
    return bytes(d)


def _read(data: bytes, chunk: int = 7):
    """Entries with their contents; the stream handed over in odd-sized chunks."""
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    it = iter(parts)
    r = TarReader(lambda: next(it, b""))
    out = []
    for e in r:
        body = b"".join(bytes(m) for m in r.data(e.size)) if e.type == REG else None
        out.append((e, body))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [1, 511, 4096, 1 << 20])
def test_formats_and_chunkings(fmt, chunk):
    data = _tar([(_ti("d", tarfile.DIRTYPE, mode=0o755, mtime=1000), None),
                 (_ti("d/f", size=5, mode=0o640, uid=12, gid=34, mtime=2000), b"hello"),
                 (_ti("d/empty"), b""),
                 (_ti("d/l", tarfile.SYMTYPE, linkname="f"), None),
                 (_ti("d/h", tarfile.LNKTYPE, linkname="d/f"), None),
                 (_ti("d/big", size=70000), bytes(range(256)) * 273 + b"x" * 112)], fmt)
    got = _read(data, chunk)
    assert [(e.name, e.type) for e, _ in got] == [("d/", DIR), ("d/f", REG), ("d/empty", REG), ("d/l", SYM),
                                                 ("d/h", LNK), ("d/big", REG)]
    f = got[1][0]
    assert (f.mode, f.uid, f.gid, f.mtime_ns, got[1][1]) == (0o640, 12, 34, 2_000_000_000_000, b"hello")
    assert got[3][0].linkname == "f" and got[4][0].linkname == "d/f"
    assert got[5][1] == bytes(range(256)) * 273 + b"x" * 112


def test_long_names_ustar_prefix_gnu_and_pax():
    long = "a" * 90 + "/" + "b" * 50 + "/" + "c" * 60  # fits ustar's prefix + name
    longer = "x/" * 80 + "y" * 200
    link = "t/" * 70 + "target"
    for fmt, names in ((tarfile.USTAR_FORMAT, [long]), (tarfile.GNU_FORMAT, [long, longer]),
                       (tarfile.PAX_FORMAT, [long, longer])):
        members = [(_ti(n, size=1), b"z") for n in names]
        if fmt != tarfile.USTAR_FORMAT:
            members.append((_ti("s", tarfile.SYMTYPE, linkname=link), None))
        got = _read(_tar(members, fmt), 1000)
        assert [e.name for e, _ in got][:len(names)] == names
        if fmt != tarfile.USTAR_FORMAT:
            assert got[-1][0].linkname == link


def test_pax_records_xattrs_times_and_global_header():
    ti = _ti("f", size=2, uid=5)
    ti.pax_headers = {"SCHILY.xattr.user.k": "v\u00e9", "SCHILY.xattr.security.capability": "\x01\x00",
                      "mtime": "1600000000.25", "atime": "1600000001.000000001", "uid": "123456789"}
    data = _tar([(ti, b"ab"), (_ti("g", size=0), b"")], pax_headers={"comment": "global"})
    (f, body), (g, _) = _read(data, 100)
    assert body == b"ab"
    assert f.xattrs == {"user.k": "vé".encode(), "security.capability": b"\x01\x00"}
    assert f.mtime_ns == 1_600_000_000_250_000_000 and f.atime_ns == 1_600_000_001_000_000_001
    assert f.uid == 123456789
    assert g.xattrs is None and g.name == "g"


def test_base256_numbers():
    ti = _ti("f", size=1, uid=0o7777777 + 5, gid=2**40, mtime=-1000)
    (f, body), = _read(_tar([(ti, b"q")], tarfile.GNU_FORMAT), 512)
    assert (f.uid, f.gid, f.mtime_ns, body) == (0o7777777 + 5, 2**40, -1000 * 10**9, b"q")


def test_old_style_directory_by_trailing_slash():
    data = bytearray(_tar([(_ti("olddir/", tarfile.DIRTYPE), None)], tarfile.USTAR_FORMAT))
    data[156] = 0  # AREGTYPE
    (e, _), = _read(_rechk(data), 512)
    assert e.type == DIR


@pytest.mark.parametrize("damage, match", [
    (lambda d: d[:100] + b"X" + d[101:], "checksum mismatch"),
    (lambda d: d[:700], "unexpected end of tar stream"),
    (lambda d: d[:300], "unexpected end of tar stream"),
    (lambda d: _rechk(d[:124] + b"9" * 11 + d[135:]), "bad size field"),
])
def test_broken_archives_fail_in_one_line(damage, match):
    data = damage(_tar([(_ti("f", size=600), b"x" * 600)], tarfile.USTAR_FORMAT))
    with pytest.raises(TarError, match=match) as e:
        _read(data, 256)
    assert "\n" not in str(e.value)


def test_sparse_and_unknown_types_are_refused():
    for t in (tarfile.GNUTYPE_SPARSE, b"V"):
        data = bytearray(_tar([(_ti("s", size=0), b"")], tarfile.USTAR_FORMAT))
        data[156:157] = t
        with pytest.raises(TarError, match="sparse files are not supported|unsupported tar entry type"):
            _read(_rechk(data))


def test_end_of_archive_without_trailer_and_zero_blocks():
    data = _tar([(_ti("f", size=3), b"abc")], tarfile.USTAR_FORMAT)
    assert [e.name for e, _ in _read(data[:1024])] == ["f"]  # header + data block, no end blocks
    assert [e.name for e, _ in _read(data)] == ["f"]


@pytest.mark.parametrize("bad", [b"5 a=b\n", b"x a=b\n", b"9 ab\n....", b"30 a=b\n"])
def test_bad_pax_records(bad):
    with pytest.raises(TarError):
        parse_pax(bad)
