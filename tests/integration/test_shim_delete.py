"""containerd's `<shim> delete`, which it runs each time a shim has ended and
waits for, through the installed launcher (scripts/shim-launcher.sh): after
a task the shim deleted itself, the launcher answers from the shim's record
and no interpreter starts; after a shim that died under its task, the Python
shim cleans up. A private containerd runs the installed launcher behind a
wrapper that logs each call, and the Python shim behind another."""
from __future__ import annotations

import os
import re
import signal
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from containerd_env import alive, leftovers, shims_of, task_status
from integration_conftest import wait_until
from test_shim_process import NAME, SHIM
from test_shim_tasks import Ctr, _run_args, module_containerd

NS = "shimdelete"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ctr_logged(busybox_rootfs) -> Iterator[Ctr]:
    text = Path(SHIM[0]).read_text(errors="replace")
    found = re.search(r'^exec "([^"]+)" "\$@"$', text, re.M)
    if not text.startswith("#!/bin/sh\n") or not found:
        pytest.skip("the shim under test is not the installed sh launcher (scripts/install.sh)")
    python_shim = found.group(1)

    def env_for(base: Path) -> dict:
        d = base / "shimbin"
        d.mkdir()
        wrapper = d / "python-shim"
        wrapper.write_text(f'#!/bin/sh\necho "$*" >> {base}/python.log\nexec "{python_shim}" "$@"\n')
        launcher = d / "launcher"
        launcher.write_text(text.replace(f'exec "{python_shim}"', f'exec "{wrapper}"'))
        (d / NAME).write_text(f'#!/bin/sh\necho "$*" >> {base}/launcher.log\nexec "{launcher}" "$@"\n')
        for f in (wrapper, launcher, d / NAME):
            f.chmod(0o755)
        return dict(os.environ, PATH=f"{d}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    yield from module_containerd(busybox_rootfs, "pyrunc-shimdelete-", env_for, NS)  # runtime: pyrunc


@pytest.fixture
def cid(ctr_logged) -> Iterator[str]:
    cid = f"del-{uuid.uuid4().hex[:6]}"
    yield cid
    problems = leftovers(ctr_logged, NS, cid)
    assert not problems, "\n".join(problems)


def calls(ctr: Ctr, log: str, cid: str) -> list[str]:
    """The actions the log's calls for `cid` named (start, delete)."""
    path = ctr.base / log
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[-1] for line in lines if f"-id {cid} " in line]


def test_a_task_its_shim_deleted_needs_no_interpreter_for_delete(ctr_logged, cid):
    r = ctr_logged.run(cid, "true")
    assert r.returncode == 0, r
    # `ctr run --rm` returns once containerd's `delete` has answered
    assert calls(ctr_logged, "launcher.log", cid) == ["start", "delete"]
    assert calls(ctr_logged, "python.log", cid) == ["start"]
    assert "failed to clean up after shim disconnected" not in (ctr_logged.base / "containerd.log").read_text()
    ctr_logged("container", "delete", cid)


def test_a_dead_shims_delete_runs_the_python_shim(ctr_logged, cid):
    ctr_logged.ok(*_run_args(ctr_logged, cid, "-d"), "sleep", "300")
    (shim,) = shims_of([cid])
    init = int(ctr_logged.ok("task", "ls").stdout.split(cid, 1)[1].split()[0])
    os.kill(shim, signal.SIGKILL)
    wait_until(lambda: not alive(init), 10, what="the container to be killed by `delete`")
    assert task_status(ctr_logged, cid, "STOPPED", 0) in ("STOPPED", "")
    ctr_logged("task", "delete", cid)
    ctr_logged.ok("container", "delete", cid)
    assert calls(ctr_logged, "python.log", cid) == ["start", "delete"]


def test_a_task_deleted_and_made_again_under_one_id(ctr_logged, cid):
    """Each task's record answers for it alone (the next Create removes it)."""
    for code in (3, 0, 4):
        assert ctr_logged.run(cid, "sh", "-c", f"exit {code}").returncode == code
    assert calls(ctr_logged, "python.log", cid) == ["start"] * 3
    assert calls(ctr_logged, "launcher.log", cid) == ["start", "delete"] * 3


def test_a_pods_containers_need_no_interpreter_for_delete(ctr_logged):
    """containerd lets go of each task's shim when the task is deleted, and
    runs `delete`: for all but the last of a pod the shim still serves the
    others, its socket is there, and the record names the shim, which
    still runs."""
    group = f"grp-{uuid.uuid4().hex[:6]}"
    cids = [f"del-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    try:
        for cid in cids:
            ctr_logged.ok(*_run_args(ctr_logged, cid, "-d", "--annotation", f"io.kubernetes.cri.sandbox-id={group}"),
                          "sleep", "300")
        (shim,) = shims_of(cids)
        for cid in cids:
            ctr_logged.ok("task", "kill", "-s", "SIGKILL", cid)
            assert task_status(ctr_logged, cid, "STOPPED") == "STOPPED"
            ctr_logged.ok("task", "delete", cid)
            ctr_logged.ok("container", "delete", cid)
        wait_until(lambda: not alive(shim), 5, what="the shim to exit with its last task")
        for cid in cids:
            assert calls(ctr_logged, "launcher.log", cid) == ["start", "delete"]
            assert calls(ctr_logged, "python.log", cid) == ["start"], cid
    finally:
        problems = [p for cid in cids for p in leftovers(ctr_logged, NS, cid)]
        assert not problems, "\n".join(problems)
