"""The container environment (issue 3): namespaces, root, mounts, /dev,
masked/read-only paths, sysctl and process fields, each observed from inside
a container. Runtime-agnostic: the same tests pass against runc 1.1.5 except
where marked."""
from __future__ import annotations

import os

import pytest

from helpers_userns import make_reachable, userns_config

NEWER = pytest.mark.runc_ref_differs


def run_out(rt, bundle, script: str) -> str:
    bundle.sh(script)
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, str(res)
    return res.stdout


def set_ns(cfg: dict, kind: str, present: bool = True, path: str | None = None) -> None:
    nss = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    if present:
        nss.append({"type": kind, **({"path": path} if path else {})})
    cfg["linux"]["namespaces"] = nss


# -- namespaces ---------------------------------------------------------------------
@NEWER(reason="runc 1.1.5 predates domainname")
def test_hostname_and_domainname(rt, bundle):
    bundle.update(lambda c: c.update(hostname="ctr-host", domainname="example.org"))
    out = run_out(rt, bundle, "hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == ["ctr-host", "example.org"]


def test_hostname_needs_uts_namespace(rt, bundle, leakcheck):
    def cfg(c):
        c["hostname"] = "x"
        set_ns(c, "uts", present=False)
    bundle.update(cfg)
    cid = rt.new_id()
    rt.fail("run", "--bundle", bundle.path, cid, match="UTS namespace", one_line=True)
    leakcheck.assert_clean()


def test_new_namespaces_differ_from_host(rt, bundle):
    out = run_out(rt, bundle, "for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done")
    for line in out.split():
        kind = line.split(":")[0]
        assert line != os.readlink(f"/proc/self/ns/{kind}"), kind


def test_join_namespaces_by_path(rt, make_bundle):
    a = make_bundle()
    a.set_args("sleep", "3600")
    first = rt.new_id()
    rt.run_d(first, a)
    pid = rt.state(first)["pid"]
    b = make_bundle()

    def cfg(c):
        for kind, f in (("network", "net"), ("ipc", "ipc"), ("uts", "uts")):
            set_ns(c, kind, path=f"/proc/{pid}/ns/{f}")
        c.pop("hostname", None)
    b.update(cfg)
    out = run_out(rt, b, "for n in net ipc uts; do readlink /proc/self/ns/$n; done")
    assert out.split() == [os.readlink(f"/proc/{pid}/ns/{f}") for f in ("net", "ipc", "uts")]
    rt.ok("delete", "--force", first)


@NEWER(reason="runc 1.1.5 fails in setns with two lines of nsexec errors")
def test_namespace_path_of_wrong_type_is_refused(rt, bundle, leakcheck):
    bundle.update(lambda c: set_ns(c, "network", path="/proc/self/ns/ipc"))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="not a network namespace|namespace", one_line=True)
    leakcheck.assert_clean()


def test_user_namespace_with_several_ranges(rt, bundle):
    make_reachable(bundle.path)  # the container's root is host uid 200000

    def cfg(c):
        set_ns(c, "user")
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000},
                                     {"containerID": 1000, "hostID": 300000, "size": 1000}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        c["mounts"].append({"destination": "/sys", "type": "bind", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/host"]
    bundle.update(cfg)
    out = run_out(rt, bundle, "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; id -u")
    uid_map, rest = out.split("--")
    assert [line.split() for line in uid_map.strip().splitlines()] == [
        ["0", "200000", "1000"], ["1000", "300000", "1000"]]
    assert rest.split()[:3] == ["0", "200000", "65536"] and rest.split()[-1] == "0"


@NEWER(reason="runc 1.1.5 predates time namespaces")
def test_time_namespace_offsets(rt, bundle):
    def cfg(c):
        set_ns(c, "time")
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0},
                                     "monotonic": {"secs": 3600, "nanosecs": 0}}
    bundle.update(cfg)
    out = run_out(rt, bundle, "cat /proc/uptime; cat /proc/self/timens_offsets")
    uptime = float(out.split()[0])
    assert uptime > 864000
    assert "monotonic" in out and "3600" in out


def test_cgroup_namespace(rt, bundle):
    bundle.update(lambda c: set_ns(c, "cgroup"))
    out = run_out(rt, bundle, "cat /proc/self/cgroup")
    assert all(line.split(":", 2)[2] == "/" for line in out.split())


# -- root ------------------------------------------------------------------------------
def test_readonly_root(rt, bundle):
    bundle.update(lambda c: c["root"].update(readonly=True))
    out = run_out(rt, bundle, "touch /x 2>/dev/null && echo rw || echo ro; touch /tmp/x 2>/dev/null && echo rw || echo ro")
    assert out.split() == ["ro", "ro"]


def test_absolute_root_path(rt, bundle):
    bundle.update(lambda c: c["root"].update(path=str(bundle.rootfs), readonly=False))
    assert run_out(rt, bundle, "touch /made-here && echo ok").strip() == "ok"
    assert (bundle.rootfs / "made-here").exists()


def test_no_pivot(rt, bundle):
    bundle.sh("cat /proc/self/mountinfo | wc -l; ls /")
    res = rt.run_fg(rt.new_id(), bundle, "--no-pivot")
    assert res.rc == 0, str(res)
    assert "bin" in res.stdout.split()


# -- mounts -------------------------------------------------------------------------------
def test_tmpfs_options_and_bind_mounts(rt, bundle, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("hello\n")
    (tmp_path / "one-file").write_text("file\n")

    def cfg(c):
        c["root"]["readonly"] = False
        c["mounts"] += [
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "noexec", "mode=700", "size=1m"]},
            {"destination": "/ro-data", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
            {"destination": "/etc/single", "type": "bind", "source": str(tmp_path / "one-file"), "options": ["bind"]},
        ]
    bundle.update(cfg)
    out = run_out(rt, bundle, "stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo; "
                              "cat /ro-data/f; touch /ro-data/g 2>/dev/null && echo rw || echo ro; cat /etc/single")
    lines = out.splitlines()
    assert lines[0] == "700"
    assert "nosuid" in lines[1] and "nodev" in lines[1] and "noexec" in lines[1] and "size=1024k" in lines[1]
    assert lines[2:] == ["hello", "ro", "file"]


def test_relative_bind_source_is_relative_to_bundle(rt, bundle):
    (bundle.path / "shared").mkdir()
    (bundle.path / "shared" / "x").write_text("from-bundle\n")
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/shared", "type": "bind", "source": "shared", "options": ["rbind"]}))
    assert run_out(rt, bundle, "cat /shared/x").strip() == "from-bundle"


def test_recursive_readonly(rt, bundle, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/tree", "type": "bind", "source": str(src), "options": ["rbind", "rro"]}))
    out = run_out(rt, bundle, "touch /tree/a 2>/dev/null && echo rw || echo ro")
    assert out.strip() == "ro"


def test_missing_bind_source_fails_cleanly(rt, bundle, leakcheck, tmp_path):
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/x", "type": "bind", "source": str(tmp_path / "nope"), "options": ["bind"]}))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="nope", one_line=True)
    leakcheck.assert_clean()


def test_mount_target_symlink_stays_inside_rootfs(rt, bundle, tmp_path):
    """A target that is an absolute symlink out of the rootfs resolves inside it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(str(victim), bundle.rootfs / "escape")
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/escape", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}))
    run_out(rt, bundle, "true")
    assert not os.path.ismount(victim)
    assert (bundle.rootfs / str(victim).lstrip("/")).is_dir()


def test_proc_symlink_is_refused(rt, bundle, leakcheck):
    os.rmdir(bundle.rootfs / "proc")
    os.symlink("/tmp", bundle.rootfs / "proc")
    bundle.set_args("true")
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="proc", one_line=True)
    leakcheck.assert_clean()


# -- /dev ---------------------------------------------------------------------------------------
def test_default_devices_and_links(rt, bundle):
    out = run_out(rt, bundle, "ls -l /dev | awk '{print $1, $5, $6, $NF}'")
    for dev, nums in (("null", "1, 3"), ("zero", "1, 5"), ("full", "1, 7"), ("random", "1, 8"),
                      ("urandom", "1, 9"), ("tty", "5, 0")):
        assert any(line.startswith("crw-rw-rw-") and line.endswith(dev) and nums in line
                   for line in out.splitlines()), dev
    links = run_out(rt, bundle, "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done")
    assert links.split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]


def test_linux_devices(rt, bundle):
    def cfg(c):
        c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                  "fileMode": 0o640, "uid": 1000, "gid": 100}]
        c["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    bundle.update(cfg)
    out = run_out(rt, bundle, "stat -c '%F %t %T %a %u %g' /dev/fuse")
    assert out.strip() == "character special file a e5 640 1000 100"


# -- masked, read-only, sysctl ------------------------------------------------------------------
def test_masked_and_readonly_paths(rt, bundle):
    def cfg(c):
        c["linux"]["maskedPaths"] = ["/proc/kcore", "/sys/firmware", "/no/such/path"]
        c["linux"]["readonlyPaths"] = ["/proc/sys", "/does/not/exist"]
    bundle.update(cfg)
    out = run_out(rt, bundle, "head -c 10 /proc/kcore | wc -c; ls /sys/firmware | wc -l; "
                              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo rw || echo ro")
    assert out.split() == ["0", "0", "ro"]


def test_sysctl_namespaced(rt, bundle):
    bundle.update(lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1", "kernel.msgmax": "16384",
                                                       "net/ipv4/ip_default_ttl": "33"}))
    out = run_out(rt, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ip_default_ttl")
    assert out.split() == ["1", "16384", "33"]


@pytest.mark.parametrize("key, unset_ns", [
    ("kernel.msgmax", "ipc"), ("net.ipv4.ip_forward", "network"), ("vm.swappiness", None),
    ("kernel.hostname", None),
])
def test_sysctl_refused_outside_its_namespace(rt, bundle, leakcheck, key, unset_ns):
    def cfg(c):
        c["linux"]["sysctl"] = {key: "1"}
        if unset_ns:
            set_ns(c, unset_ns, present=False)
    bundle.update(cfg)
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="sysctl", one_line=True)
    leakcheck.assert_clean()


# -- process -------------------------------------------------------------------------------------
def test_process_fields(rt, bundle):
    def cfg(c):
        p = c["process"]
        p["cwd"] = "/new/work/dir"
        p["env"] = ["PATH=/bin:/usr/bin", "FOO=bar"]
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [100, 5], "umask": 0o027}
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048},
                        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]
        p["oomScoreAdj"] = 321
    bundle.update(cfg)
    out = run_out(rt, bundle, "pwd; echo $FOO $HOME; id -u; id -g; id -G; umask; ulimit -n; ulimit -Hn; "
                              "ulimit -c; cat /proc/self/oom_score_adj")
    lines = out.splitlines()
    assert lines[0] == "/new/work/dir"
    assert lines[1] == "bar /home/user"
    assert lines[2:4] == ["1000", "1000"]
    assert sorted(lines[4].split()) == ["100", "1000", "5"]
    assert lines[5:] == ["0027", "2048", "4096", "0", "321"]


def test_path_lookup_uses_container_path(rt, bundle):
    bundle.update(lambda c: c["process"].update(env=["PATH=/sbin:/bin"], args=["echo", "found"]))
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0 and res.stdout.strip() == "found"


def test_missing_executable_is_a_create_error(rt, bundle, leakcheck):
    bundle.set_args("no-such-command")
    cid = rt.new_id()
    rt.fail("create", "--bundle", bundle.path, cid, match="executable file not found", one_line=True)
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


# -- idmapped mounts ------------------------------------------------------------------------------
@NEWER(reason="runc 1.1.5 predates idmapped mounts")
@pytest.mark.parametrize("variant, expect", [("plain", "65534"), ("idmap", "0"), ("own-maps", "1000")])
def test_idmapped_bind_mount(rt, bundle, tmp_path, variant, expect):
    data = tmp_path / "idmap-src"
    data.mkdir()
    (data / "f").write_text("x")
    os.chown(data / "f", 0, 0)
    (bundle.rootfs / "data").mkdir()  # the container's root cannot create it in a host-owned rootfs
    make_reachable(bundle.path, data)

    def cfg(c):
        userns_config(c)
        m = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind"]}
        if variant != "plain":
            m["options"].append("idmap")
        if variant == "own-maps":  # on-disk 0 becomes host 101000, i.e. 1000 in the container
            m["uidMappings"] = [{"containerID": 0, "hostID": 101000, "size": 1000}]
            m["gidMappings"] = [{"containerID": 0, "hostID": 101000, "size": 1000}]
        c["mounts"].append(m)
    bundle.update(cfg)
    assert run_out(rt, bundle, "stat -c %u /data/f").strip() == expect


@NEWER(reason="runc 1.1.5 predates idmapped mounts")
def test_idmap_needs_bind_and_userns(rt, bundle, tmp_path, leakcheck):
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(tmp_path), "options": ["rbind", "idmap"]}))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="user namespace", one_line=True)
    leakcheck.assert_clean()


@NEWER(reason="runc 1.1.5 does not know tmpcopyup")
def test_tmpfs_copyup_keeps_image_content(rt, bundle):
    (bundle.rootfs / "etc" / "seed").mkdir()
    (bundle.rootfs / "etc" / "seed" / "a").write_text("from image\n")
    bundle.update(lambda c: c["mounts"].append(
        {"destination": "/etc/seed", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "size=1m"]}))
    out = run_out(rt, bundle, "cat /etc/seed/a; grep ' /etc/seed ' /proc/self/mountinfo | grep -c tmpfs; "
                              "echo new > /etc/seed/b && echo writable")
    assert out.split() == ["from", "image", "1", "writable"]
    assert not (bundle.rootfs / "etc" / "seed" / "b").exists()  # the write went to the tmpfs


def test_mount_label_without_selinux_warns(rt, bundle):
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled here")
    bundle.update(lambda c: c["linux"].update(mountLabel="system_u:object_r:container_file_t:s0"))
    bundle.set_args("true")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, str(res)
    if not rt.is_runc:  # runc ignores it silently
        assert "mountLabel" in res.stderr


@pytest.mark.parametrize("field, value", [("intelRdt", {"closID": "x"})])
def test_unsupported_fields_are_errors(rt, bundle, leakcheck, field, value):
    if rt.is_runc:
        pytest.skip("pyrunc's own limits")
    bundle.update(lambda c: c["linux"].update({field: value}))
    bundle.set_args("true")
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match=field, one_line=True)
    leakcheck.assert_clean()


# -- HOME and cwd (runc 1.2+: prepareEnv, finalizeNamespace) --------------------------------------
@NEWER(reason="runc 1.1.5 keeps an empty HOME and duplicate entries")
@pytest.mark.parametrize("env, uid, expect", [
    (["HOME=/override"], 0, "/override"),                 # env.bats: non-empty HOME is used
    (["HOME="], 0, "/root"),                              # an empty HOME is replaced
    (["HOME=/override", "HOME="], 0, "/root"),            # ... the last one counts
    ([], 1000, "/home/user"),                             # the user's passwd entry
    ([], 4242, "/"),                                      # no passwd entry
])
def test_home_from_passwd(rt, bundle, env, uid, expect):
    def cfg(c):
        c["process"]["env"] = ["PATH=/bin"] + env
        c["process"]["user"] = {"uid": uid, "gid": uid}
    bundle.update(cfg)
    assert run_out(rt, bundle, 'echo "$HOME"') == expect + "\n"


@NEWER(reason="runc 1.1.5 keeps an empty HOME and duplicate entries")
@pytest.mark.parametrize("env, expect", [
    (["HOME=", "PATH=/usr/bin:/bin"], ["PATH=/usr/bin:/bin", "HOME=/root"]),
    (["ONE=two", "ONE=", "PATH=/usr/bin:/bin"], ["ONE=", "PATH=/usr/bin:/bin", "HOME=/root"]),
    (["ONE=two", "PATH=/bin", "ONE=three"], ["PATH=/bin", "ONE=three", "HOME=/root"]),
])
def test_env_set_once(rt, bundle, env, expect):
    """env.bats: each name once, the last value, HOME added once."""
    bundle.update(lambda c: c["process"].update(env=env, args=["/bin/env"]))
    res = rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert res.stdout.splitlines() == expect


@NEWER(reason="runc 1.1.5 accepts an entry without '='")
def test_env_entry_without_equals_fails_cleanly(rt, bundle, leakcheck):
    bundle.update(lambda c: c["process"].update(env=["PATH=/bin", "NOEQUALS"]))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), match="invalid environment variable: missing '='",
            one_line=True)
    leakcheck.assert_clean()


def test_exec_empty_home_is_replaced(rt, bundle):
    bundle.sh("exec sleep 3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    res = rt.exec_(cid, "sh", "-c", 'echo "$HOME"', flags=["-e", "HOME=", "--user", "1000:1000"]).expect_ok()
    assert res.stdout == "/home/user\n"


def test_cwd_root_may_enter_but_not_the_user(rt, bundle):
    """cwd.bats "runc create can chdir if runc has access": the cwd is
    entered before the switch to the container's user."""
    bundle.update(lambda c: c["process"].update(cwd="/root", user={"uid": 42, "gid": 42}))
    assert run_out(rt, bundle, "pwd; id -u; ls /tmp >/dev/null && echo ok") == "/root\n42\nok\n"


def test_exec_as_root_in_a_cwd_only_its_user_may_enter(rt, bundle):
    """cwd.bats "runc exec --user with no access to cwd"."""
    os.chown(bundle.rootfs / "root", 42, 42)
    bundle.update(lambda c: c["process"].update(cwd="/root", user={"uid": 42, "gid": 42},
                                                args=["sleep", "3600"]))
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    res = rt.exec_(cid, "sh", "-c", "pwd; id -u", flags=["--user", "0"]).expect_ok()
    assert res.stdout == "/root\n0\n"


def test_cwd_only_the_user_may_enter(rt, bundle):
    """A cwd the container's root may not enter (in a user namespace, a
    directory whose owner is not mapped: CAP_DAC_OVERRIDE does not apply)
    is entered after the switch to the container's user, who may (runc's
    finalizeNamespace retry)."""
    make_reachable(bundle.path)
    d = bundle.rootfs / "userdir"
    d.mkdir()
    os.chown(d, 4242, 100000 + 1000)  # owner unmapped; group: the container's gid 1000
    os.chmod(d, 0o070)

    def cfg(c):
        userns_config(c)
        c["process"].update(cwd="/userdir", user={"uid": 1000, "gid": 1000})
    bundle.update(cfg)
    assert run_out(rt, bundle, "pwd; id -u") == "/userdir\n1000\n"
    # neither root nor another user may enter it: the error is the chdir's
    bundle.update(lambda c: c["process"].update(user={"uid": 2000, "gid": 2000}))
    res = rt.fail("run", "--bundle", bundle.path, rt.new_id(), one_line=True)
    assert 'chdir to cwd ("/userdir") set in config.json failed: permission denied' in res.error_message


def test_cwd_error_message(rt, bundle, leakcheck):
    bundle.update(lambda c: c["process"].update(cwd="/etc/passwd"))
    res = rt.fail("run", "--bundle", bundle.path, rt.new_id(), one_line=True)
    assert 'chdir to cwd ("/etc/passwd") set in config.json failed: not a directory' in res.error_message
    leakcheck.assert_clean()
