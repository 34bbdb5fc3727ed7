"""linux.memoryPolicy (issue 11, item 15): set_mempolicy(2) in the container
process, read back from inside through /proc/self/numa_maps (the policy of
each mapping: "bind:0", "interleave=static:0", ...), and runc 1.5's errors
(tests/integration/memorypolicy.bats).

The machine may have a single NUMA node (0): what needs more nodes is not
tested; modes the running kernel does not know are skipped.
"""
from __future__ import annotations

import os

import pytest

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/proc/self/numa_maps"), reason="no /proc/self/numa_maps (kernel without CONFIG_NUMA)"),
    pytest.mark.runc_ref_differs(reason="runc 1.1.5 ignores linux.memoryPolicy"),
]

POLICY = "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2-"


def _kernel_takes(mode: int, flags: int = 0) -> bool:
    """Whether this kernel knows the mode (tested in a child: the policy sticks)."""
    from pyrunc.linux import sys as L
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            L.set_mempolicy(mode | flags, None if mode in (0, 4) else (1).to_bytes(128, "little"))
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def run_policy(rt, bundle, mp: dict):
    bundle.update(lambda c: c["linux"].update(memoryPolicy=mp))
    bundle.set_args("sh", "-c", POLICY)
    return rt.run_fg(rt.new_id(), bundle)


@pytest.mark.parametrize("mode, nodes, flags, want", [
    ("MPOL_DEFAULT", None, [], "default"),
    ("MPOL_LOCAL", None, [], "local"),
    ("MPOL_PREFERRED", None, [], "local"),  # preferred with no node is local
    ("MPOL_PREFERRED", "0", [], "prefer:0"),
    ("MPOL_BIND", "0", [], "bind:0"),
    ("MPOL_BIND", "0-7", [], "bind:0"),  # the kernel keeps the nodes that exist
    ("MPOL_INTERLEAVE", "0", [], "interleave:0"),
    ("MPOL_PREFERRED_MANY", "0", [], "prefer (many):0"),
    ("MPOL_WEIGHTED_INTERLEAVE", "0", [], "weighted interleave:0"),
    ("MPOL_BIND", "0", ["MPOL_F_STATIC_NODES"], "bind=static:0"),
    ("MPOL_BIND", "0", ["MPOL_F_RELATIVE_NODES"], "bind=relative:0"),
    ("MPOL_BIND", "0", ["MPOL_F_NUMA_BALANCING"], "bind=balancing:0"),
    ("MPOL_INTERLEAVE", ",0,", ["MPOL_F_STATIC_NODES"], "interleave=static:0"),
    ("MPOL_PREFERRED", "0", ["MPOL_F_RELATIVE_NODES"], "prefer=relative:0"),
])
def test_policy_seen_inside(rt, bundle, mode, nodes, flags, want):
    from pyrunc.linux import consts as C
    if not _kernel_takes(C.MPOL_MODES[mode], sum(C.MPOL_FLAGS[f] for f in flags)):
        pytest.skip(f"this kernel refuses {mode} {flags}")
    mp: dict = {"mode": mode, "flags": flags}
    if nodes is not None:
        mp["nodes"] = nodes
    res = run_policy(rt, bundle, mp).expect_ok()
    assert res.stdout.split(" file=")[0].split(" anon=")[0].strip() == want, res.stdout


def test_exec_gets_the_policy(rt, bundle):
    """runc's setns init applies it too (memorypolicy.bats: run and exec)."""
    bundle.update(lambda c: c["linux"].update(memoryPolicy={"mode": "MPOL_PREFERRED", "nodes": "0",
                                                             "flags": ["MPOL_F_RELATIVE_NODES"]}))
    bundle.set_args("sleep", "60")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    out = rt.exec_(cid, "sh", "-c", POLICY).expect_ok().stdout
    assert out.startswith("prefer=relative:0 "), out
    out = rt.exec_(cid, "sh", "-c", "head -n 1 /proc/1/numa_maps | cut -d ' ' -f 2").expect_ok().stdout
    assert out.strip() == "prefer=relative:0"  # the init's, kept across its execve


def test_no_policy_is_default(rt, bundle):
    """Without the field nothing is set: the container runs with the default."""
    bundle.set_args("sh", "-c", POLICY)
    res = rt.run_fg(rt.new_id(), bundle).expect_ok()
    assert res.stdout.startswith("default "), res.stdout


@pytest.mark.parametrize("mp, msg", [
    ({}, 'invalid memory policy mode ""'),
    ({"mode": "INTERLEAVE", "nodes": "0"}, 'invalid memory policy mode "INTERLEAVE"'),
    ({"nodes": "0-7"}, "invalid memory policy mode"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]},
     'invalid memory policy flag "badflag"'),
    ({"mode": "MPOL_DEFAULT", "nodes": "0-7"}, "memory policy mode requires 0 nodes but got 8"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "memory policy mode requires 0 nodes but got 1"),
    ({"mode": "MPOL_BIND"}, "memory policy mode requires at least one node but got 0"),
    ({"mode": "MPOL_BIND", "nodes": "0-9876543210", "flags": []},
     'invalid memory policy nodes "0-9876543210": strconv.ParseUint: parsing "9876543210": value out of range'),
    ({"mode": "MPOL_BIND", "nodes": "1024"}, 'invalid memory policy nodes "1024": values larger than 1023'),
    ({"mode": "MPOL_BIND", "nodes": "3-1"}, 'invalid memory policy nodes "3-1": invalid range: 3-1'),
])
def test_invalid_policy_is_refused(rt, bundle, leakcheck, mp, msg):
    res = run_policy(rt, bundle, mp).expect_fail(one_line=True)
    assert msg in res.error_message, res
    leakcheck.assert_clean()


@pytest.mark.parametrize("mp", [
    {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
    {"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
    {"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]},
])
def test_kernel_refusal_is_a_create_error(rt, bundle, leakcheck, mp):
    """Combinations only the kernel refuses: runc's "set_mempolicy: invalid
    argument", from the container process, before the user's process runs."""
    cid = rt.new_id()
    bundle.update(lambda c: c["linux"].update(memoryPolicy=mp))
    bundle.set_args("true")
    rt.fail("create", "--bundle", bundle.path, cid, match="set_mempolicy: invalid argument", one_line=True)
    rt.fail("state", cid)
    leakcheck.assert_clean()


def test_nodes_outside_the_machine(rt, bundle, leakcheck):
    nodes = sorted(int(n[4:]) for n in os.listdir("/sys/devices/system/node") if n[4:].isdigit() and n.startswith("node"))
    missing = max(nodes) + 1
    if missing > 1023:
        pytest.skip("every node id is present")
    run_policy(rt, bundle, {"mode": "MPOL_BIND", "nodes": str(missing)}).expect_fail(
        match="set_mempolicy: invalid argument", one_line=True)
    leakcheck.assert_clean()
