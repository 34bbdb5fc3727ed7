"""Path handling inside a rootfs (rootfs/paths.py): runc's LexicallyStripRoot
and the "hallucinated" target of a file created through dangling symlinks."""
from __future__ import annotations

import os

import pytest

from pyrunc.rootfs.paths import resolve_dangling, strip_root


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
