"""Item 7: --log FILE and --log-format (runc's logrus output)."""

from __future__ import annotations

import json
import os

import pytest

from integration_conftest import RFC3339_RE, parse_logrus_line


def _json_lines(path):
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def test_default_error_is_logrus_text_on_stderr(rt):
    res = rt.fail("state", "no-such-ctr", one_line=True)
    entry = parse_logrus_line(res.err_lines[0])
    assert entry is not None, f"not a logrus text line: {res.err_lines[0]!r}"
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]
    assert RFC3339_RE.match(entry["time"]), entry


def test_log_format_json_on_stderr(rt):
    res = rt.fail("state", "no-such-ctr", global_args=["--log-format", "json"], one_line=True)
    entry = json.loads(res.err_lines[0])
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]
    assert RFC3339_RE.match(entry["time"]), entry
    assert {"level", "msg", "time"} <= set(entry)


def test_log_file_json(rt, tmp_path):
    log = tmp_path / "log.json"
    res = rt.fail("state", "no-such-ctr", global_args=["--log", log, "--log-format", "json"], one_line=True)
    entries = _json_lines(log)
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, entries
    assert "does not exist" in errors[-1]["msg"]
    assert RFC3339_RE.match(errors[-1]["time"])
    # with a log file, stderr still gets the error, as the plain message
    assert "does not exist" in res.stderr
    assert not res.err_lines[0].lstrip().startswith("{")


def test_log_file_text(rt, tmp_path):
    log = tmp_path / "log.txt"
    rt.fail("state", "no-such-ctr", global_args=["--log", log, "--log-format", "text"], one_line=True)
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    entry = parse_logrus_line(lines[-1])
    assert entry is not None, lines
    assert entry["level"] == "error"
    assert "does not exist" in entry["msg"]


def test_log_file_default_format_is_text(rt, tmp_path):
    log = tmp_path / "log.txt"
    rt.fail("state", "no-such-ctr", global_args=["--log", log])
    entry = parse_logrus_line(log.read_text().splitlines()[-1])
    assert entry and entry["level"] == "error", log.read_text()


def test_log_file_is_appended(rt, tmp_path):
    log = tmp_path / "log.json"
    log.write_text('{"level":"info","msg":"earlier","time":"2020-01-01T00:00:00Z"}\n')
    rt.fail("state", "no-such-ctr", global_args=["--log", log, "--log-format", "json"])
    rt.fail("kill", "other-missing", global_args=["--log", log, "--log-format", "json"])
    entries = _json_lines(log)
    assert entries[0]["msg"] == "earlier"
    assert sum(1 for e in entries if e.get("level") == "error") == 2


def test_log_file_container_start_failure(rt, bundle, tmp_path, leakcheck):
    """An error from inside the container's init reaches the log file."""
    log = tmp_path / "log.json"
    bundle.set_args("/no/such")
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), global_args=["--log", log, "--log-format", "json"], one_line=True)
    errors = [e for e in _json_lines(log) if e.get("level") == "error"]
    assert errors and "/no/such" in errors[-1]["msg"], log.read_text()
    leakcheck.assert_clean()


def test_log_file_success_has_no_errors(rt, bundle, tmp_path):
    log = tmp_path / "log.json"
    bundle.set_args("true")
    rt.ok("run", "--bundle", bundle.path, rt.new_id(), global_args=["--log", log, "--log-format", "json"])
    if log.exists():
        assert not [e for e in _json_lines(log) if e.get("level") in ("error", "fatal")]


def test_log_format_json_usage_error(rt):
    res = rt.fail("state", global_args=["--log-format", "json"], one_line=True)
    entry = json.loads(res.err_lines[0])
    assert entry["level"] == "error"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_unwritable_path(rt, tmp_path, fmt):
    rt.fail("list", global_args=["--log", tmp_path / "no" / "dir" / "log", "--log-format", fmt], one_line=True)


# -- --debug (runc's debug.bats) -------------------------------------------------

# what runc's debug.bats looks for (nsexec's and the init's words)
RUNC_DEBUG_STEPS = ("nsexec container setup", "child process in init()",
                    "init: closing the pipe to signal completion")


def _debug_msgs_text(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        entry = parse_logrus_line(line)
        if entry and entry["level"] == "debug":
            out.append(entry["msg"])
    return out


def test_debug_on_stderr(rt, bundle):
    bundle.set_args("echo", "hi")
    res = rt.ok("run", "--bundle", bundle.path, rt.new_id(), global_args=["--debug"])
    assert res.stdout == "hi\n", res
    msgs = _debug_msgs_text(res.stderr)
    for step in RUNC_DEBUG_STEPS:
        assert any(step in m for m in msgs), res
    # nothing on stderr but logrus lines
    assert all(parse_logrus_line(ln) for ln in res.err_lines), res


@pytest.mark.parametrize("fmt", ["text", "json", None])
def test_debug_to_log_file(rt, bundle, tmp_path, fmt):
    log = tmp_path / "log.out"
    bundle.set_args("true")
    gargs = ["--log", log, "--debug"] + (["--log-format", fmt] if fmt else [])
    res = rt.ok("run", "--bundle", bundle.path, rt.new_id(), global_args=gargs)
    assert "level=debug" not in res.stderr and '"debug"' not in res.stderr, res
    if fmt == "json":
        msgs = [e["msg"] for e in _json_lines(log) if e["level"] == "debug"]
        assert all(RFC3339_RE.match(e["time"]) for e in _json_lines(log))
    else:
        msgs = _debug_msgs_text(log.read_text())
    for step in RUNC_DEBUG_STEPS:
        assert any(step in m for m in msgs), log.read_text()


def test_no_debug_lines_without_debug(rt, bundle, tmp_path):
    log = tmp_path / "log.json"
    bundle.set_args("true")
    res = rt.ok("run", "--bundle", bundle.path, rt.new_id(), global_args=["--log", log, "--log-format", "json"])
    assert "debug" not in res.stderr
    assert not log.exists() or not [e for e in _json_lines(log) if e["level"] == "debug"]


def test_debug_lines_of_each_step(rt, bundle, tmp_path):
    """create, start, exec and delete each say what they did."""
    if rt.is_runc:
        pytest.skip("pyrunc's own debug lines")
    log = tmp_path / "log.json"
    g = ["--log", log, "--log-format", "json", "--debug"]
    cid = rt.new_id()
    rt.ok("create", "--bundle", bundle.path, cid, global_args=g)
    rt.ok("start", cid, global_args=g)
    n = len(_json_lines(log))
    rt.exec_(cid, "true", global_args=g).expect_ok()
    exec_msgs = [e["msg"] for e in _json_lines(log)[n:]]
    # runc's exec debug words (exec.bats, cpu_affinity.bats: "nsexec...: affinity: 0x<mask>")
    mask = sum(1 << c for c in os.sched_getaffinity(0) if c < 64)
    for want in ("nsexec container setup", "child process in init()", "setns_init: about to exec",
                 f"nsexec: affinity: {mask:#x}"):
        assert any(want in m for m in exec_msgs), exec_msgs
    rt.ok("delete", "--force", cid, global_args=g)
    msgs = [e["msg"] for e in _json_lines(log) if e["level"] == "debug"]
    for want in (f"create: container {cid} created", f"start: container {cid} started",
                 f"exec: process ", f"delete: container {cid} removed"):
        assert any(m.startswith(want) for m in msgs), msgs
