"""Item 3: create / start / state / list / kill / delete."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import time

import pytest

from integration_conftest import RFC3339_RE, wait_until

STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]

TRAP_SCRIPT = (
    "for s in HUP INT QUIT USR1 USR2 TERM; do trap \"echo $s >> /host/sigs\" $s; done; "
    "echo ready > /host/ready; "
    "while :; do sleep 1 & wait $!; done"
)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def go_tabwriter(rows: list[list[str]], minwidth: int = 12, padding: int = 3) -> str:
    """What Go's tabwriter.NewWriter(w, 12, 1, 3, ' ', 0) prints for cells
    joined by \\t and lines ended by \\n (the last cell is not padded)."""
    ncols = len(rows[0])
    widths = [max(minwidth, max(len(r[j]) for r in rows) + padding) for j in range(ncols - 1)]
    return "".join("".join(c.ljust(widths[j]) for j, c in enumerate(r[:-1])) + r[-1] + "\n" for r in rows)


def parse_created(value: str) -> dt.datetime:
    assert RFC3339_RE.match(value), value
    base, _, frac = value.rstrip("Z").partition(".")
    t = dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return t + dt.timedelta(microseconds=int((frac or "0")[:6].ljust(6, "0")))


# --------------------------------------------------------------------------- create / start


def test_create_leaves_process_blocked_until_start(rt, bundle):
    bundle.sh("echo started > /host/started; exec sleep 3600")
    cid = rt.new_id()
    res = rt.create(cid, bundle)
    assert res.stdout == "" and res.stderr == ""
    st = rt.state(cid)
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert pid_alive(st["pid"])
    time.sleep(0.3)
    assert not bundle.host("started").exists(), "the container process ran before start"
    assert rt.state(cid)["status"] == "created"

    rt.start(cid)
    assert bundle.wait_host_file("started") == "started\n"
    st2 = rt.state(cid)
    assert st2["status"] == "running"
    assert st2["pid"] == st["pid"]
    assert pid_alive(st2["pid"])


def test_start_twice_fails(rt, bundle):
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.start(cid)
    # runc: "cannot start an already running container"
    rt.fail("start", cid, match=r"running|already", one_line=True)
    assert rt.state(cid)["status"] == "running"


def test_start_stopped_container_fails(rt, bundle):
    bundle.set_args("true")
    cid = rt.new_id()
    rt.run_fg(cid, bundle, "--keep").expect_ok()
    assert rt.state(cid)["status"] == "stopped"
    # runc: "cannot start a container that has stopped"
    rt.fail("start", cid, match=r"stopped", one_line=True)


def test_start_unknown_container(rt):
    rt.fail("start", "no-such-ctr", match="does not exist", one_line=True)


# --------------------------------------------------------------------------- state


def test_state_fields(rt, bundle):
    with bundle.edit() as cfg:
        cfg["annotations"] = {"org.example.key": "value", "other": "x"}
    cid = rt.new_id()
    before = dt.datetime.now(dt.timezone.utc)
    rt.create(cid, bundle)
    res = rt.ok("state", cid)
    st = json.loads(res.stdout)
    # runc's key order, with annotations (omitempty) before owner
    assert list(st) == STATE_KEYS[:-1] + ["annotations", "owner"], res
    assert st["ociVersion"] == bundle.config["ociVersion"]
    assert st["id"] == cid
    assert st["status"] == "created"
    assert st["pid"] > 0
    assert st["bundle"] == str(bundle.path)
    assert st["rootfs"] == str(bundle.rootfs)
    assert st["owner"] == ""
    assert st["annotations"] == {"org.example.key": "value", "other": "x"}
    created = parse_created(st["created"])
    assert before - dt.timedelta(seconds=5) <= created <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    # created is RFC3339Nano in UTC: Go trims trailing zeros of the fraction
    frac = st["created"].rstrip("Z").partition(".")[2]
    assert not frac.endswith("0"), st["created"]


def test_state_without_annotations(rt, bundle):
    cid = rt.new_id()
    rt.create(cid, bundle)
    st = rt.state(cid)
    assert list(st) == STATE_KEYS
    # the created timestamp is stable across calls
    assert rt.state(cid)["created"] == st["created"]


def test_state_unknown_container(rt):
    res = rt.fail("state", "no-such-ctr", match="does not exist", one_line=True)
    assert res.stdout == ""


# --------------------------------------------------------------------------- list


def _owner(rt, cid):
    uid = os.stat(rt.root / cid).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


@pytest.fixture
def three_containers(rt, make_bundle):
    """(created, running, stopped) containers, in id order."""
    b = make_bundle()
    ids = [rt.new_id("a"), rt.new_id("b"), rt.new_id("c")]
    rt.create(ids[0], b)
    rt.run_d(ids[1], b)
    stopped = make_bundle(args=["true"])
    rt.run_fg(ids[2], stopped, "--keep").expect_ok()
    rt.wait_status(ids[2], "stopped")
    return ids, b, stopped


def test_list_table(rt, three_containers):
    ids, b, stopped = three_containers
    res = rt.ok("list")
    states = {cid: rt.state(cid) for cid in ids}
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for cid in ids:
        st = states[cid]
        rows.append([cid, str(st["pid"]), st["status"], st["bundle"], st["created"], _owner(rt, cid)])
    assert [r[2] for r in rows[1:]] == ["created", "running", "stopped"]
    assert rows[3][1] == "0"  # a stopped container lists pid 0
    assert res.stdout == go_tabwriter(rows), f"\nexpected:\n{go_tabwriter(rows)}\ngot:\n{res.stdout}"
    assert rt.ok("list", "--format", "table").stdout == res.stdout
    assert rt.ok("list", "-f", "table").stdout == res.stdout


def test_list_json(rt, three_containers):
    ids, b, stopped = three_containers
    res = rt.ok("list", "--format", "json")
    assert res.stdout.endswith("\n") and res.stdout.count("\n") == 1, "one JSON line"
    data = json.loads(res.stdout)
    assert [c["id"] for c in data] == ids
    for item in data:
        assert list(item) == STATE_KEYS, item
        st = rt.state(item["id"])
        for k in ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created"):
            assert item[k] == st[k], (k, item, st)
        assert item["owner"] == _owner(rt, item["id"])
    assert [c["status"] for c in data] == ["created", "running", "stopped"]
    assert json.loads(rt.ok("list", "-f", "json").stdout) == data


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_list_quiet(rt, three_containers, flag):
    ids, _, _ = three_containers
    assert rt.ok("list", flag).stdout == "".join(f"{i}\n" for i in ids)


def test_list_empty(rt):
    res = rt.ok("list")
    assert res.stdout == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
    assert rt.ok("list", "-q").stdout == ""
    # runc prints `null` (a nil Go slice); an empty array is as good for every parser
    assert json.loads(rt.ok("list", "--format", "json").stdout) in (None, [])


def test_list_default_root_alternate_roots(rt, make_bundle, tmp_path):
    """Containers live in their --root only (root.bats)."""
    b = make_bundle()
    alt = tmp_path / "alt-root"
    a, c = rt.new_id("alt"), rt.new_id("main")
    rt.ok("run", "-d", "--bundle", b.path, a, root=alt)
    try:
        rt.run_d(c, b)
        assert [x["id"] for x in rt.list_json()] == [c]
        alt_list = json.loads(rt.ok("list", "--format", "json", root=alt).stdout)
        assert [x["id"] for x in alt_list] == [a]
        rt.fail("state", a, match="does not exist")
        rt.fail("state", c, root=alt, match="does not exist")
    finally:
        rt.run("delete", "--force", a, root=alt)
    assert not any(alt.iterdir())


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 lists nothing and exits 0 for a missing custom --root; newer runc fails")
def test_list_missing_custom_root_fails(rt, tmp_path):
    rt.fail("list", root=tmp_path / "does-not-exist", one_line=True)


# --------------------------------------------------------------------------- kill


@pytest.fixture
def trapper(rt, bundle):
    bundle.sh(TRAP_SCRIPT)
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    bundle.wait_host_file("ready")
    return cid, bundle


@pytest.mark.parametrize(
    "sig, seen",
    [
        (None, "TERM"),
        ("TERM", "TERM"),
        ("SIGTERM", "TERM"),
        ("15", "TERM"),
        ("USR1", "USR1"),
        ("SIGUSR1", "USR1"),
        ("10", "USR1"),
        ("HUP", "HUP"),
        ("SIGINT", "INT"),
        ("12", "USR2"),
    ],
)
def test_kill_delivers_signal(rt, trapper, sig, seen):
    cid, bundle = trapper
    rt.kill(cid, *([sig] if sig else []))
    assert bundle.wait_host_file("sigs", contains=seen).split() == [seen]
    assert rt.state(cid)["status"] == "running"


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_stops_container(rt, bundle, sig):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pid = rt.state(cid)["pid"]
    rt.kill(cid, sig)
    st = rt.wait_status(cid, "stopped")
    assert st["pid"] == 0
    wait_until(lambda: not pid_alive(pid), what=f"pid {pid} to die")
    rt.delete(cid)
    rt.fail("state", cid, match="does not exist")


@pytest.mark.parametrize("sig", ["KILL", "TERM", "INT", "HUP"])
def test_kill_created_container(rt, bundle, sig):
    """A terminating signal stops a created container's waiting init, as
    runc's (pidfd-socket.bats sends SIGTERM); as PID 1 of its pid namespace
    it needs a handler for that, or the kernel drops the signal."""
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.kill(cid, sig)
    rt.wait_status(cid, "stopped")


def test_usr1_does_not_stop_a_created_container(rt, bundle):
    """runc's init (Go) catches SIGUSR1 and does nothing: nor does ours."""
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.kill(cid, "USR1")
    time.sleep(0.3)
    assert rt.state(cid)["status"] == "created"
    rt.start(cid)
    assert rt.state(cid)["status"] == "running"


def test_kill_stopped_container_fails(rt, bundle):
    """kill.bats: kill of a stopped container fails ("container not running");
    with --all (-a) it succeeds."""
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.fail("kill", cid, "0", match="not running", one_line=True)
    rt.fail("kill", cid, match="not running", one_line=True)
    rt.ok("kill", "-a", cid, "0")
    rt.ok("kill", "--all", cid, "0")


@pytest.mark.parametrize("sig", ["NOSUCHSIG", "SIGFOO", "99999", "-1"])
def test_kill_invalid_signal(rt, bundle, sig):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.fail("kill", cid, sig, one_line=True)
    assert rt.state(cid)["status"] == "running"


def test_kill_unknown_container(rt):
    rt.fail("kill", "no-such-ctr", "KILL", match="does not exist", one_line=True)


# --------------------------------------------------------------------------- delete


def test_stopped_after_process_exits(rt, bundle):
    bundle.set_args("true")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    st = rt.wait_status(cid, "stopped")
    assert st["pid"] == 0
    rt.delete(cid)
    assert rt.container_dirs() == []


def test_delete_running_needs_force(rt, bundle):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    pid = rt.state(cid)["pid"]
    # runc: "cannot delete container <id> that is not stopped: running"
    rt.fail("delete", cid, match=r"not stopped|running", one_line=True)
    assert rt.state(cid)["status"] == "running"
    assert pid_alive(pid)
    res = rt.delete(cid, force=True)
    assert res.stdout == ""
    assert not pid_alive(pid)
    rt.fail("state", cid, match="does not exist")
    assert rt.container_dirs() == []


def test_delete_short_force_flag(rt, bundle):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.ok("delete", "-f", cid)
    assert rt.container_dirs() == []


def test_delete_created_container(rt, bundle):
    """A created (never started) container is deleted without --force."""
    bundle.sh("echo started > /host/started; exec sleep 3600")
    cid = rt.new_id()
    rt.create(cid, bundle)
    pid = rt.state(cid)["pid"]
    rt.delete(cid)
    wait_until(lambda: not pid_alive(pid), what="the created init to die")
    assert not bundle.host("started").exists()
    rt.fail("state", cid, match="does not exist")


def test_delete_stopped_container(rt, bundle):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    res = rt.delete(cid)
    assert res.stdout == "" and res.stderr == ""
    res = rt.fail("state", cid, match="does not exist", one_line=True)
    assert rt.container_dirs() == []
    # deleting it again fails; with --force it is a no-op
    rt.fail("delete", cid, match="does not exist", one_line=True)
    rt.ok("delete", "--force", cid)


def test_delete_force_unknown_container(rt):
    res = rt.ok("delete", "--force", "no-such-ctr")
    assert res.stdout == ""


def test_delete_unknown_container(rt):
    rt.fail("delete", "no-such-ctr", match="does not exist", one_line=True)


def test_full_lifecycle_leaves_nothing(rt, bundle, leakcheck):
    cid = rt.new_id()
    rt.create(cid, bundle)
    rt.start(cid)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)
    leakcheck.assert_clean()
