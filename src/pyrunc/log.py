"""runc-compatible logging: logrus text or JSON lines, to --log or stderr.

containerd's shim and conmon read the runtime's log (`--log-format json`) to
report why a container failed, so the line format must match runc's:
{"level":"error","msg":"...","time":"2026-01-01T00:00:00Z"}.
"""
from __future__ import annotations

import os
import sys
import time

_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}
_path: str | None = None
_fmt = "text"
_min = 1
_fd: int | None = None


def setup(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    """Where log lines go; called once by the CLI before any command runs."""
    global _path, _fmt, _min, _fd
    _path, _fmt, _min = path or None, fmt, 0 if debug else 1
    _fd = None
    if _path:
        _fd = os.open(_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def fd() -> int | None:
    """The log's own fd, if it has one (a process that closes the fds it
    inherited keeps this one)."""
    return _fd


def detach() -> None:
    """A container init left waiting for `start`: from now on it writes to
    its own stderr (the container's), and holds neither the --log file nor
    the runtime's stderr, which belong to the command that has returned."""
    global _fd, _path
    if _fd is not None:
        try:
            os.close(_fd)
        except OSError:
            pass
    _fd = _path = None


def keep_stderr() -> None:
    """Before the container init makes a pty its stdio: keep writing to the
    runtime's own stderr (a close-on-exec copy), not into the container."""
    global _fd
    if _fd is None:
        _fd = os.dup(2)  # os.dup makes it non-inheritable


def _timestamp() -> str:
    t = time.localtime()
    off = t.tm_gmtoff or 0
    tz = "Z" if off == 0 else "%+03d:%02d" % (off // 3600, abs(off) % 3600 // 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + tz


# Go's %q (logrus quotes with it): a control character never reaches the
# line raw, so a message (a config's string in it) stays one line
_GO_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)}
_GO_ESCAPES.update({0x07: "\\a", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f",
                    0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"})


def _quote(s: str) -> str:
    # logrus quotes a value when it holds anything outside [A-Za-z0-9-._/@^+]
    if s and all(c.isalnum() or c in "-._/@^+" for c in s):
        return s
    q = s.translate(_GO_ESCAPES)
    if not q.isprintable():  # beyond ASCII: U+0085, U+2028 and the like
        q = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
                    for c in q)
    return '"' + q + '"'


def format_line(level: str, msg: str) -> str:
    if _fmt == "json":
        from .fastjson import dumps, go_escape  # logrus's JSON: encoding/json's escapes
        return go_escape(dumps({"level": level, "msg": msg, "time": _timestamp()}, ascii=False)) + "\n"
    return f"time={_quote(_timestamp())} level={level} msg={_quote(msg)}\n"


def log(level: str, msg: str) -> None:
    if _LEVELS.get(level, 3) < _min:
        return
    line = format_line(level, msg).encode()
    try:
        os.write(_fd if _fd is not None else 2, line)
    except OSError:
        pass


def debug_enabled() -> bool:
    """--debug: for messages that cost something to compose."""
    return _min == 0


def debug(msg: str) -> None:
    log("debug", msg)


def info(msg: str) -> None:
    log("info", msg)


def warn(msg: str) -> None:
    log("warning", msg)


def error(msg: str) -> None:
    """An error as runc reports it: to the log, and plainly to stderr when the
    log is a file (so a human running the command still sees one line)."""
    log("error", msg)
    if _path:
        try:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()
        except OSError:
            pass
