"""The copy engine (image/copier.py) and the oci:/oci-archive: transports,
in process: digests and bytes preserved, index.json naming as
containers/image writes it, the platform choice and --all, the report, the
decompressing path for destinations storing uncompressed layers, and failures
that leave the destination as it was."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from oci_layout import OCI_INDEX, LayoutBuilder, entry, host_arch, layer_tar
from pyrunc.errors import PyruncError
from pyrunc.image import copy as lib_copy
from pyrunc.image.copier import CopyResult, copy
from pyrunc.image.progress import Report, size_b1024
from pyrunc.image.transport import ImageDestination, Options

REF_NAME = "org.opencontainers.image.ref.name"


def tree(path: Path) -> dict:
    """Every file under `path` with its bytes: what 'unchanged' means."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def image(b: LayoutBuilder, text: bytes, arch: str | None = None, layers: int = 2) -> dict:
    return b.image([layer_tar([entry(f"f{i}", data=text + bytes([i]) * (i + 1))]) for i in range(layers)],
                   {"Cmd": ["/bin/sh"]}, gzip_layers=True, arch=arch)


def multi(b: LayoutBuilder, arches: list[str]) -> tuple[dict, dict]:
    """An OCI index of one image per arch; returns (index desc, {arch: manifest desc})."""
    per = {a: image(b, a.encode(), arch=a, layers=1) for a in arches}
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX,
           "manifests": [{**d, "platform": {"os": "linux", "architecture": a}} for a, d in per.items()]}
    return b.blob(json.dumps(idx).encode(), OCI_INDEX), per


def blobs(layout: Path) -> dict:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def index(layout: Path) -> list:
    return json.loads((layout / "index.json").read_text())["manifests"]


@pytest.fixture
def src(tmp_path: Path):
    b = LayoutBuilder(tmp_path / "src")
    d = image(b, b"one")
    b.tag(d, "x")
    return b, d


def q(*a, **kw) -> CopyResult:
    return copy(*a, quiet=True, **kw)


# ---- oci: -> oci:

def test_oci_to_oci_keeps_digests_and_bytes(src, tmp_path):
    b, d = src
    r = q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert r.manifest_digest == d["digest"] and r.media_type == d["mediaType"]
    got = blobs(tmp_path / "dst")
    assert got == blobs(b.path)  # every blob, byte for byte (manifest, config, layers)
    assert sorted(r.copied) == sorted(f"sha256:{h}" for h in got if f"sha256:{h}" != d["digest"])
    assert r.skipped == []
    assert index(tmp_path / "dst") == [{**d, "annotations": {REF_NAME: "y"}}]
    assert (tmp_path / "dst" / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    assert not [p for p in (tmp_path / "dst").iterdir() if p.name not in ("blobs", "index.json", "oci-layout")]


def test_second_copy_skips_blobs_and_keeps_one_entry(src, tmp_path):
    b, d = src
    q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    r = q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert r.copied == [] and len(r.skipped) == 3
    assert index(tmp_path / "dst") == [{**d, "annotations": {REF_NAME: "y"}}]


def test_ref_moves_to_new_image_as_containers_image(src, tmp_path):
    """addManifest: the older entry of that name loses the name (it stays,
    unnamed); other names are untouched."""
    b, d = src
    d2 = image(b, b"two")
    b.tag(d2, "x2")
    dst = tmp_path / "dst"
    q(f"oci:{b.path}:x", f"oci:{dst}:keep")
    q(f"oci:{b.path}:x", f"oci:{dst}:y")
    q(f"oci:{b.path}:x2", f"oci:{dst}:y")
    assert index(dst) == [{**d, "annotations": {REF_NAME: "keep"}}, d,
                          {**d2, "annotations": {REF_NAME: "y"}}]
    # The same image again under that name replaces the unnamed entry of its digest.
    q(f"oci:{b.path}:x", f"oci:{dst}:y")
    assert index(dst) == [{**d, "annotations": {REF_NAME: "keep"}}, {**d, "annotations": {REF_NAME: "y"}}, d2]


def test_destination_without_ref_has_no_name(src, tmp_path):
    b, d = src
    q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}")
    assert index(tmp_path / "dst") == [d]


def test_source_without_ref_and_by_index(src, tmp_path):
    b, d = src
    assert q(f"oci:{b.path}", f"oci:{tmp_path / 'a'}:y").manifest_digest == d["digest"]
    d2 = image(b, b"two")
    b.tag(d2, "x2")
    with pytest.raises(PyruncError, match=r"^initializing source oci:.*: more than one image in oci, choose an image$"):
        q(f"oci:{b.path}", f"oci:{tmp_path / 'b'}:y")
    assert not (tmp_path / "b").exists()
    assert q(f"oci:{b.path}:@1", f"oci:{tmp_path / 'c'}:y").manifest_digest == d2["digest"]
    with pytest.raises(PyruncError, match=r"index 5 is too large, only 2 entries available"):
        q(f"oci:{b.path}:@5", f"oci:{tmp_path / 'c'}:y")


def test_missing_reference(src, tmp_path):
    b, _ = src
    with pytest.raises(PyruncError, match=r'^initializing source oci:\S+:nope: no descriptor found for reference "nope"$'):
        q(f"oci:{b.path}:nope", f"oci:{tmp_path / 'dst'}:y")
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("src_name, dst_name, msg", [
    ("foo:bar", "oci:/tmp/x", r'^Invalid source name foo:bar: Invalid image name "foo:bar", unknown transport "foo"$'),
    ("oci:/tmp/x", "nocolon", r'^Invalid destination name nocolon: Invalid image name "nocolon", expected colon-separated'),
    ("oci:/tmp/x:BAD REF!", "oci:/tmp/y", r"^Invalid source name oci:/tmp/x:BAD REF!: Invalid image BAD REF!$"),
    ("docker://Busybox", "oci:/tmp/y", r"repository name must be lowercase"),
])
def test_malformed_names(src_name, dst_name, msg):
    with pytest.raises(PyruncError, match=msg):
        q(src_name, dst_name)


def test_destination_with_source_index_refused(src, tmp_path):
    b, _ = src
    with pytest.raises(PyruncError, match="Destination reference must not contain a manifest index @0"):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:@0")
    assert not (tmp_path / "dst").exists()


# ---- indexes

def test_index_resolved_to_host_platform(tmp_path):
    b = LayoutBuilder(tmp_path / "src")
    other = "s390x" if host_arch() != "s390x" else "ppc64le"
    idesc, per = multi(b, [other, host_arch()])
    b.tag(idesc, "m")
    r = q(f"oci:{b.path}:m", f"oci:{tmp_path / 'dst'}:y")
    assert r.manifest_digest == per[host_arch()]["digest"] and r.instances == [r.manifest_digest]
    assert index(tmp_path / "dst") == [{**per[host_arch()], "annotations": {REF_NAME: "y"}}]
    assert idesc["digest"].split(":")[1] not in blobs(tmp_path / "dst")
    # --override-arch picks the other one
    r = q(f"oci:{b.path}:m", f"oci:{tmp_path / 'dst2'}:y", Options(arch=other))
    assert r.manifest_digest == per[other]["digest"]


def test_index_without_match_leaves_nothing(tmp_path):
    b = LayoutBuilder(tmp_path / "src")
    idesc, _ = multi(b, ["s390x" if host_arch() != "s390x" else "ppc64le"])
    b.tag(idesc, "m")
    with pytest.raises(PyruncError, match=r'^choosing an image from manifest list oci:\S+:m: no image found in image index '
                                          r'for architecture "riscv64", variant "", OS "linux"$'):
        q(f"oci:{b.path}:m", f"oci:{tmp_path / 'dst'}:y", Options(arch="riscv64"))
    assert not (tmp_path / "dst").exists()
    with pytest.raises(PyruncError, match=r'OS "windows"'):
        q(f"oci:{b.path}:m", f"oci:{tmp_path / 'dst'}:y", Options(os="windows"))


def test_all_copies_every_instance_then_the_index(tmp_path):
    b = LayoutBuilder(tmp_path / "src")
    idesc, per = multi(b, ["amd64", "arm64", "s390x"])
    b.tag(idesc, "m")
    out = io.StringIO()
    r = copy(f"oci:{b.path}:m", f"oci:{tmp_path / 'dst'}:y", all=True, progress=out)
    assert r.manifest_digest == idesc["digest"] and r.media_type == OCI_INDEX
    assert r.instances == [d["digest"] for d in per.values()]
    assert blobs(tmp_path / "dst") == blobs(b.path)
    assert index(tmp_path / "dst") == [{**idesc, "annotations": {REF_NAME: "y"}}]
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["Getting image list signatures", "Copying 3 images generated from 3 images in list",
                         f"Copying image {per['amd64']['digest']} (1/3)"]
    assert lines[-1] == "Writing manifest list to image destination"


def test_all_of_a_single_image_copies_it(src, tmp_path):
    b, d = src
    assert q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y", all=True).manifest_digest == d["digest"]


def test_instance_not_matching_its_digest(tmp_path):
    b = LayoutBuilder(tmp_path / "src")
    idesc, per = multi(b, [host_arch()])
    b.tag(idesc, "m")
    p = b.path / "blobs" / "sha256" / per[host_arch()]["digest"].split(":")[1]
    p.write_bytes(p.read_bytes() + b" ")
    with pytest.raises(PyruncError, match="^copying system image from manifest list: Manifest does not match provided manifest digest"):
        q(f"oci:{b.path}:m", f"oci:{tmp_path / 'dst'}:y")
    assert not (tmp_path / "dst").exists()


# ---- failures leave the destination as it was

def corrupt_layer(b: LayoutBuilder, d: dict, n: int = 0) -> str:
    m = json.loads((b.path / "blobs" / "sha256" / d["digest"].split(":")[1]).read_bytes())
    digest = m["layers"][n]["digest"]
    p = b.path / "blobs" / "sha256" / digest.split(":")[1]
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    return digest


def test_digest_mismatch_new_destination_absent(src, tmp_path):
    b, d = src
    digest = corrupt_layer(b, d, 1)
    with pytest.raises(PyruncError, match=rf"^writing blob: blob {digest}: content does not match its digest"):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'new' / 'dst'}:y")
    assert not (tmp_path / "new").exists()


def test_digest_mismatch_existing_layout_unchanged(src, tmp_path):
    b, d = src
    dst = tmp_path / "dst"
    other = LayoutBuilder(tmp_path / "other")
    other.tag(image(other, b"other"), "o")
    q(f"oci:{other.path}:o", f"oci:{dst}:y")
    before = tree(dst)
    corrupt_layer(b, d, 0)
    with pytest.raises(PyruncError, match="content does not match its digest"):
        q(f"oci:{b.path}:x", f"oci:{dst}:y")
    assert tree(dst) == before
    # The config is read after the layers: both layers were stored, then removed.
    b2 = LayoutBuilder(tmp_path / "src2")
    d2 = image(b2, b"two")
    b2.tag(d2, "x")
    m = json.loads((b2.path / "blobs" / "sha256" / d2["digest"].split(":")[1]).read_bytes())
    (b2.path / "blobs" / "sha256" / m["config"]["digest"].split(":")[1]).write_bytes(b"{}" + b" " * (m["config"]["size"] - 2))
    with pytest.raises(PyruncError, match=r"^reading config blob \S+: config \S+: content does not match its digest"):
        q(f"oci:{b2.path}:x", f"oci:{dst}:y")
    assert tree(dst) == before


def test_existing_empty_directory_left_empty(src, tmp_path):
    b, d = src
    (tmp_path / "dst").mkdir()
    corrupt_layer(b, d)
    with pytest.raises(PyruncError):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert list((tmp_path / "dst").iterdir()) == []


def test_missing_blob(src, tmp_path):
    b, d = src
    digest = corrupt_layer(b, d)
    (b.path / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    with pytest.raises(PyruncError, match=rf"^reading blob {digest}: open \S+: No such file or directory$"):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert not (tmp_path / "dst").exists()


def test_truncated_blob(src, tmp_path):
    b, d = src
    m = json.loads((b.path / "blobs" / "sha256" / d["digest"].split(":")[1]).read_bytes())
    p = b.path / "blobs" / "sha256" / m["config"]["digest"].split(":")[1]
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(PyruncError, match="reading config blob .*: size \\d+ does not match its descriptor's"):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert not (tmp_path / "dst").exists()


def test_not_an_image_manifest(tmp_path):
    b = LayoutBuilder(tmp_path / "src")
    b.tag(b.blob(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}',
                 "application/vnd.oci.image.manifest.v1+json"), "x")
    with pytest.raises(PyruncError, match="no config and layers"):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert not (tmp_path / "dst").exists()


# ---- oci-archive:

def test_oci_archive_round_trip(src, tmp_path):
    b, d = src
    tar = tmp_path / "img.tar"
    q(f"oci:{b.path}:x", f"oci-archive:{tar}:a")
    with tarfile.open(tar) as t:
        names = t.getnames()
        assert all(m.uid == 0 and m.gid == 0 for m in t.getmembers())
    assert names[:2] == ["blobs", "blobs/sha256"] and names[-2:] == ["index.json", "oci-layout"]
    r = q(f"oci-archive:{tar}:a", f"oci:{tmp_path / 'back'}:z")
    assert r.manifest_digest == d["digest"]
    assert blobs(tmp_path / "back") == blobs(b.path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".oci-archive-")]


def test_oci_archive_failure_leaves_no_file(src, tmp_path, monkeypatch):
    b, d = src
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    corrupt_layer(b, d)
    with pytest.raises(PyruncError):
        q(f"oci:{b.path}:x", f"oci-archive:{tmp_path / 'img.tar'}:a")
    assert not (tmp_path / "img.tar").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_oci_archive_source_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(PyruncError, match=r'archive file not found: "\S+nope.tar"'):
        q(f"oci-archive:{tmp_path / 'nope.tar'}", f"oci:{tmp_path / 'dst'}")
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(PyruncError, match="untarring file"):
        q(f"oci-archive:{tmp_path / 'junk.tar'}", f"oci:{tmp_path / 'dst'}")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        ti = tarfile.TarInfo("../escaped")
        ti.size = 2
        t.addfile(ti, io.BytesIO(b"hi"))
    with pytest.raises(PyruncError, match="unsafe entry '../escaped'"):
        q(f"oci-archive:{evil}", f"oci:{tmp_path / 'dst'}")
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as t:
        ti = tarfile.TarInfo("blobs")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/etc"
        t.addfile(ti)
    with pytest.raises(PyruncError, match="not a file or directory"):
        q(f"oci-archive:{link}", f"oci:{tmp_path / 'dst'}")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "dst").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


# ---- the report

def test_report_plain_lines(src, tmp_path):
    b, d = src
    m = json.loads((b.path / "blobs" / "sha256" / d["digest"].split(":")[1]).read_bytes())
    out = io.StringIO()
    copy(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y", progress=out)
    layers = sorted(out.getvalue().splitlines()[1:3])
    assert out.getvalue().splitlines()[0] == "Getting image source signatures"
    assert layers == sorted(f"Copying blob {l['digest']}" for l in m["layers"])
    assert out.getvalue().splitlines()[3:] == [f"Copying config {m['config']['digest']}",
                                               "Writing manifest to image destination"]
    quiet = io.StringIO()
    copy(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst2'}:y", progress=quiet, quiet=True)
    assert quiet.getvalue() == ""


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_report_on_a_terminal(src, tmp_path):
    b, d = src
    out = FakeTTY()
    copy(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y", progress=out)
    text = out.getvalue()
    m = json.loads((b.path / "blobs" / "sha256" / d["digest"].split(":")[1]).read_bytes())
    for l in m["layers"]:
        short = l["digest"].split(":")[1][:12]
        assert f"Copying blob {short} done\n" in text
    assert f"Copying config {m['config']['digest'].split(':')[1][:10]} done\n" in text
    assert "\x1b[" in text and " / " in text  # redrawn with byte counters
    out = FakeTTY()
    copy(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y", progress=out)
    assert f"Copying blob {m['layers'][0]['digest'].split(':')[1][:12]} skipped: already exists\n" in out.getvalue()


def test_report_counters():
    assert size_b1024(105) == "105.0b" and size_b1024(1536) == "1.5KiB" and size_b1024(10 << 20) == "10.0MiB"
    out = FakeTTY()
    r = Report(out)
    bar = r.bar("blob", "sha256:" + "ab" * 32, 1000)
    bar.add(500)
    assert bar.line() == "Copying blob abababababab [" + "=" * 19 + ">" + "-" * 18 + "] 500.0b / 1000.0b"
    bar.finish()
    r.done()
    assert out.getvalue().endswith("\x1b[1A\x1b[JCopying blob abababababab done\n")


# ---- destinations storing uncompressed layers (docker-archive)

class Uncompressed(ImageDestination):
    needs_uncompressed_layers = True
    supports_index = False

    def __init__(self):
        from pyrunc.image.reference import parse
        self.reference = parse("docker-archive:/nonexistent.tar")
        self.blobs, self.manifests, self.committed, self.closed = {}, [], False, False

    def has_blob(self, desc):
        return desc["digest"] in self.blobs

    def put_blob(self, desc, stream):
        data = stream.read()
        stream.finish()
        self.blobs[desc["digest"]] = (desc, data)

    def put_manifest(self, raw, media_type, instance=None):
        self.manifests.append((raw, media_type, instance))

    def commit(self):
        self.committed = True

    def close(self):
        self.closed = True


def test_uncompressed_destination_gets_diff_ids(src, tmp_path, monkeypatch, capsys):
    import pyrunc.image.copier as c
    b, d = src
    dest = Uncompressed()
    monkeypatch.setattr(c, "open_destination", lambda ref, opts: dest)
    r = copy(f"oci:{b.path}:x", "docker-archive:/nonexistent.tar", quiet=False, progress=io.StringIO())
    assert r.decompressed and dest.committed and dest.closed
    cfg_digest = json.loads((b.path / "blobs" / "sha256" / d["digest"].split(":")[1]).read_bytes())["config"]["digest"]
    cfg = json.loads((b.path / "blobs" / "sha256" / cfg_digest.split(":")[1]).read_bytes())
    for diff_id in cfg["rootfs"]["diff_ids"]:
        desc, data = dest.blobs[diff_id]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
        assert desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar" and desc["size"] == -1
        tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert cfg_digest in dest.blobs
    assert "Decompressing layers for docker-archive:/nonexistent.tar" in capsys.readouterr().err
    dest2 = Uncompressed()
    monkeypatch.setattr(c, "open_destination", lambda ref, opts: dest2)
    copy(f"oci:{b.path}:x", "docker-archive:/nonexistent.tar", quiet=True)
    assert capsys.readouterr().err == ""


def test_uncompressed_destination_checks_diff_id(src, tmp_path, monkeypatch):
    import pyrunc.image.copier as c
    b, d = src
    mpath = b.path / "blobs" / "sha256" / d["digest"].split(":")[1]
    m = json.loads(mpath.read_bytes())
    cpath = b.path / "blobs" / "sha256" / m["config"]["digest"].split(":")[1]
    cfg = json.loads(cpath.read_bytes())
    cfg["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
    m["config"] = b.blob(json.dumps(cfg).encode(), m["config"]["mediaType"])
    b.tag(b.blob(json.dumps(m).encode(), d["mediaType"]), "bad")
    dest = Uncompressed()
    monkeypatch.setattr(c, "open_destination", lambda ref, opts: dest)
    with pytest.raises(PyruncError, match=r"^writing blob: layer diff_id sha256:0{64}: content does not match"):
        q(f"oci:{b.path}:bad", "docker-archive:/nonexistent.tar")
    assert dest.closed and not dest.committed


def test_all_to_single_image_destination_refused(tmp_path, monkeypatch):
    import pyrunc.image.copier as c
    b = LayoutBuilder(tmp_path / "src")
    idesc, _ = multi(b, ["amd64", "arm64"])
    b.tag(idesc, "m")
    dest = Uncompressed()
    monkeypatch.setattr(c, "open_destination", lambda ref, opts: dest)
    with pytest.raises(PyruncError, match='^copying multiple images: destination transport "docker-archive" '
                                          'does not support copying multiple images as a group$'):
        q(f"oci:{b.path}:m", "docker-archive:/nonexistent.tar", all=True)
    assert dest.blobs == {} and not dest.committed


def test_library_wrapper(src, tmp_path):
    b, d = src
    assert lib_copy(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y", quiet=True).manifest_digest == d["digest"]
    ib = LayoutBuilder(tmp_path / "multi")
    idesc, per = multi(ib, ["amd64", "arm64"])
    ib.tag(idesc, "m")
    r = lib_copy(f"oci:{ib.path}:m", f"oci:{tmp_path / 'arm'}:y", src_opts={"arch": "arm64"}, quiet=True)
    assert r.manifest_digest == per["arm64"]["digest"]
    with pytest.raises(PyruncError, match="unknown option"):
        lib_copy(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y", src_opts={"arm": "x"})


def test_oci_archive_with_all(tmp_path):
    b = LayoutBuilder(tmp_path / "src")
    idesc, per = multi(b, ["amd64", "arm64"])
    b.tag(idesc, "m")
    q(f"oci:{b.path}:m", f"oci-archive:{tmp_path / 'all.tar'}:m", all=True)
    r = q(f"oci-archive:{tmp_path / 'all.tar'}:m", f"oci:{tmp_path / 'back'}:m", all=True)
    assert r.manifest_digest == idesc["digest"] and blobs(tmp_path / "back") == blobs(b.path)


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def docker_image(b: LayoutBuilder, text: bytes, arch: str) -> dict:
    raw = layer_tar([entry("d", data=text)])
    layer = b.blob(gzip.compress(raw, mtime=0), "application/vnd.docker.image.rootfs.diff.tar.gzip")
    cfg = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers",
           "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    c = b.blob(json.dumps(cfg).encode(), "application/vnd.docker.container.image.v1+json")
    m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": c, "layers": [layer]}
    return b.blob(json.dumps(m, indent=3).encode(), DOCKER_MANIFEST)


def test_docker_list_and_manifest_kept_as_they_are(tmp_path):
    """A Docker list is resolved as skopeo resolves one (platform.choose's
    Docker rules) and the Docker manifest is stored byte for byte, named
    with its own media type."""
    b = LayoutBuilder(tmp_path / "src")
    per = {a: docker_image(b, a.encode(), a) for a in ("s390x", host_arch())}
    lst = {"schemaVersion": 2, "mediaType": DOCKER_LIST,
           "manifests": [{**d, "platform": {"os": "linux", "architecture": a}} for a, d in per.items()]}
    b.tag(b.blob(json.dumps(lst).encode(), DOCKER_LIST), "d")
    r = q(f"oci:{b.path}:d", f"oci:{tmp_path / 'dst'}:y")
    assert r.manifest_digest == per[host_arch()]["digest"] and r.media_type == DOCKER_MANIFEST
    assert index(tmp_path / "dst") == [{**per[host_arch()], "annotations": {REF_NAME: "y"}}]
    r = q(f"oci:{b.path}:d", f"oci:{tmp_path / 'all'}:y", all=True)
    assert r.media_type == DOCKER_LIST and blobs(tmp_path / "all") == blobs(b.path)


def test_docker_layers_decompressed_for_uncompressed_destination(tmp_path, monkeypatch):
    import pyrunc.image.copier as c
    b = LayoutBuilder(tmp_path / "src")
    b.tag(docker_image(b, b"docker", host_arch()), "d")
    dest = Uncompressed()
    monkeypatch.setattr(c, "open_destination", lambda ref, opts: dest)
    r = q(f"oci:{b.path}:d", "docker-archive:/nonexistent.tar")
    (desc, data), = [v for k, v in dest.blobs.items() if v[0].get("mediaType", "").endswith("diff.tar")]
    assert desc["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar"
    assert desc["digest"] == "sha256:" + hashlib.sha256(data).hexdigest() and r.decompressed


def test_failed_layer_stops_the_others(src, tmp_path, monkeypatch):
    """Layers copy in parallel; when one fails the others stop at their next
    read instead of running to the end, and nothing is left."""
    import time
    import pyrunc.image.copier as c
    from pyrunc.image.transports import oci
    b, d = src
    bad = corrupt_layer(b, d, 0)
    reads = []

    class Slow:
        def __init__(self, raw):
            self.raw = raw

        def read(self, n=-1):
            time.sleep(0.05)
            reads.append(n)
            return self.raw.read(1)  # one byte at a time: seconds for the whole layer

        def close(self):
            self.raw.close()

    real = oci.OCISource.get_blob

    def get_blob(self, desc):
        f = real(self, desc)
        if desc["digest"] != bad:
            return Slow(f)
        time.sleep(0.2)  # the slow layer is under way when this one fails
        return f

    monkeypatch.setattr(oci.OCISource, "get_blob", get_blob)
    started = time.monotonic()
    with pytest.raises(PyruncError, match=f"blob {bad}: content does not match"):
        q(f"oci:{b.path}:x", f"oci:{tmp_path / 'dst'}:y")
    assert time.monotonic() - started < 2 and 0 < len(reads) < 20
    assert not (tmp_path / "dst").exists()
