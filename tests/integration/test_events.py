"""`events`: --stats once, --interval streaming, OOM notifications, in runc's
JSON (types/events.go), and the end of the stream when the container stops."""
from __future__ import annotations

import json
import os
import time

import pytest

from integration_conftest import wait_until
from test_cgroups_common import RUNC, RuncRef, limit_without_swap, set_resources, unified_host

MiB = 1 << 20
NEWER = pytest.mark.runc_ref_differs


def events(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


@pytest.fixture
def running(rt, bundle):
    set_resources(bundle, {"memory": {"limit": 128 * MiB}, "pids": {"limit": 64}})
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    return cid


def test_stats_once(rt, running):
    res = rt.ok("events", "--stats", running)
    assert len(res.out_lines) == 1, res
    ev = json.loads(res.stdout)
    assert list(ev) == ["type", "id", "data"] and ev["type"] == "stats" and ev["id"] == running
    data = ev["data"]
    assert list(data)[:6] == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb"]
    assert data["pids"] == {"current": 1, "limit": 64}
    assert data["memory"]["usage"]["usage"] > 0
    assert data["memory"]["usage"]["limit"] == 128 * MiB
    assert data["cpu"]["usage"]["total"] > 0
    assert "kernel" in data["cpu"]["usage"] and "user" in data["cpu"]["usage"]
    assert data["network_interfaces"] is None and data["intel_rdt"] == {}
    if not unified_host():
        assert isinstance(data["memory"]["raw"]["rss"], int)
        assert data["cpuset"]["cpus"] == sorted(data["cpuset"]["cpus"])


def test_stats_json_is_compact_go_style(rt, running):
    out = rt.ok("events", "--stats", running).stdout
    assert out.endswith("}\n") and ": " not in out and ", " not in out


def test_stats_counts_exec_processes(rt, running):
    rt.ok("exec", "-d", running, "sleep", "30")
    ev = events(rt.ok("events", "--stats", running).stdout)[0]
    assert ev["data"]["pids"]["current"] == 2


def test_stats_of_paused_container(rt, running):
    rt.ok("pause", running)
    assert events(rt.ok("events", "--stats", running).stdout)[0]["type"] == "stats"
    rt.ok("resume", running)


def test_stats_of_stopped_container(rt, bundle):
    bundle.set_args("true")
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.start(cid)
    rt.wait_status(cid, "stopped")
    rt.fail("events", "--stats", cid, match=f"container with id {cid} is not running", one_line=True)


def test_unknown_container(rt):
    rt.fail("events", "--stats", "nosuch", match="container does not exist", one_line=True)


def test_interval_must_be_positive(rt, running):
    rt.fail("events", "--interval", "0", running, match="duration interval must be greater than 0", one_line=True)
    rt.fail("events", "--interval", "-1s", running, match="duration interval must be greater than 0")


def test_bad_interval(rt, running):
    rt.fail("events", "--interval", "5", running, match="interval")


def test_streaming(rt, running):
    p = rt.popen("events", "--interval", "200ms", running)
    try:
        wait_until(lambda: len(events(p.output_so_far()[0])) >= 3, timeout=10, what="3 stats events")
    finally:
        p.kill()
    evs = events(p.output_so_far()[0] if p.result is None else p.result.stdout)
    assert all(e["type"] == "stats" and e["id"] == running for e in evs[:3])


@NEWER(reason="runc 1.1.5 on cgroup v1 keeps printing until the container is deleted")
def test_stream_ends_when_the_container_stops(rt, running):
    p = rt.popen("events", "--interval", "200ms", running)
    wait_until(lambda: events(p.output_so_far()[0]), timeout=10, what="a first stats event")
    rt.kill(running, "KILL")
    res = p.finish(timeout=10)
    assert res.rc == 0 and not res.timed_out, res


def test_oom_event(rt, bundle):
    """A 64 MiB allocation in a 24 MiB cgroup: {"type":"oom"} in the stream."""
    set_resources(bundle, {"memory": limit_without_swap(24 * MiB)})
    bundle.sh("while [ ! -e /host/go ]; do sleep 0.05; done; "
              "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    p = rt.popen("events", "--interval", "1s", cid)
    try:
        time.sleep(0.5)  # let events register for notifications
        bundle.host("go").write_text("")
        wait_until(lambda: any(e["type"] == "oom" for e in events(p.output_so_far()[0])), timeout=15,
                   what="an oom event")
    finally:
        p.kill()
    oom = [e for e in events(p.result.stdout) if e["type"] == "oom"]
    assert oom[0] == {"type": "oom", "id": cid}


def shape(v):
    """Keys and value types, recursively (lists: the shape of the first item)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def test_stats_shape_matches_runc(rt, bundle, tmp_path):
    if rt.is_runc or not os.path.exists(RUNC):
        pytest.skip("needs Debian's runc to compare with")
    set_resources(bundle, {"memory": {"limit": 128 * MiB}, "pids": {"limit": 64}})
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    ref = RuncRef(tmp_path / "runc-root")
    rcid = f"ref-{rt.token}"
    try:
        ref.run_d(rcid, bundle.path)
        theirs = json.loads(ref("events", "--stats", rcid).stdout)
    finally:
        ref.delete(rcid)
    mine = json.loads(rt.ok("events", "--stats", cid).stdout)
    a, b = shape(mine["data"]), shape(theirs["data"])
    # runc 1.1.5 predates `omitzero`: it prints all-zero structs ("throttling":{}) that runc >= 1.3 omits
    for s in (a, b):
        s["cpu"].pop("throttling", None)
        for k in ("swap", "kernel", "kernelTCP", "cache"):  # omitempty: "cache" is absent when the page cache is 0
            s["memory"].pop(k, None)
        s["memory"].get("raw", {}).clear()
    # blkio's lists are omitempty too: present only once the container did I/O
    # (a cold page cache makes one of the two read its binary from disk)
    for k in set(a.get("blkio", {})) ^ set(b.get("blkio", {})):
        a.get("blkio", {}).pop(k, None)
        b.get("blkio", {}).pop(k, None)
    assert a == b
    assert list(mine["data"]) == list(theirs["data"])
