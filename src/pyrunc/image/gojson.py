"""JSON as Go's encoding/json reads and writes it.

skopeo's outputs (inspect's JSON, the files of a docker-archive) are
encoding/json's: struct fields matched case-insensitively on input, <, >, &,
U+2028 and U+2029 escaped on output, map keys sorted, a json.RawMessage
compacted, and time.Time in RFC 3339 with nanoseconds. Matching them byte
for byte needs these few rules; nothing else of Go is imitated.
"""
from __future__ import annotations

import datetime
import json
import re
from typing import Any

from ..errors import PyruncError

_HTML = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
         ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
_SURROGATE = re.compile("[\ud800-\udfff]")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})",
                      re.ASCII)


def field(obj: Any, name: str) -> Any:
    """A struct field's value as json.Unmarshal finds it: the exact key,
    else one that differs only in case; None when absent (or not an object)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    low = name.lower()
    for k, v in obj.items():
        if k.lower() == low:
            return v
    return None


def _escape(text: str) -> str:
    # Outside strings, JSON has none of these characters: replacing them
    # everywhere escapes exactly the strings' ones. A lone surrogate (from a
    # "\ud800" escape) is what json.Unmarshal turns into U+FFFD.
    for c, e in _HTML:
        text = text.replace(c, e)
    return _SURROGATE.sub("\ufffd", text)


def marshal_indent(obj: Any) -> str:
    """json.MarshalIndent(obj, "", "    "): dicts keep their order (give
    them in struct field order, or sorted for maps)."""
    return _escape(json.dumps(obj, indent=4, ensure_ascii=False))


def marshal(obj: Any) -> str:
    """json.Marshal(obj), compact."""
    return _escape(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def compact_raw(raw: bytes) -> bytes:
    """encoding/json's output of a json.RawMessage: whitespace between
    tokens dropped, <, >, &, U+2028 and U+2029 escaped, the rest as is."""
    out = bytearray()
    in_str = esc = False
    for b in raw:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:
                esc = True
            elif b == 0x22:
                in_str = False
        elif b in b" \t\r\n":
            continue
        elif b == 0x22:
            in_str = True
        out.append(b)
    data = bytes(out)
    for c, e in _HTML:
        data = data.replace(c.encode(), e.encode())
    return data


def raw_members(data: bytes) -> dict[str, bytes]:
    """The raw text of each member of a top-level JSON object (the last of
    duplicates), as json.Unmarshal into map[string]*json.RawMessage keeps it.
    Raises ValueError for anything but a valid JSON object."""
    if not isinstance(json.loads(data), dict):
        raise ValueError("not a JSON object")
    n = len(data)

    def skip_ws(j: int) -> int:
        while j < n and data[j] in b" \t\r\n":
            j += 1
        return j

    def string_end(j: int) -> int:  # j at the opening quote; past the closing one
        j += 1
        while data[j] != 0x22:
            j += 2 if data[j] == 0x5C else 1
        return j + 1

    out: dict[str, bytes] = {}
    i = skip_ws(0)
    if data.startswith(b"\xef\xbb\xbf", i):
        i = skip_ws(i + 3)
    i += 1  # past '{' (json.loads checked the shape)
    while True:
        i = skip_ws(i)
        if data[i] == 0x7D:  # }
            return out
        if data[i] == 0x2C:  # ,
            i = skip_ws(i + 1)
        end = string_end(i)
        key = json.loads(data[i:end])
        i = skip_ws(skip_ws(end) + 1)  # past ':'
        start, depth = i, 0
        while True:
            c = data[i]
            if c == 0x22:
                i = string_end(i)
                continue
            if c in b"[{":
                depth += 1
            elif c in b"]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == 0x2C and depth == 0:
                break
            i += 1
        out[key] = data[start:i].rstrip(b" \t\r\n")


def go_time(value: Any, what: str = "time") -> str:
    """A JSON time.Time re-encoded as Go does (RFC 3339, nanoseconds with
    trailing zeros dropped, "Z" for a zero offset). Raises PyruncError for
    what time.Time's UnmarshalJSON refuses."""
    m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise PyruncError(f"parsing {what} {json.dumps(value)}: not an RFC 3339 time")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        if zone not in "Zz":
            zh, zm = int(zone[1:3]), int(zone[4:6])
            if zh >= 24 or zm >= 60:
                raise ValueError("time zone offset out of range")
    except ValueError as e:
        raise PyruncError(f"parsing {what} {json.dumps(value)}: {e}") from None
    frac = (frac or "")[:9].rstrip("0")
    if zone in "Zz" or zone[1:] == "00:00":
        zone = "Z"
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}{'.' + frac if frac else ''}{zone}"


ZERO_TIME = "0001-01-01T00:00:00Z"
