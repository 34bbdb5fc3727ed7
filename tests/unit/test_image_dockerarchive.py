"""The docker-archive: transport (image/transports/dockerarchive.py) through
transport.py's interface: `docker save` archives built here (legacy and
docker 25+ layouts, gzip layers, compressed archives, several images) read
back, archives written by a copy loop over the interface, and both checked
against skopeo where it is installed (the manifest it synthesizes and the
archive it writes, byte for byte)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from oci_layout import LayoutBuilder, docker_save_tar, entry, host_arch, layer_tar
from pyrunc.errors import PyruncError
from pyrunc.image import transports as transport
from pyrunc.image.digest import DigestError, VerifyingReader
from pyrunc.image.layout import Layout

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

L1 = layer_tar([entry("etc", "dir", mode=0o755), entry("etc/hello", data=b"hi\n")])
L2 = layer_tar([entry("bin", "dir"), entry("bin/x", data=b"x" * 3000)])
L3 = layer_tar([entry("etc/motd", data=b"motd <&>\n")])
CONFIG = {"Env": ["PATH=/bin", "A=<b>&"], "Labels": {"z": "1", "a": "2"}, "Cmd": ["sh"]}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layout_image(tmp_path: Path, layers=(L1, L2), config=CONFIG, gzip_layers=True, extra=None) -> Path:
    b = LayoutBuilder(tmp_path / "layout")
    d = b.image(list(layers), dict(config), gzip_layers=gzip_layers)
    if extra:  # rewrite the config with more top-level fields
        def blob(desc: dict) -> dict:
            return json.loads((b.path / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
        m = blob(d)
        cfg = {**blob(m["config"]), **extra}
        m["config"] = b.blob(json.dumps(cfg).encode(), m["config"]["mediaType"])
        d = b.blob(json.dumps(m).encode(), d["mediaType"])
    b.tag(d, "v1")
    return b.path


def copy_to(layout: Path, dest_ref: str, ref: str = "v1", reverse: bool = False) -> None:
    """What the copy engine does for docker-archive (as skopeo orders it):
    layers decompressed and named by diff_id, then the config, then a
    schema2 manifest naming them."""
    lay = Layout(str(layout))
    m = lay.read_json(lay.find_ref(ref), "manifest")
    cfg_raw = lay.open_blob(m["config"]).read()
    cfg = json.loads(cfg_raw)
    dest = transport.open_destination(dest_ref)
    try:
        descs = []
        pairs = list(zip(m["layers"], cfg["rootfs"]["diff_ids"]))
        for l, diff in (reversed(pairs) if reverse else pairs):
            raw = lay.open_blob(l).read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            d = {"mediaType": DOCKER_TAR, "digest": diff, "size": len(raw)}
            if not dest.has_blob(d):
                dest.put_blob(d, VerifyingReader(io.BytesIO(raw), diff, len(raw)))
            descs.append(d)
        if reverse:
            descs.reverse()
        cd = {"mediaType": DOCKER_CONFIG, "size": len(cfg_raw), "digest": m["config"]["digest"]}
        dest.put_blob(cd, VerifyingReader(io.BytesIO(cfg_raw), cd["digest"], cd["size"]))
        man = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": cd, "layers": descs}
        dest.put_manifest(json.dumps(man).encode(), DOCKER_MANIFEST)
        dest.commit()
    finally:
        dest.close()


def read_image(ref: str) -> tuple[bytes, dict[str, bytes]]:
    """(manifest, {digest: blob}) read through the source, each blob verified."""
    src = transport.open_source(ref)
    try:
        raw, mt = src.get_manifest()
        assert mt == DOCKER_MANIFEST
        m = json.loads(raw)
        blobs = {}
        for d in [m["config"]] + m["layers"]:
            r = VerifyingReader(src.get_blob(d), d["digest"], d["size"])
            blobs[d["digest"]] = r.read()
            r.finish()
            r.close()
        return raw, blobs
    finally:
        src.close()


def expected_manifest(config: bytes, layers: list[bytes]) -> bytes:
    """containers/image's synthesized manifest, written out by hand."""
    ls = ",".join(f'{{"mediaType":"{DOCKER_LAYER}","size":{len(l)},"digest":"{sha(l)}"}}' for l in layers)
    return (f'{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}",'
            f'"size":{len(config)},"digest":"{sha(config)}"}},"layers":[{ls}]}}').encode()


def members(path: Path) -> list[tuple[str, str]]:
    with tarfile.open(path) as t:
        return [(m.name, m.linkname) for m in t]


# --- reading ---------------------------------------------------------------

@pytest.mark.parametrize("style", ["legacy", "oci"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_docker_save(tmp_path, style, gz):
    tar = docker_save_tar(tmp_path / "s.tar", [{"layers": [L1, L2, L1], "config": CONFIG,
                                                 "tags": ["busybox:latest"]}],
                          style=style, gzip_layers=gz, dup_symlink=True)
    for ref in (f"docker-archive:{tar}", f"docker-archive:{tar}:busybox:latest",
                f"docker-archive:{tar}:docker.io/library/busybox:latest", f"docker-archive:{tar}:@0"):
        raw, blobs = read_image(ref)
        m = json.loads(raw)
        cfg = blobs[m["config"]["digest"]]
        # Layers named by diff_id, served and sized decompressed, the repeated one twice.
        assert raw == expected_manifest(cfg, [L1, L2, L1])
        assert blobs[sha(L1)] == L1 and blobs[sha(L2)] == L2
        assert json.loads(cfg)["config"] == CONFIG


def test_read_compressed_archive(tmp_path):
    fds = len(os.listdir("/proc/self/fd"))
    tar = docker_save_tar(tmp_path / "s.tar", [{"layers": [L1], "tags": ["a:b"]}])
    (tmp_path / "s.tar.gz").write_bytes(gzip.compress(tar.read_bytes()))
    assert read_image(f"docker-archive:{tmp_path}/s.tar.gz") == read_image(f"docker-archive:{tar}")
    (tmp_path / "bad.tar.gz").write_bytes(gzip.compress(tar.read_bytes())[:-100])
    with pytest.raises(PyruncError, match="auto-decompressing input"):
        transport.open_source(f"docker-archive:{tmp_path}/bad.tar.gz")
    assert len(os.listdir("/proc/self/fd")) == fds


def test_choose_image(tmp_path):
    tar = docker_save_tar(tmp_path / "s.tar", [
        {"layers": [L1], "config": {"Cmd": ["one"]}, "tags": ["one:1", "quay.io/x/one:2"]},
        {"layers": [L1, L2], "config": {"Cmd": ["two"]}, "tags": ["two:latest"]},
        {"layers": [L3], "config": {"Cmd": ["three"]}, "tags": None},
    ])

    def cmd(ref: str) -> list:
        raw, blobs = read_image(f"docker-archive:{tar}{ref}")
        return json.loads(blobs[json.loads(raw)["config"]["digest"]])["config"]["Cmd"]

    assert cmd(":one:1") == cmd(":quay.io/x/one:2") == cmd(":@0") == ["one"]
    assert cmd(":two") == cmd(":two:latest") == cmd(":@1") == ["two"]
    assert cmd(":@2") == ["three"]
    for ref, msg in ((":one:2", 'Tag "docker.io/library/one:2" not found'),
                     (":@3", "Invalid source index @3, only 3 manifest items available"),
                     ("", "Unexpected tar manifest.json: expected 1 item, got 3")):
        src = transport.open_source(f"docker-archive:{tar}{ref}")
        with pytest.raises(PyruncError, match=msg):
            src.get_manifest()
        src.close()


def _archive(tmp_path: Path, files: dict[str, bytes]) -> Path:
    p = tmp_path / "bad.tar"
    with tarfile.open(p, "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return p


def test_read_errors(tmp_path):
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(L1)]}}).encode()

    def items(**kw) -> bytes:
        return json.dumps([{"Config": "c.json", "RepoTags": [], "Layers": ["l.tar"], **kw}]).encode()

    with pytest.raises(PyruncError, match='opening file ".*nope": no such file or directory'):
        transport.open_source(f"docker-archive:{tmp_path}/nope")
    (tmp_path / "text").write_text("not a tar\n" * 100)
    with pytest.raises(PyruncError, match="not a valid tar archive"):
        transport.open_source(f"docker-archive:{tmp_path}/text")
    with pytest.raises(PyruncError, match='loading tar component "manifest.json": file does not exist'):
        transport.open_source(f"docker-archive:{_archive(tmp_path, {'x': b''})}")
    with pytest.raises(PyruncError, match="decoding tar manifest.json"):
        transport.open_source(f"docker-archive:{_archive(tmp_path, {'manifest.json': b'{'})}")
    for files, msg in (
            ({"manifest.json": items(), "l.tar": L1}, 'loading tar component "c.json": file does not exist'),
            ({"manifest.json": items(), "c.json": b"{}", "l.tar": L1}, "rootFS is not set"),
            ({"manifest.json": items(Layers=[]), "c.json": cfg}, "Inconsistent layer count: 0 in manifest, 1 in config"),
            ({"manifest.json": items(), "c.json": cfg}, "Some layer tarfiles are missing in the tarball"),
            ({"manifest.json": items(RepoTags=["Bad:Tag"]), "c.json": cfg, "l.tar": L1}, "Invalid tag"),
    ):
        src = transport.open_source(f"docker-archive:{_archive(tmp_path, files)}"
                                    + (":x:y" if "Invalid tag" in msg else ""))
        with pytest.raises(PyruncError, match=msg):
            src.get_manifest()
        src.close()
    # A layer that is not its diff_id is caught by the reader's verification.
    src = transport.open_source(f"docker-archive:{_archive(tmp_path, {'manifest.json': items(), 'c.json': cfg, 'l.tar': L2})}")
    m = json.loads(src.get_manifest()[0])
    r = VerifyingReader(src.get_blob(m["layers"][0]), m["layers"][0]["digest"], m["layers"][0]["size"])
    with pytest.raises(DigestError):
        r.finish()
    src.close()


# --- writing ---------------------------------------------------------------

def test_write_layout(tmp_path):
    lay = layout_image(tmp_path)
    out = tmp_path / "out.tar"
    copy_to(lay, f"docker-archive:{out}:busybox:v1")
    names = members(out)
    cfg_hex = json.loads(read_image(f"docker-archive:{out}")[0])["config"]["digest"][7:]
    h1, h2 = sha(L1)[7:], sha(L2)[7:]
    # containers/image's layout: layers, config, legacy dirs, manifest.json, repositories.
    assert [n for n, _ in names[:3]] == [f"{h1}.tar", f"{h2}.tar", f"{cfg_hex}.json"]
    legacy = names[3:9]
    assert [n.split("/")[1] for n, _ in legacy] == ["layer.tar", "VERSION", "json"] * 2
    assert legacy[0][1] == f"../{h1}.tar" and legacy[3][1] == f"../{h2}.tar"
    assert [n for n, _ in names[9:]] == ["manifest.json", "repositories"]
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        repos = json.load(t.extractfile("repositories"))
        top = json.load(t.extractfile(legacy[3][0].replace("layer.tar", "json")))
        m = t.getmember(f"{h1}.tar")
        assert (m.mode, m.uid, m.gid, m.mtime) == (0o444, 0, 0, 0)
    assert manifest == [{"Config": f"{cfg_hex}.json", "RepoTags": ["docker.io/library/busybox:v1"],
                         "Layers": [f"{h1}.tar", f"{h2}.tar"]}]
    assert repos == {"docker.io/library/busybox": {"v1": legacy[3][0].split("/")[0]}}
    assert top["parent"] == legacy[0][0].split("/")[0] and top["config"] == CONFIG
    raw, blobs = read_image(f"docker-archive:{out}:busybox:v1")
    assert blobs[sha(L1)] == L1 and blobs[sha(L2)] == L2
    assert (out.stat().st_mode & 0o777) == 0o644 & ~_umask()
    assert sorted(os.listdir(tmp_path)) == ["layout", "out.tar"]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_write_untagged_and_oci_manifest(tmp_path):
    """No NAME:TAG: RepoTags [] and an empty repositories; a manifest still
    naming the compressed layers (as an OCI source has it) is mapped to the
    diff_ids the layers were stored under."""
    lay = layout_image(tmp_path)
    l = Layout(str(lay))
    raw_oci = l.open_blob(l.find_ref("v1")).read()
    m = json.loads(raw_oci)
    cfg_raw = l.open_blob(m["config"]).read()
    out = tmp_path / "o.tar"
    dest = transport.open_destination(f"docker-archive:{out}")
    for layer in (L1, L2):
        dest.put_blob({"mediaType": DOCKER_TAR, "digest": sha(layer), "size": -1},
                      VerifyingReader(io.BytesIO(layer), sha(layer)))
    dest.put_blob(m["config"], VerifyingReader(io.BytesIO(cfg_raw), m["config"]["digest"], len(cfg_raw)))
    dest.put_manifest(raw_oci, m["mediaType"])
    dest.commit()
    dest.close()
    with tarfile.open(out) as t:
        assert json.load(t.extractfile("manifest.json"))[0]["RepoTags"] == []
        assert json.load(t.extractfile("repositories")) == {}
    assert read_image(f"docker-archive:{out}")[1][sha(L2)] == L2


def test_write_duplicate_layers(tmp_path):
    lay = layout_image(tmp_path, layers=(L1, L2, L1))
    out = tmp_path / "d.tar"
    copy_to(lay, f"docker-archive:{out}:a:b")
    names = [n for n, _ in members(out)]
    assert names.count(f"{sha(L1)[7:]}.tar") == 1
    assert len([n for n in names if n.endswith("/layer.tar")]) == 3   # one legacy dir per layer
    raw, blobs = read_image(f"docker-archive:{out}")
    assert [l["digest"] for l in json.loads(raw)["layers"]] == [sha(L1), sha(L2), sha(L1)]


def test_write_failures_leave_nothing(tmp_path):
    out = tmp_path / "f.tar"
    # closed without commit
    dest = transport.open_destination(f"docker-archive:{out}")
    dest.put_blob({"mediaType": DOCKER_TAR, "digest": sha(L1), "size": len(L1)},
                  VerifyingReader(io.BytesIO(L1), sha(L1), len(L1)))
    dest.close()
    assert os.listdir(tmp_path) == []
    # a blob that is not its digest: the archive is unusable, nothing is left
    dest = transport.open_destination(f"docker-archive:{out}")
    with pytest.raises(DigestError):
        dest.put_blob({"mediaType": DOCKER_TAR, "digest": sha(L1), "size": len(L2)},
                      VerifyingReader(io.BytesIO(L2), sha(L1), len(L2)))
    with pytest.raises(PyruncError, match="can no longer be written"):
        dest.commit()
    dest.close()
    assert os.listdir(tmp_path) == []
    # short stream
    dest = transport.open_destination(f"docker-archive:{out}")
    with pytest.raises(PyruncError, match="Size mismatch"):
        dest.put_blob({"mediaType": DOCKER_TAR, "digest": sha(L1), "size": len(L1) + 512},
                      VerifyingReader(io.BytesIO(L1), sha(L1)))
    dest.close()
    # a manifest naming what was not written
    dest = transport.open_destination(f"docker-archive:{out}")
    man = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": {"mediaType": DOCKER_CONFIG, "digest": sha(b"{}"), "size": 2}, "layers": []}
    with pytest.raises(PyruncError, match="which was not written"):
        dest.put_manifest(json.dumps(man).encode(), DOCKER_MANIFEST)
    with pytest.raises(PyruncError, match="Manifest lists are not supported"):
        dest.put_manifest(b"{}", DOCKER_MANIFEST, instance=sha(b"x"))
    with pytest.raises(PyruncError, match="need a Docker schema 2 manifest"):
        dest.put_manifest(b'{"schemaVersion": 1}', DOCKER_MANIFEST)
    dest.close()
    assert os.listdir(tmp_path) == []
    # an existing archive is not modified; an empty file is replaced
    out.write_bytes(b"x")
    with pytest.raises(PyruncError, match="docker-archive doesn't support modifying existing images"):
        transport.open_destination(f"docker-archive:{out}")
    assert out.read_bytes() == b"x"
    out.write_bytes(b"")
    copy_to(layout_image(tmp_path / "l"), f"docker-archive:{out}")
    assert read_image(f"docker-archive:{out}")[1][sha(L1)] == L1
    with pytest.raises(PyruncError, match="must not contain a manifest index @0"):
        transport.open_destination(f"docker-archive:{tmp_path}/x.tar:@0")
    with pytest.raises(PyruncError, match="opening file"):
        transport.open_destination(f"docker-archive:{tmp_path}/no/such/dir/x.tar")


def test_write_parallel_unknown_sizes(tmp_path):
    """Layers put from several threads at once, sizes unknown (as the copy
    engine decompresses them): each lands whole, in whatever order."""
    layers = [layer_tar([entry(f"f{i}", data=os.urandom(1000 * i + 1))]) for i in range(6)]
    out = tmp_path / "p.tar"
    dest = transport.open_destination(f"docker-archive:{out}")
    errors = []

    def put(layer: bytes) -> None:
        try:
            dest.put_blob({"mediaType": DOCKER_TAR, "digest": sha(layer), "size": -1},
                          VerifyingReader(_Slow(layer), sha(layer)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=put, args=(l,)) for l in layers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cfg = json.dumps({"architecture": host_arch(), "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]}}).encode()
    cd = {"mediaType": DOCKER_CONFIG, "digest": sha(cfg), "size": len(cfg)}
    dest.put_blob(cd, VerifyingReader(io.BytesIO(cfg), sha(cfg), len(cfg)))
    man = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": cd,
           "layers": [{"mediaType": DOCKER_TAR, "digest": sha(l), "size": len(l)} for l in layers]}
    dest.put_manifest(json.dumps(man).encode(), DOCKER_MANIFEST)
    dest.commit()
    dest.close()
    raw, blobs = read_image(f"docker-archive:{out}")
    assert all(blobs[sha(l)] == l for l in layers)


class _Slow:
    """A stream handing out small chunks, so that writers overlap."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        import time
        time.sleep(0.001)
        return self._b.read(min(n if n >= 0 else 4096, 4096))

    def close(self) -> None:
        pass


# --- against skopeo --------------------------------------------------------

def skopeo(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *map(str, args)], capture_output=True, timeout=120)


@needs_skopeo
def test_skopeo_writes_the_same_archive(tmp_path):
    """skopeo copy oci:… docker-archive:… and this transport, fed in the
    same order, write the same bytes (the legacy layer ids and JSON too)."""
    lay = layout_image(tmp_path, layers=(L1, L2, L3, L1),
                       extra={"created": "2024-05-01T10:00:00.5+02:00", "docker_version": "24.0.7",
                              "container_config": {"Cmd": ["a  b"], "Labels": {"x": "<y>"}}})
    for tag in ("busybox:v1", "quay.io/org/app:1.0", None):
        suffix = f":{tag}" if tag else ""
        theirs, mine = tmp_path / f"s{len(suffix)}.tar", tmp_path / f"m{len(suffix)}.tar"
        r = skopeo("copy", "-q", f"oci:{lay}:v1", f"docker-archive:{theirs}{suffix}")
        assert r.returncode == 0, r.stderr
        copy_to(lay, f"docker-archive:{mine}{suffix}")
        assert mine.read_bytes() == theirs.read_bytes()


@needs_skopeo
@pytest.mark.parametrize("style", ["legacy", "oci"])
def test_skopeo_synthesizes_the_same_manifest(tmp_path, style):
    tar = docker_save_tar(tmp_path / "s.tar", [
        {"layers": [L1, L2], "config": CONFIG, "tags": ["busybox:latest", "busybox:1"]},
        {"layers": [L3], "tags": ["other:latest"]}], style=style, gzip_layers=True)
    for ref in (":busybox:latest", ":busybox:1", ":other:latest", ":@0", ":@1"):
        r = skopeo("inspect", "--raw", f"docker-archive:{tar}{ref}")
        assert r.returncode == 0, r.stderr
        src = transport.open_source(f"docker-archive:{tar}{ref}")
        assert src.get_manifest()[0] == r.stdout
        src.close()


@needs_skopeo
def test_skopeo_reads_what_is_written(tmp_path):
    lay = layout_image(tmp_path, layers=(L1, L2, L3))
    out = tmp_path / "w.tar"
    copy_to(lay, f"docker-archive:{out}:app:2", reverse=True)   # another order of the members
    r = skopeo("copy", "-q", f"docker-archive:{out}:app:2", f"oci:{tmp_path}/back:b")
    assert r.returncode == 0, r.stderr
    back = Layout(str(tmp_path / "back"))
    m = back.read_json(back.find_ref("b"), "manifest")
    got = [back.open_blob(l).read() for l in m["layers"]]
    assert [gzip.decompress(g) if g[:2] == b"\x1f\x8b" else g for g in got] == [L1, L2, L3]
    r = skopeo("inspect", "--raw", f"docker-archive:{out}")
    assert r.returncode == 0 and r.stdout == read_image(f"docker-archive:{out}")[0]


def test_write_to_a_pipe(tmp_path):
    """FILE that is no regular file (a fifo, /dev/stdout) gets the finished
    archive; no temporary file is left beside it."""
    lay = layout_image(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    copy_to(lay, f"docker-archive:{fifo}:a:b")
    reader.join(timeout=30)
    copy_to(lay, f"docker-archive:{tmp_path}/regular.tar:a:b")
    assert got == [(tmp_path / "regular.tar").read_bytes()]
    assert sorted(os.listdir(tmp_path)) == ["fifo", "layout", "regular.tar"]


def test_additional_tags(tmp_path):
    """Options.additional_tags (copy --additional-tag): more RepoTags, after
    the reference's, each once."""
    lay = layout_image(tmp_path)
    l = Layout(str(lay))
    m = l.read_json(l.find_ref("v1"), "manifest")
    cfg_raw = l.open_blob(m["config"]).read()
    out = tmp_path / "t.tar"
    dest = transport.open_destination(f"docker-archive:{out}:a:1",
                                      transport.Options(additional_tags=("quay.io/b/c:2", "a:1")))
    for layer in (L1, L2):
        dest.put_blob({"mediaType": DOCKER_TAR, "digest": sha(layer), "size": -1},
                      VerifyingReader(io.BytesIO(layer), sha(layer)))
    dest.put_blob(m["config"], VerifyingReader(io.BytesIO(cfg_raw), m["config"]["digest"], len(cfg_raw)))
    dest.put_manifest(l.open_blob(l.find_ref("v1")).read(), m["mediaType"])
    dest.commit()
    dest.close()
    with tarfile.open(out) as t:
        assert json.load(t.extractfile("manifest.json"))[0]["RepoTags"] == ["docker.io/library/a:1", "quay.io/b/c:2"]
        assert sorted(json.load(t.extractfile("repositories"))) == ["docker.io/library/a", "quay.io/b/c"]
    for tag, msg in (("nope", "must be a tagged reference"), ("A:1", "error parsing additional-tag")):
        with pytest.raises(PyruncError, match=msg):
            transport.open_destination(f"docker-archive:{tmp_path}/x.tar", transport.Options(additional_tags=(tag,)))
    assert sorted(os.listdir(tmp_path)) == ["layout", "t.tar"]
