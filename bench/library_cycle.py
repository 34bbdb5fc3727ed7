#!/usr/bin/env python3
"""Container cycles per second through the library, in one Python process.

    python3 bench/library_cycle.py [--cycles N] [--warmup N] [--pyrunc PATH]
                                   [--compare runc,crun] [--profile] [--hybrid] [--json]

Must run as root.  Stdlib only.

One cycle is what a containerd shim built on `pyrunc.Container` does for
one container, on a busybox bundle running `sleep 1000` (bench/common.py's
rootfs, config.json from `runc spec`):

    create   Container.create(id, bundle, root=R)
    start    c.start()
    kill     c.kill(SIGKILL), then the wait for the init's exit: c.wait()
             (a pidfd) when the library has it, else a pidfd on c.pid and a
             reap (the script is a child subreaper, as a shim is, so the
             init is its child once the create's stage child is gone)
    delete   c.delete()

The whole loop runs in the private mount namespace and cgroup layout that
bench.py uses (legacy v1 here, --hybrid keeps the host's), so the figures
sit next to bench.py's.  --compare runs the same cycle through another
runtime's command line (create, start, kill KILL, pidfd wait + reap,
delete), interleaved with the library's cycles, for a ratio.

pyrunc is imported from the installation the launcher --pyrunc points at
(its `sys.path.append(...)` line), default `pyrunc` on PATH; --lib DIR
names the directory that holds the package instead.

Output: cycles per second (cycles / the loop's wall time, warm-up
excluded), median and p90 per phase in ms; --profile adds a cProfile of
the measured loop (top 30 by cumulative time) to stderr.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

PHASES = ("create", "start", "kill+reap", "delete")
STOP_TIMEOUT = 10.0


def pctl(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def lib_dir(a) -> str:
    """The directory holding the pyrunc package of the installation."""
    if a.lib:
        return os.path.abspath(a.lib)
    launcher = a.pyrunc or shutil.which("pyrunc", path=common.SEARCH_PATH)
    if not launcher:
        raise SystemExit("library_cycle.py: no pyrunc found (--pyrunc or --lib)")
    launcher = os.path.realpath(launcher)
    with open(launcher, "rb") as f:
        head = f.read(4096).decode(errors="replace")
    for line in head.splitlines():
        line = line.strip()
        if line.startswith("sys.path.append("):
            return line[len("sys.path.append("):].rstrip(")").strip("'\"")
    raise SystemExit(f"library_cycle.py: {launcher} is not a pyrunc launcher (no sys.path line); use --lib")


def waiter(container) -> tuple:
    """How this library lets a caller wait for the init's exit: c.wait() if
    it has one, else a pidfd on the init's pid and a reap. (wait, needs_pid)"""
    if hasattr(container, "wait"):
        def by_wait(c, pid):
            c.wait(timeout=STOP_TIMEOUT)
        return by_wait, False

    def by_pid(c, pid):
        if not common.wait_pid_exit(pid, STOP_TIMEOUT):
            raise RuntimeError(f"init {pid} still alive {STOP_TIMEOUT}s after SIGKILL")
    return by_pid, True


def lib_cycle(Container, cid: str, bundle: str, root: str, wait, needs_pid: bool,
              t: dict[str, list[float]]) -> None:
    pc = time.perf_counter
    t0 = pc()
    c = Container.create(cid, bundle, root=root)
    t1 = pc()
    c.start()
    t2 = pc()
    pid = c.pid if needs_pid else 0  # a state read, counted in kill+reap
    c.kill(signal.SIGKILL)
    wait(c, pid)
    t3 = pc()
    c.delete()
    t4 = pc()
    for name, a, b in (("create", t0, t1), ("start", t1, t2), ("kill+reap", t2, t3), ("delete", t3, t4)):
        t[name].append(b - a)


def cli_cycle(s: common.Session, rt: common.Runtime, cid: str, bundle: str, t: dict[str, list[float]]) -> None:
    run = s.runner.run
    pc = time.perf_counter
    t0 = pc()
    r = run(rt.argv("create", "--bundle", bundle, cid), timeout=10)
    t1 = pc()
    if not r.ok:
        raise RuntimeError(f"{rt.name} create: {s.anon(r.why(), cid)}")
    r = run(rt.argv("start", cid), timeout=10)
    t2 = pc()
    if not r.ok:
        raise RuntimeError(f"{rt.name} start: {s.anon(r.why(), cid)}")
    pid = int(json.loads(run(rt.argv("state", cid), capture=True).out)["pid"])  # not timed
    t2b = pc()
    r = run(rt.argv("kill", cid, "KILL"), timeout=10)
    if not r.ok or not common.wait_pid_exit(pid, STOP_TIMEOUT):
        raise RuntimeError(f"{rt.name} kill: {s.anon(r.why(), cid)}")
    t3 = pc()
    r = run(rt.argv("delete", cid), timeout=10)
    t4 = pc()
    if not r.ok:
        raise RuntimeError(f"{rt.name} delete: {s.anon(r.why(), cid)}")
    for name, a, b in (("create", t0, t1), ("start", t1, t2), ("kill+reap", t2b, t3), ("delete", t3, t4)):
        t[name].append(b - a)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=200, help="measured cycles (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="cycles first, not measured (default 10)")
    p.add_argument("--pyrunc", help="the pyrunc launcher whose installation is imported")
    p.add_argument("--lib", help="directory holding the pyrunc package (instead of --pyrunc)")
    p.add_argument("--compare", default="", help="runtimes to run the same cycle through their "
                                                 "command line, e.g. runc,crun (name or name=path)")
    p.add_argument("--profile", action="store_true", help="cProfile the measured loop (top 30 cumulative)")
    p.add_argument("--root", help="parent directory of the state root (default: the run's temp dir; "
                                  "/run, a tmpfs, is where engines keep it)")
    p.add_argument("--hybrid", action="store_true", help="keep the host cgroup layout")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    lib = lib_dir(a)
    sys.path.insert(0, lib)
    import pyrunc
    from pyrunc import Container
    if not os.path.dirname(pyrunc.__file__).startswith(lib):
        raise SystemExit(f"library_cycle.py: imported pyrunc from {pyrunc.__file__}, not {lib}")

    s = common.Session("library_cycle.py", a.hybrid)
    out: dict = {}
    me = None
    try:
        launcher = os.path.join(os.path.dirname(lib), "bin", "pyrunc")
        me = common.Runtime("pyrunc", launcher, s.workdir)  # its root; cleanup deletes through the CLI
        if a.root:
            os.rmdir(me.root)
            me.root = tempfile.mkdtemp(prefix=f"pyrunc-cycle-{s.tag}-", dir=a.root)
        s.runtimes = [me]
        others = []
        if a.compare:
            rts, skipped = common.resolve_runtimes(a.compare, None, a.hybrid, s.workdir)
            for name, why in skipped.items():
                log(f"note: {name} {why}")
            others = [r for r in rts if r.name != "pyrunc"]
            s.runtimes += others
            for rt in others:
                rt.probe_version(s.runner)
        base, spec_src = common.base_spec(s.runner, others, s.workdir)
        rootfs = common.build_rootfs(os.path.join(s.workdir, "rootfs"))
        bundle = common.write_bundle(os.path.join(s.workdir, "bundle-sleep"), base, rootfs, ["/bin/sleep", "1000"])
        wait, needs_pid = waiter(Container)
        log(f"cgroups: {s.ns}")
        log(f"files (state roots among them): {s.workdir}")
        log(f"pyrunc {pyrunc.__version__} from {lib}; wait: "
            f"{'pidfd on Container.pid + reap' if needs_pid else 'Container.wait()'}")

        lib_t = {ph: [] for ph in PHASES}
        cli_t = {rt.name: {ph: [] for ph in PHASES} for rt in others}
        cli_wall = {rt.name: 0.0 for rt in others}
        prof = None
        gc.collect()
        wall = 0.0
        cpu_self = cpu_kids = 0.0
        total = a.warmup + a.cycles
        for i in range(total):
            record = i >= a.warmup
            if record and i == a.warmup and a.profile:
                import cProfile
                prof = cProfile.Profile()
            t = lib_t if record else {ph: [] for ph in PHASES}
            if prof is not None:
                prof.enable()
            r0 = os.times()
            t0 = time.perf_counter()
            lib_cycle(Container, s.cid(me, f"c{i}"), bundle, me.root, wait, needs_pid, t)
            t1 = time.perf_counter()
            r1 = os.times()
            if prof is not None:
                prof.disable()
            if record:
                wall += t1 - t0
                cpu_self += r1.user + r1.system - r0.user - r0.system
                cpu_kids += r1.children_user + r1.children_system - r0.children_user - r0.children_system
            for rt in others:
                t0 = time.perf_counter()
                cli_cycle(s, rt, s.cid(rt, f"c{i}"), bundle, cli_t[rt.name] if record else {ph: [] for ph in PHASES})
                if record:
                    cli_wall[rt.name] += time.perf_counter() - t0
            if (i + 1) % 50 == 0:
                log(f"  {i + 1}/{total}")
        out = {"cycles": a.cycles, "warmup": a.warmup, "cgroups": s.ns, "lib": lib,
               "load": os.getloadavg(), "spec": spec_src,
               "runtimes": {"pyrunc (library)": summary(lib_t, wall, a.cycles)},
               "cpu_ms_per_cycle": {"caller": cpu_self / a.cycles * 1e3, "children": cpu_kids / a.cycles * 1e3}}
        for rt in others:
            out["runtimes"][f"{rt.name} (CLI)"] = summary(cli_t[rt.name], cli_wall[rt.name], a.cycles)
            out["runtimes"][f"{rt.name} (CLI)"]["version"] = rt.version
        if prof is not None:
            import io
            import pstats
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
            log(buf.getvalue())
    finally:
        leaks = s.close()
        if a.root and me is not None:
            shutil.rmtree(me.root, ignore_errors=True)
    if leaks:
        for l in leaks:
            log(f"note: LEAK (cleaned up): {l}")
        out["leaks"] = leaks
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print_table(out)
    return 1 if leaks else 0


def summary(t: dict[str, list[float]], wall: float, n: int) -> dict:
    return {"cycles_per_second": n / wall if wall else 0.0,
            "phases": {ph: {"median_ms": statistics.median(xs) * 1e3, "p90_ms": pctl(xs, 0.9) * 1e3}
                       for ph, xs in t.items() if xs}}


def print_table(out: dict) -> None:
    if not out:
        return
    print(f"{out['cycles']} cycles (+{out['warmup']} warm-up); {out['cgroups']}; "
          f"load {' '.join(f'{x:.2f}' for x in out['load'])}")
    print(f"{'':22}{'cycles/s':>9}" + "".join(f"{ph:>20}" for ph in PHASES))
    print(f"{'ms (median / p90)':22}{'':9}" + "".join(f"{'':20}" for _ in PHASES))
    for name, r in out["runtimes"].items():
        cells = "".join(f"{r['phases'][ph]['median_ms']:>11.2f} /{r['phases'][ph]['p90_ms']:>6.2f}"
                        for ph in PHASES)
        print(f"{name:22}{r['cycles_per_second']:>9.1f}{cells}")
    cpu = out["cpu_ms_per_cycle"]
    print(f"library CPU per cycle: {cpu['caller']:.2f} ms in the caller, {cpu['children']:.2f} ms in its "
          f"children (stage child, init up to its exec, the container's process)")


if __name__ == "__main__":
    sys.exit(main())
