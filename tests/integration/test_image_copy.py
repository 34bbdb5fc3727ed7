"""`pyrunc image copy` through the command line: one-line errors with
nothing left behind (a full disk too), the report on stdout, the same
results as `skopeo copy` on the same inputs (and archives each can read from
the other), and an image copied, unpacked and run, checked from inside the
container."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from oci_layout import OCI_INDEX, LayoutBuilder, entry, layer_tar, tree_tar

REF_NAME = "org.opencontainers.image.ref.name"
need_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


@pytest.fixture(autouse=True)
def _image_command(rt):
    if rt.run("image", "copy", "--help").rc != 0:
        pytest.skip("the runtime under test has no `image copy` command")


def image(b: LayoutBuilder, text: bytes, arch: str | None = None, gzip_layers: bool = True) -> dict:
    return b.image([layer_tar([entry("a", data=text)]), layer_tar([entry("b", data=text * 3)])],
                   {"Cmd": ["/bin/sh"]}, gzip_layers=gzip_layers, arch=arch)


@pytest.fixture
def src(tmp_path: Path) -> LayoutBuilder:
    b = LayoutBuilder(tmp_path / "src")
    b.tag(image(b, b"one"), "x")
    b.tag(image(b, b"plain", gzip_layers=False), "plain")
    per = {a: image(b, a.encode(), arch=a) for a in ("amd64", "arm64")}
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX,
           "manifests": [{**d, "platform": {"os": "linux", "architecture": a}} for a, d in per.items()]}
    b.tag(b.blob(json.dumps(idx).encode(), OCI_INDEX), "multi")
    return b


def blob_set(layout: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (layout / "blobs" / "sha256").iterdir()}


def descriptors(layout: Path) -> list:
    return [(d["digest"], d["size"], d["mediaType"], (d.get("annotations") or {}).get(REF_NAME))
            for d in json.loads((layout / "index.json").read_text())["manifests"]]


def tree(path: Path) -> dict:
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


# ---- errors: one line, exit 1, nothing left

@pytest.mark.parametrize("args, match", [
    (["foo:bar", "oci:DST"], r'Invalid source name foo:bar: Invalid image name \\?"foo:bar\\?", unknown transport'),
    (["oci:SRC:x", "bogus"], r"Invalid destination name bogus: Invalid image name"),
    (["oci:SRC:x", "oci:DST:bad ref"], r"Invalid destination name oci:\S+:bad ref: Invalid image bad ref"),
    (["oci:SRC:nope", "oci:DST:y"], r'initializing source oci:\S+:nope: no descriptor found for reference \\?"nope'),
    (["oci:SRC", "oci:DST:y"], r"more than one image in oci, choose an image"),
    (["oci:NOWHERE:x", "oci:DST:y"], r"initializing source oci:\S+: \S+: not an OCI image layout"),
    (["oci-archive:NOWHERE", "oci:DST:y"], r"archive file not found"),
    (["oci:SRC:x", "oci-archive:NOWHERE/x.tar"], r"initializing destination oci-archive:\S+: creating tar file .*no such directory"),
    (["oci:SRC:x", "oci:"], r"initializing destination oci:: the layout directory name is empty"),
    (["--override-arch", "riscv64", "oci:SRC:multi", "oci:DST:y"],
     r"choosing an image from manifest list oci:\S+:multi: no image found in image index for architecture "
     r'\\?"riscv64\\?"'),
    (["oci:SRC:x"], r"Exactly two arguments expected"),
    (["--src-tls-verify=maybe", "oci:SRC:x", "oci:DST:y"], r"invalid boolean value"),
])
def test_errors_leave_nothing(rt, src, tmp_path, args, match):
    args = [a.replace("SRC", str(src.path)).replace("DST", str(tmp_path / "dst"))
            .replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    before = tree(src.path)
    res = rt.run("image", "copy", *args).expect_fail(rc=1, match=match)
    assert "Traceback" not in res.stderr and len([l for l in res.stderr.splitlines() if l.strip()]) == 1, res
    assert not (tmp_path / "dst").exists()
    assert tree(src.path) == before


def test_corrupt_blob_leaves_layout_unchanged(rt, src, tmp_path):
    dst = tmp_path / "dst"
    rt.ok("image", "copy", "-q", f"oci:{src.path}:plain", f"oci:{dst}:keep")
    before = tree(dst)
    m = json.loads((src.path / "blobs/sha256" / descriptors(src.path)[0][0][7:]).read_bytes())
    p = src.path / "blobs/sha256" / m["layers"][1]["digest"][7:]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    rt.fail("image", "copy", f"oci:{src.path}:x", f"oci:{dst}:keep", one_line=True,
            match=rf"writing blob: blob {m['layers'][1]['digest']}: content does not match its digest")
    assert tree(dst) == before


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 512 KiB tmpfs, mounted for the test and unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk(rt, tmp_path, tiny_fs):
    b = LayoutBuilder(tmp_path / "big")
    b.tag(b.image([layer_tar([entry("r", data=os.urandom(300 << 10))]),
                   layer_tar([entry("s", data=os.urandom(400 << 10))])], gzip_layers=True), "x")
    res = rt.fail("image", "copy", f"oci:{b.path}:x", f"oci:{tiny_fs}/dst:y", one_line=True,
                  match="No space left on device")
    assert "Traceback" not in res.stderr
    assert list(tiny_fs.iterdir()) == []
    # An existing layout there is left as it was.
    small = LayoutBuilder(tmp_path / "small")
    small.tag(small.image([layer_tar([entry("a", data=b"a")])]), "s")
    rt.ok("image", "copy", "-q", f"oci:{small.path}:s", f"oci:{tiny_fs}/dst:s")
    before = tree(tiny_fs)
    rt.fail("image", "copy", f"oci:{b.path}:x", f"oci:{tiny_fs}/dst:y", one_line=True, match="No space left on device")
    assert tree(tiny_fs) == before
    # oci-archive: the layout is built under $TMPDIR, the tar is what fills the disk.
    (tmp_path / "tmp").mkdir()
    shutil.rmtree(tiny_fs / "dst")
    rt.fail("image", "copy", f"oci:{b.path}:x", f"oci-archive:{tiny_fs}/img.tar:y", one_line=True,
            match="No space left on device", env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert list(tiny_fs.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []


# ---- the report

def test_report_lines_and_quiet(rt, src, tmp_path):
    res = rt.ok("image", "copy", f"oci:{src.path}:x", f"oci:{tmp_path / 'dst'}:y")
    lines = res.stdout.splitlines()
    assert lines[0] == "Getting image source signatures"
    assert sorted(l.split()[1] for l in lines[1:-1]) == ["blob", "blob", "config"]
    assert all(l.split()[2].startswith("sha256:") and len(l.split()[2]) == 71 for l in lines[1:-1])
    assert lines[-1] == "Writing manifest to image destination"
    assert res.stderr == ""
    res = rt.ok("image", "copy", "--quiet", f"oci:{src.path}:x", f"oci:{tmp_path / 'dst2'}:y")
    assert res.stdout == "" and res.stderr == ""
    res = rt.ok("image", "copy", f"oci:{src.path}:x", f"oci:{tmp_path / 'dst2'}:y", "-q")
    assert res.stdout == ""


@pytest.mark.skipif(shutil.which("script") is None, reason="script(1) is not installed")
def test_report_on_a_terminal(rt, src, tmp_path):
    argv = " ".join(rt.argv(["image", "copy", f"oci:{src.path}:x", f"oci:{tmp_path / 'dst'}:y"], root=False))
    out = subprocess.run(["script", "-qec", argv, "/dev/null"], capture_output=True, timeout=60).stdout.decode()
    assert "Copying blob " in out and " done" in out and "\x1b[" in out
    assert "sha256:" not in out  # short digests on a terminal
    out = subprocess.run(["script", "-qec", argv, "/dev/null"], capture_output=True, timeout=60).stdout.decode()
    assert "skipped: already exists" in out


def test_help(rt):
    out = rt.ok("image", "copy", "--help").stdout
    for flag in ("--src-tls-verify", "--dest-tls-verify", "--src-creds", "--dest-creds", "--authfile",
                 "--src-authfile", "--dest-authfile", "--override-arch", "--override-os", "--override-variant",
                 "--all", "--quiet", "--src-cert-dir", "--dest-cert-dir", "--preserve-digests", "EXAMPLE"):
        assert flag in out
    assert "copy" in rt.ok("image", "help").stdout


# ---- the same as skopeo

@need_skopeo
@pytest.mark.parametrize("ref, flags", [("x", []), ("plain", []), ("multi", ["--all"]), ("multi", []),
                                        ("multi", ["--override-arch", "arm64"])])
def test_same_as_skopeo(rt, src, tmp_path, ref, flags):
    """skopeo --preserve-digests: skopeo would otherwise gzip the uncompressed
    layers of `plain` for an oci: destination; pyrunc never recompresses."""
    sk, py = tmp_path / "sk", tmp_path / "py"
    glob = [f for f in flags if f != "--all"]
    cmd = ["skopeo", *glob, "copy", "-q", "--preserve-digests", *[f for f in flags if f == "--all"],
           f"oci:{src.path}:{ref}", f"oci:{sk}:y"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    rt.ok("image", "copy", "-q", *flags, f"oci:{src.path}:{ref}", f"oci:{py}:y")
    assert descriptors(py) == descriptors(sk)
    assert blob_set(py) == blob_set(sk)


@need_skopeo
def test_archives_cross_read_with_skopeo(rt, src, tmp_path):
    sk_tar, py_tar = tmp_path / "sk.tar", tmp_path / "py.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{src.path}:x", f"oci-archive:{sk_tar}:a"],
                   check=True, capture_output=True, timeout=120)
    rt.ok("image", "copy", "-q", f"oci-archive:{sk_tar}:a", f"oci:{tmp_path / 'from-sk'}:y")
    rt.ok("image", "copy", "-q", f"oci:{src.path}:x", f"oci-archive:{py_tar}:a")
    subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{py_tar}:a", f"oci:{tmp_path / 'from-py'}:y"],
                   check=True, capture_output=True, timeout=120)
    assert descriptors(tmp_path / "from-sk") == descriptors(tmp_path / "from-py")
    assert blob_set(tmp_path / "from-sk") == blob_set(tmp_path / "from-py")
    assert descriptors(tmp_path / "from-py")[0][0] == json.loads((src.path / "index.json").read_text())["manifests"][0]["digest"]


# ---- copied, unpacked, run

def test_copy_unpack_run(rt, busybox_rootfs, tmp_path):
    b = LayoutBuilder(tmp_path / "layout")
    b.tag(b.image([tree_tar(busybox_rootfs), layer_tar([entry("etc/motd", data=b"copied image\n")])],
                  {"Cmd": ["/bin/sh", "-c", "cat /etc/motd; echo $WHERE"], "Env": ["WHERE=inside"]},
                  gzip_layers=True), "v1")
    archive, layout, bundle = tmp_path / "img.tar", tmp_path / "copied", tmp_path / "bundle"
    rt.ok("image", "copy", "-q", f"oci:{b.path}:v1", f"oci-archive:{archive}:v1")
    rt.ok("image", "copy", "-q", f"oci-archive:{archive}:v1", f"oci:{layout}:latest")
    rt.ok("image", "unpack", "--image", f"{layout}:latest", bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    res = rt.run_fg(rt.new_id("copy"), bundle)
    assert res.rc == 0, res
    assert res.stdout.splitlines() == ["copied image", "inside"]
