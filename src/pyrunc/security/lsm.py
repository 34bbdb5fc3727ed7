"""AppArmor profiles and SELinux labels, applied as runc applies them.

Both process attributes take effect at the next execve:
- the AppArmor profile: "exec <name>" into /proc/thread-self/attr/apparmor/exec
  (attr/exec on kernels without the per-LSM directory), libapparmor's
  aa_change_onexec; runc does it before the sysctls;
- the SELinux process label: into attr/exec (setexeccon), once the init has
  reported ready; the keyring label (attr/keycreate) before the session
  keyring is made.
Every write goes through open_procfs: only a real procfs file is written
(CVE-2025-52881's class). The SELinux mount label goes into the data of the
mounts runc labels, as context="...".

Where the host has no such LSM, a profile or process label is an error
(spec/config.py, runc's words); a mount label is ignored with a warning.
"""
from __future__ import annotations

import os

from ..errors import PyruncError

_PROC_ATTR = "/proc/thread-self/attr"


def apparmor_enabled() -> bool:
    """runc's apparmor.IsEnabled."""
    if not os.path.exists("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled", "rb") as f:
            return f.read(1) == b"Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    """selinuxfs is mounted where go-selinux looks first."""
    return os.path.exists("/sys/fs/selinux/enforce")


def _write_attr(path: str, value: str) -> None:
    from ..linux.sys import open_procfs
    fd = open_procfs(path)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def apply_apparmor(profile: str | None, attr_dir: str = _PROC_ATTR) -> None:
    """The profile the process gets at its next execve."""
    if not profile:
        return
    path = os.path.join(attr_dir, "apparmor", "exec")
    if not os.path.exists(path):
        path = os.path.join(attr_dir, "exec")  # before Linux 5.8's attr/apparmor/
    try:
        _write_attr(path, "exec " + profile)
    except OSError as e:
        raise PyruncError(f"unable to apply apparmor profile: apparmor failed to apply profile: "
                          f"{e.strerror.lower() if e.strerror else e}") from None


def set_exec_label(label: str | None, attr_dir: str = _PROC_ATTR) -> None:
    """The SELinux label of the process after its next execve."""
    if not label:
        return
    try:
        _write_attr(os.path.join(attr_dir, "exec"), label)
    except OSError as e:
        raise PyruncError(f"can't set process label: {e.strerror.lower() if e.strerror else e}") from None


def set_key_label(label: str | None, attr_dir: str = _PROC_ATTR) -> None:
    """The SELinux label of keyrings made from now on (the session keyring)."""
    if not label or not selinux_enabled():
        return
    try:
        _write_attr(os.path.join(attr_dir, "keycreate"), label)
    except OSError as e:
        raise PyruncError(f"unable to set keyring label: {e.strerror.lower() if e.strerror else e}") from None


def format_mount_label(data: str | None, label: str | None) -> str | None:
    """Mount data with the SELinux context option (go-selinux's
    FormatMountLabel): only where SELinux is enabled."""
    if not label or not selinux_enabled():
        return data
    ctx = f'context="{label}"'
    return f"{data},{ctx}" if data else ctx
