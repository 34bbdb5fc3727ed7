"""`pyrunc image unpack`: an OCI layout built here from the busybox rootfs
(tests/oci_layout.py), unpacked, run, checked from inside the container, and
cross-checked against `umoci unpack` of the same layout."""
from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from helpers_userns import make_reachable
from oci_layout import user_xattrs_supported, LayoutBuilder, entry, layer_tar, tree_tar

SCRIPT = "id -u; id -g; pwd; echo $GREETING; cat /etc/motd; test -e /etc/hostname || echo no-hostname; " \
         "ls /opq; stat -c '%a %u:%g' /bin/suid; test /bin/hard -ef /bin/busybox && echo hard-ok"


@pytest.fixture
def layout(busybox_rootfs: Path, tmp_path: Path) -> Path:
    xattrs = {"user.origin": b"layer2"} if user_xattrs_supported(tmp_path) else None
    b = LayoutBuilder(tmp_path / "layout")
    upper = layer_tar([
        entry("etc/motd", data=b"hello from the image\n", mode=0o640, uid=1000, gid=1000, xattrs=xattrs),
        entry("etc/.wh.hostname"),
        entry("opq", "dir", mode=0o755), entry("opq/.wh..wh..opq"), entry("opq/new", data=b""),
        entry("bin/hard", "hardlink", link="bin/busybox"),
        entry("bin/suid", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
        entry("run/fifo", "fifo", mode=0o600),
        entry("dev/null2", "char", mode=0o666, dev=(1, 3)),
        entry("work", "dir", mode=0o777),
        entry("bin/sym", "symlink", link="../etc/motd"),
        # cap_net_raw+ep as setcap writes it (vfs_cap_data revision 2, effective)
        entry("bin/ping", data=b"#!/bin/sh\n", mode=0o755,
              xattrs={"security.capability": struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)}),
        entry("bin/ping2", "hardlink", link="bin/ping"),
    ])
    lower_extra = layer_tar([entry("opq/old", data=b"gone")])
    b.tag(b.image([tree_tar(busybox_rootfs), lower_extra, upper], {
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": [SCRIPT], "User": "1000:1000", "WorkingDir": "/work",
        "Env": ["GREETING=hi there"], "Labels": {"org.example.label": "yes"}, "StopSignal": "SIGTERM",
    }, gzip_layers=True), "v1")
    return b.path


def _has_image_command(rt) -> bool:
    return rt.run("image", "--help").rc == 0


def test_unpack_then_run(rt, layout, tmp_path):
    if not _has_image_command(rt):
        pytest.skip("the runtime under test has no `image` command")
    bundle = tmp_path / "bundle"
    rt.ok("image", "unpack", "--image", f"{layout}:v1", bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["terminal"] is True  # as umoci writes it
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    res = rt.run_fg(rt.new_id("img"), bundle)
    assert res.rc == 0, res
    assert res.stdout.splitlines() == ["1000", "1000", "/work", "hi there", "hello from the image",
                                       "no-hostname", "new", "4755 0:0", "hard-ok"]


def test_unpack_failure_leaves_nothing(rt, layout, tmp_path):
    if not _has_image_command(rt):
        pytest.skip("the runtime under test has no `image` command")
    bundle = tmp_path / "bundle"
    rt.fail("image", "unpack", "--image", f"{layout}:nope", bundle, match="image reference not found",
            one_line=True)
    assert not bundle.exists()
    man = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    blob = layout / "blobs" / "sha256" / json.loads((layout / "blobs/sha256" / man[7:]).read_text())["layers"][0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    res = rt.run("image", "unpack", "--image", f"{layout}:v1", bundle).expect_fail(one_line=True)
    assert "Traceback" not in res.stderr
    assert not bundle.exists()


def _tree(root: Path) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            info = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode), "owner": (st.st_uid, st.st_gid)}
            if stat.S_ISREG(st.st_mode):
                info["data"] = p.read_bytes()
                info["nlink"] = st.st_nlink
            elif stat.S_ISLNK(st.st_mode):
                info["link"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info["rdev"] = st.st_rdev
            if not stat.S_ISLNK(st.st_mode):
                info["mtime"] = int(st.st_mtime)
                info["xattrs"] = {k: os.getxattr(p, k) for k in sorted(os.listxattr(p))}
            out[rel] = info
    # hard-link groups: the paths that share each regular file's inode
    groups: dict = {}
    for rel, info in out.items():
        if "nlink" in info:
            groups.setdefault((root / rel).lstat().st_ino, []).append(rel)
    for paths in groups.values():
        for rel in paths:
            out[rel]["links"] = sorted(paths)
    return out


def test_unpack_with_id_maps_then_run(rt, layout, tmp_path):
    """--uid-map/--gid-map: owners shifted on the host, the container (in a
    user namespace with those maps) sees the image's own ids."""
    if not _has_image_command(rt):
        pytest.skip("the runtime under test has no `image` command")
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("no user namespaces")
    bundle = tmp_path / "bundle"
    rt.ok("image", "unpack", "--uid-map", "0:100000:65536", "--gid-map", "0:100000:65536",
          "--image", f"{layout}:v1", bundle)
    st = (bundle / "rootfs/etc/motd").lstat()
    assert (st.st_uid, st.st_gid) == (101000, 101000)
    make_reachable(bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/sh", "-c", "stat -c '%u:%g' /etc/motd /bin/busybox; id -u"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    res = rt.run_fg(rt.new_id("imgns"), bundle)
    assert res.rc == 0, res.stderr
    assert res.stdout.split() == ["1000:1000", "0:0", "1000"]


@pytest.mark.parametrize("maps", [[], ["--uid-map", "0:100000:65536", "--gid-map", "0:200000:65536"]],
                         ids=["plain", "id-maps"])
def test_same_tree_and_config_as_umoci(rt, layout, tmp_path, maps):
    if not _has_image_command(rt):
        pytest.skip("the runtime under test has no `image` command")
    umoci = shutil.which("umoci")
    if umoci is None:
        pytest.skip("umoci is not installed: nothing to compare with")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    rt.ok("image", "unpack", *maps, "--image", f"{layout}:v1", ours)
    p = subprocess.run([umoci, "unpack", *maps, "--image", f"{layout}:v1", str(theirs)], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    a, b = _tree(ours / "rootfs"), _tree(theirs / "rootfs")
    assert sorted(a) == sorted(b)
    diffs = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not diffs, sorted(diffs)[:20]
    ca, cb = (json.loads((d / "config.json").read_text()) for d in (ours, theirs))
    for key in ("args", "env", "cwd", "user", "terminal"):
        assert ca["process"].get(key) == cb["process"].get(key), key
    assert ca["root"] == cb["root"]
    for key in ("uidMappings", "gidMappings"):
        assert ca["linux"].get(key) == cb["linux"].get(key), key
    assert ({"type": "user"} in ca["linux"]["namespaces"]) == ({"type": "user"} in cb["linux"]["namespaces"])
    assert ca["annotations"] == cb["annotations"]
