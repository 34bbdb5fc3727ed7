"""pyrunc.cgroups.rearm_migration: the shim's no-op migration that warms the
kernel's cgroup migration lock before each create. It must move nothing,
run one at a time, keep its fd out of forked children, and do nothing
where the init joins without the lock (v1 only, Linux >= 6)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = r"""
import os, time
import pyrunc.cgroups as cg
before = open("/proc/self/cgroup").read()
cg.rearm_migration()
needed = cg._needs_prearm("create", False)
if not needed:
    assert cg._prearm_fd == -1, "armed where the init joins without the lock"
    print("skipped-by-design")
    raise SystemExit(0)
fd = cg._prearm_fd
assert fd >= 0 and os.readlink(f"/proc/self/fd/{fd}").endswith("/cgroup.procs"), fd
end = time.monotonic() + 10
while cg._rearm_busy and time.monotonic() < end:
    time.sleep(0.001)
assert not cg._rearm_busy, "the no-op migration did not finish"
assert open("/proc/self/cgroup").read() == before, "the no-op migration moved us"
cg.rearm_migration()            # again: the same fd, one thread at a time
assert cg._prearm_fd == fd
cg.rearm_migration()
# moved elsewhere (as a shim_cgroup moves the shim): the next re-arm must
# not move us back through the fd it opened before
end = time.monotonic() + 10
while cg._rearm_busy and time.monotonic() < end:
    time.sleep(0.001)
here = os.path.dirname(cg._own_procs_file())
sub = os.path.join(here, f"pyrunc-rearm-test-{os.getpid()}")
os.mkdir(sub)
try:
    with open(os.path.join(sub, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    moved = open("/proc/self/cgroup").read()
    assert moved != before
    cg.rearm_migration()
    while cg._rearm_busy and time.monotonic() < end:
        time.sleep(0.001)
    assert open("/proc/self/cgroup").read() == moved, "the re-arm moved us back"
    assert os.readlink(f"/proc/self/fd/{cg._prearm_fd}") == os.path.join(sub, "cgroup.procs")
finally:
    with open(os.path.join(here, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    cg.rearm_migration()    # back to the fd of our own cgroup, which frees the sub-cgroup
    while cg._rearm_busy and time.monotonic() < end:
        time.sleep(0.001)
    os.rmdir(sub)
fd = cg._prearm_fd
cg.rearm_migration()            # under way while we fork: the child has no such thread
pid = os.fork()
if pid == 0:
    if cg._rearm_busy:
        os._exit(4)             # it would never re-arm again
    os._exit(0 if not os.path.exists(f"/proc/self/fd/{fd}")
             or not os.readlink(f"/proc/self/fd/{fd}").endswith("/cgroup.procs") else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, f"forked child: {os.waitstatus_to_exitcode(status)} (3: the fd went into it, 4: a re-arm marked busy)"
print("ok")
"""


def test_rearm_migration_moves_nothing_and_stays_out_of_children():
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=dict(os.environ, PYTHONPATH=str(SRC)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("ok", "skipped-by-design"), r.stdout
