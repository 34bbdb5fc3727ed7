"""A small protobuf (proto3) wire codec, written for the shim.

containerd speaks protobuf to its shims; the messages the Task service needs
are few and flat, so a table-driven codec of our own does the job without a
generated module or a compiled dependency. A message is a class deriving
from `Message` whose FIELDS table gives each field's number, attribute name
and type (as in the .proto file); `encode()` writes proto3's canonical form
(fields in number order, defaults left out, numeric repeated fields packed,
map entries sorted by key, as gogo/protobuf writes them) and `decode()` reads
what any conforming encoder writes (packed or not, fields in any order,
unknown fields skipped, a repeated message field merged), raising
DecodeError, with one line of text, on input that is not protobuf.

Encoding reference: https://protobuf.dev/programming-guides/encoding/
"""
from __future__ import annotations

import struct
import time

TYPE_CHECKING = False  # typing costs the shim's `start` 4 ms to import
if TYPE_CHECKING:
    from typing import Any as _AnyType, Callable, ClassVar, Iterable, Mapping, TypeVar
    _M = TypeVar("_M", bound="Message")

# wire types
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1


class DecodeError(ValueError):
    """The input is not a valid encoding of the message (one-line text)."""


class UnknownType(LookupError):
    """An Any holds a type the registry does not know."""


# -- varints -------------------------------------------------------------------

def encode_varint(n: int, out: bytearray) -> None:
    """Append `n` as a base-128 varint; a negative n as its 64-bit two's
    complement (10 bytes), as int32/int64/enum fields require."""
    if n < 0:
        n &= _MASK64
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def decode_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """The unsigned varint at buf[pos:] (at most 10 bytes) and the position
    after it."""
    if end is None:
        end = len(buf)
    result = shift = 0
    while True:
        if pos >= end:
            raise DecodeError("truncated message: varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("invalid message: varint longer than 10 bytes")


def zigzag_encode(n: int) -> int:
    """sint32/sint64: small magnitudes of either sign get short varints."""
    return ((n << 1) ^ (n >> 63)) & _MASK64


def zigzag_decode(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _signed(n: int, bits: int) -> int:
    n &= (1 << bits) - 1
    return n - (1 << bits) if n >> (bits - 1) else n


# -- scalar kinds ---------------------------------------------------------------
# kind -> (wire type, to the wire (int or bytes), from the wire, default)

def _utf8(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("invalid message: a string field is not valid UTF-8") from None


_SCALARS: dict[str, tuple[int, Callable[[_AnyType], _AnyType], Callable[[_AnyType], _AnyType], object]] = {
    "int32": (VARINT, int, lambda v: _signed(v, 32), 0),
    "int64": (VARINT, int, lambda v: _signed(v, 64), 0),
    "uint32": (VARINT, lambda v: v & _MASK32, lambda v: v & _MASK32, 0),
    "uint64": (VARINT, lambda v: v & _MASK64, int, 0),
    "sint32": (VARINT, zigzag_encode, lambda v: _signed(zigzag_decode(v), 32), 0),
    "sint64": (VARINT, zigzag_encode, zigzag_decode, 0),
    "bool": (VARINT, lambda v: 1 if v else 0, bool, False),
    "enum": (VARINT, int, lambda v: _signed(v, 32), 0),
    "fixed32": (I32, struct.Struct("<I").pack, lambda b: struct.unpack("<I", b)[0], 0),
    "sfixed32": (I32, struct.Struct("<i").pack, lambda b: struct.unpack("<i", b)[0], 0),
    "float": (I32, struct.Struct("<f").pack, lambda b: struct.unpack("<f", b)[0], 0.0),
    "fixed64": (I64, struct.Struct("<Q").pack, lambda b: struct.unpack("<Q", b)[0], 0),
    "sfixed64": (I64, struct.Struct("<q").pack, lambda b: struct.unpack("<q", b)[0], 0),
    "double": (I64, struct.Struct("<d").pack, lambda b: struct.unpack("<d", b)[0], 0.0),
    "string": (LEN, lambda v: v.encode("utf-8"), _utf8, ""),
    "bytes": (LEN, bytes, bytes, b""),
}


class Map:
    """A map<key, value> field's type: on the wire, a repeated message of
    key = 1 and value = 2."""

    __slots__ = ("key", "value")

    def __init__(self, key: str, value: "str | type[Message]") -> None:
        if key not in _SCALARS or key in ("float", "double", "bytes"):
            raise TypeError(f"invalid map key type {key}")
        self.key, self.value = key, value


class Field:
    """One row of a message's FIELDS table: number, attribute name, type (a
    scalar kind's name, a Message subclass or a Map), repeated or not."""

    __slots__ = ("number", "name", "kind", "repeated", "wire", "packable")

    def __init__(self, number: int, name: str, kind: "str | type[Message] | Map", repeated: bool = False) -> None:
        if not 1 <= number < 1 << 29 or 19000 <= number <= 19999:
            raise TypeError(f"invalid field number {number} for {name}")
        if isinstance(kind, str) and kind not in _SCALARS:
            raise TypeError(f"unknown protobuf type {kind} for {name}")
        self.number, self.name, self.kind, self.repeated = number, name, kind, repeated
        self.wire = _SCALARS[kind][0] if isinstance(kind, str) else LEN
        self.packable = repeated and self.wire != LEN

    def default(self) -> object:
        if isinstance(self.kind, Map):
            return {}
        if self.repeated:
            return []
        if isinstance(self.kind, str):
            return _SCALARS[self.kind][3]
        return None


def _tag(number: int, wire: int, out: bytearray) -> None:
    encode_varint(number << 3 | wire, out)


def _put(kind: "str | type[Message]", number: int, value: object, out: bytearray, always: bool = False) -> None:
    """One field occurrence: tag and value (a default value only if `always`)."""
    if not isinstance(kind, str):
        data = value.encode()  # type: ignore[attr-defined]  # kind is a message class: value is one
        _tag(number, LEN, out)
        encode_varint(len(data), out)
        out += data
        return
    wire, to_wire, _, default = _SCALARS[kind]
    if not always and value == default:
        return
    _tag(number, wire, out)
    raw = to_wire(value)
    if wire == VARINT:
        encode_varint(raw, out)
    elif wire == LEN:
        encode_varint(len(raw), out)
        out += raw
    else:
        out += raw


def _read_len(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    n, pos = decode_varint(buf, pos, end)
    if n > end - pos:
        raise DecodeError("truncated message: a length-delimited field runs past the end")
    return pos + n, pos


def _skip(buf: bytes, pos: int, end: int, number: int, wire: int) -> int:
    """The position after the value of an unknown field (groups included)."""
    if wire == VARINT:
        return decode_varint(buf, pos, end)[1]
    if wire == I64 or wire == I32:
        pos += 8 if wire == I64 else 4
        if pos > end:
            raise DecodeError("truncated message: a fixed-size field runs past the end")
        return pos
    if wire == LEN:
        return _read_len(buf, pos, end)[0]
    if wire == SGROUP:
        while True:
            key, pos = decode_varint(buf, pos, end)
            if key >> 3 == 0:
                raise DecodeError("invalid message: field number 0")
            if key & 7 == EGROUP:
                if key >> 3 != number:
                    raise DecodeError("invalid message: mismatched end of group")
                return pos
            pos = _skip(buf, pos, end, key >> 3, key & 7)
    if wire == EGROUP:
        raise DecodeError("invalid message: end of group without a start")
    raise DecodeError(f"invalid message: wire type {wire}")


def _scalar(kind: str, wire: int, buf: bytes, pos: int, end: int) -> tuple[object, int]:
    """Decode one scalar of `kind` (whose wire type is `wire`) at pos."""
    from_wire = _SCALARS[kind][2]
    if wire == VARINT:
        raw, pos = decode_varint(buf, pos, end)
        return from_wire(raw), pos
    if wire == LEN:
        stop, pos = _read_len(buf, pos, end)
        return from_wire(buf[pos:stop]), stop
    size = 8 if wire == I64 else 4
    if pos + size > end:
        raise DecodeError("truncated message: a fixed-size field runs past the end")
    return from_wire(buf[pos:pos + size]), pos + size


class Message:
    """Base of the protobuf messages: subclasses set NAME (the full protobuf
    name, which containerd's typeurl uses as an Any's type_url) and FIELDS.
    Fields are plain attributes, set to their defaults by the constructor
    (0, "", b"", False, None for a message, [] for repeated, {} for a map)."""

    NAME: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _by_number: ClassVar[dict[int, Field]] = {}
    _names: ClassVar[frozenset[str]] = frozenset()

    if TYPE_CHECKING:
        # fields are plain attributes named by FIELDS, set by __init__: the
        # checker cannot see them, so it takes any attribute as a field
        def __getattr__(self, name: str) -> _AnyType: ...
        def __setattr__(self, name: str, value: _AnyType) -> None: ...

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        fields = tuple(sorted(cls.FIELDS, key=lambda f: f.number))
        by_number = {f.number: f for f in fields}
        names = frozenset(f.name for f in fields)
        if len(by_number) != len(fields) or len(names) != len(fields):
            raise TypeError(f"{cls.__name__}: duplicate field number or name")
        cls.FIELDS, cls._by_number, cls._names = fields, by_number, names

    def __init__(self, **values: object) -> None:
        for f in self.FIELDS:
            setattr(self, f.name, f.default())
        for name, value in values.items():
            if name not in self._names:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self.FIELDS)

    def __repr__(self) -> str:
        shown = (f"{f.name}={getattr(self, f.name)!r}" for f in self.FIELDS
                 if getattr(self, f.name) != f.default())
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- encoding ---------------------------------------------------------------

    def encode(self) -> bytes:
        out = bytearray()
        for f in self.FIELDS:
            value = getattr(self, f.name)
            kind = f.kind
            if isinstance(kind, Map):
                for key in sorted(value):
                    entry = bytearray()
                    _put(kind.key, 1, key, entry, always=True)
                    _put(kind.value, 2, value[key], entry, always=True)
                    _tag(f.number, LEN, out)
                    encode_varint(len(entry), out)
                    out += entry
            elif f.packable:
                if value:
                    _tag(f.number, LEN, out)
                    body = _packed_body(kind, value)  # type: ignore[arg-type]  # packable: a scalar kind
                    encode_varint(len(body), out)
                    out += body
            elif f.repeated:
                for item in value:
                    _put(kind, f.number, item, out, always=True)
            elif value is not None:
                _put(kind, f.number, value, out)
        return bytes(out)

    # -- decoding ---------------------------------------------------------------

    @classmethod
    def decode(cls: type[_M], data: bytes | bytearray | memoryview) -> _M:
        """Decode `data`; unknown fields are skipped."""
        msg = cls()
        buf = bytes(data)
        msg._merge(buf, 0, len(buf))
        return msg

    def _merge(self, buf: bytes, pos: int, end: int) -> None:
        by_number = self._by_number
        while pos < end:
            key, pos = decode_varint(buf, pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise DecodeError("invalid message: field number 0")
            f = by_number.get(number)
            if f is None or (wire != f.wire and not (f.packable and wire == LEN)):
                pos = _skip(buf, pos, end, number, wire)
                continue
            kind = f.kind
            if isinstance(kind, Map):
                stop, pos = _read_len(buf, pos, end)
                k, v = _map_entry(kind, buf, pos, stop)
                getattr(self, f.name)[k] = v
                pos = stop
            elif not isinstance(kind, str):
                stop, pos = _read_len(buf, pos, end)
                if f.repeated:
                    item = kind()
                    item._merge(buf, pos, stop)
                    getattr(self, f.name).append(item)
                else:
                    current = getattr(self, f.name)
                    if current is None:
                        current = kind()
                        setattr(self, f.name, current)
                    current._merge(buf, pos, stop)
                pos = stop
            elif f.packable and wire == LEN:
                stop, pos = _read_len(buf, pos, end)
                items = getattr(self, f.name)
                while pos < stop:
                    value, pos = _scalar(kind, f.wire, buf, pos, stop)
                    items.append(value)
            else:
                value, pos = _scalar(kind, wire, buf, pos, end)
                if f.repeated:
                    getattr(self, f.name).append(value)
                else:
                    setattr(self, f.name, value)


def _packed_body(kind: str, values: Iterable[object]) -> bytearray:
    wire, to_wire, _, _ = _SCALARS[kind]
    body = bytearray()
    for v in values:
        raw = to_wire(v)
        if wire == VARINT:
            encode_varint(raw, body)
        else:
            body += raw
    return body


def _map_entry(kind: Map, buf: bytes, pos: int, end: int) -> tuple[object, object]:
    key: object = _SCALARS[kind.key][3]
    value: object = kind.value() if not isinstance(kind.value, str) else _SCALARS[kind.value][3]
    while pos < end:
        tag, pos = decode_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 1 and wire == _SCALARS[kind.key][0]:
            key, pos = _scalar(kind.key, wire, buf, pos, end)
        elif number == 2 and isinstance(kind.value, str) and wire == _SCALARS[kind.value][0]:
            value, pos = _scalar(kind.value, wire, buf, pos, end)
        elif number == 2 and not isinstance(kind.value, str) and wire == LEN:
            stop, pos = _read_len(buf, pos, end)
            value._merge(buf, pos, stop)  # type: ignore[attr-defined]  # kind.value() made it a message
            pos = stop
        elif number == 0:
            raise DecodeError("invalid message: field number 0")
        else:
            pos = _skip(buf, pos, end, number, wire)
    return key, value


# -- well-known types -------------------------------------------------------------

class Any(Message):
    """google.protobuf.Any: a message of another type, named by type_url.
    containerd's typeurl names protobuf types by their full name alone
    ("containerd.events.TaskExit"), with no type.googleapis.com/ prefix."""

    NAME = "google.protobuf.Any"
    FIELDS = (Field(1, "type_url", "string"), Field(2, "value", "bytes"))

    @classmethod
    def pack(cls, msg: Message, type_url: str | None = None) -> "Any":
        return cls(type_url=type_url or msg.NAME, value=msg.encode())

    def unpack(self, registry: Mapping[str, type[Message]]) -> Message:
        """The message inside, decoded with the class the registry has for
        its type_url (an exact match, else the name after the last "/")."""
        cls = registry.get(self.type_url) or registry.get(self.type_url.rpartition("/")[2])
        if cls is None:
            raise UnknownType(f"unknown type {self.type_url!r}")
        return cls.decode(self.value)


class Timestamp(Message):
    """google.protobuf.Timestamp: seconds and nanoseconds since the epoch."""

    NAME = "google.protobuf.Timestamp"
    FIELDS = (Field(1, "seconds", "int64"), Field(2, "nanos", "int32"))

    @classmethod
    def from_ns(cls, ns: int) -> "Timestamp":
        seconds, nanos = divmod(ns, 1_000_000_000)
        return cls(seconds=seconds, nanos=nanos)

    @classmethod
    def now(cls) -> "Timestamp":
        return cls.from_ns(time.time_ns())

    def to_ns(self) -> int:
        return self.seconds * 1_000_000_000 + self.nanos


class Empty(Message):
    """google.protobuf.Empty: the reply of most Task methods."""

    NAME = "google.protobuf.Empty"
