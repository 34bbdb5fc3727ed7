"""runc's rules for time and user namespaces (spec/nsrules.py), the maps of
a joined user namespace (linux/usermaps.py) and the offsets text."""
from __future__ import annotations

import os

import pytest

from pyrunc.errors import PyruncError
from pyrunc.linux import usermaps
from pyrunc.init.child import time_offsets_text
from pyrunc.spec import nsrules

OFFS = {"monotonic": {"secs": 7881, "nanosecs": 2718281}, "boottime": {"secs": -1}}
MAPS = [{"containerID": 0, "hostID": 100000, "size": 65534}]
timens = pytest.mark.skipif(not os.path.exists("/proc/self/timens_offsets"), reason="no time namespaces here")


@timens
@pytest.mark.parametrize("linux, nss, msg", [
    ({"timeOffsets": OFFS}, {}, "time namespace offsets specified, but time namespace isn't enabled"),
    ({"timeOffsets": {}}, {"mount": ""}, "time namespace offsets specified, but time namespace isn't enabled"),
    ({"timeOffsets": OFFS}, {"time": "/proc/1/ns/time"}, "both namespace path and time offsets specified"),
])
def test_time_rules(linux, nss, msg):
    with pytest.raises(PyruncError, match=msg):
        nsrules.validate(linux, nss)


@timens
@pytest.mark.parametrize("linux, nss", [
    ({"timeOffsets": OFFS}, {"time": ""}), ({}, {"time": ""}), ({"timeOffsets": None}, {"time": "/proc/1/ns/time"}),
])
def test_time_rules_pass(linux, nss):
    nsrules.validate(linux, nss)


def test_offsets_text():
    assert time_offsets_text({"timeOffsets": OFFS}) == b"monotonic 7881 2718281\nboottime -1 0\n"


def test_parse_map():
    assert usermaps.parse_map("         0     100000      65534\n      65534 1 1\n") == \
        MAPS + [{"containerID": 65534, "hostID": 1, "size": 1}]


def fake_maps(monkeypatch, maps):
    monkeypatch.setattr(usermaps, "read_userns_maps", lambda path: (maps, maps))


def test_joined_userns_maps_stand_in_for_the_configs(monkeypatch):
    fake_maps(monkeypatch, MAPS)
    linux: dict = {}
    nsrules.validate(linux, {"user": "/somewhere/userns"})
    assert linux["uidMappings"] == MAPS and linux["gidMappings"] == MAPS


def test_joined_userns_with_other_maps_is_refused(monkeypatch):
    fake_maps(monkeypatch, MAPS)
    linux = {"uidMappings": MAPS, "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65534}]}
    with pytest.raises(PyruncError, match="both namespace path and non-matching mapping specified"):
        nsrules.validate(linux, {"user": "/somewhere/userns"})


def test_joined_userns_with_the_same_maps_warns(monkeypatch, capfd):
    fake_maps(monkeypatch, MAPS)
    nsrules.validate({"uidMappings": MAPS, "gidMappings": list(MAPS)}, {"user": "/somewhere/userns"})
    assert "matching userns mapping" in capfd.readouterr().err


def test_unreadable_userns_path():
    with pytest.raises(PyruncError, match="failed to cache mappings for userns: /no/such/ns"):
        nsrules.validate({}, {"user": "/no/such/ns"})


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a user namespace with maps: needs root")
def test_userns_maps_by_joining():
    """The slow path (a child joins the namespace): a path that is not
    /proc/<pid>/ns/user, here an fd of a namespace with known maps."""
    from pyrunc.rootfs.idmap import _userns_with_maps
    gid = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    fd = _userns_with_maps(MAPS, gid)
    try:
        assert usermaps.read_userns_maps(f"/proc/self/fd/{fd}") == (MAPS, gid)
    finally:
        os.close(fd)


def test_our_own_userns_by_another_path():
    """setns into the namespace we are in fails (EINVAL): read our maps."""
    want = usermaps._read("/proc/self/uid_map"), usermaps._read("/proc/self/gid_map")
    fd = os.open("/proc/self/ns/user", os.O_RDONLY)
    try:
        assert usermaps.read_userns_maps(f"/proc/self/fd/{fd}") == want
    finally:
        os.close(fd)
