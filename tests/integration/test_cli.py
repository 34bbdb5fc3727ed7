"""Item 1: --version, --help, unknown commands and usage errors (runc's CLI contract)."""

from __future__ import annotations

import re

import pytest

# Every command an engine may call (checkpoint/restore left out on purpose).
COMMANDS = [
    "create",
    "delete",
    "events",
    "exec",
    "features",
    "kill",
    "list",
    "pause",
    "ps",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "update",
]


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(rt, flag):
    res = rt.ok(flag, root=False)
    lines = res.out_lines
    # runc: "runc version 1.1.5", "commit: ...", "spec: 1.0.2-dev", "go: ...", "libseccomp: ..."
    assert re.match(r"^\S+ version \d+\.\d+\.\d+", lines[0]), res
    assert any(re.match(r"^spec: \d+\.\d+\.\d+", ln) for ln in lines), res
    assert res.stderr == ""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(rt, flag):
    res = rt.ok(flag, root=False)
    lines = res.stdout.splitlines()
    assert lines[0] == "NAME:", res
    assert "Open Container Initiative runtime" in lines[1], res
    for cmd in COMMANDS:
        assert re.search(rf"^\s+{cmd}\b", res.stdout, re.M), f"{cmd} missing from --help\n{res}"


def test_help_command(rt):
    res = rt.ok("help", root=False)
    assert res.stdout.splitlines()[0] == "NAME:", res
    res = rt.ok("help", "create", root=False)
    assert re.search(r"\bcreate\b", res.stdout.splitlines()[1]), res


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_command_help(rt, cmd, flag):
    res = rt.ok(cmd, flag, root=False)
    lines = res.stdout.splitlines()
    assert lines[0] == "NAME:", res
    # "   runc create - create a container"
    assert re.search(rf"\S+ {cmd} - \S", lines[1]), res


def test_unknown_command(rt):
    res = rt.fail("no-such-command", one_line=True)
    assert "no-such-command" in res.stderr
    assert res.stdout == ""


def test_unknown_command_help(rt):
    # runc: "No help topic for 'foo'"
    res = rt.fail("foo", "-h", one_line=True)
    assert "foo" in res.stderr


@pytest.mark.parametrize(
    "args, match",
    [
        (["--no-such-flag", "list"], "no-such-flag"),
        (["list", "--no-such-flag"], "no-such-flag"),
        (["state"], "state"),
        (["start", "a", "b"], "start"),
        (["kill"], "kill"),
        (["delete"], "delete"),
        (["list", "--format", "yaml"], "format"),
        (["--log-format", "xml", "list"], "log-format"),
    ],
    ids=["unknown-global-flag", "unknown-flag", "state-no-id", "start-two-ids", "kill-no-id", "delete-no-id", "bad-format", "bad-log-format"],
)
def test_usage_errors(rt, args, match):
    """Usage errors: non-zero, one clear line on stderr (runc also prints the
    usage text on stdout, which is not checked)."""
    rt.fail(*args, match=match, one_line=True)


def test_features(rt):
    import json

    res = rt.ok("features", root=False)
    data = json.loads(res.stdout)
    assert re.match(r"\d+\.\d+\.\d+", data["ociVersionMin"]), res
    assert re.match(r"\d+\.\d+\.\d+", data["ociVersionMax"]), res
    assert "hooks" in data and "prestart" in data["hooks"], res
    assert "mountOptions" in data, res
