"""docker-archive: through `pyrunc image copy` (the copy engine and this
transport together) against `skopeo copy` of the same image: the same
archive bytes, and an archive skopeo reads back. Skipped where the runtime
under test has no `image copy` yet."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from oci_layout import LayoutBuilder, entry, layer_tar

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

L1 = layer_tar([entry("etc", "dir", mode=0o755), entry("etc/hello", data=b"hi\n")])
L2 = layer_tar([entry("bin", "dir"), entry("bin/x", data=b"x" * 70000)])


def skopeo(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *map(str, args)], capture_output=True, timeout=120)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    b = LayoutBuilder(tmp_path / "layout")
    b.tag(b.image([L1, L2], {"Env": ["A=<b>"], "Labels": {"x": "y"}}, gzip_layers=True), "v1")
    return b.path


def _has_copy(rt) -> bool:
    return rt.run("image", "copy", "--help").rc == 0


def test_copy_to_docker_archive_as_skopeo(rt, layout, tmp_path):
    if not _has_copy(rt):
        pytest.skip("the runtime under test has no `image copy`")
    for suffix in (":busybox:v1", ""):
        mine, theirs = tmp_path / f"mine{len(suffix)}.tar", tmp_path / f"theirs{len(suffix)}.tar"
        rt.ok("image", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{mine}{suffix}")
        r = skopeo("copy", "-q", f"oci:{layout}:v1", f"docker-archive:{theirs}{suffix}")
        assert r.returncode == 0, r.stderr
        # Layers may land in another order (they are copied in parallel): same members, same bytes each.
        assert _members(mine) == _members(theirs)
        r = skopeo("inspect", "--raw", f"docker-archive:{mine}")
        assert r.returncode == 0 and json.loads(r.stdout)["layers"][1]["size"] == len(L2)
    # An existing archive is left alone.
    res = rt.run("image", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{tmp_path}/mine11.tar:a:b")
    res.expect_fail(rc=1, match="doesn't support modifying existing images", one_line=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout", "mine0.tar", "mine11.tar", "state",
                                                          "theirs0.tar", "theirs11.tar"]


def _members(path: Path) -> dict[str, bytes]:
    import tarfile
    with tarfile.open(path) as t:
        return {m.name: (t.extractfile(m).read() if m.isreg() else m.linkname.encode()) for m in t}


def test_copy_from_docker_archive_as_skopeo(rt, layout, tmp_path):
    """A docker-archive source serves its layers uncompressed under a gzip
    media type (as containers/image does): the engine goes by the bytes, and
    archive -> archive is skopeo's archive byte for byte."""
    if not _has_copy(rt):
        pytest.skip("the runtime under test has no `image copy`")
    src = tmp_path / "src.tar"
    r = skopeo("copy", "-q", f"oci:{layout}:v1", f"docker-archive:{src}:busybox:v1")
    assert r.returncode == 0, r.stderr
    rt.ok("image", "copy", "-q", f"docker-archive:{src}", f"docker-archive:{tmp_path}/mine.tar:a:b")
    r = skopeo("copy", "-q", f"docker-archive:{src}", f"docker-archive:{tmp_path}/theirs.tar:a:b")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mine.tar").read_bytes() == (tmp_path / "theirs.tar").read_bytes()


def test_additional_tags_as_skopeo(rt, layout, tmp_path):
    if not _has_copy(rt):
        pytest.skip("the runtime under test has no `image copy`")
    flags = ["--additional-tag", "quay.io/x/y:2,other:3", "--additional-tag", "busybox:v1"]
    rt.ok("image", "copy", "-q", *flags, f"oci:{layout}:v1", f"docker-archive:{tmp_path}/mine.tar:busybox:v1")
    r = skopeo("copy", "-q", *flags, f"oci:{layout}:v1", f"docker-archive:{tmp_path}/theirs.tar:busybox:v1")
    assert r.returncode == 0, r.stderr
    assert _members(tmp_path / "mine.tar") == _members(tmp_path / "theirs.tar")
    assert json.loads(_members(tmp_path / "mine.tar")["manifest.json"])[0]["RepoTags"] == [
        "docker.io/library/busybox:v1", "quay.io/x/y:2", "docker.io/library/other:3"]
    for tag, msg in (("nope", "additional-tag 'nope' must be a tagged reference"),
                     ("BAD:1", "error parsing additional-tag 'BAD:1'")):
        rt.run("image", "copy", "--additional-tag", tag, f"oci:{layout}:v1",
               f"docker-archive:{tmp_path}/x.tar").expect_fail(rc=1, match=msg, one_line=True)
    assert not (tmp_path / "x.tar").exists()
