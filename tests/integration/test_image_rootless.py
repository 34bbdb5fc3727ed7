"""`pyrunc image unpack --rootless` run by a real unprivileged user: the
tree cross-checked against `umoci unpack --rootless` of the same layout
(type, mode, content, link target, xattrs, times), the owners recorded in
user.rootlesscontainers, and the bundle run rootless by the same user."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oci_layout import LayoutBuilder, entry, layer_tar, tree_tar, user_xattrs_supported
from test_rootless import as_user, user  # noqa: F401 (fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tree_diff import differences  # noqa: E402


@pytest.fixture
def layout(busybox_rootfs: Path, tmp_path: Path) -> Path:
    b = LayoutBuilder(tmp_path / "layout")
    upper = layer_tar([
        entry("etc/owned", data=b"mine\n", uid=1000, gid=50, mode=0o640),
        entry("etc/gid-only", data=b"", gid=8),
        entry("dev/null2", "char", mode=0o666, dev=(1, 3)),
        entry("run/fifo", "fifo", mode=0o600),
        entry("ro", "dir", mode=0o555), entry("ro/f", data=b"ro"),
        entry("shut", "dir", mode=0o700, uid=5), entry("shut/f", data=b"s"),
        entry("bin/sym", "symlink", link="../etc/owned", uid=1000),
    ])
    later = layer_tar([entry("ro/g", data=b"added to a read-only lower directory"),
                       entry("etc/.wh.gid-only")])
    b.tag(b.image([tree_tar(busybox_rootfs), upper, later], {"Cmd": ["sh"]}, gzip_layers=True), "v1")
    for root, dirs, files in os.walk(tmp_path / "layout"):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o755 if n in dirs else 0o644)
    return b.path


def _has_image_command(as_user) -> bool:
    return as_user.run("image", "--help").returncode == 0


def test_rootless_unpack_matches_umoci_and_runs(as_user, layout, tmp_path):
    if not _has_image_command(as_user):
        pytest.skip("the runtime under test has no `image` command")
    if not user_xattrs_supported(tmp_path):
        pytest.skip(f"{tmp_path}: no user.* xattrs on this filesystem")
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, as_user.pw.pw_uid, as_user.pw.pw_gid)
    ours = work / "ours"
    as_user.ok("image", "unpack", "--rootless", "--image", f"{layout}:v1", str(ours))
    r = ours / "rootfs"
    me = (as_user.pw.pw_uid, as_user.pw.pw_gid)
    for p in ("etc/owned", "bin/busybox", "dev/null2", "ro/g", "shut/f"):
        st = (r / p).lstat()
        assert (st.st_uid, st.st_gid) == me, p
    assert os.getxattr(r / "etc/owned", "user.rootlesscontainers") == bytes.fromhex("08e8071032")
    assert os.getxattr(r / "shut", "user.rootlesscontainers") == bytes.fromhex("080510ffffffff0f")
    assert "user.rootlesscontainers" not in os.listxattr(r / "bin/busybox")
    assert (r / "ro/g").read_bytes() == b"added to a read-only lower directory"
    assert oct((r / "ro").lstat().st_mode & 0o777) == oct(0o555)
    assert not (r / "etc/gid-only").exists()
    cfg = json.loads((ours / "config.json").read_text())
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": me[0], "size": 1}]

    umoci = shutil.which("umoci")
    if umoci is not None:
        theirs = work / "theirs"
        p = subprocess.run([umoci, "unpack", "--rootless", "--image", f"{layout}:v1", str(theirs)],
                           capture_output=True, text=True, preexec_fn=as_user._become, cwd="/")
        assert p.returncode == 0, p.stderr
        assert differences(str(theirs / "rootfs"), str(r)) == []
        assert json.loads((theirs / "umoci.json").read_text()) == json.loads((ours / "umoci.json").read_text())
        theirs_cfg = json.loads((theirs / "config.json").read_text())
        for key in ("uidMappings", "gidMappings", "namespaces"):
            assert cfg["linux"][key] == theirs_cfg["linux"][key], key
        assert [m for m in cfg["mounts"] if m["destination"] in ("/sys", "/etc/resolv.conf")] == \
               [m for m in theirs_cfg["mounts"] if m["destination"] in ("/sys", "/etc/resolv.conf")]

    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; stat -c %u:%a /etc/owned; cat /ro/g"]
    (ours / "config.json").write_text(json.dumps(cfg))
    res = as_user.ok("run", "--bundle", str(ours), "img-rl1")
    assert res.stdout.splitlines() == ["0", "0:640", "added to a read-only lower directory"]


def test_unprivileged_unpack_without_rootless_says_so(as_user, layout, tmp_path):
    if not _has_image_command(as_user):
        pytest.skip("the runtime under test has no `image` command")
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, as_user.pw.pw_uid, as_user.pw.pw_gid)
    as_user.fail("image", "unpack", "--image", f"{layout}:v1", str(work / "b"), match="unpack with --rootless")
    assert os.listdir(work) == []
