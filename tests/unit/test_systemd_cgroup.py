"""The systemd driver's pure logic: names, slice paths, the unit properties
runc derives from linux.resources (v1 and v2), device rules, annotations,
and the D-Bus wire format against hand-assembled bytes and a fake peer."""
from __future__ import annotations

import os
import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc.cgroups import dbus as B
from pyrunc.cgroups import systemd as S
from pyrunc.cgroups.dbus import Variant
from pyrunc.errors import PyruncError

V = 252  # this host's systemd


# -- names ------------------------------------------------------------------------

@pytest.mark.parametrize("path, want", [
    ("", ("", "pyrunc", "cid")),
    ("system.slice:docker:abc", ("system.slice", "docker", "abc")),
    (":libpod:abc", ("", "libpod", "abc")),
    ("machine.slice:libpod:x.slice", ("machine.slice", "libpod", "x.slice")),
])
def test_parse_cgroups_path(path, want):
    assert S.parse_cgroups_path(path, "cid") == want


@pytest.mark.parametrize("path", ["abc", "a:b", "a:b:c:d", "/sys/fs/cgroup/x"])
def test_parse_cgroups_path_refuses_other_forms(path):
    with pytest.raises(PyruncError, match='expected cgroupsPath to be of format "slice:prefix:name"'):
        S.parse_cgroups_path(path, "cid")


def test_unit_name():
    assert S.unit_name("docker", "abc") == "docker-abc.scope"
    assert S.unit_name("", "abc") == "-abc.scope"  # as runc: the prefix is not optional
    assert S.unit_name("x", "my.slice") == "my.slice"


@pytest.mark.parametrize("name, path", [
    ("-.slice", "/"),
    ("system.slice", "/system.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("machine-libpod_pod_1.slice", "/machine.slice/machine-libpod_pod_1.slice"),
])
def test_expand_slice(name, path):
    assert S.expand_slice(name) == path


@pytest.mark.parametrize("name", ["", ".slice", "a", "a.scope", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice"])
def test_expand_slice_refuses(name):
    with pytest.raises(PyruncError, match="invalid slice name"):
        S.expand_slice(name)


@pytest.mark.parametrize("text, bits", [
    ("0", [1]), ("1", [2]), ("0-2", [7]), ("0,7", [0x81]), ("8", [0, 1]), ("1,3-5", [0x3a]),
    (" 2 , 4 ,", [0x14]), ("0-15", [0xff, 0xff]),
])
def test_range_to_bits(text, bits):
    assert S.range_to_bits(text) == bits


@pytest.mark.parametrize("text", ["", ",", "3-1", "x", "1-y"])
def test_range_to_bits_refuses(text):
    with pytest.raises(PyruncError):
        S.range_to_bits(text)


@given(st.sets(st.integers(0, 200), min_size=1))
def test_range_to_bits_sets_exactly_the_cpus(cpus):
    bits = S.range_to_bits(",".join(map(str, sorted(cpus))))
    got = {i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1}
    assert got == cpus


# -- properties -----------------------------------------------------------------------

def props(pairs):
    return {name: var for name, var in pairs}


def test_v1_properties_runc_names_and_types():
    r = {"memory": {"limit": 1 << 30}, "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1",
                                               "mems": "0"},
         "pids": {"limit": 0}, "blockIO": {"weight": 300}}
    p, r2 = S.v1_properties(r, V)
    assert props(p) == {
        "MemoryLimit": Variant("t", 1 << 30), "CPUShares": Variant("t", 512),
        "CPUQuotaPeriodUSec": Variant("t", 100000), "CPUQuotaPerSecUSec": Variant("t", 500000),
        "BlockIOWeight": Variant("t", 300), "TasksMax": Variant("t", 1),  # 0 -> 1: systemd refuses 0
        "AllowedCPUs": Variant("ay", [3]), "AllowedMemoryNodes": Variant("ay", [1]),
    }
    assert r2 is r  # 50% needs no rounding


def test_cpu_quota_rounded_up_to_whole_percents_for_the_file_too():
    r = {"cpu": {"quota": 33333, "period": 100000}}
    p, r2 = S.v1_properties(r, V)
    assert props(p)["CPUQuotaPerSecUSec"] == Variant("t", 340000)
    assert r2["cpu"]["quota"] == 34000 and r["cpu"]["quota"] == 33333


def test_cpu_quota_edge_cases():
    # period alone: no limit (infinity), the period still set
    assert props(S.v1_properties({"cpu": {"period": 50000}}, V)[0]) == {
        "CPUQuotaPeriodUSec": Variant("t", 50000), "CPUQuotaPerSecUSec": Variant("t", S.MAX_UINT64)}
    # quota without period: the kernel's default period
    assert props(S.v1_properties({"cpu": {"quota": 20000}}, V)[0]) == {
        "CPUQuotaPerSecUSec": Variant("t", 200000)}
    # -1 is unlimited
    assert props(S.v1_properties({"cpu": {"quota": -1}}, V)[0]) == {
        "CPUQuotaPerSecUSec": Variant("t", S.MAX_UINT64)}
    # old systemd: no CPUQuotaPeriodUSec (< 242), no AllowedCPUs (< 244)
    assert props(S.v1_properties({"cpu": {"quota": 20000, "period": 100000, "cpus": "0"}}, 241)[0]) == {
        "CPUQuotaPerSecUSec": Variant("t", 200000)}


def test_pids_and_memory_unlimited():
    p = props(S.v1_properties({"pids": {"limit": -1}, "memory": {"limit": -1}}, V)[0])
    assert p == {"TasksMax": Variant("t", S.MAX_UINT64), "MemoryLimit": Variant("t", S.MAX_UINT64)}


def test_v2_properties():
    r = {"memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20},
         "cpu": {"shares": 1024, "quota": 10000, "period": 100000}, "pids": {"limit": 10},
         "unified": {"memory.high": "max", "pids.max": "0", "io.weight": "100", "cpu.weight": "77"}}
    p = S.v2_properties(r, V)[0]
    assert [n for n, _ in p] == ["MemoryMax", "MemoryLow", "MemorySwapMax", "CPUWeight", "CPUQuotaPeriodUSec",
                                 "CPUQuotaPerSecUSec", "TasksMax", "MemoryHigh", "TasksMax", "CPUWeight"]
    d = dict(p[:7])
    assert d["MemoryMax"] == Variant("t", 100 << 20)
    assert d["MemoryLow"] == Variant("t", 50 << 20)
    assert d["MemorySwapMax"] == Variant("t", 100 << 20)  # v2 swap excludes memory
    assert d["CPUWeight"] == Variant("t", 100)  # runc's shares -> weight: 1024 -> 100
    uni = dict(p[7:])
    assert uni == {"CPUWeight": Variant("t", 77), "MemoryHigh": Variant("t", S.MAX_UINT64),
                   "TasksMax": Variant("t", 1)}  # io.weight: files only


def test_v2_cpu_idle():
    p = S.v2_properties({"cpu": {"idle": 1, "shares": 512}}, 252)[0]
    assert p == [("CPUWeight", Variant("t", 0))]  # idle wins, the weight is dropped (runc warns)
    p = S.v2_properties({"cpu": {"idle": 1, "shares": 512}}, 251)[0]
    assert props(p) == {"CPUWeight": Variant("t", 59)}  # no idle before 252: the weight


@pytest.mark.parametrize("key, value, msg", [
    ("memory/max", "1", "must be a file name"),
    ("nodot", "1", "CONTROLLER.PARAMETER"),
    ("memory.max", "lots", "value conversion error"),
    ("pids.max", "-5", "value conversion error"),
    ("cpu.max", "1 2 3", "value invalid"),
])
def test_unified_properties_errors(key, value, msg):
    with pytest.raises(PyruncError, match=msg):
        S.unified_properties({key: value}, V)


def test_unified_cpu_max():
    assert props(S.unified_properties({"cpu.max": "max 50000"}, V)) == {
        "CPUQuotaPeriodUSec": Variant("t", 50000), "CPUQuotaPerSecUSec": Variant("t", S.MAX_UINT64)}
    assert props(S.unified_properties({"cpu.max": "25000"}, V)) == {
        "CPUQuotaPeriodUSec": Variant("t", 100000), "CPUQuotaPerSecUSec": Variant("t", 250000)}


# -- devices ---------------------------------------------------------------------------

def test_device_properties_default_rules():
    p = S.device_properties({}, None, V)
    assert p[0] == ("DeviceAllow", Variant("a(ss)", []))  # reset first, as runc
    assert p[1] == ("DevicePolicy", Variant("s", "strict"))
    allow = p[2][1].value
    assert ("char-*", "m") in allow and ("block-*", "m") in allow
    assert ("/dev/char/1:3", "rwm") in allow and ("char-136", "rwm") in allow
    assert all(not path.startswith("/dev/block") for path, _ in allow)


def test_device_properties_allow_all_and_blacklist():
    allow_all = {"devices": [{"allow": True, "access": "rwm"}]}
    assert S.device_properties(allow_all, None, V) == [
        ("DeviceAllow", Variant("a(ss)", [])), ("DevicePolicy", Variant("s", "auto"))]
    # a black-list with exceptions: systemd cannot say it, so deny all for now (runc)
    black = {"devices": [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 10, "minor": 229,
                                                          "access": "rwm"}]}
    assert S.device_properties(black, None, V) == [
        ("DeviceAllow", Variant("a(ss)", [])), ("DevicePolicy", Variant("s", "strict"))]


def test_device_properties_old_systemd_uses_proc_devices_groups():
    r = {"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "access": "r"}]}
    allow = dict(S.device_properties(r, None, 239)[2][1].value)
    assert allow.get("char-mem") == "r"  # major 1 is "mem" in /proc/devices
    allow = dict(S.device_properties(r, None, 240)[2][1].value)
    assert allow.get("char-1") == "r"


def test_device_properties_wildcard_major_with_minor_is_skipped():
    r = {"devices": [{"allow": True, "type": "c", "minor": 3, "access": "r"}]}
    allow = S.device_properties(r, None, V)[2][1].value
    assert not any(":3" in path and "*" in path for path, _ in allow)


# -- annotations -----------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("true", Variant("b", True)),
    ("false", Variant("b", False)),
    ("5", Variant("i", 5)),
    ("uint64 5", Variant("t", 5)),
    ("@t 5", Variant("t", 5)),
    ("int64 -3", Variant("x", -3)),
    ("uint32 0x10", Variant("u", 16)),
    ("1.5", Variant("d", 1.5)),
    ("'text'", Variant("s", "text")),
    ('"text"', Variant("s", "text")),
    ("'caf\u00e9 \\t'", Variant("s", "caf\u00e9 \t")),
    ("['a', 'b']", Variant("as", ["a", "b"])),
    ("@au [1, 2]", Variant("au", [1, 2])),
    ("[]", Variant("as", [])),
])
def test_parse_gvariant(text, want):
    assert S.parse_gvariant(text) == want


@pytest.mark.parametrize("text", ["uint64 -1", "byte 300", "@t 'x'", "word", "[1, 'a']", "[1", "@as 5"])
def test_parse_gvariant_refuses(text):
    with pytest.raises(ValueError):
        S.parse_gvariant(text)


def test_annotation_properties():
    ann = {"org.systemd.property.TimeoutStopSec": "uint64 7", "org.systemd.property.CollectMode": "'inactive'",
           "org.systemd.property.RuntimeMaxSec": "2.5", "other": "x"}
    assert S.annotation_properties(ann) == [
        ("CollectMode", Variant("s", "inactive")),
        ("RuntimeMaxUSec", Variant("t", 2500000)),
        ("TimeoutStopUSec", Variant("t", 7000000)),
    ]
    # "xxxSec" only after a lower-case letter, as runc ("USec" is kept)
    assert S.annotation_properties({"org.systemd.property.FooUSec": "uint64 3"}) == [("FooUSec", Variant("t", 3))]


@pytest.mark.parametrize("key, value, msg", [
    ("org.systemd.property.ab", "true", "name incorrect: too short"),
    ("org.systemd.property.A1b", "true", "non-alphabetic"),
    ("org.systemd.property.Foo", "what", "value parse error"),
    ("org.systemd.property.TimeoutStopSec", "'x'", "not a number"),
])
def test_annotation_properties_errors(key, value, msg):
    with pytest.raises(PyruncError, match=msg):
        S.annotation_properties({key: value})


# -- D-Bus wire format -------------------------------------------------------------------

def test_marshal_matches_the_spec_layout():
    m = B.encode_message(B.METHOD_CALL, 7, {1: "/o", 3: "M"}, "sy", ["ab", 5])
    assert m[:4] == b"l\x01\x00\x01"
    body_len, serial, fields_len = struct.unpack_from("<III", m, 4)
    assert serial == 7
    assert m[16:24] == b"\x01\x01o\x00\x02\x00\x00\x00"  # (PATH, variant 'o' "/o"...)
    body = m[-body_len:]
    assert body == b"\x02\x00\x00\x00ab\x00\x05"
    assert len(m) == 16 + fields_len + (-(16 + fields_len) % 8) + body_len


SIGS = {
    "y": st.integers(0, 255), "b": st.booleans(), "n": st.integers(-(1 << 15), (1 << 15) - 1),
    "q": st.integers(0, (1 << 16) - 1), "i": st.integers(-(1 << 31), (1 << 31) - 1),
    "u": st.integers(0, (1 << 32) - 1), "x": st.integers(-(1 << 63), (1 << 63) - 1),
    "t": st.integers(0, (1 << 64) - 1), "s": st.text(alphabet=st.characters(blacklist_characters="\0",
                                                                            blacklist_categories=("Cs",))),
}


@settings(max_examples=60)
@given(st.lists(st.sampled_from(sorted(SIGS)), min_size=1, max_size=5).flatmap(
    lambda sig: st.tuples(st.just("".join(sig)), st.tuples(*(SIGS[c] for c in sig)))))
def test_roundtrip_basic_types(sig_args):
    sig, args = sig_args
    m = B.decode_message(B.encode_message(B.METHOD_RETURN, 1, {5: 1}, sig, list(args)))
    assert m.body == list(args)


def test_roundtrip_containers():
    sig = "ssa(sv)a(sa(sv))a{sv}"
    args = ["u.scope", "replace",
            [("PIDs", Variant("au", [1, 2])), ("Delegate", Variant("b", True)),
             ("DeviceAllow", Variant("a(ss)", [("/dev/null", "rwm")])), ("AllowedCPUs", Variant("ay", [3, 0, 1])),
             ("MemoryMax", Variant("t", 1 << 40))],
            [],
            {"a": Variant("i", -1), "b": Variant("as", ["x", "yz"])}]
    m = B.decode_message(B.encode_message(B.METHOD_CALL, 3, {1: "/", 3: "X"}, sig, args))
    assert m.body == args


def test_split_signature():
    assert B.split_signature("sa(sv)a{sv}u") == ["s", "a(sv)", "a{sv}", "u"]
    with pytest.raises(ValueError):
        B.split_signature("a(s")


def test_parse_address():
    assert B.parse_address("unix:path=/run/dbus/system_bus_socket") == "/run/dbus/system_bus_socket"
    assert B.parse_address("tcp:host=x;unix:path=/a%20b") == "/a b"
    assert B.parse_address("unix:abstract=/tmp/x,guid=1") == "\0/tmp/x"
    assert B.parse_address("") is None


class FakePeer:
    """A D-Bus peer on a socketpair: checks the auth, answers each call with
    what `reply` returns (a list of (type, sig, body, extra fields))."""

    def __init__(self, reply):
        self.a, self.b = socket.socketpair()
        self.reply = reply
        self.auth = b""
        self.calls = []
        self.authed = threading.Event()  # set once BEGIN is in: self.auth is final
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        f = self.b
        data = self.first_read = f.recv(4096)
        f.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
        while b"BEGIN\r\n" not in data:
            data += f.recv(4096)
        self.auth, _, rest = data.partition(b"BEGIN\r\n")
        self.authed.set()
        conn = B.Connection(f)
        conn._buf = rest
        try:
            while True:
                msg = conn.recv()
                self.calls.append(msg)
                for mtype, sig, body, extra in self.reply(msg):
                    f.sendall(B.encode_message(mtype, 100 + len(self.calls), {5: msg.serial, **extra}, sig, body))
        except B.DBusError:
            return


def test_connection_call_signal_and_error():
    def reply(msg):
        if msg.member == "StartTransientUnit":
            # the job's signal may come before the method's reply
            return [(B.SIGNAL, "uoss", [1, "/job/1", msg.body[0], "done"], {2: S.MANAGER, 3: "JobRemoved"}),
                    (B.METHOD_RETURN, "o", ["/job/1"], {})]
        return [(B.ERROR, "s", ["nope"], {4: "org.freedesktop.systemd1.NoSuchUnit"})]
    peer = FakePeer(reply)
    peer.a.settimeout(10)
    conn = B.Connection(peer.a)
    conn._auth()
    assert peer.authed.wait(10)  # the client has the OK before the peer parses BEGIN
    assert peer.auth == b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n"
    # BEGIN goes with AUTH, before the server's OK: sent after it, it could
    # reach systemd 252 in one read with the first call, which then hangs
    assert peer.first_read.endswith(b"BEGIN\r\n")
    job = conn.call(S.SYSTEMD, S.OBJECT, S.MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))", "u.scope",
                    "replace", [("PIDs", Variant("au", [5]))], [])
    assert job == ["/job/1"]
    sig = conn.wait_signal(lambda m: m.member == "JobRemoved" and m.body[1] == "/job/1", 1)
    assert sig is not None and sig.body[3] == "done"
    assert peer.calls[0].body[2] == [("PIDs", Variant("au", [5]))]
    with pytest.raises(B.DBusError) as e:
        conn.call(S.SYSTEMD, S.OBJECT, S.MANAGER, "StopUnit", "ss", "u.scope", "replace")
    assert e.value.name == "org.freedesktop.systemd1.NoSuchUnit" and e.value.message == "nope"
    assert conn.wait_signal(lambda m: True, 0.05) is None
    conn.close()


def test_a_late_start_of_a_killed_creates_unit_is_stopped(monkeypatch):
    """delete --force of a create killed as it asked for its unit: the unit
    that systemd starts after our stop (the dead create's connection was
    served later) is stopped too, as long as the window lasts."""
    seen = iter([False, False, True, False, False, False, False, False, False, False, False, False, False])
    calls = []

    def call(member, sig="", *args):
        calls.append(member)
        if member == "GetUnit" and not next(seen):
            raise B.DBusError("org.freedesktop.systemd1.NoSuchUnit", "Unit x.scope not loaded.")
        return ["/org/freedesktop/systemd1/unit/x_2escope"]

    stopped = []
    monkeypatch.setattr(S, "call", call)
    monkeypatch.setattr(S, "stop_unit", lambda unit: stopped.append(unit))
    monkeypatch.setattr("time.sleep", lambda s: None)
    ticks = iter(range(100))
    monkeypatch.setattr("time.monotonic", lambda: next(ticks) * 0.01)
    S.stop_late_start("x.scope", window=0.1)
    assert stopped == ["x.scope"]  # the third look found it
    assert calls.count("GetUnit") == 10  # a look per tick until the window has passed, not just the first absence


def test_a_late_start_check_that_systemd_cannot_answer_ends(monkeypatch):
    monkeypatch.setattr(S, "call", lambda *a: (_ for _ in ()).throw(B.DBusError("", "D-Bus connection to systemd failed")))
    monkeypatch.setattr(S, "stop_unit", lambda unit: pytest.fail("stopped"))
    S.stop_late_start("x.scope", window=10)  # returns at once
