"""A small D-Bus client: just what the systemd cgroup driver needs.

runc talks to systemd through godbus and go-systemd; pyrunc keeps to the
standard library, so this module speaks the wire protocol itself: SASL
EXTERNAL authentication over an AF_UNIX socket, little-endian messages, the
marshalling of every basic and container type, method calls with their
replies and errors, and signals read while waiting for a reply (systemd's
JobRemoved). Only one call is in flight at a time, as in the driver.

Values map to Python as: integers for y n q i u x t h, bool for b, float for
d, str for s o g, list for arrays (a dict for arrays of dict entries), tuple
for structs, and Variant(signature, value) for v.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any, Callable, NamedTuple
from urllib.parse import unquote

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4

# header field codes
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SENDER, _SIGNATURE = range(1, 9)
_FIELD_TYPES = {_PATH: "o", _INTERFACE: "s", _MEMBER: "s", _ERROR_NAME: "s", _REPLY_SERIAL: "u",
                _DESTINATION: "s", _SENDER: "s", _SIGNATURE: "g", 9: "u"}

_FIXED = {"y": ("B", 1), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {"y": 1, "g": 1, "v": 1, "n": 2, "q": 2, "b": 4, "i": 4, "u": 4, "h": 4, "s": 4, "o": 4,
          "a": 4, "x": 8, "t": 8, "d": 8, "(": 8, "{": 8}


class Variant(NamedTuple):
    signature: str
    value: Any


class DBusError(Exception):
    """An error reply (name is e.g. org.freedesktop.systemd1.NoSuchUnit), or a
    broken connection (name "")."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if name else message)
        self.name = name
        self.message = message


class Message(NamedTuple):
    type: int
    serial: int
    fields: dict
    body: list

    @property
    def member(self) -> str:
        return self.fields.get(_MEMBER, "")

    @property
    def interface(self) -> str:
        return self.fields.get(_INTERFACE, "")


def split_signature(sig: str) -> list[str]:
    """The complete types of a signature: "sa(sv)u" -> ["s", "a(sv)", "u"]."""
    out = []
    i = 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig: str, i: int) -> int:
    while i < len(sig) and sig[i] == "a":
        i += 1
    if i >= len(sig):
        raise ValueError(f"bad D-Bus signature {sig!r}")
    if sig[i] not in "({":
        return i + 1
    depth = 0
    for j in range(i, len(sig)):
        if sig[j] in "({":
            depth += 1
        elif sig[j] in ")}":
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"bad D-Bus signature {sig!r}")


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, t: str, v: Any) -> None:
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            self.buf += struct.pack("<" + fmt, v)
        elif c == "b":
            self.pad(4)
            self.buf += struct.pack("<I", 1 if v else 0)
        elif c in "so":
            data = v.encode()
            self.pad(4)
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
        elif c == "g":
            data = v.encode()
            self.buf += bytes((len(data),)) + data + b"\0"
        elif c == "v":
            self.put("g", v.signature)
            self.put(v.signature, v.value)
        elif c == "a":
            elem = t[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            for item in (v.items() if elem[0] == "{" else v):
                self.put(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            self.pad(8)
            for sub, item in zip(split_signature(t[1:-1]), v, strict=True):
                self.put(sub, item)
        else:
            raise ValueError(f"cannot marshal D-Bus type {t!r}")


class _Reader:
    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def get(self, t: str) -> Any:
        c = t[0]
        buf = self.buf
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.align(size)
            v = struct.unpack_from("<" + fmt, buf, self.pos)[0]
            self.pos += size
            return v
        if c == "b":
            return bool(self.get("u"))
        if c in "so":
            n = self.get("u")
            v = buf[self.pos:self.pos + n].decode(errors="replace")
            self.pos += n + 1
            return v
        if c == "g":
            n = buf[self.pos]
            v = buf[self.pos + 1:self.pos + 1 + n].decode()
            self.pos += n + 2
            return v
        if c == "v":
            sig = self.get("g")
            return Variant(sig, self.get(sig))
        if c == "a":
            n = self.get("u")
            elem = t[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            items = []
            while self.pos < end:
                items.append(self.get(elem))
            return dict(items) if elem[0] == "{" else items
        if c in "({":
            self.align(8)
            return tuple(self.get(sub) for sub in split_signature(t[1:-1]))
        raise ValueError(f"cannot unmarshal D-Bus type {t!r}")


def encode_message(mtype: int, serial: int, fields: dict, sig: str, args: list, flags: int = 0) -> bytes:
    body = _Writer()
    for t, v in zip(split_signature(sig), args, strict=True):
        body.put(t, v)
    if sig:
        fields = {**fields, _SIGNATURE: sig}
    head = _Writer()
    head.buf += struct.pack("<cBBBII", b"l", mtype, flags, 1, len(body.buf), serial)
    head.put("a(yv)", [(code, Variant(_FIELD_TYPES[code], val)) for code, val in fields.items()])
    head.pad(8)
    return bytes(head.buf + body.buf)


def decode_message(data: bytes) -> Message:
    if data[:1] != b"l":
        raise DBusError("", "big-endian D-Bus messages are not supported")
    r = _Reader(data, 12)
    fields = {code: var.value for code, var in r.get("a(yv)")}
    r.align(8)
    sig = fields.get(_SIGNATURE, "")
    body = [r.get(t) for t in split_signature(sig)]
    return Message(data[1], struct.unpack_from("<I", data, 8)[0], fields, body)


def _message_length(head: bytes) -> int:
    """Total length of a message from its first 16 bytes."""
    body_len, _, fields_len = struct.unpack_from("<III", head, 4)
    return 16 + fields_len + (-(16 + fields_len) % 8) + body_len


class Connection:
    """One authenticated connection to a bus or to a peer (systemd's private
    socket, which needs no Hello)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.serial = 0
        self.pending_signals: list[Message] = []
        self._buf = b""

    @classmethod
    def open(cls, path: str, hello: bool, timeout: float = 30.0) -> "Connection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            conn = cls(sock)
            conn._auth()
            if hello:
                conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
        except BaseException:
            sock.close()
            raise
        return conn

    def close(self) -> None:
        self.sock.close()

    def _auth(self) -> None:
        """SASL EXTERNAL, with BEGIN in the same write, as sd-bus's own
        clients send it. Sent after the server's OK instead, BEGIN can reach
        systemd in one read with the first message, which systemd 252 then
        leaves unprocessed until more data comes: a hang (seen here)."""
        uid = str(os.geteuid()).encode().hex()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\nBEGIN\r\n")
        line = self._read_line()
        if not line.startswith(b"OK "):
            raise DBusError("", f"D-Bus authentication refused: {line.decode(errors='replace').strip()}")

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise DBusError("", "D-Bus peer closed the connection during authentication")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise DBusError("", "D-Bus peer closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv(self) -> Message:
        head = self._recv_exact(16)
        rest = self._recv_exact(_message_length(head) - 16)
        return decode_message(head + rest)

    def call(self, dest: str, path: str, iface: str, member: str, sig: str = "", *args: Any) -> list:
        """Call a method and return the reply's body; an error reply raises
        DBusError. Signals that arrive meanwhile are kept for wait_signal."""
        self.serial += 1
        serial = self.serial
        fields = {_PATH: path, _INTERFACE: iface, _MEMBER: member}
        if dest:
            fields[_DESTINATION] = dest
        self.sock.sendall(encode_message(METHOD_CALL, serial, fields, sig, list(args)))
        while True:
            msg = self.recv()
            if msg.type == SIGNAL:
                self.pending_signals.append(msg)
            elif msg.fields.get(_REPLY_SERIAL) == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(msg.fields.get(_ERROR_NAME, "org.freedesktop.DBus.Error.Failed"), text)
                return msg.body

    def wait_signal(self, match: Callable[[Message], bool], timeout: float) -> Message | None:
        """The first signal (already received or to come) that `match` accepts,
        or None after `timeout` seconds."""
        for i, msg in enumerate(self.pending_signals):
            if match(msg):
                del self.pending_signals[i]
                return msg
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                try:
                    msg = self.recv()
                except (socket.timeout, TimeoutError):
                    return None
                if msg.type == SIGNAL and match(msg):
                    return msg
        finally:
            self.sock.settimeout(old)


def parse_address(address: str) -> str | None:
    """The socket path of the first unix:path= entry of a D-Bus address list
    (abstract sockets get their leading NUL)."""
    for entry in address.split(";"):
        kind, _, params = entry.partition(":")
        if kind != "unix":
            continue
        kv = dict(p.partition("=")[::2] for p in params.split(",") if p)
        if kv.get("path"):
            return unquote(kv["path"])  # D-Bus escapes bytes as %XX, as URLs do
        if kv.get("abstract"):
            return "\0" + unquote(kv["abstract"])
    return None

