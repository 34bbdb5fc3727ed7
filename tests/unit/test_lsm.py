"""security/lsm.py: where the profile and labels are written, and that
only real procfs files are (this host has no LSM: the writes themselves are
checked against a recorder, the refusals against the real kernel)."""
from __future__ import annotations

import os

import pytest

from pyrunc.errors import PyruncError
from pyrunc.security import lsm


@pytest.fixture
def written(monkeypatch):
    got: list[tuple[str, str]] = []
    monkeypatch.setattr(lsm, "_write_attr", lambda path, value: got.append((path, value)))
    return got


def test_apparmor_profile_goes_to_the_per_lsm_attr(written, tmp_path):
    (tmp_path / "apparmor").mkdir()
    (tmp_path / "apparmor" / "exec").touch()
    lsm.apply_apparmor("my-profile", attr_dir=str(tmp_path))
    assert written == [(str(tmp_path / "apparmor" / "exec"), "exec my-profile")]


def test_apparmor_falls_back_to_attr_exec(written, tmp_path):
    lsm.apply_apparmor("p", attr_dir=str(tmp_path))
    assert written == [(str(tmp_path / "exec"), "exec p")]


def test_selinux_exec_label(written, tmp_path):
    lsm.set_exec_label("system_u:system_r:container_t:s0:c1,c2", attr_dir=str(tmp_path))
    assert written == [(str(tmp_path / "exec"), "system_u:system_r:container_t:s0:c1,c2")]


def test_nothing_asked_nothing_written(written):
    lsm.apply_apparmor("")
    lsm.set_exec_label(None)
    lsm.set_key_label("x") if not lsm.selinux_enabled() else None
    assert written == []


def test_only_procfs_is_written(tmp_path):
    """A config that mounts something over /proc must not redirect the write."""
    (tmp_path / "exec").write_text("")
    with pytest.raises(PyruncError, match="not on procfs"):
        lsm.apply_apparmor("p", attr_dir=str(tmp_path))
    assert (tmp_path / "exec").read_text() == ""


@pytest.mark.skipif(lsm.selinux_enabled(), reason="this host has SELinux")
def test_kernel_refuses_a_label_without_selinux():
    pid = os.fork()
    if pid == 0:  # in a child: nothing of ours changes even if it were taken
        try:
            lsm.set_exec_label("system_u:system_r:container_t:s0")
            os._exit(3)
        except PyruncError as e:
            os._exit(0 if "can't set process label" in str(e) else 4)
    assert os.waitpid(pid, 0)[1] >> 8 == 0


def test_mount_label(monkeypatch):
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: False)
    assert lsm.format_mount_label("mode=755", "s0:c1") == "mode=755"
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: True)
    assert lsm.format_mount_label("mode=755", "system_u:object_r:container_file_t:s0:c1,c2") == \
        'mode=755,context="system_u:object_r:container_file_t:s0:c1,c2"'
    assert lsm.format_mount_label(None, "l") == 'context="l"'
    assert lsm.format_mount_label("size=1k", "") == "size=1k"
