"""container/netdev.py: validation of linux.netDevices (runc's rules and
messages) and the rtnetlink messages, packed and parsed without a kernel."""
from __future__ import annotations

import socket
import struct

import pytest

from pyrunc.container import netdev as N
from pyrunc.errors import PyruncError
from pyrunc.linux import consts as C

NET = {"network": "", "mount": ""}


# -- validation ----------------------------------------------------------------------

def bad(linux, nss=NET) -> str:
    with pytest.raises(PyruncError) as ei:
        N.validate(linux, nss)
    return str(ei.value)


def test_no_devices_is_fine_without_netns():
    N.validate({}, {"mount": ""})
    N.validate(None, {})
    N.validate({"netDevices": {}}, {"mount": ""})


def test_needs_a_network_namespace():
    assert bad({"netDevices": {"lo": {}}}, {"mount": ""}) == \
        "unable to move network devices without a NET namespace"


def test_a_network_namespace_by_path_is_allowed():
    # runc: Namespaces.Contains(NEWNET), so a pre-created namespace is fine
    N.validate({"netDevices": {"lo": {}}}, {"network": "/var/run/netns/x", "mount": ""})


def test_rootless_refused(monkeypatch):
    monkeypatch.setattr(N.os, "geteuid", lambda: 1000)
    assert bad({"netDevices": {"lo": {}}}) == "network devices are not supported for rootless containers"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a:b", "a b", "a\tb", "x" * 16, "é" * 8,
                                  "eth%", "eth%s", "e%d%d", "%%d"])
def test_invalid_names(name):
    assert not N.valid_name(name)
    assert bad({"netDevices": {name: {}}}) == f'invalid network device name "{name}"'
    if name:  # an empty "name" means: keep the host name
        assert bad({"netDevices": {"lo": {"name": name}}}) == f'invalid network device name "{name}"'


@pytest.mark.parametrize("name", ["eth0", "x" * 15, "ctr_dummy0", "eth%d", "%d", "veth-1.2", "a@b"])
def test_valid_names(name):
    assert N.valid_name(name)


def test_empty_new_name_means_keep():
    N.validate({"netDevices": {"lo": {"name": ""}}}, NET)
    N.validate({"netDevices": {"lo": None}}, NET)


def test_types():
    assert bad({"netDevices": ["lo"]}) == "invalid config: linux.netDevices has the wrong type"
    assert bad({"netDevices": {"lo": "ctr0"}}) == "invalid config: linux.netDevices[lo] has the wrong type"


def test_two_devices_one_name():
    assert bad({"netDevices": {"lo": {"name": "x0"}, "lo2": {"name": "x0"}}}) == \
        'network device name "x0" is given to two devices'
    assert bad({"netDevices": {"lo": {}, "lo2": {"name": "lo"}}}) == 'network device name "lo" is given to two devices'


def test_templates_may_repeat(monkeypatch):
    monkeypatch.setattr(N._socket, "if_nametoindex", lambda n: 1)
    N.validate({"netDevices": {"a": {"name": "c%d"}, "b": {"name": "c%d"}}}, NET)


def test_missing_host_device():
    assert bad({"netDevices": {"nosuchdev0": {}}}) == \
        "link not found for interface nosuchdev0 on runtime namespace: Link not found"


# -- packing -------------------------------------------------------------------------------

def test_rtattr_padding():
    assert N.rtattr(3, b"ab") == struct.pack("=HH", 6, 3) + b"ab\0\0"
    assert N.rtattr(3, b"abcd") == struct.pack("=HH", 8, 3) + b"abcd"
    assert N.rtattr_str(C.IFLA_IFNAME, "eth0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert N.rtattr_u32(C.IFLA_NET_NS_FD, 7) == struct.pack("=HHI", 8, 28, 7)


def test_nlmsg_header():
    m = N.nlmsg(C.RTM_NEWLINK, C.NLM_F_REQUEST | C.NLM_F_ACK, 42, b"x" * 16)
    assert struct.unpack_from("=IHHII", m) == (32, 16, 5, 42, 0)
    assert len(m) == 32


def test_ifinfomsg_layout():
    b = N.ifinfomsg(5, C.IFF_UP, C.IFF_UP)
    assert len(b) == 16
    assert b == bytes([0, 0]) + struct.pack("=HiII", 0, 5, 1, 1)


def test_move_request():
    body = N.move_request(9, "ctr0", 11)
    assert body[:16] == N.ifinfomsg(9)
    attrs = N.parse_attrs(body, 16)
    assert attrs == {C.IFLA_IFNAME: b"ctr0\0", C.IFLA_NET_NS_FD: struct.pack("=I", 11)}
    assert len(body) % 4 == 0


def _link_payload(index, name, flags=0, mac=b"\x00\x11\x22\x33\x44\x55", mtu=1500):
    return (N.ifinfomsg(index, flags) + N.rtattr_str(C.IFLA_IFNAME, name)
            + N.rtattr(C.IFLA_ADDRESS, mac) + N.rtattr_u32(C.IFLA_MTU, mtu))


def test_parse_link():
    link = N.parse_link(_link_payload(4, "eth1", C.IFF_UP, mtu=1789))
    assert link == {"index": 4, "flags": 1, "name": "eth1", "mac": b"\x00\x11\x22\x33\x44\x55", "mtu": 1789}


def _addr_payload(family, ip, prefixlen, index, flags=C.IFA_F_PERMANENT, scope=0, peer=None, brd=None, xflags=None):
    body = N.ifaddrmsg(family, prefixlen, index, flags & 0xFF, scope)
    raw = socket.inet_pton(family, ip)
    body += N.rtattr(C.IFA_ADDRESS, socket.inet_pton(family, peer) if peer else raw)
    if family == socket.AF_INET or peer:
        body += N.rtattr(C.IFA_LOCAL, raw)
    if brd:
        body += N.rtattr(C.IFA_BROADCAST, socket.inet_pton(family, brd))
    body += N.rtattr_str(C.IFA_LABEL, "eth1")
    if xflags is not None:
        body += N.rtattr_u32(C.IFA_FLAGS, xflags)
    return body


def test_parse_addr_and_ifa_flags():
    a = N.parse_addr(_addr_payload(socket.AF_INET, "10.0.0.1", 24, 3, brd="10.0.0.255", xflags=0x280))
    assert a["family"] == socket.AF_INET and a["prefixlen"] == 24 and a["index"] == 3
    assert a["flags"] == 0x280  # IFA_FLAGS (32 bits) wins over the 8-bit ifa_flags
    assert a["local"] == socket.inet_pton(socket.AF_INET, "10.0.0.1")
    assert a["broadcast"] == socket.inet_pton(socket.AF_INET, "10.0.0.255")
    assert N.addr_text(a) == "10.0.0.1/24"
    b = N.parse_addr(_addr_payload(socket.AF_INET6, "fd00::1", 64, 3))
    assert b["local"] is None and N.addr_text(b) == "fd00::1/64"


def test_movable_addresses():
    addrs = [N.parse_addr(p) for p in (
        _addr_payload(socket.AF_INET, "10.0.0.1", 24, 3),                          # yes
        _addr_payload(socket.AF_INET6, "fd00::1", 64, 3),                           # yes
        _addr_payload(socket.AF_INET, "127.0.0.33", 8, 3, scope=254),              # host scope: no
        _addr_payload(socket.AF_INET6, "fe80::1", 64, 3, scope=253),               # link scope: no
        _addr_payload(socket.AF_INET, "10.0.0.2", 24, 3, flags=0),                 # dynamic: no
        _addr_payload(socket.AF_INET, "10.9.0.1", 24, 4),                          # other device: no
    )]
    assert [N.addr_text(a) for a in N.movable_addresses(addrs, 3)] == ["10.0.0.1/24", "fd00::1/64"]


def test_addr_request_keeps_peer_and_broadcast():
    a = N.parse_addr(_addr_payload(socket.AF_INET, "10.1.1.1", 32, 3, peer="10.1.1.2", brd=None))
    body = N.addr_request(a, 12)
    fam, plen, flags, scope, index = struct.unpack_from("=BBBBI", body)
    assert (fam, plen, flags, scope, index) == (socket.AF_INET, 32, 0, 0, 12)
    at = N.parse_attrs(body, 8)
    assert at[C.IFA_LOCAL] == socket.inet_pton(socket.AF_INET, "10.1.1.1")
    assert at[C.IFA_ADDRESS] == socket.inet_pton(socket.AF_INET, "10.1.1.2")
    assert C.IFA_BROADCAST not in at and C.IFA_LABEL not in at
    b = N.parse_addr(_addr_payload(socket.AF_INET, "10.0.0.1", 24, 3, brd="10.0.0.255"))
    assert N.parse_attrs(N.addr_request(b, 5), 8)[C.IFA_BROADCAST] == socket.inet_pton(socket.AF_INET, "10.0.0.255")
    c = N.parse_addr(_addr_payload(socket.AF_INET6, "fd00::1", 64, 3))
    at = N.parse_attrs(N.addr_request(c, 5), 8)
    assert at[C.IFA_LOCAL] == at[C.IFA_ADDRESS] == socket.inet_pton(socket.AF_INET6, "fd00::1")


def test_parse_messages():
    buf = N.nlmsg(16, 2, 1, b"abc") + N.nlmsg(3, 2, 1, struct.pack("=i", 0))
    assert N.parse_messages(buf) == [(16, 2, 1, b"abc"), (3, 2, 1, struct.pack("=i", 0))]
    assert N.parse_messages(buf[:10]) == []  # truncated: nothing half-parsed


# -- the client, against a fake socket --------------------------------------------------------

class FakeSock:
    def __init__(self, replies):
        self.replies = list(replies)
        self.sent = []

    def bind(self, addr):
        pass

    def sendto(self, data, addr):
        self.sent.append(data)

    def recv(self, n):
        return self.replies.pop(0)

    def close(self):
        pass


def _ack(seq, err=0):
    return N.nlmsg(C.NLMSG_ERROR, 0, seq, struct.pack("=i", err) + N.nlmsg(16, 5, seq, b""))


def test_request_ack_and_error():
    nl = N.Netlink(FakeSock([_ack(1), _ack(2, -17)]))
    assert nl.request(C.RTM_NEWLINK, N.move_request(3, "x", 4)) == []
    sent = nl.sock.sent[0]
    assert struct.unpack_from("=IHHII", sent)[:4] == (len(sent), C.RTM_NEWLINK, C.NLM_F_REQUEST | C.NLM_F_ACK, 1)
    with pytest.raises(OSError) as ei:
        nl.set_up(3, True)
    assert ei.value.errno == 17


def test_request_skips_other_sequence_numbers():
    nl = N.Netlink(FakeSock([_ack(7, -1), _ack(1)]))
    assert nl.request(C.RTM_SETLINK, N.ifinfomsg(1)) == []


def test_link_lookup_and_not_found():
    reply = N.nlmsg(C.RTM_NEWLINK, 0, 1, _link_payload(4, "eth1"))
    nl = N.Netlink(FakeSock([reply, _ack(2, -19)]))
    assert nl.link("eth1")["index"] == 4
    sent = N.parse_messages(nl.sock.sent[0])[0]
    assert sent[0] == C.RTM_GETLINK and sent[1] == C.NLM_F_REQUEST
    assert N.parse_attrs(sent[3], 16) == {C.IFLA_IFNAME: b"eth1\0"}
    assert nl.link("nope") is None


def test_dump_until_done():
    a1 = N.nlmsg(C.RTM_NEWADDR, C.NLM_F_MULTI, 1, _addr_payload(socket.AF_INET, "10.0.0.1", 24, 3))
    a2 = N.nlmsg(C.RTM_NEWADDR, C.NLM_F_MULTI | C.NLM_F_DUMP_INTR, 1, _addr_payload(socket.AF_INET, "10.0.0.2", 24, 4))
    done = N.nlmsg(C.NLMSG_DONE, C.NLM_F_MULTI, 1, struct.pack("=i", 0))
    nl = N.Netlink(FakeSock([a1, a2 + done]))
    got = nl.addresses(3)
    assert [N.addr_text(a) for a in got] == ["10.0.0.1/24"]
    sent = N.parse_messages(nl.sock.sent[0])[0]
    assert sent[0] == C.RTM_GETADDR and sent[1] == C.NLM_F_REQUEST | C.NLM_F_DUMP
