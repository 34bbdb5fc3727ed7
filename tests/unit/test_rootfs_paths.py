"""Path handling inside a rootfs (rootfs/paths.py): runc's LexicallyStripRoot,
the "hallucinated" target of a file created through dangling symlinks, and
mkdir_all's directories made inside the root."""
from __future__ import annotations

import os

import pytest

from pyrunc.rootfs.paths import mkdir_all, resolve_dangling, strip_root


@pytest.mark.parametrize("root, path, want", [
    ("/b/rootfs", "/b/rootfs/mnt/x", "/mnt/x"),
    ("/b/rootfs", "/b/rootfs", "/"),
    ("/b/rootfs", "/b/rootfsx/y", "/b/rootfsx/y"),  # a prefix of a name is no prefix
    ("/b/rootfs/", "tmp/a/../b", "/tmp/b"),  # relative: as if from /
    ("/b/rootfs", "//proc", "/proc"),  # os.path.normpath keeps a leading "//"
    ("/", "/etc/hosts", "/etc/hosts"),
])
def test_strip_root(root, path, want):
    assert strip_root(root, path) == want


def test_resolve_dangling_follows_links_inside_the_root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    os.symlink("/tmp/foo/bar", root / "jump")  # absolute: from the rootfs, not the host
    os.symlink("/jump/baz/hosts", root / "etc" / "hosts")
    os.symlink("../tmp/x", root / "etc" / "rel")
    os.symlink("loop", root / "loop")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert resolve_dangling(fd, "/etc/hosts") == "/tmp/foo/bar/baz/hosts"
        assert resolve_dangling(fd, "/etc/rel") == "/tmp/x"
        assert resolve_dangling(fd, "/../../etc/passwd") == "/etc/passwd"
        assert resolve_dangling(fd, "/new/dir/file") == "/new/dir/file"
        with pytest.raises(OSError):
            resolve_dangling(fd, "/loop")
    finally:
        os.close(fd)


def _made(root, path):
    """mkdir_all(path) inside `root`: the host path its fd names."""
    rfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = mkdir_all(rfd, path)
    finally:
        os.close(rfd)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_mkdir_all_makes_the_missing_directories_inside_the_root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "dev").mkdir(parents=True)
    (root / "tmp").mkdir()
    assert _made(root, "/dev/pts") == str(root / "dev" / "pts")  # the last one only missing
    assert _made(root, "/dev/pts") == str(root / "dev" / "pts")  # there already
    assert _made(root, "/a/b/c") == str(root / "a" / "b" / "c")  # parents too
    os.symlink("/tmp/real", root / "dev" / "abs")  # absolute: from the rootfs
    assert _made(root, "/dev/abs") == str(root / "tmp" / "real")
    os.symlink("../../../../../../outside", root / "dev" / "up")  # `..` stops at the root
    assert _made(root, "/dev/up") == str(root / "outside")
    assert not (tmp_path / "outside").exists()
    (root / "dev" / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        _made(root, "/dev/file")
