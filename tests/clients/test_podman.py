"""podman (4.x, via conmon) driving the runtime under test.

podman calls the runtime the way it calls runc: `create --bundle B --pid-file P
ID` under conmon (with --log-format=json --log FILE), `start ID`, `state ID`,
`kill ID SIG`, `delete --force ID`, `exec --detach --pid-file P --process F ID`
(plus `--console-socket` with -t). The image is built here from the host's
busybox-static with `podman import`; all podman state is private to the
session (see conftest.py).

    python3 -m pytest -q tests/clients/test_podman.py                     # pyrunc
    PYRUNC_TEST_PODMAN_RUNTIME=/usr/sbin/runc python3 -m pytest -q tests/clients/test_podman.py
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest
from clients_conftest import (CGROUP_LIMITS, LIMIT_FLAGS, MEMORY_HOG, PROBE, PROBE_EXPECTED, cgroup_limits,
                              probe_flags, probe_volume, run_on_pty)

if TYPE_CHECKING:  # the fixtures (podman, leak_check) and this helper are in conftest.py
    from conftest import Podman


def assert_ok(res, stdout: str | None = None) -> None:
    assert res.returncode == 0, res.describe()
    if stdout is not None:
        assert res.stdout == stdout, res.describe()


def test_run_echo(leak_check: Podman) -> None:
    pm = leak_check
    res = pm("run", "--rm", *pm.run_args(), pm.image, "echo", "hi")
    assert_ok(res, "hi\n")
    assert pm.container_ids() == [], "run --rm left the container"


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code_propagates(leak_check: Podman, code: int) -> None:
    pm = leak_check
    res = pm("run", "--rm", *pm.run_args(), pm.image, "sh", "-c", f"echo out; echo err >&2; exit {code}")
    assert res.returncode == code, res.describe()
    assert res.stdout == "out\n", res.describe()
    assert "err\n" in res.stderr, res.describe()


def test_stdin_is_forwarded(leak_check: Podman) -> None:
    pm = leak_check
    res = pm("run", "--rm", "-i", *pm.run_args(), pm.image, "sh", "-c", "tr a-z A-Z; echo done",
             input="hello\n")
    assert_ok(res, "HELLO\ndone\n")


def test_tty(leak_check: Podman) -> None:
    """-t: conmon hands the runtime a --console-socket and reads the pty master."""
    pm = leak_check
    res = pm("run", "--rm", "-t", *pm.run_args(), pm.image, "sh", "-c", "tty; stty size")
    assert res.returncode == 0, res.describe()
    lines = res.stdout.replace("\r\n", "\n").splitlines()
    assert lines and lines[0].startswith("/dev/pts/"), res.describe()


def test_interactive_tty(leak_check: Podman) -> None:
    """-it from a terminal (a pty of the test's): input typed there reaches
    the container through conmon and the runtime's console socket."""
    pm = leak_check
    rc, out = run_on_pty(["podman", *pm.global_args, "run", "--rm", "-it", *pm.run_args(), pm.image,
                          "sh", "-c", "tty; read line; echo got:$line"], answer=b"hello\r", env=pm.env)
    assert rc == 0, out
    assert out.splitlines()[0].startswith("/dev/pts/") and "got:hello" in out, out


def test_env_user_workdir_readonly_tmpfs_bind_no_network(leak_check: Podman) -> None:
    """-e, -u, -w, --read-only, --tmpfs, -v (read-only bind) and --network
    none, as the container sees them (conftest.PROBE)."""
    pm = leak_check
    res = pm("run", "--rm", *pm.run_args(*probe_flags(probe_volume(pm.base))), pm.image, "sh", "-c", PROBE)
    assert_ok(res)
    assert res.stdout.split() == PROBE_EXPECTED, res.describe()


@pytest.mark.slow
def test_limits_restart_kill(leak_check: Podman) -> None:
    """--memory, --pids-limit and --cpus land in the container's cgroup, and
    again after `podman restart` (a new init: its output twice in the logs);
    `podman kill` ends it with SIGKILL (137)."""
    pm = leak_check
    name = "pyrunc-podman-limits"
    res = pm("run", "-d", "--name", name, *pm.run_args(*LIMIT_FLAGS), pm.image, "sh", "-c",
             "trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done")
    assert res.returncode == 0, res.describe()
    cgroup = f"{pm.cgroup_parent}/libpod-{res.stdout.strip()}"
    try:
        assert pm.wait_status(name, "running") == "running"
        assert cgroup_limits(cgroup) == CGROUP_LIMITS
        res = pm("restart", "--time", "10", name)
        assert_ok(res)
        assert pm.wait_status(name, "running") == "running"
        assert cgroup_limits(cgroup) == CGROUP_LIMITS
        res = pm("logs", name)
        assert_ok(res)
        assert res.stdout.split() == ["started", "started"], res.describe()
        res = pm("kill", name)
        assert_ok(res, f"{name}\n")
        assert pm.wait_status(name, "exited") == "exited"
        res = pm("inspect", "--format", "{{.State.ExitCode}}", name)
        assert_ok(res, "137\n")
    finally:
        res = pm("rm", "--force", "--time", "0", name)
    assert_ok(res, f"{name}\n")


@pytest.mark.slow
def test_detached_exec_stop_rm(leak_check: Podman) -> None:
    pm = leak_check
    name = "pyrunc-podman-bg"
    # sh as PID 1 ignores SIGTERM unless it traps it
    script = 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.1; done'
    res = pm("run", "-d", "--name", name, *pm.run_args(), pm.image, "sh", "-c", script)
    assert res.returncode == 0, res.describe()
    cid = res.stdout.strip()
    assert len(cid) == 64, res.describe()
    try:
        assert pm.wait_status(name, "running") == "running"

        res = pm("exec", name, "sh", "-c", 'echo "exec:$(cat /proc/1/cmdline | tr "\\0" " ")"')
        assert_ok(res)
        assert res.stdout.startswith("exec:sh -c trap"), res.describe()

        # the exec'd process is in the container's pid namespace and cgroup
        res = pm("exec", name, "sh", "-c", "echo $$; cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
        assert_ok(res)
        pid, *cgroups = res.stdout.split()
        assert int(pid) > 1, res.describe()
        sep = cgroups.index("--")
        assert cgroups[:sep] == cgroups[sep + 1:], res.describe()

        res = pm("exec", name, "sh", "-c", "exit 7")
        assert res.returncode == 7, res.describe()

        res = pm("exec", "-i", name, "cat", input="via-exec-stdin\n")
        assert_ok(res, "via-exec-stdin\n")

        res = pm("exec", "-t", name, "tty")
        assert res.returncode == 0, res.describe()
        assert res.stdout.startswith("/dev/pts/"), res.describe()

        res = pm("exec", name, "nosuchcmd")
        assert res.returncode == 127, res.describe()
        assert "executable file not found" in res.stderr, res.describe()

        res = pm("ps", "--format", "{{.Names}} {{.Status}}")
        assert_ok(res)
        assert f"{name} Up" in res.stdout, res.describe()

        res = pm("stop", "--time", "10", name)
        assert_ok(res, f"{name}\n")
        res = pm("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert_ok(res, "exited 0\n")
        res = pm("logs", name)
        assert_ok(res)
        assert res.stdout.split() == ["ready", "got-term"], res.describe()

        res = pm("exec", name, "true")
        assert res.returncode != 0, "exec into a stopped container succeeded:\n" + res.describe()
    finally:
        res = pm("rm", "--force", "--time", "0", name)
    assert_ok(res, f"{name}\n")
    assert pm.container_ids() == []


@pytest.mark.slow
def test_stop_escalates_to_sigkill(leak_check: Podman) -> None:
    """A PID 1 that ignores SIGTERM: stop sends SIGTERM, then SIGKILL (137);
    the container can be started again and killed."""
    pm = leak_check
    name = "pyrunc-podman-sleep"
    res = pm("run", "-d", "--name", name, *pm.run_args(), pm.image, "sleep", "1000")
    assert res.returncode == 0, res.describe()
    try:
        assert pm.wait_status(name, "running") == "running"
        res = pm("stop", "--time", "1", name)
        assert_ok(res, f"{name}\n")
        res = pm("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert_ok(res, "exited 137\n")

        res = pm("start", name)
        assert_ok(res, f"{name}\n")
        assert pm.wait_status(name, "running") == "running"
        res = pm("kill", name)
        assert_ok(res)
        assert pm.wait_status(name, "exited") == "exited"
    finally:
        res = pm("rm", "--force", "--time", "0", name)
    assert_ok(res, f"{name}\n")


def test_missing_executable(leak_check: Podman) -> None:
    """podman's usual error (runc's text, from the runtime's log), exit 127,
    promptly, and no container left behind."""
    pm = leak_check
    res = pm("run", "--rm", *pm.run_args(), pm.image, "nosuchcmd")
    assert res.returncode == 127, res.describe()
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in res.stderr, res.describe()
    assert "OCI runtime attempted to invoke a command that was not found" in res.stderr, res.describe()
    assert pm.container_ids() == []


def test_missing_executable_path(leak_check: Podman) -> None:
    pm = leak_check
    res = pm("run", "--rm", *pm.run_args(), pm.image, "/no/such/file")
    assert res.returncode == 127, res.describe()
    assert "no such file or directory" in res.stderr, res.describe()
    assert pm.container_ids() == []


# ---------------------------------------------------------------------------
# beyond the basics: other parts of the contract podman relies on


def test_no_pid_namespace(leak_check: Podman) -> None:
    """--pid host: no pid namespace, so the runtime's first child is the init
    itself; it must survive `create` exiting (runc: created, then runs)."""
    pm = leak_check
    res = pm("run", "--rm", "--pid", "host", *pm.run_args(), pm.image,
             "sh", "-c", 'test $$ -ne 1 && echo not-pid-1')
    assert_ok(res, "not-pid-1\n")


def test_user_namespace(leak_check: Podman) -> None:
    """--uidmap/--gidmap: the init runs as uid 100000 on the host and must
    still be able to open the exec fifo (runc: mode 0622, owned by the
    container's root)."""
    pm = leak_check
    res = pm("run", "--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536",
             *pm.run_args(), pm.image, "sh", "-c", "cat /proc/self/uid_map; id -u")
    assert res.returncode == 0, res.describe()
    assert res.stdout.split() == ["0", "100000", "65536", "0"], res.describe()


def test_rlimit_error_is_a_create_error(leak_check: Podman) -> None:
    """An rlimit the kernel refuses (NOFILE above fs.nr_open fails even with
    CAP_SYS_RESOURCE): runc reports it from `create` ("error setting rlimits
    for ready process"), podman exits 126; not a silent exit 1 at start."""
    pm = leak_check
    n = int(open("/proc/sys/fs/nr_open").read()) + 1
    res = pm("run", "--rm", "--network", "none", "--cgroup-parent", pm.cgroup_parent,
             "--ulimit", f"nofile={n}:{n}", "--ulimit", "nproc=1024:1024", pm.image, "true")
    assert res.returncode == 126, res.describe()
    assert "error setting rlimit" in res.stderr, res.describe()
    assert pm.container_ids() == []


def test_pause_unpause(leak_check: Podman) -> None:
    """podman pause/unpause call the runtime's pause/resume (freezer)."""
    pm = leak_check
    name = "pyrunc-podman-pause"
    res = pm("run", "-d", "--name", name, *pm.run_args(), pm.image, "sleep", "1000")
    assert res.returncode == 0, res.describe()
    try:
        assert pm.wait_status(name, "running") == "running"
        res = pm("pause", name)
        assert_ok(res, f"{name}\n")
        assert pm.wait_status(name, "paused") == "paused"
        res = pm("unpause", name)
        assert_ok(res, f"{name}\n")
        assert pm.wait_status(name, "running") == "running"
        res = pm("exec", name, "echo", "alive")
        assert_ok(res, "alive\n")
    finally:
        res = pm("rm", "--force", "--time", "0", name)
    assert_ok(res, f"{name}\n")


def test_oom_is_reported(leak_check: Podman) -> None:
    """--memory 16m and a shell that doubles a string until the OOM killer
    ends it: exit 137, and conmon sees the OOM event of the memory cgroup the
    runtime put the container in, so podman reports State.OOMKilled.

    conmon 2.1.6 writes its `oom` marker into its working directory, which is
    podman's, while podman 4.3 looks for it in the container's bundle (later
    podman passes --persist-dir): so `podman start` runs from the bundle, as
    it must for podman 4.3 to report any OOM kill, whatever the runtime."""
    pm = leak_check
    name = "pyrunc-podman-oom"
    res = pm("create", "--name", name, *pm.run_args("--memory", "16m", "--memory-swap", "16m"),
             pm.image, "sh", "-c", MEMORY_HOG)
    assert res.returncode == 0, res.describe()
    try:
        bundle = pm("inspect", "--format", "{{.StaticDir}}", name, check=True).stdout.strip()
        res = pm("start", "--attach", name, cwd=bundle)
        assert res.returncode == 137, res.describe()
        res = pm("inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", name)
        assert_ok(res, "true 137\n")
    finally:
        res = pm("rm", "--force", "--time", "0", name)
    assert_ok(res, f"{name}\n")


def _netavark_rules(table: str) -> list[str]:
    out = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "NETAVARK" in line]


@pytest.fixture
def netavark_host() -> Iterator[None]:
    """netavark (podman 4.3's network backend) turns on net.ipv4.ip_forward
    and leaves its iptables chains behind after the last container has gone:
    put back what was there before (chains only if there were none)."""
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed (netavark needs it)")
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    forward_before = forward.read_text()
    tables = ("filter", "nat")
    had_rules = {t: bool(_netavark_rules(t)) for t in tables}
    yield
    forward.write_text(forward_before)
    for table in tables:
        if had_rules[table]:
            continue  # another podman's: leave them
        rules = _netavark_rules(table)
        iptables = ["iptables", "-w", "-t", table]
        for rule in rules:  # the jumps into netavark's chains from the built-in ones
            argv = shlex.split(rule)
            if argv[0] == "-A" and not argv[1].startswith("NETAVARK"):
                subprocess.run([*iptables, "-D", *argv[1:]], check=True)
        chains = [shlex.split(r)[1] for r in rules if r.startswith("-N ")]
        for chain in chains:
            subprocess.run([*iptables, "-F", chain], check=True)
        for chain in chains:
            subprocess.run([*iptables, "-X", chain], check=True)


def test_default_bridge_network(leak_check: Podman, netavark_host: None) -> None:
    """podman's default network (`podman`, a netavark bridge, what netns
    "bridge" gives): the runtime makes the network namespace, netavark plugs
    a veth into it, and the container has an eth0 with an address of the
    network's subnet and reaches the host side of the bridge (the gateway).
    Only the bridge is used: nothing leaves the machine."""
    pm = leak_check
    res = pm("network", "inspect", "podman")
    assert_ok(res)
    net = json.loads(res.stdout)[0]
    assert net["driver"] == "bridge", res.describe()
    subnet = ipaddress.ip_network(net["subnets"][0]["subnet"])
    gateway = net["subnets"][0]["gateway"]
    bridge = Path("/sys/class/net") / net["network_interface"]
    bridge_before = bridge.exists()
    res = pm("run", "--rm", *pm.run_args(network="bridge"), pm.image, "sh", "-c",
             f"ip -o -4 addr show dev eth0; ping -c 1 -W 5 {gateway}")
    assert res.returncode == 0, res.describe()
    addr = res.stdout.split("inet ", 1)[1].split()[0]
    assert ipaddress.ip_interface(addr).network == subnet, res.describe()
    assert ipaddress.ip_interface(addr).ip != ipaddress.ip_address(gateway), res.describe()
    assert "1 packets received" in res.stdout, res.describe()
    assert bridge.exists() == bridge_before, f"{bridge} left behind"
