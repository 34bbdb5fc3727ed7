"""Item 8: `exec` into a running container."""

from __future__ import annotations

import json
import os
import time

import pytest

from integration_conftest import descendants, proc_cmdline, processes_mentioning

CAP_SYS_ADMIN = 21
CAP_NET_ADMIN = 12


def caps(status_text: str, field: str = "CapEff") -> int:
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} not in {status_text!r}")


@pytest.fixture
def ctr(rt, bundle):
    """A running container (sleep 3600, hostname from the config); returns its id."""
    with bundle.edit() as cfg:
        cfg["hostname"] = "exec-host"
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    return cid


def test_exec_runs_inside(rt, ctr):
    res = rt.exec_(ctr, "sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; hostname").expect_ok()
    pid, init_cmdline, host = res.stdout.splitlines()
    assert pid != "1" and int(pid) > 1  # a new process in the container's pid namespace
    assert init_cmdline.strip() == "sleep 3600"
    assert host == "exec-host"
    assert res.stderr == ""


def test_exec_shares_namespaces(rt, ctr):
    init = rt.state(ctr)["pid"]
    res = rt.exec_(ctr, "sh", "-c", "for n in mnt pid uts ipc net cgroup; do readlink /proc/self/ns/$n; done").expect_ok()
    ours = res.stdout.split()
    # the exec'd process is in the same namespaces as the init (compare from the host)
    want = [os.readlink(f"/proc/{init}/ns/{n}") for n in ("mnt", "pid", "uts", "ipc", "net", "cgroup")]
    assert ours == want


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exec_exit_status(rt, ctr, code):
    res = rt.exec_(ctr, "sh", "-c", f"exit {code}")
    assert res.rc == code, res
    assert "Traceback" not in res.stderr


def test_exec_false(rt, ctr):
    assert rt.exec_(ctr, "false").rc == 1


def test_exec_stdio(rt, ctr, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("to-exec\n")
    with open(src, "rb") as stdin:
        res = rt.exec_(ctr, "sh", "-c", "cat; echo err >&2", stdin=stdin)
    res.expect_ok()
    assert res.stdout == "to-exec\n"
    assert res.stderr == "err\n"


def test_exec_env(rt, ctr):
    res = rt.exec_(ctr, "env", flags=["--env", "RUNC_EXEC_TEST=true", "--env", "TERM=dumb"]).expect_ok()
    env = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert env["RUNC_EXEC_TEST"] == "true"
    assert env["TERM"] == "dumb"  # --env overrides the config's value
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # inherited from config
    assert env["HOME"] == "/root"  # from the container's /etc/passwd


def test_exec_env_short_flag(rt, ctr):
    res = rt.exec_(ctr, "sh", "-c", "echo $A$B", flags=["-e", "A=1", "-e", "B=2"]).expect_ok()
    assert res.stdout == "12\n"


def test_exec_cwd(rt, ctr):
    assert rt.exec_(ctr, "pwd", flags=["--cwd", "/bin"]).expect_ok().stdout == "/bin\n"
    assert rt.exec_(ctr, "pwd").expect_ok().stdout == "/\n"


def test_exec_user(rt, ctr):
    res = rt.exec_(ctr, "sh", "-c", "id -u; id -g; id -G; echo $HOME", flags=["--user", "1000:1000"]).expect_ok()
    assert res.stdout.split() == ["1000", "1000", "1000", "/home/user"]
    # uid only: gid 0; no passwd entry: HOME=/
    res = rt.exec_(ctr, "sh", "-c", "id -u; id -g; echo $HOME", flags=["-u", "4242"]).expect_ok()
    assert res.stdout.split() == ["4242", "0", "/"]


def test_exec_additional_gids(rt, ctr):
    res = rt.exec_(ctr, "id", "-G", flags=["--user", "1000:1000", "--additional-gids", "100", "--additional-gids", "65534"])
    assert res.expect_ok().stdout == "1000 100 65534\n"


def test_exec_process_json(rt, ctr, tmp_path):
    proc = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [100]},
        "args": ["sh", "-c", "id -u; id -G; pwd; echo $XX; echo $PATH"],
        "env": ["PATH=/bin", "XX=from-json"],
        "cwd": "/tmp",
    }
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps(proc))
    res = rt.exec_(ctr, flags=["-p", pj]).expect_ok()
    assert res.stdout.splitlines() == ["1000", "1000 100", "/tmp", "from-json", "/bin"]
    res = rt.exec_(ctr, flags=["--process", pj]).expect_ok()
    assert res.stdout.splitlines()[0] == "1000"


def test_exec_bad_process_json(rt, ctr, tmp_path):
    pj = tmp_path / "process.json"
    pj.write_text("{not json")
    rt.fail("exec", "-p", pj, ctr, one_line=True)
    rt.fail("exec", "-p", tmp_path / "missing.json", ctr, match="missing.json|no such file", one_line=True)


@pytest.mark.slow  # deleting a container with an orphaned exec process waits for PID 1 to reap it
def test_exec_detached_pid_file(rt, ctr, tmp_path, leakcheck):
    pidfile = tmp_path / "exec.pid"
    t0 = time.monotonic()
    res = rt.exec_(ctr, "sleep", "1234", flags=["-d", "--pid-file", pidfile]).expect_ok()
    assert time.monotonic() - t0 < 5
    assert res.stdout == ""
    pid = int(pidfile.read_text())
    assert pidfile.read_text() == str(pid)
    assert pid != rt.state(ctr)["pid"]
    assert proc_cmdline(pid) == "sleep 1234"
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{rt.state(ctr)['pid']}/ns/pid")
    ps = rt.exec_(ctr, "ps", "-o", "args").expect_ok().stdout
    assert "sleep 1234" in ps
    # no runtime process left behind
    assert [p for p, _ in processes_mentioning(str(rt.root)) if p != pid] == []
    assert descendants(os.getpid()) - leakcheck.children == set()


def test_exec_pid_file_foreground(rt, ctr, tmp_path):
    pidfile = tmp_path / "exec.pid"
    res = rt.exec_(ctr, "sh", "-c", "echo $$", flags=["--pid-file", pidfile]).expect_ok()
    assert pidfile.read_text().isdigit()
    assert int(pidfile.read_text()) != rt.state(ctr)["pid"]


def test_exec_pid_file_bad_dir(rt, ctr, tmp_path):
    rt.fail("exec", "--pid-file", tmp_path / "no" / "dir" / "pid", ctr, "true", rc=255, one_line=True)


def test_exec_missing_binary(rt, ctr):
    rt.fail("exec", ctr, "no-such-binary", rc=255, match="no-such-binary", one_line=True)
    rt.fail("exec", ctr, "/no/such", rc=255, match="/no/such", one_line=True)


def test_exec_no_args(rt, ctr):
    rt.fail("exec", ctr, one_line=True)


def test_exec_into_created_container(rt, bundle):
    """create.bats "runc create exec": exec works before start and leaves it created."""
    cid = rt.new_id()
    rt.create(cid, bundle)
    assert rt.exec_(cid, "echo", "hi").expect_ok().stdout == "hi\n"
    assert rt.state(cid)["status"] == "created"
    rt.start(cid)
    assert rt.state(cid)["status"] == "running"


def test_exec_into_stopped_container(rt, bundle):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    # runc: "exec failed: cannot exec in a stopped container"
    rt.fail("exec", cid, "true", rc=255, match="^[^\n]*exec failed: .*(stopped|not running)", one_line=True)


def test_exec_errors_say_exec_failed_first(rt):
    """runc wraps every exec error: fatalWithCode("exec failed: %w", 255)."""
    rt.fail("exec", "no-such-ctr", "true", rc=255, match="exec failed: container does not exist", one_line=True)


def test_exec_cap(rt, ctr):
    base = caps(rt.exec_(ctr, "cat", "/proc/self/status").expect_ok().stdout)
    assert not base & (1 << CAP_SYS_ADMIN)
    st = rt.exec_(ctr, "cat", "/proc/self/status", flags=["--cap", "CAP_SYS_ADMIN", "--cap", "CAP_NET_ADMIN"]).expect_ok().stdout
    eff = caps(st)
    assert eff & (1 << CAP_SYS_ADMIN) and eff & (1 << CAP_NET_ADMIN)
    assert eff & base == base  # the default set is kept
    assert caps(st, "CapBnd") & (1 << CAP_SYS_ADMIN)


def test_exec_no_new_privs(rt, bundle):
    with bundle.edit() as cfg:
        cfg["process"]["noNewPrivileges"] = False
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    off = rt.exec_(cid, "grep", "NoNewPrivs", "/proc/self/status").expect_ok().stdout.split()
    on = rt.exec_(cid, "grep", "NoNewPrivs", "/proc/self/status", flags=["--no-new-privs"]).expect_ok().stdout.split()
    assert off == ["NoNewPrivs:", "0"]
    assert on == ["NoNewPrivs:", "1"]


def test_exec_preserve_fds(rt, ctr, tmp_path):
    f = tmp_path / "fd.txt"
    f.write_text("hello\n")
    res = rt.run("exec", "--preserve-fds", "2", ctr, "cat", "/proc/self/fd/4", extra_fds={3: f, 4: f})
    assert res.expect_ok().stdout == "hello\n"


def test_exec_concurrent(rt, ctr):
    procs = [rt.popen("exec", ctr, "sh", "-c", f"sleep 0.2; echo {i}") for i in range(4)]
    outs = [p.finish().expect_ok().stdout for p in procs]
    assert outs == [f"{i}\n" for i in range(4)]


# -- exec --cgroup (runc 1.1+; exec.bats "runc exec --cgroup sub-cgroups") ------------------

def _cgroup_lines(out: str) -> dict[str, str]:
    """/proc/self/cgroup as controller (each of "cpu,cpuacct"; "" for v2) -> path."""
    got: dict[str, str] = {}
    for line in out.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            got[c] = path
    return got


@pytest.mark.runc_ref_differs(reason="runc 1.1.5's texts: '.. is not a sub cgroup path'")
def test_exec_cgroup_v1_sub_cgroups(rt, ctr):
    from test_cgroups_common import cgroup_dir, unified_host
    if unified_host():
        pytest.skip("cgroup v1 host needed")
    init = rt.state(ctr)["pid"]
    own = _cgroup_lines(rt.exec_(ctr, "cat", "/proc/self/cgroup").expect_ok().stdout)
    want = _cgroup_lines(open(f"/proc/{init}/cgroup").read())
    assert own == want  # the implicit join: the init's cgroup everywhere
    rt.fail("exec", "--cgroup", "..", ctr, "true", rc=255, match="bad sub cgroup path", one_line=True)
    rt.fail("exec", "--cgroup", "nonexistent", ctr, "true", rc=255,
            match=r"error adding pid \d+ to cgroups: .*nonexistent/cgroup.procs: no such file or directory",
            one_line=True)
    rt.fail("exec", "--cgroup", "cpu:nonexistent", ctr, "true", rc=255,
            match=r" adding pid .*no such file or directory", one_line=True)
    rt.fail("exec", "--cgroup", "whaaat:/", ctr, "true", rc=255, match="unknown controller whaaat", one_line=True)
    for args, msg in ((["memory:a", "memory:b"], "controller memory specified multiple times"),
                      (["memory:a", "b"], r"invalid --cgroup argument: b \(missing <controller>: prefix\)"),
                      ([":a"], "empty <controller> prefix")):
        flags = [x for a in args for x in ("--cgroup", a)]
        rt.fail("exec", *flags, ctr, "true", rc=255, match=msg, one_line=True)
    explicit = _cgroup_lines(rt.exec_(ctr, "cat", "/proc/self/cgroup", flags=["--cgroup", "/"]).expect_ok().stdout)
    assert explicit == want
    # sub-cgroups the container's owner made: one controller, or two mounted apart
    (cgroup_dir(init, "memory") / "submem").mkdir()
    for c in ("cpu", "cpuacct"):
        (cgroup_dir(init, c) / "subcpu").mkdir(exist_ok=True)
    got = _cgroup_lines(rt.exec_(ctr, "cat", "/proc/self/cgroup",
                                 flags=["--cgroup", "memory:submem", "--cgroup", "cpu,cpuacct:subcpu"]).expect_ok().stdout)
    assert got["memory"] == want["memory"].rstrip("/") + "/submem"
    assert got["cpu"] == want["cpu"].rstrip("/") + "/subcpu"
    assert got["cpuacct"] == want["cpuacct"].rstrip("/") + "/subcpu"
    assert got["pids"] == want["pids"]  # the others stay in the container's cgroup
    # one path for every controller needs it in every hierarchy
    rt.fail("exec", "--cgroup", "submem", ctr, "true", rc=255, match="no such file or directory", one_line=True)


def test_exec_cgroup_does_not_leave_the_process(rt, ctr):
    """A refused --cgroup kills the process before it runs: nothing runs on."""
    before = set(descendants(rt.state(ctr)["pid"]))
    rt.fail("exec", "--cgroup", "whaaat:/", ctr, "sleep", "77", rc=255, one_line=True)
    assert set(descendants(rt.state(ctr)["pid"])) == before
    assert not processes_mentioning("sleep 77")


# -- -t: the console belongs to the process's user (tty.bats "runc exec [tty owner]") ------

@pytest.mark.runc_ref_differs(reason="runc 1.1.5's exec -t needs the caller's own terminal")
@pytest.mark.parametrize("user, want", [(None, "0:5"), ("1000:100", "1000:5")])
def test_exec_tty_owner(rt, ctr, user, want):
    flags = ["-t"] + (["--user", user] if user else [])
    res = rt.exec_(ctr, "sh", "-c", "stat -c %u:%g $(tty)", flags=flags).expect_ok()
    assert res.stdout.strip() == want  # the uid changes, the group stays devpts' gid=5


def test_exec_user_can_reopen_its_stdout(rt, ctr):
    """runc's fixStdioPermissions: a pipe from the caller is given to the user
    too, so /dev/stdout can be reopened (nginx-style logging)."""
    res = rt.exec_(ctr, "sh", "-c", "echo via-dev-stdout > /dev/stdout", flags=["--user", "1000:1000"]).expect_ok()
    assert res.stdout == "via-dev-stdout\n"


# -- execve failing after the executable was found (exec.bats/run.bats "[execve error]") ----

def _bad_interpreter(bundle) -> None:
    script = bundle.rootfs / "run.sh"
    script.write_text("#!/mmnnttbb foo bar\nsh\n")
    script.chmod(0o755)


@pytest.mark.runc_ref_differs(reason="runc 1.5 (#4171): the process reports it, no runtime error")
def test_exec_execve_error_is_one_line(rt, bundle):
    _bad_interpreter(bundle)
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    res = rt.exec_(cid, "/run.sh")
    assert res.rc == 255
    assert (res.stdout + res.stderr).splitlines() == ["exec /run.sh: no such file or directory"]
    res = rt.exec_(cid, "/run.sh", flags=["-t"])
    assert res.rc == 255
    assert [ln.rstrip("\r") for ln in (res.stdout + res.stderr).splitlines()] == \
        ["exec /run.sh: no such file or directory"]


@pytest.mark.runc_ref_differs(reason="runc 1.5 (#4171): the process reports it, no runtime error")
def test_run_execve_error_is_one_line(rt, bundle):
    _bad_interpreter(bundle)
    bundle.set_args("/run.sh")
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 255
    assert (res.stdout + res.stderr).splitlines() == ["exec /run.sh: no such file or directory"]


def test_missing_executable_is_the_runtime_error(rt, bundle):
    """Not found at all: the runtime's own error, before the process runs."""
    bundle.set_args("/no/such")
    rt.fail("run", "-b", bundle.path, rt.new_id(), rc=1, one_line=True,
            match=r'run failed: unable to start container process: exec: \\?"/no/such\\?": stat /no/such: '
                  r"no such file or directory")


@pytest.mark.runc_ref_differs(reason="runc 1.1.5's run needs the caller's own terminal")
@pytest.mark.parametrize("uid, gid, want", [(0, 0, "0:5"), (1000, 100, "1000:5")])
def test_run_tty_owner(rt, bundle, uid, gid, want):
    """tty.bats "runc run [tty owner]": the init's console is its user's."""
    with bundle.edit() as cfg:
        cfg["process"]["terminal"] = True
        cfg["process"]["user"] = {"uid": uid, "gid": gid}
        cfg["process"]["args"] = ["sh", "-c", "stat -c %u:%g $(tty)"]
    res = rt.run_fg(rt.new_id(), bundle)
    assert res.rc == 0, res
    assert res.stdout.strip() == want
