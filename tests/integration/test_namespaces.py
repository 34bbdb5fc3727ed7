"""Namespaces in combination (issue 11, item 17): a time namespace created
together with a user namespace, namespaces joined from another container
(user and time included), a user namespace and a network namespace it does
not own, and bind mounts whose source the container's root cannot reach.
The equivalents of runc's timens.bats and userns.bats, each observed from
inside a container."""
from __future__ import annotations

import os
import subprocess

import pytest

from integration_conftest import wait_until
from helpers_userns import HOST_ROOT, make_reachable, userns_config

NEWER = pytest.mark.runc_ref_differs
OFFSETS = {"monotonic": {"secs": 7881, "nanosecs": 2718281}, "boottime": {"secs": 1337, "nanosecs": 3141519}}


def needs_timens() -> None:
    if not os.path.exists("/proc/self/timens_offsets"):
        pytest.skip("this kernel has no time namespaces (/proc/self/timens_offsets)")


def set_ns(cfg: dict, kind: str, present: bool = True, path: str | None = None) -> None:
    nss = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    if present:
        nss.append({"type": kind, **({"path": path} if path else {})})
    cfg["linux"]["namespaces"] = nss


def offsets_of(text: str) -> dict[str, tuple[int, int]]:
    return {f[0]: (int(f[1]), int(f[2])) for f in (line.split() for line in text.splitlines()) if len(f) == 3}


def run_out(rt, bundle, *args: str) -> str:
    bundle.set_args(*args)
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, str(res)
    return res.stdout


def sleeper(rt, make_bundle, cfg) -> tuple[str, int]:
    """A detached container running sleep, configured by cfg: (id, pid)."""
    b = make_bundle()
    make_reachable(b.path)  # for a container in a user namespace
    b.set_args("sleep", "3600")
    b.update(cfg)
    cid = rt.new_id()
    rt.run_d(cid, b)
    return cid, rt.state(cid)["pid"]


# -- time namespaces (timens.bats) ------------------------------------------------------
@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_timens_offsets_without_timens_fail(rt, bundle, leakcheck):
    needs_timens()
    bundle.update(lambda c: (set_ns(c, "time", present=False), c["linux"].update(timeOffsets=OFFSETS)))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(),
            match="time namespace offsets specified, but time namespace isn't enabled", one_line=True)
    leakcheck.assert_clean()


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_timens_without_offsets(rt, bundle):
    needs_timens()
    bundle.update(lambda c: (set_ns(c, "time"), c["linux"].pop("timeOffsets", None)))
    out = run_out(rt, bundle, "cat", "/proc/self/timens_offsets")
    assert offsets_of(out) == {"monotonic": (0, 0), "boottime": (0, 0)}
    ns = run_out(rt, bundle, "readlink", "/proc/self/ns/time").strip()
    assert ns != os.readlink("/proc/self/ns/time")


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_timens_offsets_with_exec(rt, make_bundle):
    needs_timens()
    cid, _ = sleeper(rt, make_bundle, lambda c: (set_ns(c, "time"), c["linux"].update(timeOffsets=OFFSETS)))
    out = rt.exec_(cid, "cat", "/proc/self/timens_offsets").expect_ok().stdout
    assert offsets_of(out) == {"monotonic": (7881, 2718281), "boottime": (1337, 3141519)}
    rt.ok("delete", "--force", cid)


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_timens_offsets_with_userns(rt, bundle):
    """The offsets are written before any process enters the time namespace,
    by a writer with CAP_SYS_TIME over the user namespace that owns it."""
    needs_timens()
    make_reachable(bundle.path)

    def cfg(c):
        userns_config(c)
        set_ns(c, "time")
        c["linux"]["timeOffsets"] = OFFSETS
    bundle.update(cfg)
    bundle.sh("cat /proc/self/timens_offsets; cat /proc/uptime; cat /proc/self/uid_map")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, str(res)
    lines = res.stdout.splitlines()
    assert offsets_of("\n".join(lines[:2])) == {"monotonic": (7881, 2718281), "boottime": (1337, 3141519)}
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert float(lines[2].split()[0]) >= host_uptime + 1337 - 1
    assert lines[3].split() == ["0", str(HOST_ROOT), "65536"]


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_join_time_namespace_of_another_container(rt, make_bundle):
    """A joined time namespace keeps its offsets: none are written."""
    needs_timens()
    first, pid = sleeper(rt, make_bundle, lambda c: (set_ns(c, "time"), c["linux"].update(timeOffsets=OFFSETS)))
    b = make_bundle()
    b.update(lambda c: set_ns(c, "time", path=f"/proc/{pid}/ns/time"))
    b.sh("readlink /proc/self/ns/time; cat /proc/self/timens_offsets")
    res = rt.run_fg(rt.new_id(), b)
    assert res.rc == 0, str(res)
    ns, offs = res.stdout.split("\n", 1)
    assert ns == os.readlink(f"/proc/{pid}/ns/time")
    assert offsets_of(offs) == {"monotonic": (7881, 2718281), "boottime": (1337, 3141519)}
    rt.ok("delete", "--force", first)


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_time_namespace_path_and_offsets_refused(rt, bundle, leakcheck):
    needs_timens()

    def cfg(c):
        set_ns(c, "time", path="/proc/self/ns/time")
        c["linux"]["timeOffsets"] = OFFSETS
    bundle.update(cfg)
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), one_line=True,
            match="time namespace enabled, but both namespace path and time offsets specified")
    leakcheck.assert_clean()


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_join_user_and_time_namespaces_of_another_container(rt, make_bundle):
    """The second container joins the first one's user and time namespaces
    (and its pid namespace, as a pod's container does)."""
    needs_timens()

    def first_cfg(c):
        userns_config(c)
        set_ns(c, "time")
        c["linux"]["timeOffsets"] = OFFSETS
    first, pid = sleeper(rt, make_bundle, first_cfg)
    b = make_bundle()
    make_reachable(b.path)

    def cfg(c):
        userns_config(c)
        del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
        for kind, f in (("user", "user"), ("time", "time"), ("pid", "pid")):
            set_ns(c, kind, path=f"/proc/{pid}/ns/{f}")
    b.update(cfg)
    b.sh("for n in user time pid; do readlink /proc/self/ns/$n; done; cat /proc/self/timens_offsets; "
         "cat /proc/self/uid_map")
    res = rt.run_fg(rt.new_id(), b)
    assert res.rc == 0, str(res)
    lines = res.stdout.splitlines()
    assert lines[:3] == [os.readlink(f"/proc/{pid}/ns/{f}") for f in ("user", "time", "pid")]
    assert offsets_of("\n".join(lines[3:5])) == {"monotonic": (7881, 2718281), "boottime": (1337, 3141519)}
    assert lines[5].split() == ["0", str(HOST_ROOT), "65536"]
    rt.ok("delete", "--force", first)


# -- user namespaces (userns.bats) ------------------------------------------------------
RUNC_UID, RUNC_GID = 100000, 200000  # userns.bats's mappings


def runc_userns(c: dict) -> None:
    """userns.bats's set-up: container root is host uid 100000, gid 200000."""
    userns_config(c)
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": RUNC_UID, "size": 65534}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": RUNC_GID, "size": 65534}]


def userns_bundle(make_bundle, *sources: str):
    """A bundle in a user namespace with source-<name>/dir/foo.txt for each
    name; "inaccessible" ones are 0700 root-owned, which the container's root
    (host uid 100000) cannot traverse."""
    b = make_bundle()
    make_reachable(b.path)
    for name in sources:
        d = b.path / f"source-{name}" / "dir"
        d.mkdir(parents=True)
        (d / "foo.txt").write_text(name + "\n")
        os.chmod(d.parent, 0o700 if name.startswith("inaccessible") else 0o755)
    b.update(runc_userns)
    return b


def bind(source: str, dest: str, *opts: str) -> dict:
    return {"source": source, "destination": dest, "options": ["bind", *opts]}


def test_userns_with_simple_mount(rt, make_bundle):
    b = userns_bundle(make_bundle, "accessible")
    b.update(lambda c: c["mounts"].append(bind("source-accessible/dir", "/tmp/mount-1")))
    assert run_out(rt, b, "cat", "/tmp/mount-1/foo.txt") == "accessible\n"


def test_userns_with_two_inaccessible_mounts(rt, make_bundle):
    """The init cannot stat the sources; the host side clones them for it."""
    b = userns_bundle(make_bundle, "inaccessible-1", "inaccessible-2")
    b.update(lambda c: c["mounts"].extend([bind("source-inaccessible-1/dir", "/tmp/mount-1"),
                                          bind("source-inaccessible-2/dir", "/tmp/mount-2", "ro")]))
    b.sh("cat /tmp/mount-1/foo.txt /tmp/mount-2/foo.txt; id -u; "
         "touch /tmp/mount-1/new && echo rw1; touch /tmp/mount-2/new 2>/dev/null || echo ro2")
    res = rt.run_fg(rt.new_id(), b)
    assert res.rc == 0, str(res)
    # the container's root is not the files' owner (host root): it reads
    # foo.txt (0644) and may not write in dir (0755)
    assert res.stdout.split() == ["inaccessible-1", "inaccessible-2", "0", "ro2"]


def test_userns_with_inaccessible_rbind_of_a_file_and_exec(rt, make_bundle):
    b = userns_bundle(make_bundle, "inaccessible-1", "inaccessible-2")
    (b.path / "source-inaccessible-2" / "dir" / "sub").mkdir()
    b.update(lambda c: c["mounts"].extend([
        bind("source-inaccessible-1/dir/foo.txt", "/tmp/foo.txt"),
        {"source": str(b.path / "source-inaccessible-2" / "dir"), "destination": "/tmp/mount-2",
         "type": "bind", "options": ["rbind"]}]))
    b.set_args("sleep", "3600")
    cid = rt.new_id()
    rt.run_d(cid, b)
    out = rt.exec_(cid, "sh", "-c", "cat /tmp/foo.txt /tmp/mount-2/foo.txt; ls /tmp/mount-2").expect_ok().stdout
    assert out.split() == ["inaccessible-1", "inaccessible-2", "foo.txt", "sub"]
    rt.ok("delete", "--force", cid)


@NEWER(reason="runc 1.1.5 reports it in several lines from nsexec")
def test_missing_bind_source_in_userns_still_fails(rt, make_bundle, leakcheck):
    b = userns_bundle(make_bundle)
    b.update(lambda c: c["mounts"].append(bind("no-such-dir", "/tmp/mount-1")))
    rt.fail("run", "--bundle", b.path, rt.new_id(), match="no-such-dir.*No such file", one_line=True)
    leakcheck.assert_clean()


def test_userns_with_bind_mount_before_a_cgroupfs_mount(rt, make_bundle):
    """cgroup v1 without a cgroup namespace: the cgroup tree is made of bind
    mounts, and a bind mount just before it must not disturb them."""
    if not os.path.isdir("/sys/fs/cgroup/memory") or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("needs cgroup v1 with the memory and pids hierarchies")
    b = userns_bundle(make_bundle, "accessible")

    def cfg(c):
        i = next(i for i, m in enumerate(c["mounts"]) if m["destination"] == "/sys")
        c["mounts"][i + 1:i + 1] = [bind("source-accessible/dir", "/tmp/mount-1"),
                                    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}]
        set_ns(c, "cgroup", present=False)
    b.update(cfg)
    b.set_args("sleep", "3600")
    cid = rt.new_id()
    rt.run_d(cid, b)
    out = rt.exec_(cid, "cat", "/sys/fs/cgroup/pids/tasks", "/sys/fs/cgroup/memory/tasks").expect_ok().stdout
    assert out.split().count("1") == 2, out  # the container's own cgroups, its init in each
    rt.ok("delete", "--force", cid)


def maps_of(rt, cid: str) -> tuple[list[str], list[str]]:
    uid = rt.exec_(cid, "cat", "/proc/self/uid_map").expect_ok().stdout.split()
    gid = rt.exec_(cid, "cat", "/proc/self/gid_map").expect_ok().stdout.split()
    return uid, gid


@pytest.fixture
def bind_mounted_nsfd(tmp_path):
    """Bind-mount a namespace file elsewhere (runc's non-fast path): the
    mounts are undone at the end."""
    made: list[str] = []

    def mount(src: str, name: str) -> str:
        path = tmp_path / name
        path.touch()
        subprocess.run(["mount", "--bind", src, str(path)], check=True)
        made.append(str(path))
        return str(path)
    yield mount
    for p in reversed(made):
        subprocess.run(["umount", "-l", p], check=False)


def joining(userns: str, **paths: str):
    """Config: join the user namespace at `userns` (no maps of our own) and
    the other namespaces given."""
    def cfg(c):
        runc_userns(c)
        del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
        for kind, path in {"user": userns, **paths}.items():
            set_ns(c, kind, path=path)
    return cfg


@NEWER(reason="runc 1.1.5 wants mappings with a userns path")
@pytest.mark.parametrize("by", ["proc", "bind-mount"])
def test_userns_join_other_container_userns(rt, make_bundle, bind_mounted_nsfd, by):
    """/proc/<pid>/ns/user (its maps are read from /proc/<pid>) or a bind
    mount of it (a child joins it to read them)."""
    target, pid = sleeper(rt, make_bundle, runc_userns)
    path = f"/proc/{pid}/ns/user" if by == "proc" else bind_mounted_nsfd(f"/proc/{pid}/ns/user", "userns")
    cid, _ = sleeper(rt, make_bundle, joining(path))
    assert maps_of(rt, cid) == (["0", str(RUNC_UID), "65534"], ["0", str(RUNC_GID), "65534"])
    assert rt.exec_(cid, "readlink", "/proc/self/ns/user").expect_ok().stdout.strip() == \
        os.readlink(f"/proc/{pid}/ns/user")
    rt.ok("delete", "--force", cid)
    rt.ok("delete", "--force", target)


@NEWER(reason="runc 1.1.5 ignores mappings given with a userns path")
def test_userns_path_with_other_mappings_is_refused(rt, make_bundle, leakcheck):
    target, pid = sleeper(rt, make_bundle, runc_userns)
    b = make_bundle()

    def cfg(c):
        runc_userns(c)
        set_ns(c, "user", path=f"/proc/{pid}/ns/user")
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65534}]
    b.update(cfg)
    rt.fail("run", "--bundle", b.path, rt.new_id(), one_line=True,
            match="user namespaces enabled, but both namespace path and non-matching mapping specified")
    rt.ok("delete", "--force", target)
    leakcheck.assert_clean()


def test_userns_path_with_the_same_mappings_warns(rt, make_bundle):
    target, pid = sleeper(rt, make_bundle, runc_userns)
    b = make_bundle()
    make_reachable(b.path)
    b.update(lambda c: (runc_userns(c), set_ns(c, "user", path=f"/proc/{pid}/ns/user")))
    b.set_args("cat", "/proc/self/uid_map")
    res = rt.run_fg(rt.new_id(), b)
    assert res.rc == 0, str(res)
    assert res.stdout.split() == ["0", str(RUNC_UID), "65534"]
    if not rt.is_runc:
        assert "matching userns mapping" in res.stderr
    rt.ok("delete", "--force", target)


@NEWER(reason="runc 1.1.5 wants mappings with a userns path")
def test_userns_join_external_userns_and_a_netns_it_does_not_own(rt, make_bundle, bind_mounted_nsfd):
    """runc issue 4390: the host's network namespace (owned by the initial
    user namespace) must be joined before the container's user namespace."""
    target, pid = sleeper(rt, make_bundle, runc_userns)
    userns = bind_mounted_nsfd(f"/proc/{pid}/ns/user", "userns")
    rt.ok("delete", "--force", target)  # the bind mount keeps the namespace
    netns = bind_mounted_nsfd("/proc/self/ns/net", "netns")
    cid, _ = sleeper(rt, make_bundle, joining(userns, network=netns))
    user = rt.exec_(cid, "readlink", "/proc/self/ns/user").expect_ok().stdout.strip()
    net = rt.exec_(cid, "readlink", "/proc/self/ns/net").expect_ok().stdout.strip()
    assert user == f"user:[{os.stat(userns).st_ino}]"
    assert net == f"net:[{os.stat(netns).st_ino}]" == os.readlink("/proc/self/ns/net")
    rt.ok("delete", "--force", cid)


@pytest.fixture
def host_dev():
    """A virtual device on the host: dummy where the kernel has the driver,
    else one end of a veth pair (both ends go when the container's network
    namespace does)."""
    import secrets
    name = "pyns" + secrets.token_hex(3)
    ip = ["ip", "link", "add", name, "type"]
    if subprocess.run([*ip, "dummy"], capture_output=True).returncode and \
            subprocess.run([*ip, "veth", "peer", "name", name + "p"], capture_output=True).returncode:
        pytest.skip("cannot make a virtual network device (neither dummy nor veth)")
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)


@NEWER(reason="runc 1.1.5 predates linux.netDevices")
@pytest.mark.parametrize("rename", [False, True])
def test_userns_with_network_interface(rt, make_bundle, host_dev, rename):
    name = "ctr_dev0" if rename else host_dev
    b = make_bundle()
    make_reachable(b.path)
    b.update(lambda c: (runc_userns(c), c["linux"].update(netDevices={host_dev: {"name": name} if rename else {}})))
    out = run_out(rt, b, "ip", "address", "show", "dev", name)
    assert f": {name}:" in out or f": {name}@" in out, out
    # the virtual device goes with the container's network namespace (the
    # kernel cleans namespaces up asynchronously)
    wait_until(lambda: subprocess.run(["ip", "link", "show", "dev", host_dev], capture_output=True).returncode,
               what=f"{host_dev} gone from the host")
