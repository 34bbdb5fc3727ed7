"""Helpers shared by the cgroup, update and events tests (no tests here).

A container's cgroup files are found from its init's /proc/<pid>/cgroup and
the host's cgroup mounts, so the helpers work for any runtime and for v1,
hybrid and unified hosts.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

RUNC = shutil.which("runc") or "/usr/sbin/runc"


def cgroup_mounts() -> dict[str, str]:
    """controller (v1: each controller name and name=x; v2: "") -> mount point."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            a, b = pre.split(), post.split()
            if b[0] == "cgroup2":
                out.setdefault("", a[4])
            elif b[0] == "cgroup":
                for opt in b[2].split(","):
                    if opt not in ("rw", "ro") and not opt.startswith(("release_agent", "clone_children")):
                        out.setdefault(opt, a[4])
    return out


def unified_host() -> bool:
    m = cgroup_mounts()
    return m.get("") == "/sys/fs/cgroup" and len(m) == 1


def cgroup_dir(pid: int, ctrl: str) -> Path | None:
    """The directory of `pid` in the hierarchy that holds `ctrl` (the unified
    one on a cgroup v2 host; "" asks for the unified hierarchy)."""
    mounts = cgroup_mounts()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [ln.rstrip("\n").split(":", 2) for ln in f]
    if unified_host() or ctrl == "":
        for _, ctrls, path in lines:
            if ctrls == "" and "" in mounts:
                return Path(mounts[""] + path)
        return None
    for _, ctrls, path in lines:
        if ctrl in ctrls.split(","):
            return Path(mounts[ctrl] + path)
    return None


def cg_read(pid: int, ctrl: str, name: str) -> str:
    d = cgroup_dir(pid, ctrl)
    assert d is not None, f"no {ctrl} cgroup for pid {pid}"
    return (d / name).read_text().strip()


def has_v1(ctrl: str) -> bool:
    return not unified_host() and ctrl in cgroup_mounts()


def blkio_weight_file() -> str | None:
    """The weight file the kernel offers a new cgroup, or None: v1's
    blkio.weight (CFQ) or blkio.bfq.weight (BFQ), v2's io.weight (the io
    controller). A kernel whose I/O schedulers are none and mq-deadline has
    neither v1 file."""
    if unified_host():
        return "io.weight" if kernel_has_file("io", "io.weight") else None
    return next((n for n in ("blkio.weight", "blkio.bfq.weight") if kernel_has_file("blkio", n)), None)


def kernel_has_file(ctrl: str, name: str) -> bool:
    """Whether a cgroup of `ctrl` offers `name`: seen at the v1 hierarchy's
    root, or (v2, whose root lacks most files) in a child cgroup."""
    mounts = cgroup_mounts()
    if not unified_host():
        root = mounts.get(ctrl)
        return bool(root) and os.path.exists(os.path.join(root, name))
    root = mounts.get("", "/sys/fs/cgroup")
    for e in os.scandir(root):
        if e.is_dir(follow_symlinks=False) and os.path.exists(os.path.join(e.path, name)):
            return True
    return False


def swap_accounting() -> bool:
    """memory+swap limits: v1's memory.memsw.* or v2's memory.swap.max. A
    kernel without swap accounting (CONFIG_MEMCG_SWAP off, swapaccount=0) has
    neither, and runc (pyrunc too) fails a config that sets memory.swap."""
    return kernel_has_file("memory", "memory.swap.max" if unified_host() else "memory.memsw.limit_in_bytes")


def host_swap_on() -> bool:
    with open("/proc/swaps") as f:
        return len(f.read().splitlines()) > 1


def limit_without_swap(limit: int) -> dict:
    """linux.resources.memory for `limit` that swap cannot get around: swap
    equal to the limit, or no swap field where the kernel has no swap
    accounting (a skip if swap is on there: nothing would bound it)."""
    if swap_accounting():
        return {"limit": limit, "swap": limit}
    if host_swap_on():
        import pytest
        pytest.skip("swap is on and the kernel has no swap accounting: a memory limit does not bound swap use")
    return {"limit": limit}


def hugepage_size(size: str) -> bool:
    """Whether the kernel has huge pages of `size` ("2MB", "1GB"): the sizes
    differ by architecture and page size."""
    units = {"KB": 1, "MB": 1 << 10, "GB": 1 << 20}
    kb = int(size[:-2]) * units[size[-2:].upper()]
    return os.path.isdir(f"/sys/kernel/mm/hugepages/hugepages-{kb}kB")


NO_SWAP_ACCOUNTING = "the kernel has no swap accounting (no memory.memsw.* / memory.swap.max)"


def set_resources(bundle, res: dict) -> None:
    def f(c):
        r = c.setdefault("linux", {}).setdefault("resources", {})
        r.update(res)
    bundle.update(f)


def root_block_device() -> tuple[int, int] | None:
    """major:minor of a whole block device throttling accepts (the one under /)."""
    for path in ("/", "/tmp"):
        st = os.stat(path)
        maj, mnr = os.major(st.st_dev), os.minor(st.st_dev)
        sysdev = Path(f"/sys/dev/block/{maj}:{mnr}")
        if sysdev.exists():
            part = sysdev / "partition"
            if part.exists():  # a partition: throttle its disk
                disk = Path(os.path.realpath(sysdev)).parent / "dev"
                maj, mnr = (int(x) for x in disk.read_text().split(":"))
            return maj, mnr
    return None


class RuncRef:
    """Debian's runc on the same bundle, for side-by-side file comparisons."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def __call__(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        p = subprocess.run([RUNC, "--root", str(self.root), *args], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"runc {' '.join(args)} failed: {p.stderr}")
        return p

    def run_d(self, cid: str, bundle_path) -> int:
        # output to a file: the detached container keeps the runtime's stdio
        with open(self.root / f"{cid}.log", "w") as out:
            p = subprocess.run([RUNC, "--root", str(self.root), "run", "-d", "-b", str(bundle_path), cid],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 0, (self.root / f"{cid}.log").read_text()
        return json.loads(self("state", cid).stdout)["pid"]

    def delete(self, cid: str) -> None:
        self("delete", "--force", cid, check=False)
        end = time.monotonic() + 5
        while (self.root / cid).exists() and time.monotonic() < end:
            time.sleep(0.05)
