"""A real systemd for the systemd cgroup driver's tests.

This host runs no systemd, so the tests boot one: systemd 252 (Debian's
package) as PID 1 of new pid, mount and cgroup namespaces, in a cgroup of
its own in every hierarchy (below the test's own cgroups), with fresh cgroup
mounts in one of two layouts, `hybrid` (this host's: v1 controllers, the
name=systemd hierarchy and cgroup2 at /sys/fs/cgroup/unified) or `unified`
(cgroup2 alone at /sys/fs/cgroup, the modern layout), a private /run (so
/run/systemd/private and /run/pyrunc are its own) and a unit path holding
just an empty default target, so that it starts nothing of the host's.
`container=` in its environment makes it behave as in a container.

The runtime runs inside through `nsenter -m -p -C`: systemd resolves the
PIDs= of a unit in its own pid namespace, and the cgroup paths it reports
are relative to its cgroup namespace.

Teardown kills systemd (and so the namespace) and removes its cgroups.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEMD = "/lib/systemd/systemd"
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")

_INNER = r"""
set -e
mount -t proc proc /proc
mount -t tmpfs -o mode=755 tmpfs /run
umount -R -l /sys/fs/cgroup  # the host's cgroup mounts, which the new ones would only cover
if [ "$SD_LAYOUT" = unified ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
  for c in $SD_V1; do mkdir /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
  mkdir /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  mkdir /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
fi
# the unit path: the test's target, and where systemd keeps transient units
# and their runtime properties (SetUnitProperties), which a reload re-reads
exec env -i container=pyrunc-test \
  SYSTEMD_UNIT_PATH="/run/systemd/system.control:/run/systemd/transient:$SD_UNITS" "$SD_BIN" --unit=pyrunc-test.target \
  --log-target=console --log-level=info
"""


def available() -> str:
    """Why a systemd cannot be booted here ('' if it can)."""
    for tool in (SYSTEMD, shutil.which("unshare"), shutil.which("nsenter"), shutil.which("systemctl")):
        if not tool or not os.path.exists(tool):
            return f"{tool or 'unshare/nsenter/systemctl'} not installed"
    if not os.path.isdir("/sys/fs/cgroup/systemd") and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "no name=systemd hierarchy and no cgroup2 root"
    return ""


def _own_cgroup(key: str) -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == key or key in ctrls.split(","):
                return path
    return "/"


class SystemdHost:
    """A booted systemd; `cmd(argv)` runs argv inside its namespaces."""

    def __init__(self, layout: str, name: str) -> None:
        self.layout = layout
        self.name = name
        self.units = Path(tempfile.mkdtemp(prefix="pyrunc-sd-units-"))
        (self.units / "pyrunc-test.target").write_text("[Unit]\nDescription=pyrunc test target\n")
        self.log = self.units / "systemd.log"
        self.dirs = self._cgroup_dirs()
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self._hugetlb_enabled = ""

    def _cgroup_dirs(self) -> list[str]:
        """The systemd's cgroup in every hierarchy, below our own."""
        out = []
        for c in V1_CONTROLLERS + ("systemd", "unified"):
            key = {"systemd": "name=systemd", "unified": ""}.get(c, c)
            mp = f"/sys/fs/cgroup/{c}"
            if os.path.isdir(mp):
                out.append(f"{mp}{_own_cgroup(key).rstrip('/')}/{self.name}")
        return out

    def path(self, hierarchy: str, inner: str) -> str:
        """Host path of `inner` (a path as systemd sees it) in a hierarchy
        ('memory', 'systemd', 'unified', ...)."""
        base = next(d for d in self.dirs if d.startswith(f"/sys/fs/cgroup/{hierarchy}/"))
        return base + "/" + inner.lstrip("/")

    def start(self) -> "SystemdHost":
        self._hugetlb_enabled = self._enable_hugetlb()
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)
            if "/cpuset/" in d:
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(os.path.dirname(d), f)) as src:
                        Path(d, f).write_text(src.read())
        dirs = self.dirs

        def join() -> None:
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write("0")
        env = {"SD_LAYOUT": self.layout, "SD_UNITS": str(self.units), "SD_V1": " ".join(V1_CONTROLLERS),
               "SD_BIN": SYSTEMD, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--cgroup", "--mount", "--pid", "--fork", "--propagation", "private",
                 "sh", "-c", _INNER], env=env, preexec_fn=join, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
            # unshare itself (outside the namespaces) back where it came
            # from: left in the systemd's root cgroup, it would keep
            # controllers from being enabled there (cgroup2's rule: no
            # processes in a cgroup that hands controllers down)
            for d in self.dirs:
                with open(os.path.join(os.path.dirname(d), "cgroup.procs"), "w") as f:
                    f.write(str(self.proc.pid))
        except BaseException:
            self.stop()
            raise
        return self

    def _enable_hugetlb(self) -> str:
        """The unified layout's cgroup2 gets the one controller this host
        leaves to cgroup2 (hugetlb), enabled from the root down to the
        systemd's cgroup; returns the root's subtree_control if we changed it."""
        if self.layout != "unified":
            return ""
        root = "/sys/fs/cgroup/unified"
        try:
            avail = Path(root, "cgroup.controllers").read_text().split()
            enabled = Path(root, "cgroup.subtree_control").read_text().split()
        except OSError:
            return ""
        if "hugetlb" not in avail:
            return ""
        if "hugetlb" in enabled:
            return "-"  # enabled already: left so
        Path(root, "cgroup.subtree_control").write_text("+hugetlb")
        return root

    def _wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd did not start: {self.log.read_text()[-2000:]}")
            if not self.pid:
                try:
                    kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                except OSError:
                    kids = []
                if kids and os.readlink(f"/proc/{kids[0]}/exe").endswith("systemd"):
                    self.pid = int(kids[0])
            if self.pid:
                r = subprocess.run(self.cmd(["systemctl", "is-system-running"]), capture_output=True, text=True)
                if r.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"systemd did not become ready: {self.log.read_text()[-2000:]}")

    def cmd(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "-C", "--", *argv]

    def systemctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(["systemctl", *args]), capture_output=True, text=True, timeout=30)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """Unit properties; a property listed several times (DeviceAllow)
        has its values joined with "; "."""
        r = self.systemctl("show", unit, *(f"--property={p}" for p in props))
        out: dict[str, str] = {}
        for line in r.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = f"{out[k]}; {v}" if k in out else v
        return out

    def dirs_named(self, name: str) -> list[str]:
        """Every cgroup directory of this systemd whose name contains `name`."""
        found = []
        for d in self.dirs:
            for dirpath, dirnames, _ in os.walk(d):
                found += [os.path.join(dirpath, n) for n in dirnames if name in n]
        return found

    def stop(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for _ in range(750):  # the namespace is gone: its cgroups empty out
            busy = False
            for d in self.dirs:
                for dirpath, _, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
                    try:
                        os.rmdir(dirpath)
                    except FileNotFoundError:
                        pass
                    except OSError:
                        busy = True
            if not busy:
                break
            time.sleep(0.02)
        if self._hugetlb_enabled.startswith("/"):
            try:
                Path(self._hugetlb_enabled, "cgroup.subtree_control").write_text("-hugetlb")
            except OSError:
                pass  # another cgroup uses it now: harmless
        shutil.rmtree(self.units, ignore_errors=True)
