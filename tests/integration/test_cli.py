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
    """runc's printVersion lines, in its order (tools parse them; runc's
    version.bats reads lines 0-2): name and version, commit, spec, the
    language, then libseccomp's real version when it loads."""
    res = rt.ok(flag, root=False)
    lines = res.out_lines
    # runc 1.5.1: "runc version 1.5.1", "commit: v1.5.1-0-g<sha>", "spec: 1.3.0", "go: go1.25.x", "libseccomp: 2.6.0"
    assert re.match(r"^\S+ version \d+\.\d+\.\d+", lines[0]), res
    assert re.fullmatch(r"commit: \S+", lines[1]), res
    assert re.match(r"spec: \d+\.\d+\.\d+", lines[2]), res
    assert re.fullmatch(r"(go|python): \S+", lines[3]), res
    seccomp = _libseccomp_version()
    if seccomp:
        assert lines[4] == f"libseccomp: {seccomp}", res
    else:
        assert not any(ln.startswith("libseccomp") for ln in lines), res
    assert res.stderr == ""


def _libseccomp_version() -> str | None:
    import ctypes

    class V(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None
    lib.seccomp_version.restype = ctypes.POINTER(V)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def test_version_of_pyrunc(rt):
    if rt.is_runc:
        pytest.skip("runc has no `version` command and prints go:")
    res = rt.ok("--version", root=False)
    lines = res.out_lines
    assert re.fullmatch(r"pyrunc version \d+\.\d+\.\d+", lines[0]), res
    assert lines[2] == "spec: 1.3.0", res  # runtime-spec 1.3.0, as runc 1.5 and `pyrunc features`
    assert re.fullmatch(r"python: 3\.\d+\.\d+\S*", lines[3]), res  # the launcher's interpreter
    assert rt.ok("version", root=False).stdout == res.stdout


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


@pytest.mark.parametrize("cmd", ["checkpoint", "restore"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_command_help_criu(rt, cmd, flag):
    """runc's help.bats lists checkpoint and restore too."""
    res = rt.run(cmd, flag, root=False)
    if res.rc != 0 and "No help topic" in res.stderr:
        pytest.skip(f"{cmd} is not in this build")
    res.expect_ok()
    lines = res.stdout.splitlines()
    assert lines[0] == "NAME:", res
    assert re.search(rf"\S+ {cmd} - \S", lines[1]), res
    assert "OPTIONS:" in res.stdout and "--image-path" in res.stdout, res


@pytest.mark.parametrize("how", [["help", "delete"], ["h", "delete"], ["delete", "some-id", "-h"],
                                 ["kill", "some-id", "KILL", "--help"]],
                         ids=["help-cmd", "h-cmd", "h-after-id", "help-after-args"])
def test_command_help_forms(rt, how):
    res = rt.ok(*how, root=False)
    lines = res.stdout.splitlines()
    assert lines[0] == "NAME:", res
    assert re.search(rf"\S+ {how[0] if how[0] not in ('help', 'h') else how[1]} - ", lines[1]), res


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


# -- flags after the container id (urfave/cli v1's reorderArgs) -----------------

def test_flags_after_the_id(rt, bundle):
    """create, update, kill and delete take their flags after the id too,
    as runc 1.5 does; every step fails if the flag is taken as an argument."""
    from test_cgroups_common import cgroup_dir

    cid = rt.new_id()
    rt.ok("create", cid, "--bundle", bundle.path)
    assert rt.status(cid) == "created"
    rt.ok("start", cid)
    pid = rt.state(cid)["pid"]
    if cgroup_dir(pid, "pids") is not None:
        rt.ok("update", cid, "--pids-limit", "50")
        assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "50"
    rt.ok("kill", cid, "KILL", "--all")
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)


def test_run_and_delete_flags_after_the_id(rt, bundle):
    cid = rt.new_id()
    rt.ok("run", cid, "--bundle", bundle.path, "-d")
    assert rt.status(cid) == "running"
    rt.ok("delete", cid, "--force")
    assert rt.status(cid) is None


def test_unknown_flag_after_the_id_is_an_argument(rt, bundle):
    """urfave/cli moves only the command's own flags: another one after the id
    stays an argument (runc: 'requires exactly 1 argument(s)')."""
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.fail("delete", cid, "--no-such-flag", match="exactly 1 argument", one_line=True)
    rt.fail("delete", "--no-such-flag", cid, match="flag provided but not defined", one_line=True)
    assert rt.status(cid) == "running"


def test_exec_arguments_are_untouched(rt, bundle):
    """exec (SkipArgReorder): everything after the id is the process's,
    even words that are exec's own flags."""
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    res = rt.exec_(cid, "sh", "-c", "echo $0 $1", "a", "-b").expect_ok()
    assert res.stdout == "a -b\n", res
    res = rt.exec_(cid, "echo", "-t", "--env", "X=1", "-d", "--", "--help").expect_ok()
    assert res.stdout == "-t --env X=1 -d -- --help\n", res
    res = rt.exec_(cid, "ls", "-la", "/").expect_ok()
    assert res.stdout.startswith("total "), res
    # exec's flags before the id still count
    res = rt.exec_(cid, "sh", "-c", "echo $X", flags=["--env", "X=yes"]).expect_ok()
    assert res.stdout == "yes\n", res


@pytest.mark.parametrize("argv, msg", [
    (["update"], "requires exactly 1 argument(s)"),
    (["exec"], "requires a minimum of 1 argument(s)"),
    (["kill", "a", "b", "c"], "requires a maximum of 2 argument(s)"),
])
def test_wrong_argument_count_prints_usage(rt, argv, msg):
    """runc's checkArgs: "Incorrect Usage." and the command's help on
    stdout, the error as one line on stderr."""
    r = rt.fail(*argv, match=argv[0] + r'\\?" ' + re.escape(msg), one_line=True)
    assert r.stdout.startswith("Incorrect Usage.\n\n")
    assert f"{argv[0]} -" in r.stdout and "USAGE:" in r.stdout
