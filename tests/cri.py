"""A minimal CRI client (Kubernetes' runtime.v1.RuntimeService) in the
standard library, for the engine tests: there is no crictl in Debian 12.

gRPC over cleartext HTTP/2 on containerd's unix socket, one connection per
call: the client preface, a HEADERS frame (HPACK literals, no Huffman, no
dynamic table) and a DATA frame with the length-prefixed protobuf message;
then frames are read until the stream ends. A unary call that succeeds
answers with a DATA frame; one that fails answers with trailers only, whose
HPACK text is not decoded here (containerd logs the error).

Messages are built from nested lists: `msg((1, "x"), (2, msg(...)))`. Only
the fields the tests set or read are known by number (see the field numbers
in k8s.io/cri-api's api.proto).
"""
from __future__ import annotations

import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
SERVICE = "/runtime.v1.RuntimeService/"


class CriError(Exception):
    pass


# --------------------------------------------------------------------------- protobuf

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64/int32 as two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def msg(*fields: tuple[int, object]) -> bytes:
    """Encode fields: int/bool as varint, str/bytes as length-delimited
    (nested messages are bytes from msg()); a list repeats the field; None
    is left out."""
    out = bytearray()
    for num, value in fields:
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            if isinstance(v, (bool, int)):
                out += _varint(num << 3) + _varint(int(v))
            else:
                data = v.encode() if isinstance(v, str) else v
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def string_map(num: int, d: dict[str, str]) -> tuple[int, list[bytes]]:
    return num, [msg((1, k), (2, v)) for k, v in d.items()]


def parse(buf: bytes) -> dict[int, list]:
    """Decode one message level: field number -> values (int or bytes)."""
    fields: dict[int, list] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(buf):
        key = varint()
        kind = key & 7
        if kind == 0:
            v: object = varint()
        elif kind == 2:
            n = varint()
            v, i = buf[i:i + n], i + n
        elif kind in (1, 5):
            n = 8 if kind == 1 else 4
            v, i = buf[i:i + n], i + n
        else:
            raise CriError(f"protobuf wire type {kind} not handled")
        fields.setdefault(key >> 3, []).append(v)
    return fields


def first(fields: dict[int, list], num: int, default=None):
    return fields.get(num, [default])[0]


# --------------------------------------------------------------------------- HTTP/2 + gRPC

def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack_int(n: int, prefix_bits: int = 7) -> bytes:
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([n])
    out, n = bytearray([top]), n - top
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _headers(pairs: list[tuple[str, str]]) -> bytes:
    # literal header field without indexing, new name; strings not Huffman-coded
    return b"".join(b"\x00" + _hpack_int(len(k)) + k.encode() + _hpack_int(len(v)) + v.encode()
                    for k, v in pairs)


def call(sock_path: str, method: str, request: bytes, timeout: float = 60) -> dict[int, list]:
    """One unary RuntimeService call; returns the parsed response."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        headers = _headers([(":method", "POST"), (":scheme", "http"), (":path", SERVICE + method),
                            (":authority", "localhost"), ("content-type", "application/grpc"),
                            ("te", "trailers")])
        body = b"\x00" + struct.pack(">I", len(request)) + request
        s.sendall(PREFACE + _frame(SETTINGS, 0, 0) + _frame(HEADERS, END_HEADERS, 1, headers)
                  + _frame(DATA, END_STREAM, 1, body))
        buf, data = b"", b""

        def read(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise CriError(f"{method}: connection closed")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out
        while True:
            head = read(9)
            length = int.from_bytes(head[:3], "big")
            kind, flags = head[3], head[4]
            stream = int.from_bytes(head[5:], "big") & 0x7FFFFFFF
            payload = read(length)
            if kind == SETTINGS and not flags & ACK:
                s.sendall(_frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                s.sendall(_frame(PING, ACK, 0, payload))
            elif kind == GOAWAY or (kind == RST_STREAM and stream == 1):
                raise CriError(f"{method}: stream reset by the server ({payload!r})")
            elif kind == DATA and stream == 1:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                data += payload
            if stream == 1 and kind in (DATA, HEADERS) and flags & END_STREAM:
                break
    if len(data) < 5:
        raise CriError(f"{method} failed (a gRPC error: see containerd's log)")
    return parse(data[5:5 + int.from_bytes(data[1:5], "big")])
