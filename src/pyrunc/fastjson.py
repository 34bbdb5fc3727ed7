"""JSON through the C accelerator `_json`, without importing `json`.

`import json` pulls in `re` and `enum`, several milliseconds that every
pyrunc command would pay before doing anything. The C scanner and encoder are
what `json` itself uses; this module only supplies the small context objects
they need. Output matches json.dumps for the types pyrunc writes.
"""
from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class JSONError(ValueError):
    """Invalid JSON, with the position, as json.JSONDecodeError words it."""


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)

    def __init__(self) -> None:
        self.memo: dict = {}


def loads(s: str | bytes) -> Any:  # as json.loads: the caller knows the document's shape
    if isinstance(s, (bytes, bytearray)):
        # invalid UTF-8 becomes U+FFFD, as Go's decoder does (not a codec error)
        s = s.decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8", "replace")
    ctx = _Ctx()
    scan = _json.make_scanner(ctx)  # type: ignore[arg-type]  # reads only the attributes _Ctx has
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = scan(s, i)
    except StopIteration as e:
        raise JSONError(f"Expecting value: {_where(s, e.value)}") from None
    except (ValueError, SystemError):
        # the scanner words its errors with json.decoder, which is not
        # imported here (SystemError then); a number past Python's digit
        # limit is a ValueError: ask json itself, on this failing path only
        raise JSONError(_diagnose(s)) from None
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        raise JSONError(f"Extra data: {_where(s, end)}")
    return obj


def _diagnose(s: str) -> str:
    import json
    try:
        json.loads(s)
    except json.JSONDecodeError as e:
        return str(e)
    except ValueError:
        return f"a number has more than {_max_digits()} digits"
    return "invalid JSON"


def _max_digits() -> int:
    import sys
    return sys.get_int_max_str_digits()


def _where(s: str, pos: int) -> str:
    line = s.count("\n", 0, pos) + 1
    col = pos - s.rfind("\n", 0, pos)
    return f"line {line} column {col} (char {pos})"


def _default(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                              ":", ",", False, False, True)


def dumps(obj: object, indent: int | str | None = None, ascii: bool = True) -> str:
    """Compact when indent is None (json.dumps(separators=(',', ':'))),
    otherwise pretty-printed like json.dumps(indent=...)."""
    if indent is None:
        if ascii:
            return "".join(_compact(obj, 0))
        enc = _json.make_encoder(None, _default, _json.encode_basestring, None, ":", ",", False, False, True)
        return "".join(enc(obj, 0))
    pad = indent if isinstance(indent, str) else " " * indent
    out: list[str] = []
    _pretty(obj, pad, "", out, _json.encode_basestring_ascii if ascii else _json.encode_basestring)
    return "".join(out)


def _pretty(o: object, pad: str, cur: str, out: list[str], enc) -> None:
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        nxt = cur + pad
        out.append("{")
        first = True
        for k, v in o.items():
            out.append(("\n" if first else ",\n") + nxt + enc(str(k)) + ": ")
            first = False
            _pretty(v, pad, nxt, out, enc)
        out.append("\n" + cur + "}")
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        nxt = cur + pad
        out.append("[")
        for i, v in enumerate(o):
            out.append(("\n" if i == 0 else ",\n") + nxt)
            _pretty(v, pad, nxt, out, enc)
        out.append("\n" + cur + "]")
    else:
        out.append("".join(_compact(o, 0)) if not isinstance(o, str) else enc(o))


def go_escape(s: str) -> str:
    """Apply the escapes Go's encoding/json adds on top of Python's."""
    if "<" in s or ">" in s or "&" in s or "\u2028" in s or "\u2029" in s:
        s = (
            s.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return s


def key_path(prefix: str, key: str) -> str:
    """A map entry's field path as spec/schema.py's walk names it, for a
    ConfigError: linux.sysctl["a.b"] (here so the mechanisms below spec/
    name their fields the same way)."""
    return f"{prefix}[{dumps(key)}]"
