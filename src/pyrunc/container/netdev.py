"""linux.netDevices (runtime-spec 1.2): move host network devices into the
container's network namespace, over rtnetlink (AF_NETLINK sockets, no `ip`).

What runc does (libcontainer/network_linux.go devChangeNetNamespace, called by
the parent from initProcess.setupNetworkDevices once the init's pid is known
and it has joined the cgroup, before the init gets its config), and this
module matches:

1. look the device up by name in the runtime's network namespace;
2. list its addresses (runc lists them after step 3, by which time the
   kernel has flushed the IPv6 ones: pyrunc keeps them);
3. set it down (so the host side sees no flapping while it moves);
4. one RTM_NEWLINK: IFLA_IFNAME (the new name, or the same) + IFLA_NET_NS_FD,
   so the move and the rename are one operation (a name that already exists
   in the container fails with EEXIST unless it is a "%d" template);
5. in the container's namespace: re-add the addresses that are permanent
   (IFA_F_PERMANENT) with global scope (RT_SCOPE_UNIVERSE) -- the kernel
   drops every address on a move; MTU and MAC address survive the move;
6. set it up.

Validation (runc's validate.netdevices): a network namespace must be in the
config (new, or a path: runc allows a pre-created one), not rootless, valid
device names.

On delete runc does nothing, and runtime-spec forbids the runtime to move the
device back ("The runtime MUST NOT attempt to move the interface out of the
namespace before deletion"): when the last process of a network namespace
exits, the kernel moves physical devices back to the initial namespace (with
their container-side name, or "dev%d" on a clash) and destroys virtual ones
(veth, macvlan, dummy ...). A namespace given by path outlives the container
and keeps the device; its owner decides. `move_out` exists for callers that
want the device back explicitly (see its docstring); the runtime's `delete`
should not call it.
"""
from __future__ import annotations

import _socket
import os
import struct

from ..errors import ConfigError, PyruncError
from ..linux import consts as C

_NLMSGHDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")   # family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")         # len, type
_NLMSGERR = struct.Struct("=i")        # error (negative errno), then the request's header


def _align(n: int) -> int:
    return (n + 3) & ~3


# -- packing and parsing (pure) --------------------------------------------------

def rtattr(typ: int, data: bytes) -> bytes:
    n = _RTATTR.size + len(data)
    return _RTATTR.pack(n, typ) + data + b"\0" * (_align(n) - n)


def rtattr_str(typ: int, s: str) -> bytes:
    return rtattr(typ, s.encode() + b"\0")


def rtattr_u32(typ: int, v: int) -> bytes:
    return rtattr(typ, struct.pack("=I", v))


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return _IFINFOMSG.pack(family, 0, index, flags, change)


def ifaddrmsg(family: int, prefixlen: int, index: int, flags: int = 0, scope: int = 0) -> bytes:
    return _IFADDRMSG.pack(family, prefixlen, flags, scope, index)


def nlmsg(typ: int, flags: int, seq: int, body: bytes) -> bytes:
    n = _NLMSGHDR.size + len(body)
    return _NLMSGHDR.pack(n, typ, flags, seq, 0) + body + b"\0" * (_align(n) - n)


def parse_messages(buf: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split a datagram into (type, flags, seq, payload) messages."""
    out = []
    off = 0
    while off + _NLMSGHDR.size <= len(buf):
        n, typ, flags, seq, _pid = _NLMSGHDR.unpack_from(buf, off)
        if n < _NLMSGHDR.size or off + n > len(buf):
            break
        out.append((typ, flags, seq, buf[off + _NLMSGHDR.size:off + n]))
        off += _align(n)
    return out


def parse_attrs(data: bytes, off: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + _RTATTR.size <= len(data):
        n, typ = _RTATTR.unpack_from(data, off)
        if n < _RTATTR.size or off + n > len(data):
            break
        out[typ & 0x3FFF] = data[off + _RTATTR.size:off + n]  # without NLA_F_NESTED / NET_BYTEORDER
        off += _align(n)
    return out


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace")


def parse_link(payload: bytes) -> dict:
    _fam, _typ, index, flags, _chg = _IFINFOMSG.unpack_from(payload)
    a = parse_attrs(payload, _IFINFOMSG.size)
    return {"index": index, "flags": flags, "name": _cstr(a.get(C.IFLA_IFNAME, b"")),
            "mac": a.get(C.IFLA_ADDRESS, b""),
            "mtu": struct.unpack("=I", a[C.IFLA_MTU])[0] if len(a.get(C.IFLA_MTU, b"")) == 4 else 0}


def parse_addr(payload: bytes) -> dict:
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(payload)
    a = parse_attrs(payload, _IFADDRMSG.size)
    if len(a.get(C.IFA_FLAGS, b"")) == 4:
        flags = struct.unpack("=I", a[C.IFA_FLAGS])[0]
    return {"family": family, "prefixlen": prefixlen, "flags": flags, "scope": scope, "index": index,
            "local": a.get(C.IFA_LOCAL), "address": a.get(C.IFA_ADDRESS), "broadcast": a.get(C.IFA_BROADCAST)}


def move_request(index: int, name: str, netns_fd: int) -> bytes:
    """RTM_NEWLINK body: move (IFLA_NET_NS_FD) and rename (IFLA_IFNAME) in one."""
    return ifinfomsg(index) + rtattr_str(C.IFLA_IFNAME, name) + rtattr_u32(C.IFLA_NET_NS_FD, netns_fd)


def addr_request(a: dict, index: int) -> bytes:
    """RTM_NEWADDR body re-creating address `a` (from parse_addr) on `index`:
    local, peer and broadcast as they were; scope universe; no label (the
    kernel uses the device's name), as runc's AddrAdd."""
    local = a["local"] or a["address"]
    body = ifaddrmsg(a["family"], a["prefixlen"], index)
    body += rtattr(C.IFA_LOCAL, local) + rtattr(C.IFA_ADDRESS, a["address"] or local)
    if a["family"] == _socket.AF_INET and a["broadcast"]:
        body += rtattr(C.IFA_BROADCAST, a["broadcast"])
    return body


def addr_text(a: dict) -> str:
    ip = a["local"] or a["address"] or b""
    try:
        return f"{_socket.inet_ntop(a['family'], ip)}/{a['prefixlen']}"
    except (OSError, ValueError):
        return f"?/{a['prefixlen']}"


def movable_addresses(addrs: list[dict], index: int) -> list[dict]:
    """The addresses of `index` that follow the device: permanent, global scope."""
    return [a for a in addrs if a["index"] == index and a["flags"] & C.IFA_F_PERMANENT
            and a["scope"] == C.RT_SCOPE_UNIVERSE and a["family"] in (_socket.AF_INET, _socket.AF_INET6)]


# -- a tiny rtnetlink client ---------------------------------------------------------

class NetlinkError(OSError):
    pass


class Netlink:
    """One NETLINK_ROUTE socket, bound in the network namespace it was made in."""

    def __init__(self, sock=None) -> None:
        self.sock = sock or _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                           C.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def in_netns(cls, netns_fd: int) -> "Netlink":
        """A socket in another network namespace: setns there, make it, come back
        (the socket stays in the namespace it was created in)."""
        from ..linux import sys as L
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            L.setns(netns_fd, C.CLONE_NEWNET)
            try:
                sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, C.NETLINK_ROUTE)
            finally:
                L.setns(own, C.CLONE_NEWNET)
        finally:
            os.close(own)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, typ: int, body: bytes, flags: int = C.NLM_F_ACK) -> list[tuple[int, bytes]]:
        """Send one request; return the (type, payload) replies. A dump ends at
        NLMSG_DONE, anything else at its ack. A kernel error is an OSError."""
        self.seq += 1
        seq = self.seq
        self.sock.sendto(nlmsg(typ, C.NLM_F_REQUEST | flags, seq, body), (0, 0))
        out: list[tuple[int, bytes]] = []
        while True:
            buf = self.sock.recv(1 << 18)
            for mtyp, _mflags, mseq, payload in parse_messages(buf):
                if mseq != seq:
                    continue
                if mtyp == C.NLMSG_DONE:
                    return out
                if mtyp == C.NLMSG_ERROR:
                    err = -_NLMSGERR.unpack_from(payload)[0]
                    if err:
                        raise NetlinkError(err, os.strerror(err))
                    return out
                if mtyp != C.NLMSG_NOOP:
                    out.append((mtyp, payload))
                    if not (flags & C.NLM_F_DUMP) and not (_mflags & C.NLM_F_MULTI) and not (flags & C.NLM_F_ACK):
                        return out

    def link(self, name: str | None = None, index: int = 0) -> dict | None:
        """RTM_GETLINK by name or index; None if there is no such device."""
        body = ifinfomsg(index) + (rtattr_str(C.IFLA_IFNAME, name) if name else b"")
        try:
            replies = self.request(C.RTM_GETLINK, body, flags=0)
        except OSError as e:
            if e.errno in (19, 6):  # ENODEV, ENXIO
                return None
            raise
        for typ, payload in replies:
            if typ == C.RTM_NEWLINK:
                return parse_link(payload)
        return None

    def links(self) -> list[dict]:
        return [parse_link(p) for t, p in self.request(C.RTM_GETLINK, ifinfomsg(), flags=C.NLM_F_DUMP)
                if t == C.RTM_NEWLINK]

    def addresses(self, index: int = 0) -> list[dict]:
        """RTM_GETADDR dump of every family, filtered to `index` if given."""
        out = [parse_addr(p) for t, p in self.request(C.RTM_GETADDR, ifaddrmsg(0, 0, 0), flags=C.NLM_F_DUMP)
               if t == C.RTM_NEWADDR]
        return [a for a in out if not index or a["index"] == index]

    def set_up(self, index: int, up: bool) -> None:
        self.request(C.RTM_NEWLINK, ifinfomsg(index, C.IFF_UP if up else 0, C.IFF_UP))

    def move(self, index: int, name: str, netns_fd: int) -> None:
        self.request(C.RTM_NEWLINK, move_request(index, name, netns_fd))

    def add_address(self, a: dict, index: int) -> None:
        self.request(C.RTM_NEWADDR, addr_request(a, index), flags=C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL)


# -- validation ----------------------------------------------------------------------

def _goq(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def valid_name(name: object) -> bool:
    """The kernel's dev_valid_name (runc's devValidName checks len <= 16; the
    kernel's limit is IFNAMSIZ - 1 = 15 bytes), plus its one-"%d" template rule."""
    if not isinstance(name, str) or not name or len(name.encode()) >= C.IFNAMSIZ:
        return False
    if name in (".", "..") or "/" in name or ":" in name or any(c.isspace() for c in name):
        return False
    p = name.find("%")
    if p >= 0 and (name[p + 1:p + 2] != "d" or "%" in name[p + 2:]):
        return False
    return True


def validate(linux: dict | None, namespaces: dict[str, str]) -> None:
    """runc's checks before anything exists, plus: each host device must exist
    in the runtime's network namespace, and no two may get the same name."""
    devices = (linux or {}).get("netDevices")
    if not devices:
        return
    if not isinstance(devices, dict):
        raise ConfigError("invalid config: linux.netDevices has the wrong type", "linux.netDevices")
    if "network" not in namespaces:
        raise ConfigError("unable to move network devices without a NET namespace", "linux.netDevices")
    if os.geteuid() != 0:
        raise ConfigError("network devices are not supported for rootless containers", "linux.netDevices")
    from ..fastjson import key_path
    targets: set[str] = set()
    for name, dev in devices.items():
        at = key_path("linux.netDevices", name)
        if not valid_name(name):
            raise ConfigError(f"invalid network device name {_goq(name)}", at)
        if dev is not None and not isinstance(dev, dict):
            raise ConfigError(f"invalid config: linux.netDevices[{name}] has the wrong type", at)
        new = (dev or {}).get("name") or ""
        if new and not valid_name(new):
            raise ConfigError(f"invalid network device name {_goq(str(new))}", at + ".name")
        target = new or name
        if "%" not in target:
            if target in targets:
                raise ConfigError(f"network device name {_goq(target)} is given to two devices", at)
            targets.add(target)
        try:
            _socket.if_nametoindex(name)
        except OSError as e:
            raise ConfigError(f"link not found for interface {name} on runtime namespace: Link not found", at) from e


# -- moving ----------------------------------------------------------------------------

def _err(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def _open_netns(netns: str | int) -> tuple[int, bool, str]:
    """(fd, whether we opened it, the name used in messages)."""
    if isinstance(netns, int):
        return netns, False, f"/proc/self/fd/{netns}"
    return os.open(netns, os.O_RDONLY | os.O_CLOEXEC), True, netns


def _find_moved(ns: Netlink, host: dict, target: str) -> dict | None:
    """The device in the container's namespace after the move: by its name,
    or for a "%d" template by its index (kept when free) or its MAC address."""
    if "%" not in target:
        return ns.link(target)
    import fnmatch
    pat = target.replace("%d", "[0-9]*")
    link = ns.link(index=host["index"])
    if link and fnmatch.fnmatchcase(link["name"], pat):
        return link
    for link in ns.links():
        if fnmatch.fnmatchcase(link["name"], pat) and link["mac"] == host["mac"]:
            return link
    return None


def _restore(host: Netlink, ns: Netlink, link: dict, was_up: bool) -> None:
    """After a failed move: bring the device back if the kernel moved it
    anyway (it moves, then renames), and leave it as it was found."""
    try:
        if host.link(index=link["index"]) is None:
            there = ns.link(link["name"])
            if there is None or there["mac"] != link["mac"]:
                return
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                ns.move(there["index"], link["name"], own)
            finally:
                os.close(own)
        back = host.link(link["name"])
        if back is not None and was_up:
            host.set_up(back["index"], True)
    except OSError:
        pass


def move_in(devices: dict, netns: str | int) -> list[dict]:
    """Move each host device of linux.netDevices into `netns` (a namespace file
    such as /proc/<init pid>/ns/net, or an open fd of one), renamed to its
    "name" if given, with its permanent global addresses, and set it up.

    Returns one record per device moved, for state.json:
    {"name": host name, "containerName": name in the container,
     "index": ifindex in the container, "up": it was up on the host}.
    On error: PyruncError "move netDevice X to namespace P: ..." (runc's
    text); devices already moved stay where they are (as in runc: the kernel
    returns physical ones when the namespace dies)."""
    try:
        fd, own, path = _open_netns(netns)
    except OSError as e:
        raise PyruncError(f"could not get network namespace from path {netns}: {_err(e)}") from None
    records: list[dict] = []
    try:
        try:
            host = Netlink()
            try:
                ns = Netlink.in_netns(fd)
            except BaseException:
                host.close()
                raise
        except OSError as e:
            raise PyruncError(f"could not get network namespace handle for {path}: {_err(e)}") from None
        with host, ns:
            for name, dev in devices.items():
                target = (dev or {}).get("name") or name

                def fail(msg: str) -> PyruncError:
                    return PyruncError(f"move netDevice {name} to namespace {path}: {msg}")

                try:
                    link = host.link(name)
                except OSError as e:
                    raise fail(f"link not found for interface {name} on runtime namespace: {_err(e)}") from None
                if link is None:
                    raise fail(f"link not found for interface {name} on runtime namespace: Link not found")
                was_up = bool(link["flags"] & C.IFF_UP)
                # addresses first: setting the link down flushes its IPv6
                # addresses (unless net.ipv6.conf.*.keep_addr_on_down), which
                # runc, listing them after, loses
                try:
                    addrs = movable_addresses(host.addresses(link["index"]), link["index"])
                except OSError as e:
                    raise fail(f"fail to get ip addresses: {_err(e)}") from None
                try:
                    host.set_up(link["index"], False)
                except OSError as e:
                    raise fail(f"fail to set link down: {_err(e)}") from None
                try:
                    # the kernel moves first and renames after: a clash would
                    # leave the device in the container under its host name
                    if "%" not in target and ns.link(target) is not None:
                        raise NetlinkError(17, os.strerror(17))
                    host.move(link["index"], target, fd)
                except OSError as e:
                    _restore(host, ns, link, was_up)
                    raise fail(f"fail to move network device {name} to network namespace {path}: {_err(e)}") from None
                try:
                    moved = _find_moved(ns, link, target)
                except OSError as e:
                    raise fail(f"link not found for interface {target} on namespace {path} : {_err(e)}") from None
                if moved is None:
                    raise fail(f"link not found for interface {target} on namespace {path} : Link not found")
                for a in addrs:
                    try:
                        ns.add_address(a, moved["index"])
                    except OSError as e:
                        raise fail(f"fail to set up address {addr_text(a)} on namespace {path}: {_err(e)}") from None
                try:
                    ns.set_up(moved["index"], True)
                except OSError as e:
                    raise fail(f"fail to set up interface {moved['name']} on namespace {path}: {_err(e)}") from None
                records.append({"name": name, "containerName": moved["name"], "index": moved["index"], "up": was_up})
    finally:
        if own:
            os.close(fd)
    return records


def move_out(records: list[dict], netns: str | int, target: str | int = "/proc/self/ns/net") -> list[str]:
    """Move devices recorded by `move_in` back from the container's namespace to
    `target` (default: the caller's network namespace, i.e. the host's), with
    their original names, permanent global addresses and up/down state.

    NOT for `delete` by default: runtime-spec forbids it and runc does not do
    it (see the module docstring). Best effort: a namespace that is gone
    (the kernel has already returned physical devices and destroyed virtual
    ones) or a device that is no longer there is skipped, every other failure
    is a warning. Returns the host names of the devices moved back.

    Callers must make sure `netns` is still the container's: a
    /proc/<pid>/ns/net path of a dead init may name another process's
    namespace once the pid is reused."""
    from .. import log
    try:
        fd, own, path = _open_netns(netns)
    except (FileNotFoundError, ProcessLookupError):
        return []
    moved_back: list[str] = []
    try:
        tfd, town, _tpath = _open_netns(target)
        try:
            with Netlink.in_netns(fd) as ns, Netlink.in_netns(tfd) as host:
                for r in records:
                    name, cname = r["name"], r.get("containerName") or r["name"]
                    try:
                        link = ns.link(cname) or ns.link(index=r.get("index", 0))
                        if link is None:
                            continue
                        addrs = movable_addresses(ns.addresses(link["index"]), link["index"])
                        ns.set_up(link["index"], False)
                        ns.move(link["index"], name, tfd)
                        back = host.link(name)
                        if back is None:
                            continue
                        for a in addrs:
                            try:
                                host.add_address(a, back["index"])
                            except OSError as e:
                                if e.errno != 17:  # EEXIST: the host has it already
                                    raise
                        if r.get("up"):
                            host.set_up(back["index"], True)
                        moved_back.append(name)
                    except OSError as e:
                        log.warn(f"moving network device {cname} back from {path} as {name}: {_err(e)}")
        finally:
            if town:
                os.close(tfd)
    finally:
        if own:
            os.close(fd)
    return moved_back


def netns_path(pid: int) -> str:
    return f"/proc/{pid}/ns/net"
