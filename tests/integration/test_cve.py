"""One regression test per known runc CVE class (issue 4): each sets up what
the exploit needed and checks that the container cannot get it.

How each was checked to fail without its protection is in the comments."""
from __future__ import annotations

import os
import stat
import time

import pytest

from helpers_userns import make_reachable, userns_config

ALL_CAPS = [f"CAP_{c}" for c in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE").split()]


def _host_caps() -> list[str]:
    """ALL_CAPS less what the runtime itself lacks (this VM's root has no
    CAP_SYS_RESOURCE): without a user namespace a container gets at most that."""
    with open("/proc/self/status") as f:
        bnd = int(next(line.split()[1] for line in f if line.startswith("CapBnd:")), 16)
    return [c for i, c in enumerate(ALL_CAPS) if bnd >> i & 1]


def _userns_all_caps(c: dict) -> None:
    """A user-namespaced container whose processes hold every capability in
    their namespace: the strongest position an unprivileged attacker gets."""
    userns_config(c)
    for k in ("bounding", "effective", "permitted"):
        c["process"]["capabilities"][k] = list(ALL_CAPS)
    c["process"]["noNewPrivileges"] = False


# -- CVE-2019-5736 / CVE-2016-9962: the runtime's own process seen from inside --------
def _as_container(bundle, how: str) -> None:
    """"userns": root with every capability in a user namespace; "host-root":
    uid 0 without a user namespace and with the default capabilities (no
    CAP_SYS_PTRACE), where only the non-dumpable flag keeps it out of a
    pyrunc process of the same uid."""
    make_reachable(bundle.path)
    if how == "userns":
        bundle.update(_userns_all_caps)
    else:
        bundle.update(lambda c: c["root"].update(readonly=False))


@pytest.mark.parametrize("how", ["userns", pytest.param("host-root", marks=pytest.mark.runc_ref_differs(
    reason="runc 1.1.5's waiting init is readable by container root; its exe is a sealed memfd copy"))])
def test_waiting_init_is_not_reachable_through_proc(rt, bundle, how):
    """While `create` leaves the pyrunc init waiting as PID 1, a process exec'd
    into the container must not open its exe (the launcher's interpreter),
    environ, mem or fds. In a user namespace the kernel denies it anyway (the
    init's mm belongs to the host's namespace); as host root of the same uid
    only PR_SET_DUMPABLE does (checked: without it "host-root" fails)."""
    _as_container(bundle, how)
    bundle.set_args("true")
    cid = rt.new_id()
    rt.create(cid, bundle)
    try:
        res = rt.ok("exec", cid, "sh", "-c",
                    "for f in exe environ mem maps fd/0; do "
                    "  if head -c 1 /proc/1/$f >/dev/null 2>&1; then echo \"open $f\"; else echo \"denied $f\"; fi; "
                    "done; ls /proc/1/fd >/dev/null 2>&1 && echo 'open fds' || echo 'denied fds'")
        opened = [line for line in res.stdout.splitlines() if line.startswith("open")]
        # host root owns the non-dumpable init's /proc/1/fd (0500, root):
        # it may list the numbers, as with runc, not follow them (fd/0)
        assert opened == ([] if how == "userns" else ["open fds"]), res.stdout
    finally:
        rt.ok("delete", "--force", cid)


@pytest.mark.parametrize("how", ["userns", "host-root"])
def test_exec_helper_is_not_reachable(rt, bundle, how):
    """The same during `exec`: the pyrunc child that joins the namespaces is
    non-dumpable before it enters them (checked: without that prctl in
    container/exec.py "host-root" fails)."""
    _as_container(bundle, how)
    bundle.sh("while :; do for p in /proc/[0-9]*; do head -c1 $p/exe >/dev/null 2>&1 && "
              "case $(cat $p/comm) in python*|pyrunc*) echo leaked >> /tmp/found;; esac; done; done")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    try:
        for _ in range(5):
            rt.ok("exec", cid, "true")
        res = rt.ok("exec", cid, "sh", "-c", "cat /tmp/found 2>/dev/null; true")
        assert "leaked" not in res.stdout
    finally:
        rt.ok("delete", "--force", cid)


def _with_ptrace(c: dict) -> None:
    """No user namespace, and CAP_SYS_PTRACE: the capability that opens the
    /proc entries of a non-dumpable process (a privileged container)."""
    for k in ("bounding", "effective", "permitted"):
        c["process"]["capabilities"][k] = sorted(set(c["process"]["capabilities"][k]) | {"CAP_SYS_PTRACE"})


def test_runtime_executable_cannot_be_reopened_for_writing(rt, bundle):
    """The CVE-2019-5736 exploit itself: hold /proc/<pid>/exe of a runtime
    process open while one is visible (here the init waiting for `start`, PID
    1, a pyrunc process running the launcher's interpreter), and once it has
    exec'd the container's process, reopen that fd for writing. Refused by
    the kernel for a reason that lasts (the interpreter copy is immutable:
    EPERM), not only while some process still runs the binary (ETXTBSY).
    Checked: with the launcher on the plain /usr/bin/python3.11 the reopen
    succeeds here (the test only opens, it never writes)."""
    bundle.update(_with_ptrace)
    bundle.update(lambda c: c["root"].update(readonly=False))  # the verdict is read from the host
    bundle.set_args("sleep", "30")
    verdict = bundle.rootfs / "tmp" / "verdict"
    cid = rt.new_id()
    rt.create(cid, bundle)
    try:
        rt.ok("exec", "-d", cid, "sh", "-c",
              "exec 3</proc/1/exe; "
              'while [ "$(readlink /proc/1/exe)" != /bin/busybox ]; do sleep 0.05; done; sleep 0.5; '
              "if (exec 4<>/proc/self/fd/3) 2>/tmp/err; then echo WRITABLE; else echo denied; fi > /tmp/verdict.new; "
              "cat /tmp/err >> /tmp/verdict.new; mv /tmp/verdict.new /tmp/verdict")
        time.sleep(0.2)  # the helper has its fd before the init goes
        rt.ok("start", cid)
        deadline = time.monotonic() + 10  # no runtime command meanwhile: it would make the file busy
        while not verdict.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = verdict.read_text()
        assert text.startswith("denied"), text
        assert "busy" not in text.lower(), text  # ETXTBSY would pass only while a runtime runs
    finally:
        rt.ok("delete", "--force", cid)


@pytest.mark.runc_ref_differs(reason="runc 1.1.5's init environ holds its own variables: PWD=<bundle> "
                               "and the state dir with the id (not the caller's)")
def test_waiting_init_shows_nothing_of_the_caller(rt, bundle):
    """/proc/1/environ and cmdline of the waiting init, read by a process
    with CAP_SYS_PTRACE, show neither the environment the runtime was called
    with (an engine's secrets) nor its command line. Checked: without
    conceal_command_line the secret and the bundle path are both there."""
    bundle.update(_with_ptrace)
    bundle.set_args("true")
    cid = rt.new_id()
    rt.create(cid, bundle, env={"PYRUNC_TEST_SECRET": "s3cr3t-value"})
    try:
        res = rt.ok("exec", cid, "sh", "-c", "tr '\\0' ' ' < /proc/1/environ; echo; tr '\\0' ' ' < /proc/1/cmdline")
        assert "s3cr3t-value" not in res.stdout
        assert str(bundle.path) not in res.stdout and cid not in res.stdout
    finally:
        rt.ok("delete", "--force", cid)


def test_exec_helper_shows_nothing_of_the_caller(rt, bundle):
    """The same for the process `exec` sends into the container, caught by a
    loop in the container while a few execs run."""
    bundle.update(_with_ptrace)
    bundle.update(lambda c: c["root"].update(readonly=False))
    bundle.sh("while :; do for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null | "
              "grep -q s3cr3t-valu[e] && echo leaked >> /tmp/found; done; done")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    try:
        for _ in range(5):
            rt.ok("exec", cid, "true", env={"PYRUNC_TEST_SECRET": "s3cr3t-value"})
        assert not (bundle.rootfs / "tmp" / "found").exists()
    finally:
        rt.ok("delete", "--force", cid)


# -- CVE-2024-21626: leaked host fds, cwd through /proc/self/fd ---------------------------
def test_no_host_fd_reaches_the_container(rt, bundle, tmp_path):
    """Only stdio crosses into the container, even when the runtime itself
    was handed extra inheritable fds (an engine's files, say) and not told to
    preserve them."""
    (tmp_path / "host-file").write_text("secret\n")
    bundle.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '")
    res = rt.run("run", "--bundle", bundle.path, rt.new_id(), extra_fds={5: tmp_path / "host-file"})
    assert res.rc == 0, str(res)
    # the 4th is ls's own fd on the directory it lists
    assert res.stdout.split() == ["0", "1", "2", "3"], res.stdout


@pytest.mark.parametrize("fd", range(3, 9))
def test_cwd_through_proc_self_fd_stays_inside(rt, bundle, fd):
    bundle.update(lambda c: c["process"].update(cwd=f"/proc/self/fd/{fd}"))
    bundle.sh("pwd; ls /")
    res = rt.run("run", "--bundle", bundle.path, rt.new_id())
    if res.rc == 0:  # if it started at all, it is inside the rootfs
        assert "bin" in res.stdout.split() and "host" in res.stdout.split()
        assert not res.stdout.startswith("/run") and "pyrunc" not in res.stdout
    assert "Traceback" not in res.stderr


# -- CVE-2021-30465, CVE-2019-19921, CVE-2023-27561: mount targets via symlinks --------
@pytest.mark.parametrize("link", ["/", "../../../../..", "/proc/self/root", "/proc/1/cwd"])
def test_symlinked_mount_target_stays_in_rootfs(rt, bundle, tmp_path, link):
    """A mount destination that is a symlink to / (or ../.. or a /proc magic
    link) in the image must not place the mount on the host: openat2 with
    RESOLVE_IN_ROOT resolves it inside the rootfs (checked by replacing
    open_in_root with a plain open of rootfs+path: the test then mounts a
    tmpfs over the host path and fails)."""
    os.symlink(link, bundle.rootfs / "evil")
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/evil/pwned", "type": "tmpfs", "source": "tmpfs", "options": ["size=1k"]}))
    bundle.set_args("true")
    before = open("/proc/self/mountinfo").read()
    res = rt.run("run", "--bundle", bundle.path, rt.new_id())
    assert "Traceback" not in res.stderr
    assert open("/proc/self/mountinfo").read().count("/pwned") == before.count("/pwned")
    assert not os.path.exists("/pwned")


@pytest.mark.parametrize("link", ["/", "../../../../.."])
def test_symlinked_existing_target_resolves_inside(rt, bundle, link):
    """The same through a path that exists on both sides (/evil/etc): it is
    opened in one openat2(RESOLVE_IN_ROOT) call, and the mount must land on
    the container's /etc, not on the host's /etc of the set-up's mount
    namespace (checked: with the RESOLVE flags dropped /etc inside is not the
    tmpfs, and the test fails)."""
    os.symlink(link, bundle.rootfs / "evil")
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/evil/etc", "type": "tmpfs", "source": "tmpfs", "options": ["size=1k"]}))
    bundle.sh("grep -c ' /etc tmpfs ' /proc/self/mounts")
    res = rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert res.stdout.strip() == "1", res


@pytest.mark.runc_ref_differs(reason="runc 1.1.5 predates the CVE-2019-19921/2023-27561 checks' wording")
@pytest.mark.parametrize("target", ["proc", "sys"])
def test_proc_and_sys_symlinks_are_refused(rt, bundle, leakcheck, target):
    os.rmdir(bundle.rootfs / target)
    os.symlink("/tmp", bundle.rootfs / target)
    bundle.set_args("true")
    # runc 1.5's words: 'filesystem "proc" must be mounted on ordinary directory'
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="must be mounted on ordinary directory", one_line=True)
    leakcheck.assert_clean()


# -- CVE-2025-31133 / CVE-2025-52565 / CVE-2025-52881 -----------------------------------
@pytest.mark.runc_ref_differs(reason="runc 1.1.5 predates the CVE-2025-31133 fix")
def test_masking_refuses_a_fake_dev_null(rt, bundle, leakcheck):
    """If the container's /dev/null is not the null device (here the config
    makes it 1:5, /dev/zero), masking must not bind it over /proc paths
    (checked by removing the device check from rootfs.setup._mask_paths:
    the container then starts with /proc/kcore reading zeros)."""
    bundle.update(lambda c: c["linux"].update(devices=[
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666}]))
    bundle.set_args("true")
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="null", one_line=True)
    leakcheck.assert_clean()


def test_console_target_symlink_stays_inside(rt, make_bundle, tmp_path):
    """/dev/console planted as a symlink to a host path: the pty is bound
    inside the rootfs, never on the host file."""
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    bundle = make_bundle()
    bundle.update(lambda c: c.update(mounts=[m for m in c["mounts"] if m["destination"] != "/dev"]))
    (bundle.rootfs / "dev").mkdir(exist_ok=True)
    os.symlink(str(victim), bundle.rootfs / "dev" / "console")
    from helpers_console import ConsoleReceiver
    recv = ConsoleReceiver(tmp_path / "c.sock")
    bundle.update(lambda c: c["process"].update(terminal=True))
    bundle.set_args("true")
    import threading
    t = threading.Thread(target=recv.accept, daemon=True)
    t.start()
    res = rt.run("run", "-d", "--console-socket", recv.path, "--bundle", bundle.path, rt.new_id())
    t.join(10)
    recv.close()
    assert "Traceback" not in res.stderr
    assert victim.read_text() == "host file\n"
    assert not os.path.ismount(victim)


def test_sysctl_write_refuses_non_procfs(rt, bundle, tmp_path, leakcheck):
    """A config that bind-mounts a host directory over /proc/sys must not turn
    a sysctl into a write to a host file (checked by removing the statfs
    check from linux.sys.open_procfs: the host file is then overwritten)."""
    fake = tmp_path / "fake-sys"
    (fake / "kernel").mkdir(parents=True)
    (fake / "kernel" / "msgmax").write_text("untouched\n")

    def cfg(c):
        c["mounts"].append({"destination": "/proc/sys", "type": "bind", "source": str(fake), "options": ["rbind"]})
        c["linux"]["readonlyPaths"] = []
        c["linux"]["sysctl"] = {"kernel.msgmax": "16384"}
    bundle.update(cfg)
    bundle.set_args("true")
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="procfs", one_line=True)
    assert (fake / "kernel" / "msgmax").read_text() == "untouched\n"
    leakcheck.assert_clean()


# -- CVE-2022-29162: inheritable capabilities --------------------------------------------
def test_no_inheritable_capabilities_unless_asked(rt, bundle):
    bundle.sh("grep CapInh /proc/self/status")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0 and res.stdout.split() == ["CapInh:", "0000000000000000"], str(res)

    def cfg(c):
        c["process"]["capabilities"]["inheritable"] = ["CAP_KILL"]
    bundle.update(cfg)
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0 and res.stdout.split() == ["CapInh:", "0000000000000020"], str(res)


def test_host_interpreter_is_not_writable_from_a_privileged_exec(rt, bundle):
    """The exe of every pyrunc process a container can see is the host's
    interpreter; even a container root with every capability (no user
    namespace) must not be able to open it for writing while pyrunc runs."""
    def cfg(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k] = _host_caps()
    bundle.update(cfg)
    bundle.set_args("true")
    cid = rt.new_id()
    rt.create(cid, bundle)
    try:
        res = rt.run("exec", cid, "sh", "-c", "echo x >> /proc/1/exe && echo WROTE || echo refused")
        assert "WROTE" not in res.stdout
    finally:
        rt.ok("delete", "--force", cid)
    st = os.stat(os.path.realpath("/proc/self/exe"))
    assert stat.S_ISREG(st.st_mode)


# -- LSM labels the host cannot apply are errors, never silence ---------------------------
@pytest.mark.parametrize("field, match", [("apparmorProfile", "apparmor"), ("selinuxLabel", "selinux")])
def test_lsm_label_without_lsm_is_an_error(rt, bundle, leakcheck, field, match):
    if os.path.exists("/sys/fs/selinux/enforce") or os.path.exists("/sys/module/apparmor/parameters/enabled"):
        pytest.skip("this host has an LSM")
    bundle.update(lambda c: c["process"].update({field: "some-profile"}))
    bundle.set_args("true")
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match=match, one_line=True)
    leakcheck.assert_clean()
