"""Running OCI hooks: argv, env, state on stdin, timeouts, errors."""

from __future__ import annotations

import json
import os
import time

import pytest

from pyrunc.errors import PyruncError
from pyrunc.hooks import HookError, run_hook, run_hooks, state_json, validate_hook

SH = "/bin/sh"
STATE = {
    "ociVersion": "1.3.0",
    "id": "c1",
    "status": "creating",
    "pid": 4242,
    "bundle": "/run/b",
    "annotations": {"k": "<v>"},
}


def sh(script: str, **kw) -> dict:
    return {"path": SH, "args": ["sh", "-c", script], **kw}


def test_state_on_stdin_args_and_env(tmp_path):
    out = tmp_path / "out"
    hook = {
        "path": SH,
        "args": [
            "my-argv0",
            "-c",
            f"tr '\\0' ' ' < /proc/$$/cmdline > {out}; echo >> {out}; env >> {out}; cat >> {out}",
            "arg1",
        ],
        "env": ["A=1", "B=x=y", "A=2"],
    }
    run_hooks("createRuntime", [hook], STATE)
    lines = out.read_text().split("\n")
    assert lines[0].split(" ", 2)[:2] == ["my-argv0", "-c"]
    assert lines[0].endswith(" arg1 ")
    env = {line.split("=", 1)[0] for line in lines[1:-1]}
    assert "A=2" in lines and "B=x=y" in lines and "A=1" not in lines
    assert env <= {"A", "B", "PWD", "SHLVL", "OLDPWD", "_"}  # what sh itself adds
    assert json.loads(lines[-1]) == STATE
    assert lines[-1] == state_json(STATE).decode()


def test_state_json_is_go_compact():
    assert state_json({"id": "a&b", "bundle": "/é"}) == '{"id":"a\\u0026b","bundle":"/é"}'.encode()


def test_no_args_means_argv0_is_path(tmp_path):
    link = tmp_path / "hook"
    out = tmp_path / "out"
    link.write_text(f'#!/bin/sh\necho "$0" > {out}\n')
    link.chmod(0o755)
    run_hook({"path": str(link)}, b"{}")
    assert out.read_text().strip() == str(link)


def test_env_empty_when_absent_and_default_env(tmp_path):
    out = tmp_path / "out"
    run_hook(sh(f"echo ${{FOO-unset}} > {out}"), b"", kind="prestart", index=0)
    assert out.read_text().strip() == "unset"
    run_hook(sh(f"echo $FOO > {out}"), b"", default_env=["FOO=dflt"])
    assert out.read_text().strip() == "dflt"
    run_hook(sh(f"echo $FOO > {out}", env=["FOO=own"]), b"", default_env=["FOO=dflt"])
    assert out.read_text().strip() == "own"


def test_exit_status_error_text():
    with pytest.raises(HookError) as ei:
        run_hooks("prestart", [sh("echo out; echo err >&2; exit 3")], STATE)
    assert str(ei.value) == "error running prestart hook #0: exit status 3, stdout: out\n, stderr: err\n"
    assert ei.value.kind == "prestart" and ei.value.index == 0
    assert ei.value.detail.startswith("exit status 3")
    assert isinstance(ei.value, PyruncError)


def test_signal_error_text():
    with pytest.raises(HookError, match=r"^error running poststop hook #0: signal: terminated, "):
        run_hooks("poststop", [sh("kill -TERM $$")], STATE)


def test_missing_binary():
    with pytest.raises(HookError) as ei:
        run_hooks("createContainer", [{"path": "/nonexistent/hook"}], STATE)
    assert str(ei.value) == (
        "error running createContainer hook #0: fork/exec /nonexistent/hook: "
        "no such file or directory"
    )


def test_not_executable(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(HookError, match=r"fork/exec .*/f: permission denied$"):
        run_hook({"path": str(f)}, b"")


def test_timeout_kills():
    t0 = time.monotonic()
    with pytest.raises(HookError) as ei:
        run_hooks("startContainer", [sh("exec sleep 30", timeout=1)], STATE)
    assert time.monotonic() - t0 < 5
    assert str(ei.value) == "error running startContainer hook #0: hook ran past specified timeout of 1.0s"


def test_timeout_not_hit():
    run_hook(sh("cat >/dev/null; exit 0", timeout=5), b"{}")


def test_order_and_stop_at_first_failure(tmp_path):
    log = tmp_path / "log"
    hooks = [sh(f"echo 0 >> {log}"), sh(f"echo 1 >> {log}; exit 1"), sh(f"echo 2 >> {log}")]
    with pytest.raises(HookError, match=r"^error running poststart hook #1: exit status 1"):
        run_hooks("poststart", hooks, STATE)
    assert log.read_text().split() == ["0", "1"]


def test_empty_hooks_is_noop():
    run_hooks("prestart", [], STATE)
    run_hooks("prestart", None, STATE)


def test_large_stdin_not_read_does_not_block():
    big = b"x" * (4 << 20)
    t0 = time.monotonic()
    run_hook(sh("exit 0"), big)
    with pytest.raises(HookError, match="exit status 7"):
        run_hook(sh("head -c 10 >/dev/null; exit 7"), big)
    assert time.monotonic() - t0 < 5


def test_large_stdin_and_stdout_both_ways(tmp_path):
    big = os.urandom(3 << 20).hex().encode()  # 6 MiB
    with pytest.raises(HookError) as ei:
        run_hook(sh("cat; echo tail >&2; exit 1"), big)
    detail = ei.value.detail
    assert detail.startswith("exit status 1, stdout: " + big[:100].decode())
    assert detail.endswith(", stderr: tail\n")
    assert len(detail) > len(big)


def test_daemon_holding_stdout_does_not_hang():
    t0 = time.monotonic()
    with pytest.raises(HookError) as ei:
        run_hook(sh("sleep 30 & echo started; exit 1"), b"")
    assert time.monotonic() - t0 < 5
    assert ei.value.detail == "exit status 1, stdout: started\n, stderr: "


def test_no_fd_leak_into_hook(tmp_path):
    r, w = os.pipe()
    os.set_inheritable(w, True)
    out = tmp_path / "fds"
    try:
        run_hook(sh(f"ls /proc/self/fd > {out}"), b"")
    finally:
        os.close(r)
        os.close(w)
    fds = {int(x) for x in out.read_text().split()}
    assert w > 3 and w not in fds
    assert fds <= {0, 1, 2, 3}  # 3: ls's own directory fd


def test_signals_default_in_hook(tmp_path):
    import signal

    out = tmp_path / "sig"
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        run_hook(sh(f"grep -E 'SigIgn|SigBlk' /proc/self/status > {out}"), b"")
    finally:
        signal.signal(signal.SIGUSR1, old)
    ign = int(out.read_text().split("SigIgn:")[1].split()[0], 16)
    assert not ign & (1 << (signal.SIGUSR1 - 1))
    assert not ign & (1 << (signal.SIGPIPE - 1))


@pytest.mark.parametrize(
    "hook, msg",
    [
        ({"path": "rel/hook"}, 'hook path "rel/hook" is not absolute'),
        ({}, "hook path is missing"),
        ({"path": "/bin/true", "timeout": 0}, "hook timeout must be a positive integer, not 0"),
        ({"path": "/bin/true", "timeout": -1}, "positive integer"),
        ({"path": "/bin/true", "timeout": 1.5}, "positive integer"),
        ({"path": "/bin/true", "timeout": True}, "positive integer"),
        ({"path": "/bin/true", "args": "x"}, "hook args must be an array of strings"),
        ({"path": "/bin/true", "env": [1]}, "hook env must be an array of strings"),
    ],
)
def test_invalid_hooks(hook, msg):
    assert msg in (validate_hook(hook) or "")
    with pytest.raises(HookError, match="^error running prestart hook #2: "):
        run_hook(hook, b"", kind="prestart", index=2)


def test_valid_hook():
    assert validate_hook({"path": "/bin/true", "args": ["true"], "env": [], "timeout": 3}) is None


def test_cwd_for_the_hooks_only(tmp_path):
    where = tmp_path / "bundle"
    where.mkdir()
    out = tmp_path / "pwd"
    before = os.getcwd()
    run_hooks("prestart", [sh(f"pwd > {out}")], STATE, cwd=str(where))
    assert out.read_text() == f"{where}\n"
    assert os.getcwd() == before
    with pytest.raises(HookError):  # back where we were after a failure too
        run_hooks("prestart", [sh("exit 3")], STATE, cwd=str(where))
    assert os.getcwd() == before
    run_hooks("prestart", [sh(f"pwd > {out}")], STATE, cwd=str(tmp_path / "gone"))
    assert out.read_text() == f"{before}\n"  # a missing cwd: ours
