"""Item 7: --log FILE and --log-format (runc's logrus output)."""

from __future__ import annotations

import json

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
