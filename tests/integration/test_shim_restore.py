"""containerd 1.6 restoring a checkpointed container through
containerd-shim-pyrunc-v1: `ctr containers checkpoint --task`, then `ctr
containers restore --live` (CreateTaskRequest.checkpoint; the shim restores
at Start, as runc's shim does).

CRIU cannot run on the test kernel, so containerd (and the shims, which
inherit its environment) finds fake_criu.py as `criu` first on its PATH:
its DUMP records the process's command line, its RESTORE starts that command
again as the shim's child, inside the container's cgroup (where the shim
puts CRIU) but not in its namespaces or rootfs. runc's shim cannot be run
the same way (runc needs the real CRIU), so these tests are ours only.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from containerd_env import alive, cgroups_of, leftovers, shims_of
from integration_conftest import proc_cmdline
from test_shim_process import SHIM
from test_shim_tasks import IMAGE, RUNTIMES, Ctr, _task_topics, module_containerd

NS = "shimrestore"
HERE = Path(__file__).resolve().parent
PYRUNC = os.environ.get("PYRUNC_TEST_RUNTIME") or shutil.which("pyrunc") or "pyrunc"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.uname().machine != "x86_64",
                                 reason="the fake CRIU clones with x86_64's syscall number")]


@pytest.fixture(scope="module")
def ctr_criu(busybox_rootfs) -> Iterator[Ctr]:
    """A private containerd whose PATH has the fake CRIU, then the shim."""
    def env_for(base: Path) -> dict:
        fakebin = base / "fakebin"
        fakebin.mkdir()
        (fakebin / "criu").write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_criu.py"} "$@"\n')
        (fakebin / "criu").chmod(0o755)
        return dict(os.environ, PATH=f"{fakebin}:{Path(SHIM[0]).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                    FAKE_CRIU_SRC=str(HERE.parent.parent / "src"), FAKE_CRIU_FAIL_FILE=str(base / "criu-fail"),
                    TMPDIR=str(base))  # containerd's checkpoint dirs (it leaves a restore's)
    yield from module_containerd(busybox_rootfs, "pyrunc-shimrestore-", env_for, NS)


@pytest.fixture
def cid(ctr_criu) -> Iterator[str]:
    cid = f"rst-{uuid.uuid4().hex[:6]}"
    yield cid
    (ctr_criu.base / "criu-fail").unlink(missing_ok=True)
    problems = leftovers(ctr_criu, NS, cid, container_counts=True)
    ctr_criu("image", "rm", f"pyrunc-test/ck-{cid}:1")
    assert not problems, "\n".join(problems)


def _task_row(c: Ctr, cid: str) -> list[str]:
    return next((row.split() for row in c.ok("task", "ls").stdout.splitlines()[1:] if row.split()[0] == cid), [])


def _wait_status(c: Ctr, cid: str, want: str) -> list[str]:
    row: list[str] = []
    end = time.monotonic() + 10
    while time.monotonic() < end:
        row = _task_row(c, cid)
        if row and row[2] == want:
            break
        time.sleep(0.05)
    return row


def _checkpointed(c: Ctr, cid: str) -> str:
    """Run `cid`, checkpoint it (left running) into an image, remove it: the
    checkpoint's reference."""
    ref = f"pyrunc-test/ck-{cid}:1"
    c.ok("run", "-d", "--runtime", RUNTIMES["pyrunc"], "--snapshotter", "native", IMAGE, cid, "sleep", "301")
    c.ok("containers", "checkpoint", "--task", cid, ref)
    assert _wait_status(c, cid, "RUNNING")[2] == "RUNNING"  # left running, resumed
    c.ok("task", "kill", "-s", "SIGKILL", cid)
    assert _wait_status(c, cid, "STOPPED")[2] == "STOPPED"
    c.ok("task", "delete", cid)
    c.ok("container", "delete", cid)
    return ref


def test_restore_runs_the_checkpointed_task_until_killed(ctr_criu, cid):
    c = ctr_criu
    ev = subprocess.Popen(["ctr", "--address", str(c.sock), "events"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        _restored_task_runs_until_killed(c, cid)
        time.sleep(0.5)
    finally:
        ev.terminate()
        out = ev.communicate(timeout=10)[0].splitlines()
    # runc's shim's order; a restored init has no pid before Start
    assert _task_topics(c, out, cid) == [
        "/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/checkpointed", "/tasks/resumed", "/tasks/exit",
        "/tasks/delete", "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], out
    create = [line for line in out if "/tasks/create" in line][-1]
    assert '"checkpoint":"' in create.replace(" ", "") and '"pid"' not in create, create


def _restored_task_runs_until_killed(c: Ctr, cid: str) -> None:
    ref = _checkpointed(c, cid)
    r = c.ok("containers", "restore", "--live", cid, ref)
    assert r.stderr == "", r
    row = _wait_status(c, cid, "RUNNING")
    assert row[2] == "RUNNING", row
    pid = int(row[1])
    assert proc_cmdline(pid) == "sleep 301"  # the fake CRIU's restore: the dumped command
    shim = shims_of([cid])
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) in shim  # the shim's child: it reaps it
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"/{NS}/{cid}" in f.read()  # CRIU was put in the container's cgroup
    # the restore's stdio FIFOs (ctr's), the process's fds 1 and 2 (CRIU's inherit_fd)
    assert os.readlink(f"/proc/{pid}/fd/1").endswith(f"{cid}-stdout")
    assert os.readlink(f"/proc/{pid}/fd/2").endswith(f"{cid}-stderr")
    st = subprocess.run([PYRUNC, "--root", f"/run/containerd/pyrunc/{NS}", "state", cid],
                        capture_output=True, text=True)
    assert st.returncode == 0 and f'"pid": {pid}' in st.stdout and '"running"' in st.stdout, st
    c.ok("task", "kill", "-s", "SIGKILL", cid)
    assert _wait_status(c, cid, "STOPPED")[2] == "STOPPED"
    assert not alive(pid)
    c.ok("task", "delete", cid)
    c.ok("container", "delete", cid)


def test_a_refused_restore_is_one_line_and_leaves_nothing(ctr_criu, cid):
    c = ctr_criu
    ref = _checkpointed(c, cid)
    (c.base / "criu-fail").write_text("RESTORE")
    r = c("containers", "restore", "--live", cid, ref)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "OCI runtime restore failed: criu failed: type RESTORE errno 5" in lines[0], r
    # the task stays created (as runc's shim's), with no container behind it yet
    assert _task_row(c, cid)[2] == "CREATED"
    assert not cgroups_of(NS, cid) and not (Path("/run/containerd/pyrunc") / NS / cid).exists()
    # it has no process: killed, it ends (`ctr task delete -f` waits for that)
    c.ok("task", "delete", "-f", cid, timeout=20)
    c.ok("container", "delete", cid)
