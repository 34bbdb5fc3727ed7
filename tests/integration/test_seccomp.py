"""Issue 4, item 3: linux.seccomp, in real containers.

Runtime-agnostic like the rest of the suite (PYRUNC_TEST_RUNTIME=runc runs it
against the reference; where runc 1.1.5 differs from newer runc the test is
marked runc_ref_differs). A small seccomp agent (SeccompAgent) receives the
listener fd runc's way and answers notifications.
"""
from __future__ import annotations

import array
import errno
import fcntl
import importlib.util
import json
import os
import platform
import select
import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 profiles and numbers")

_unit = importlib.util.spec_from_file_location(
    "_unit_test_seccomp", Path(__file__).resolve().parent.parent / "unit" / "test_seccomp.py")
_unit_mod = importlib.util.module_from_spec(_unit)
_unit.loader.exec_module(_unit_mod)
podman_profile = _unit_mod.podman_profile  # podman's default profile as podman writes it

SIGSYS = 31
ALLOW = "SCMP_ACT_ALLOW"


def seccomp(cfg: dict, syscalls: list[dict], default: str = ALLOW, **kw) -> None:
    cfg["linux"]["seccomp"] = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"],
                               "syscalls": syscalls, **kw}


def deny(names: list[str], action: str = "SCMP_ACT_ERRNO", **kw) -> dict:
    return {"names": names, "action": action, **kw}


def tmpfs_tmp(cfg: dict) -> None:
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})


def run(rt, bundle, script: str | None = None, args: list[str] | None = None):
    if script is not None:
        bundle.sh(script)
    elif args is not None:
        bundle.set_args(*args)
    return rt.run_fg(rt.new_id(), bundle)


# --------------------------------------------------------------------------- basics


def test_no_profile_no_filter(rt, bundle):
    res = run(rt, bundle, "grep '^Seccomp:' /proc/self/status").expect_ok()
    assert res.stdout.split() == ["Seccomp:", "0"]


def test_filter_is_on(rt, bundle):
    bundle.update(lambda c: seccomp(c, [deny(["mkdir", "mkdirat"])]))
    res = run(rt, bundle, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status").expect_ok()
    assert res.stdout.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]


@pytest.mark.parametrize("errno_ret,text", [(None, "Operation not permitted"), (13, "Permission denied"),
                                            (28, "No space left on device")])
def test_errno_rule(rt, bundle, errno_ret, text):
    rule = deny(["mkdir", "mkdirat"])
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    bundle.update(lambda c: (seccomp(c, [rule]), tmpfs_tmp(c)))
    res = run(rt, bundle, "mkdir /tmp/a; echo rc=$?; touch /tmp/b && echo touched")
    res.expect_ok()
    assert res.stdout == "rc=1\ntouched\n"
    assert res.stderr.strip().endswith(f"mkdir: can't create directory '/tmp/a': {text}")


def test_unknown_syscall_names_are_skipped(rt, bundle):
    bundle.update(lambda c: (seccomp(c, [deny(["no_such_syscall", "mkdir", "another_one"], errnoRet=13)]),
                             tmpfs_tmp(c)))
    res = run(rt, bundle, "mkdir /tmp/a").expect_fail(1)
    assert "Permission denied" in res.stderr


def test_default_errno_ret(rt, bundle):
    """Default-deny: everything podman allows except mkdir, and the default
    errno is ENOTSUP: mkdir gets it."""
    sc = podman_profile()
    if sc is None:
        pytest.skip("containers-common's seccomp.json is not installed")
    for s in sc["syscalls"]:
        s["names"] = [n for n in s["names"] if n not in ("mkdir", "mkdirat")]
    sc["defaultErrnoRet"] = errno.ENOTSUP

    def edit(c):
        c["linux"]["seccomp"] = sc
        tmpfs_tmp(c)

    bundle.update(edit)
    res = run(rt, bundle, "mkdir /tmp/a; echo rc=$?; touch /tmp/b && echo touched").expect_ok()
    assert res.stdout == "rc=1\ntouched\n"
    assert "Not supported" in res.stderr or "Operation not supported" in res.stderr


def test_default_errno_without_ret_is_eperm(rt, bundle):
    sc = podman_profile()
    if sc is None:
        pytest.skip("containers-common's seccomp.json is not installed")
    for s in sc["syscalls"]:
        s["names"] = [n for n in s["names"] if n not in ("mkdir", "mkdirat")]
    del sc["defaultErrnoRet"]
    bundle.update(lambda c: (c["linux"].__setitem__("seccomp", sc), tmpfs_tmp(c)))
    res = run(rt, bundle, "mkdir /tmp/a").expect_fail(1)
    assert "Operation not permitted" in res.stderr


def test_podman_default_profile(rt, bundle):
    sc = podman_profile()
    if sc is None:
        pytest.skip("containers-common's seccomp.json is not installed")
    bundle.update(lambda c: (c["linux"].__setitem__("seccomp", sc), tmpfs_tmp(c)))
    res = run(rt, bundle, "grep '^Seccomp:' /proc/self/status; mkdir /tmp/a && echo made; "
                          "linux64 echo ok; unshare -m true; echo unshare=$?").expect_ok()
    # unshare needs CAP_SYS_ADMIN, which podman's profile does not grant here
    assert res.stdout.split("\n")[:3] == ["Seccomp:\t2", "made", "ok"]
    assert "unshare=1" in res.stdout


# --------------------------------------------------------------------------- argument conditions


def test_condition_on_one_argument(rt, bundle):
    """personality(PER_LINUX32) is refused, personality(PER_LINUX) is not."""
    bundle.update(lambda c: seccomp(c, [deny(["personality"], errnoRet=1,
                                             args=[{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}])]))
    res = run(rt, bundle, "linux64 echo sixty-four; linux32 echo thirty-two; echo rc=$?")
    res.expect_ok()
    assert res.stdout == "sixty-four\nrc=1\n"
    assert "Operation not permitted" in res.stderr


def test_masked_eq_condition(rt, bundle):
    """chmod to a mode without group/other bits is refused: MASKED_EQ is
    (arg & value) == valueTwo, here mode & 077 == 0."""
    bundle.update(lambda c: (seccomp(c, [deny(["chmod"], errnoRet=13, args=[
        {"index": 1, "value": 0o077, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])]), tmpfs_tmp(c)))
    res = run(rt, bundle, "touch /tmp/f; chmod 755 /tmp/f && echo 755; chmod 700 /tmp/f || echo 700-refused; "
                          "chmod 640 /tmp/f && echo 640").expect_ok()
    assert res.stdout == "755\n700-refused\n640\n"


def test_conditions_on_the_same_argument_are_alternatives(rt, bundle):
    """Two conditions on one argument: runc adds a rule for each (either matches)."""
    bundle.update(lambda c: (seccomp(c, [deny(["chmod"], errnoRet=13, args=[
        {"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 0o711, "op": "SCMP_CMP_EQ"}])]), tmpfs_tmp(c)))
    res = run(rt, bundle, "touch /tmp/f; for m in 700 711 755; do chmod $m /tmp/f && echo ok-$m || echo no-$m; done")
    res.expect_ok()
    assert res.stdout == "no-700\nno-711\nok-755\n"


def test_conditions_on_distinct_arguments_all_apply(rt, bundle):
    """socket(AF_INET, SOCK_STREAM [| flags]) is refused; an AF_INET datagram
    socket and an AF_INET6 stream socket are not (conditions on distinct
    arguments must all match; MASKED_EQ is (arg & value) == valueTwo)."""
    bundle.update(lambda c: seccomp(c, [deny(["socket"], errnoRet=errno.EAFNOSUPPORT, args=[
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 0xF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}])]))
    res = run(rt, bundle, "nc -w1 127.0.0.1 9 </dev/null; nslookup -timeout=1 x 127.0.0.1; nc -w1 ::1 9 </dev/null")
    lines = res.stderr.splitlines()
    assert lines[0] == "nc: socket: Address family not supported by protocol", res
    # the UDP and the IPv6 sockets were made (and failed later, to connect or send)
    assert lines[1].startswith("nslookup: ") and lines[2].startswith("nc: "), res
    assert "Address family" not in res.stderr.split("\n", 1)[1], res


# --------------------------------------------------------------------------- actions


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_TRAP"])
def test_killing_actions(rt, bundle, action):
    bundle.update(lambda c: (seccomp(c, [deny(["mkdir", "mkdirat"], action)]), tmpfs_tmp(c)))
    res = run(rt, bundle, args=["mkdir", "/tmp/a"])
    assert res.rc == 128 + SIGSYS, res


def test_log_action_allows(rt, bundle):
    bundle.update(lambda c: (seccomp(c, [deny(["mkdir", "mkdirat"], "SCMP_ACT_LOG")]), tmpfs_tmp(c)))
    res = run(rt, bundle, "mkdir /tmp/a && echo made; grep '^Seccomp:' /proc/self/status").expect_ok()
    assert res.stdout == "made\nSeccomp:\t2\n"


def test_trace_action_without_tracer_is_enosys(rt, bundle):
    bundle.update(lambda c: (seccomp(c, [deny(["mkdir", "mkdirat"], "SCMP_ACT_TRACE")]), tmpfs_tmp(c)))
    res = run(rt, bundle, "mkdir /tmp/a").expect_fail(1)
    assert "Function not implemented" in res.stderr


def test_rule_equal_to_default_is_ignored(rt, bundle):
    bundle.update(lambda c: (seccomp(c, [deny(["mkdir"], ALLOW), deny(["mkdir"], errnoRet=13)]), tmpfs_tmp(c)))
    res = run(rt, bundle, "mkdir /tmp/a").expect_fail(1)
    assert "Permission denied" in res.stderr


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 refuses every seccomp flag")
def test_flags_accepted(rt, bundle):
    bundle.update(lambda c: seccomp(c, [deny(["mkdir"])], flags=[
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    res = run(rt, bundle, "grep '^Seccomp:' /proc/self/status").expect_ok()
    assert res.stdout == "Seccomp:\t2\n"


# --------------------------------------------------------------------------- order


SETID = ["setuid", "setgid", "setresuid", "setresgid", "setreuid", "setregid", "setgroups", "capset"]


def as_user(cfg: dict, nnp: bool) -> None:
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["process"]["noNewPrivileges"] = nnp
    for k in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        cfg["process"]["capabilities"][k] = []


def test_nnp_filter_loaded_after_ids_change(rt, bundle):
    """With noNewPrivileges the filter comes last: a profile that refuses
    every id-changing call still lets the runtime switch to the user."""
    bundle.update(lambda c: (as_user(c, True), seccomp(c, [deny(SETID)])))
    res = run(rt, bundle, "id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status").expect_ok()
    assert res.stdout.split() == ["1000", "NoNewPrivs:", "1", "Seccomp:", "2"]


def test_no_nnp_filter_loaded_while_privileged(rt, bundle):
    """Without noNewPrivileges loading a filter needs CAP_SYS_ADMIN: it must
    happen before the runtime drops capabilities and switches to uid 1000."""
    bundle.update(lambda c: (as_user(c, False), seccomp(c, [deny(["mkdir", "mkdirat"])])))
    res = run(rt, bundle, "id -u; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status").expect_ok()
    assert res.stdout.split() == ["1000", "CapEff:", "0000000000000000", "NoNewPrivs:", "0", "Seccomp:", "2"]


def test_no_nnp_filter_applies_to_the_runtime_id_change(rt, bundle):
    """...so (as with runc) a profile refusing the id changes stops the
    container before it starts: one clear line, nothing left behind."""
    bundle.update(lambda c: (as_user(c, False), seccomp(c, [deny(SETID)])))
    res = run(rt, bundle, "echo should-not-run")
    res.expect_fail(one_line=True, match="operation not permitted")
    assert "should-not-run" not in res.stdout


# --------------------------------------------------------------------------- exec


@pytest.mark.parametrize("nnp", [True, False])
def test_exec_gets_the_filter(rt, bundle, nnp):
    def edit(c):
        seccomp(c, [deny(["mkdir", "mkdirat"], errnoRet=13)])
        tmpfs_tmp(c)
        c["process"]["noNewPrivileges"] = nnp

    bundle.update(edit)
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    res = rt.exec_(cid, "sh", "-c", "grep '^Seccomp:' /proc/self/status; mkdir /tmp/a; echo rc=$?").expect_ok()
    assert res.stdout == "Seccomp:\t2\nrc=1\n"
    assert "Permission denied" in res.stderr
    res = rt.exec_(cid, "sh", "-c", "grep '^Seccomp:' /proc/self/status", flags=["--user", "1000"]).expect_ok()
    assert res.stdout == "Seccomp:\t2\n"
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("sc,match", [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "SCMP_ACT_BOGUS is not a valid action"),
    ({"defaultAction": ALLOW, "architectures": ["SCMP_ARCH_PDP11"]}, "SCMP_ARCH_PDP11 is not a valid arch"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                           "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]},
     "SCMP_CMP_ABOUT is not a valid operator"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_WHATEVER"}]},
     "SCMP_ACT_WHATEVER is not a valid action"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/x.sock"},
     "SCMP_ACT_NOTIFY cannot be used as default action"),
    ({"defaultAction": ALLOW, "listenerPath": "/run/x.sock",
      "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]},
     "SCMP_ACT_NOTIFY cannot be used for the write syscall"),
])
@pytest.mark.parametrize("cmd", ["run", "create"])
def test_invalid_profile_fails_cleanly(rt, bundle, sc, match, cmd):
    bundle.update(lambda c: c["linux"].__setitem__("seccomp", sc))
    cid = rt.new_id()
    rt.fail(cmd, "--bundle", bundle.path, cid, match=match, one_line=True)
    rt.fail("state", cid, match="does not exist")


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 knows no seccomp flags")
def test_unsupported_flag_fails_cleanly(rt, bundle, leakcheck):
    """WAIT_KILLABLE_RECV needs libseccomp >= 2.6 (API level 7) in runc;
    older: runc's message, which runc's seccomp-notify.bats skips on."""
    flag = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    if flag in _features_seccomp(rt).get("supportedFlags", []):
        pytest.skip("this libseccomp supports SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
    bundle.update(lambda c: seccomp(c, [], flags=[flag]))
    res = rt.run_fg(rt.new_id(), bundle).expect_fail(one_line=True)
    assert res.error_message.startswith("error adding WaitKill flag to seccomp filter: SetWaitKill requires "
                                        "libseccomp >= 2.6.0 and API level >= 7 (current version: "), res
    leakcheck.assert_clean()


def _features_seccomp(rt) -> dict:
    return json.loads(rt.ok("features").stdout)["linux"].get("seccomp") or {}


SSB = "Speculation_Store_Bypass"
FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_TSYNC = ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                         "SECCOMP_FILTER_FLAG_TSYNC")


def _filter_log_bit(pid: int) -> bool | None:
    """The LOG bit of the process's (last) filter, read by ptrace's
    PTRACE_SECCOMP_GET_METADATA (the only flag the kernel reports); None
    where the kernel cannot say (no CONFIG_CHECKPOINT_RESTORE)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        return None
    try:
        os.waitpid(pid, 0x40000000)  # __WALL: the attach stop
        meta = (ctypes.c_uint64 * 2)(0, 0)  # struct seccomp_metadata {filter_off, flags}
        if libc.ptrace(0x420D, pid, ctypes.c_void_p(16), ctypes.addressof(meta)) < 0:
            return None
        return bool(meta[1] & 2)  # SECCOMP_FILTER_FLAG_LOG
    finally:
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 refuses every seccomp flag")
@pytest.mark.parametrize("flags", [None, [], [FLAG_TSYNC], [FLAG_LOG], [FLAG_SPEC_ALLOW],
                                   [FLAG_TSYNC, FLAG_LOG, FLAG_SPEC_ALLOW]])
def test_each_flag_loads(rt, bundle, flags):
    """runc 1.5's flags, one by one and together: the filter is loaded and
    works in the container; the LOG flag reaches the kernel (read back from
    the running container's process), TSYNC is accepted and ignored."""
    kw = {} if flags is None else {"flags": flags}
    bundle.update(lambda c: (seccomp(c, [deny(["mkdir", "mkdirat"])], **kw), tmpfs_tmp(c)))
    bundle.sh("grep '^Seccomp:' /proc/self/status; mkdir /tmp/x 2>&1; exec sleep 60")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    out = rt.exec_(cid, "cat", "/proc/1/status").expect_ok().stdout
    assert "\nSeccomp:\t2\n" in out
    log_bit = _filter_log_bit(rt.state(cid)["pid"])
    if log_bit is not None:
        assert log_bit == (FLAG_LOG in (flags or []))
    rt.ok("kill", cid, "KILL")


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 refuses every seccomp flag")
@pytest.mark.parametrize("flags", [None, [], [FLAG_TSYNC], [FLAG_LOG], [FLAG_SPEC_ALLOW, FLAG_LOG, FLAG_TSYNC]])
def test_debug_log_names_the_flags_value(rt, bundle, flags):
    """runc's seccomp.bats reads `--debug`'s "seccomp filter flags: N" (the
    value given to seccomp(2)); no "flags": SPEC_ALLOW where supported."""
    supported = _features_seccomp(rt).get("supportedFlags", [])
    if any(f not in supported for f in flags or []):
        pytest.skip("a flag this libseccomp cannot set")
    values = {FLAG_TSYNC: 0, FLAG_LOG: 2, FLAG_SPEC_ALLOW: 4}
    want = (4 if FLAG_SPEC_ALLOW in supported else 0) if flags is None else sum(values[f] for f in flags)
    kw = {} if flags is None else {"flags": flags}
    bundle.update(lambda c: seccomp(c, [deny(["mkdir"])], **kw))
    bundle.set_args("true")
    res = rt.run_fg(rt.new_id(), bundle, global_args=["--debug"]).expect_ok()
    assert f"seccomp filter flags: {want}" in res.stderr, res


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 refuses every seccomp flag")
def test_spec_allow_keeps_ssb_unmitigated(rt, bundle):
    """SECCOMP_FILTER_FLAG_SPEC_ALLOW, and runc's default without "flags":
    loading the filter does not force the Speculative Store Bypass
    mitigation on the container; "flags": [] does (where the kernel's
    spec_store_bypass_disable mode is seccomp)."""
    def ssb(flags) -> str:
        kw = {} if flags is None else {"flags": flags}
        bundle.update(lambda c: seccomp(c, [deny(["mkdir"])], **kw))
        res = run(rt, bundle, f"grep '^{SSB}:' /proc/self/status").expect_ok()
        return res.stdout.split(":", 1)[1].strip()

    if _FLAG_SPEC_ALLOW_UNSUPPORTED(rt):
        pytest.skip("SECCOMP_FILTER_FLAG_SPEC_ALLOW is not supported by this libseccomp")
    forced = ssb([])
    if forced != "thread force mitigated":
        pytest.skip(f"loading a filter does not force the SSB mitigation on this machine ({SSB}: {forced})")
    assert ssb([FLAG_SPEC_ALLOW]) != "thread force mitigated"
    assert ssb(None) != "thread force mitigated"


def _FLAG_SPEC_ALLOW_UNSUPPORTED(rt) -> bool:
    return FLAG_SPEC_ALLOW not in _features_seccomp(rt).get("supportedFlags", [])


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 knows no seccomp flags")
def test_unknown_flag_is_refused(rt, bundle, leakcheck):
    bundle.update(lambda c: seccomp(c, [], flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]))
    res = rt.run_fg(rt.new_id(), bundle).expect_fail(one_line=True)
    assert "seccomp flag SECCOMP_FILTER_FLAG_NEW_LISTENER is not known to" in res.error_message, res
    leakcheck.assert_clean()


def test_features_flags_as_runc(rt):
    """knownFlags: runc 1.5's list in its order; supportedFlags: those this
    libseccomp can set (runc: FlagSupported), TSYNC always."""
    sc = _features_seccomp(rt)
    if not sc.get("enabled"):
        pytest.skip("no libseccomp")
    assert sc["knownFlags"] == [FLAG_TSYNC, FLAG_SPEC_ALLOW, FLAG_LOG, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    assert sc["supportedFlags"][0] == FLAG_TSYNC
    assert [f for f in sc["knownFlags"] if f in sc["supportedFlags"]] == sc["supportedFlags"]


def test_missing_agent_fails_cleanly(rt, bundle, tmp_path):
    bundle.update(lambda c: seccomp(c, [deny(["mkdir"], "SCMP_ACT_NOTIFY")],
                                    listenerPath=str(tmp_path / "no-agent.sock")))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="seccomp agent", one_line=True)


# --------------------------------------------------------------------------- notify


SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


class SeccompAgent:
    """A seccomp agent (runc's protocol), serving connections one after the
    other as runc's test agent does: each brings the ContainerProcessState
    JSON and the listener fd (SCM_RIGHTS); then it answers that listener's
    notifications, one per entry of its list: an errno (int) or "continue"."""

    def __init__(self, *conns: list) -> None:
        self.dir = tempfile.mkdtemp(prefix="sc-agent-", dir="/tmp")  # sun_path is short
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "agent.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o755)  # the usual mode: only (host) root may connect
        self.sock.listen(4)
        self.conns = [list(c) for c in conns]
        self.states: list[dict] = []
        self.nfds: list[int] = []
        self.notifs: list[list[dict]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.sock.settimeout(30)
            for answers in self.conns:
                self._one(answers)
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def _one(self, answers: list) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(30)
            msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 8))
        fds = array.array("i")
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % 4])
        try:
            state = json.loads(msg)
            self.states.append(state)
            self.nfds.append(len(fds))
            notifs: list[dict] = []
            self.notifs.append(notifs)
            fd = fds[state["fds"].index("seccompFd")]
            for answer in answers:
                if not select.select([fd], [], [], 30)[0]:
                    raise TimeoutError("no notification")
                buf = bytearray(80)
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
                nid, pid, _, nr, arch = struct.unpack_from("=QIIiI", buf)
                notifs.append({"pid": pid, "nr": nr, "arch": arch})
                if answer == "continue":
                    resp = struct.pack("=QqiI", nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
                else:
                    resp = struct.pack("=QqiI", nid, 0, -answer, 0)
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp)
        finally:
            for f in fds:
                os.close(f)

    def finish(self) -> None:
        self.thread.join(35)
        assert not self.thread.is_alive(), "the agent is still waiting"
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def agent_factory():
    agents: list[SeccompAgent] = []

    def make(*conns):
        a = SeccompAgent(*conns)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.close()


def notify_profile(cfg: dict, agent: SeccompAgent, metadata: str = "meta-data") -> None:
    seccomp(cfg, [deny(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")], listenerPath=agent.path,
            listenerMetadata=metadata)
    tmpfs_tmp(cfg)


def check_state(agent: SeccompAgent, i: int, cid: str, bundle, status: str, pid: int, init_pid: int) -> None:
    st = agent.states[i]
    assert set(st) == {"ociVersion", "fds", "pid", "metadata", "state"}, st
    assert st["fds"] == ["seccompFd"] and agent.nfds[i] == 1
    assert st["metadata"] == "meta-data"
    assert st["pid"] == pid
    inner = st["state"]
    assert inner["id"] == cid and inner["status"] == status and inner["pid"] == init_pid, st
    assert inner["bundle"] == str(bundle.path)
    assert isinstance(inner["ociVersion"], str) and inner["ociVersion"]


@pytest.mark.parametrize("userns", [False, True])
def test_notify_agent_answers_errno(rt, bundle, agent_factory, userns):
    agent = agent_factory([errno.ENOTSUP])

    def edit(c):
        notify_profile(c, agent)
        c["process"]["args"] = ["mkdir", "/tmp/x"]
        if userns:  # the container's root may not connect to the agent's 0755 socket
            c["linux"]["namespaces"].append({"type": "user"})
            c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup", "/host")]
            for p in [bundle.path, *bundle.path.parents]:
                if str(p) in ("/", "/dev"):
                    break
                os.chmod(p, os.stat(p).st_mode | 0o005)

    bundle.update(edit)
    cid = rt.new_id()
    rt.create(cid, bundle)
    init_pid = rt.state(cid)["pid"]
    rt.start(cid)
    agent.finish()
    rt.wait_status(cid, "stopped")
    n = agent.notifs[0]
    assert n and n[0]["pid"] == init_pid  # the init itself called mkdir
    assert n[0]["nr"] == 83 and n[0]["arch"] == 0xC000003E
    check_state(agent, 0, cid, bundle, "creating", init_pid, init_pid)
    rt.delete(cid)


def test_notify_agent_lets_the_call_continue(rt, bundle, agent_factory):
    agent = agent_factory(["continue"])
    bundle.update(lambda c: notify_profile(c, agent))
    bundle.sh("mkdir /tmp/made && ls -d /tmp/made && grep '^Seccomp:' /proc/self/status")
    res = rt.run_fg(rt.new_id(), bundle)
    agent.finish()
    res.expect_ok()
    assert res.stdout == "/tmp/made\nSeccomp:\t2\n"


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_unprivileged_user(rt, bundle, agent_factory, nnp):
    """The process connects to the agent before it becomes uid 1000 without
    capabilities (the socket is root's, 0755)."""
    agent = agent_factory(["continue"])
    bundle.update(lambda c: (notify_profile(c, agent), as_user(c, nnp)))
    bundle.sh("id -u; mkdir /tmp/d && echo made")
    res = rt.run_fg(rt.new_id(), bundle)
    agent.finish()
    res.expect_ok()
    assert res.stdout == "1000\nmade\n"


def test_notify_errno_seen_by_the_container(rt, bundle, agent_factory):
    agent = agent_factory([errno.ENOTSUP])
    bundle.update(lambda c: notify_profile(c, agent))
    res = run(rt, bundle, args=["mkdir", "/tmp/x"])
    agent.finish()
    res.expect_fail(1)
    assert "not supported" in res.stderr.lower()


def test_notify_exec(rt, bundle, agent_factory):
    """An exec'd process gets its own filter and listener, sent to the
    container's agent with status "running" and the init's pid in the state."""
    agent = agent_factory(["continue"], [errno.EACCES])
    bundle.update(lambda c: notify_profile(c, agent))
    bundle.sh("mkdir /tmp/first; sleep 3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    init_pid = rt.state(cid)["pid"]
    res = rt.exec_(cid, "mkdir", "/tmp/second")
    agent.finish()
    res.expect_fail(1)
    assert "Permission denied" in res.stderr
    check_state(agent, 0, cid, bundle, "creating", init_pid, init_pid)
    exec_pid = agent.notifs[1][0]["pid"]
    assert exec_pid != init_pid
    check_state(agent, 1, cid, bundle, "running", exec_pid, init_pid)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)


# --------------------------------------------------------------------------- startContainer hooks


@pytest.mark.parametrize("nnp", [True, False])
def test_start_container_hooks_run_under_the_filter(rt, bundle, nnp):
    """As runc 1.5 (standard_init_linux.go): the filter is loaded before the
    startContainer hooks, with or without no_new_privs, so they run under it;
    and the process gets it too."""
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "grep '^Seccomp:' /proc/self/status > /host/hook; "
                                                    "mkdir /tmp/by-hook 2>/dev/null; ls /tmp > /host/ls; cat >/dev/null"],
            "env": ["PATH=/bin"]}

    def cfg(c):
        seccomp(c, [deny(["mkdir", "mkdirat"])])
        tmpfs_tmp(c)
        c["process"]["noNewPrivileges"] = nnp
        c["hooks"] = {"startContainer": [hook]}
    bundle.update(cfg)
    res = run(rt, bundle, "grep '^Seccomp:' /proc/self/status; mkdir /tmp/x || echo refused").expect_ok()
    assert res.stdout.split()[:2] == ["Seccomp:", "2"]
    assert "refused" in res.stdout
    assert bundle.host("hook").read_text().split() == ["Seccomp:", "2"]
    assert bundle.host("ls").read_text() == ""
