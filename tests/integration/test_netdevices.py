"""Issue 3, item 9: linux.netDevices.

Part 1 drives container/netdev.py directly: host devices (dummy where the
kernel has it, else one end of a veth pair) moved into network namespaces
that forked children create. Part 2 drives the runtime with bundles; it is
skipped until move_in is wired into create ("wiring pending").

`ip` (iproute2) and `nsenter` (util-linux) are only used by the tests, to look.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time

import pytest

from pyrunc.container import netdev as N
from pyrunc.errors import PyruncError
from pyrunc.linux import consts as C
from pyrunc.linux import sys as L

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not shutil.which("ip") or not shutil.which("nsenter"), reason="needs ip and nsenter"),
]


def ip(*args: str, ns_pid: int | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = (["nsenter", f"--net=/proc/{ns_pid}/ns/net"] if ns_pid else []) + ["ip", *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode:
        raise AssertionError(f"{argv}: {res.stderr}")
    return res


def has_link(name: str, ns_pid: int | None = None) -> bool:
    return ip("link", "show", "dev", name, ns_pid=ns_pid, check=False).returncode == 0


def wait_for(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


@pytest.fixture
def hostdev():
    """A movable device on the host, named pyrt<hex>: dummy if the kernel has
    the driver, else a veth whose peer (<name>p) stays on the host."""
    name = "pyrt" + secrets.token_hex(3)
    if ip("link", "add", name, "type", "dummy", check=False).returncode:
        ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
    yield name
    for n in (name, name + "p"):
        ip("link", "del", n, check=False)


class Holder:
    """A forked child holding new namespaces (unshare flags) until stopped."""

    def __init__(self, flags: int = C.CLONE_NEWNET) -> None:
        r, w = os.pipe()
        self._r2, self._w2 = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - child
            try:
                os.close(r)
                os.close(self._w2)
                L.prctl(C.PR_SET_PDEATHSIG, 9)
                L.unshare(flags)
                os.write(w, b"1")
                os.read(self._r2, 1)
            finally:
                os._exit(0)
        os.close(w)
        os.close(self._r2)
        ok = os.read(r, 1)
        os.close(r)
        if ok != b"1":
            os.waitpid(self.pid, 0)
            raise RuntimeError("the namespace holder failed")

    @property
    def path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def stop(self) -> None:
        if self.pid:
            os.close(self._w2)
            os.waitpid(self.pid, 0)
            self.pid = 0


@pytest.fixture
def netns():
    h = Holder()
    yield h
    h.stop()


def addrs(name: str, ns_pid: int | None = None) -> str:
    return ip("-o", "addr", "show", "dev", name, ns_pid=ns_pid).stdout


# ============================================================ part 1: the functions

def test_move_in_renames_keeps_addresses_mtu_mac_and_sets_up(hostdev, netns):
    ip("link", "set", "dev", hostdev, "mtu", "1789", "address", "00:11:22:33:44:55")
    ip("addr", "add", "10.77.0.1/24", "brd", "+", "dev", hostdev)
    ip("addr", "add", "10.77.1.1", "peer", "10.77.1.2/32", "dev", hostdev)
    ip("addr", "add", "169.254.169.77/32", "dev", hostdev)
    ip("-6", "addr", "add", "fd00:77::1/64", "dev", hostdev)
    ip("addr", "add", "127.0.0.33/8", "scope", "host", "dev", hostdev)  # not global: stays behind
    ip("link", "set", "dev", hostdev, "up")

    recs = N.move_in({hostdev: {"name": "ctr0"}}, netns.path)

    assert not has_link(hostdev)
    assert recs == [{"name": hostdev, "containerName": "ctr0", "index": recs[0]["index"], "up": True}]
    link = ip("-o", "link", "show", "dev", "ctr0", ns_pid=netns.pid).stdout
    assert "mtu 1789 " in link and "00:11:22:33:44:55" in link
    assert ",UP" in link or "<UP" in link
    a = addrs("ctr0", netns.pid)
    assert "inet 10.77.0.1/24 brd 10.77.0.255 scope global ctr0" in a
    assert "inet 10.77.1.1 peer 10.77.1.2/32 scope global ctr0" in a
    assert "inet 169.254.169.77/32 scope global ctr0" in a
    assert "inet6 fd00:77::1/64 scope global" in a  # runc loses it (it lists after setting down)
    assert "127.0.0.33" not in a


def test_move_in_keeps_the_name(hostdev, netns):
    recs = N.move_in({hostdev: {}}, netns.path)
    assert recs[0]["containerName"] == hostdev
    assert has_link(hostdev, netns.pid) and not has_link(hostdev)


def test_move_in_down_device_comes_up(hostdev, netns):
    recs = N.move_in({hostdev: None}, netns.path)
    assert recs[0]["up"] is False
    flags = ip("-o", "link", "show", "dev", hostdev, ns_pid=netns.pid).stdout
    assert "UP" in flags.split(">")[0]


def test_move_in_template_name(hostdev, netns):
    recs = N.move_in({hostdev: {"name": "ctr%d"}}, netns.path)
    assert recs[0]["containerName"] == "ctr0"
    assert has_link("ctr0", netns.pid)


def test_move_in_by_fd(hostdev, netns):
    fd = os.open(netns.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        N.move_in({hostdev: {"name": "byfd0"}}, fd)
    finally:
        os.close(fd)
    assert has_link("byfd0", netns.pid)


def test_move_in_into_a_netns_owned_by_a_user_namespace(hostdev):
    h = Holder(C.CLONE_NEWUSER | C.CLONE_NEWNET)
    try:
        N.move_in({hostdev: {"name": "u0"}}, h.path)
        assert has_link("u0", h.pid)
    finally:
        h.stop()


def test_name_clash_fails_and_the_device_stays_on_the_host(hostdev, netns):
    ip("link", "add", "ctr0", "type", "veth", "peer", "name", "ctr0p", ns_pid=netns.pid)
    ip("addr", "add", "10.78.0.1/24", "dev", hostdev)
    ip("link", "set", "dev", hostdev, "up")
    with pytest.raises(PyruncError) as ei:
        N.move_in({hostdev: {"name": "ctr0"}}, netns.path)
    assert str(ei.value) == (f"move netDevice {hostdev} to namespace {netns.path}: fail to move network device "
                             f"{hostdev} to network namespace {netns.path}: file exists")
    assert has_link(hostdev)
    assert "UP" in ip("-o", "link", "show", "dev", hostdev).stdout.split(">")[0]  # as we found it
    assert "10.78.0.1/24" in addrs(hostdev)


def test_kernel_refusing_the_rename_after_the_move_is_rolled_back(hostdev, netns):
    """The kernel moves first and renames after: a name it refuses (validate
    would have caught this one) leaves the device in the namespace under its
    host name. move_in brings it back."""
    ip("link", "set", "dev", hostdev, "up")
    with pytest.raises(PyruncError, match="fail to move network device .*: invalid argument"):
        N.move_in({hostdev: {"name": "bad name"}}, netns.path)
    assert has_link(hostdev) and not has_link(hostdev, netns.pid)
    assert "UP" in ip("-o", "link", "show", "dev", hostdev).stdout.split(">")[0]


def test_missing_device(netns):
    with pytest.raises(PyruncError) as ei:
        N.move_in({"nosuchdev0": {}}, netns.path)
    assert str(ei.value) == (f"move netDevice nosuchdev0 to namespace {netns.path}: "
                             "link not found for interface nosuchdev0 on runtime namespace: Link not found")


def test_bad_netns_path(hostdev):
    with pytest.raises(PyruncError, match="could not get network namespace from path /nonexistent"):
        N.move_in({hostdev: {}}, "/nonexistent")
    assert has_link(hostdev)


def test_loopback_cannot_move(netns):
    with pytest.raises(PyruncError, match="fail to move network device lo .*: invalid argument"):
        N.move_in({"lo": {"name": "lo1"}}, netns.path)
    assert has_link("lo")
    assert "UP" in ip("-o", "link", "show", "dev", "lo").stdout.split(">")[0]


def test_validate_against_the_host(hostdev):
    N.validate({"netDevices": {hostdev: {"name": "ctr0"}}}, {"network": "", "mount": ""})
    with pytest.raises(PyruncError, match="link not found for interface nosuch0 on runtime namespace"):
        N.validate({"netDevices": {"nosuch0": {}}}, {"network": ""})


def test_move_out_restores_name_addresses_and_state(hostdev, netns):
    ip("addr", "add", "10.79.0.1/24", "dev", hostdev)
    ip("-6", "addr", "add", "fd00:79::1/64", "dev", hostdev)
    ip("link", "set", "dev", hostdev, "up")
    recs = N.move_in({hostdev: {"name": "ctr0"}}, netns.path)
    assert N.move_out(recs, netns.path) == [hostdev]
    assert not has_link("ctr0", netns.pid)
    a = addrs(hostdev)
    assert "10.79.0.1/24" in a and "fd00:79::1/64" in a
    assert "UP" in ip("-o", "link", "show", "dev", hostdev).stdout.split(">")[0]


def test_move_out_of_a_namespace_that_is_gone(hostdev):
    """The spec's model: when the namespace dies the kernel returns physical
    devices and destroys virtual ones; move_out has nothing to do."""
    h = Holder()
    path = h.path
    recs = N.move_in({hostdev: {"name": "ctr0"}}, path)
    h.stop()
    assert N.move_out(recs, path) == []
    assert wait_for(lambda: not has_link(hostdev) and not has_link(hostdev + "p"))  # virtual: destroyed


def test_move_out_skips_devices_no_longer_there(hostdev, netns):
    recs = N.move_in({hostdev: {"name": "ctr0"}}, netns.path)
    ip("link", "del", "ctr0", ns_pid=netns.pid)
    assert N.move_out(recs, netns.path) == []


# ============================================================ part 2: through the runtime

def wiring(test):  # these tests once waited for the runtime wiring; it is done
    return test


@wiring
def test_run_moves_the_device_in(rt, bundle, hostdev):
    ip("addr", "add", "169.254.169.77/32", "dev", hostdev)
    ip("link", "set", "dev", hostdev, "mtu", "1789")
    with bundle.edit() as cfg:
        cfg["linux"]["netDevices"] = {hostdev: {"name": "ctr_dev0"}}
    bundle.set_args("ip", "-o", "addr", "show", "dev", "ctr_dev0")
    res = rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert "169.254.169.77/32" in res.stdout
    # the container's namespace is gone: a virtual device is destroyed with it
    assert wait_for(lambda: not has_link(hostdev))


@wiring
def test_exec_sees_the_device_and_state_records_it(rt, bundle, hostdev):
    with bundle.edit() as cfg:
        cfg["linux"]["netDevices"] = {hostdev: {}}
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    out = rt.exec_(cid, "ip", "-o", "link", "show", "dev", hostdev).expect_ok().stdout
    assert "UP" in out.split(">")[0]
    assert not has_link(hostdev)


@wiring
def test_precreated_netns_keeps_the_device_after_delete(rt, bundle, hostdev, netns):
    """runtime-spec: the runtime MUST NOT move the device out; the namespace's
    owner decides (runc's "move ... and restore it back" test)."""
    with bundle.edit() as cfg:
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns.path
        cfg["linux"]["netDevices"] = {hostdev: {"name": "ctr0"}}
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.delete(cid, force=True)
    assert has_link("ctr0", netns.pid)
    ip("link", "set", "dev", "ctr0", "name", hostdev, "netns", "1", ns_pid=netns.pid)  # the owner moves it back
    assert has_link(hostdev)


@wiring
def test_netdevices_need_a_network_namespace(rt, bundle, hostdev):
    with bundle.edit() as cfg:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
        cfg["linux"]["netDevices"] = {hostdev: {}}
    rt.fail("run", "--bundle", bundle.path, rt.new_id(),
            match="unable to move network devices without a NET namespace", one_line=True)
    assert has_link(hostdev)


@wiring
@pytest.mark.parametrize("devs, match", [
    ({"nosuchdev0": {}}, "link not found for interface nosuchdev0"),
    ({"a/b": {}}, r'invalid network device name \\?"a/b'),  # logrus escapes the quotes
])
def test_netdevices_invalid(rt, bundle, devs, match):
    with bundle.edit() as cfg:
        cfg["linux"]["netDevices"] = devs
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match=match, one_line=True)


@wiring
def test_failed_move_leaves_nothing_behind(rt, bundle, hostdev, netns):
    ip("link", "add", "ctr0", "type", "veth", "peer", "name", "ctr0p", ns_pid=netns.pid)
    with bundle.edit() as cfg:
        for ns in cfg["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns.path
        cfg["linux"]["netDevices"] = {hostdev: {"name": "ctr0"}}
    rt.fail("create", "--bundle", bundle.path, rt.new_id(), match="file exists", one_line=True)
    assert has_link(hostdev)  # (the leak check verifies no state, cgroup or process is left)
    with contextlib.suppress(AssertionError):
        ip("link", "del", "ctr0", ns_pid=netns.pid)
