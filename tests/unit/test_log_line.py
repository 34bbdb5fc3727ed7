"""The text log line (log.format_line): logrus's format, each value quoted
with Go's %q when it needs quoting, so that a message stays one line
whatever a config's strings hold."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrunc import log


def msg_of(line: str) -> str:
    assert line.endswith("\n") and line.count("\n") == 1
    return line.split(" msg=", 1)[1][:-1]


@pytest.mark.parametrize("msg, shown", [
    ("plain", "plain"),
    ("two words", '"two words"'),
    ('say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'),
    ("type \r, flags", '"type \\r, flags"'),  # a mount type a config gave: once two "lines"
    ("a\tb\nc\x00d\x1be\x7ff", '"a\\tb\\nc\\x00d\\x1be\\x7ff"'),
    ("\a\b\v\f", '"\\a\\b\\v\\f"'),
    ("é ü", '"é ü"'),  # printable beyond ASCII stays as it is
    ("x\x85y\u2028z", '"x\\u0085y\\u2028z"'),
])
def test_go_quoting(msg, shown):
    assert msg_of(log.format_line("error", msg)) == shown


_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


def go_unquote(shown: str) -> str:
    """strconv.Unquote for what _quote makes."""
    assert shown[0] == shown[-1] == '"'
    def one(m: re.Match) -> str:
        e = m.group(1)
        return _SIMPLE[e] if len(e) == 1 else chr(int(e[1:], 16))
    return re.sub(r'\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[abfnrtv"\\])', one, shown[1:-1])


@given(st.text())
def test_any_message_is_one_printable_line_that_unquotes_back(msg):
    line = log.format_line("error", msg)
    shown = msg_of(line)
    assert shown.isprintable() and len(line.splitlines()) == 1
    assert (go_unquote(shown) if shown.startswith('"') else shown) == msg


def test_the_json_line_has_encoding_jsons_escapes(monkeypatch):
    monkeypatch.setattr(log, "_fmt", "json")
    line = log.format_line("error", "a\rb\u2028c<d>&")
    assert len(line.splitlines()) == 1
    assert '"msg":"a\\rb\\u2028c\\u003cd\\u003e\\u0026"' in line
