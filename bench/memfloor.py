#!/usr/bin/env python3
"""Memory floor of OCI runtimes: the smallest cgroup memory limit under which
`RT run` of `echo hi` works (prints "hi", exits 0).

    python3 bench/memfloor.py [--runtimes pyrunc,runc,crun] [--pyrunc PATH]
                              [--min-kib 64] [--max-kib 65536] [--step-kib 64]
                              [--repeat 3] [--confirm 5] [--hybrid] [--json]

Must run as root.  Stdlib only.

Why it matters: everything a runtime's init process touches after it has
joined the container's cgroup is charged to the container, so the runtime
sets a lower bound on the memory limit a container can be given.

How: the same busybox bundle as bench.py (config from `runc spec`, terminal
false, process.args ["/bin/echo", "hi"]), with

    linux.resources.memory = {"limit": L, "swap": L}

On cgroup v1 (this host, see below) "limit" goes to memory.limit_in_bytes
and "swap" to memory.memsw.limit_in_bytes, which is memory+swap.  So swap
must be >= limit (runc 1.1.5 and crun 1.8.1 do not check this themselves;
the kernel rejects memsw < limit with EINVAL and they fail), swap == limit
means "no swap at all", and without "swap" memsw stays unlimited (swap could
then hide the floor on a host with swap).  "swap" is set whenever
memory.memsw.* exists (swap accounting on).  Per runtime, a binary search over L in multiples of --step-kib between
--min-kib and --max-kib; a limit passes only if --repeat consecutive runs all
pass (each with a fresh id), because the result is noisy (OOM kills hit the
runtime's init at slightly different points).  The floor found is then
confirmed with --confirm more runs; if any fails, the floor is raised by one
step and confirmed again.  Printed: the floor in KiB per runtime, the
largest limit seen failing with its error, and ratios against the subject
(the first runtime with a result, pyrunc by default).

cgroup layout: as bench.py, the whole run happens in one private mount
namespace in which the cgroup2 mount at /sys/fs/cgroup/unified is hidden
(crun 1.8 refuses the hybrid layout), so all runtimes use plain cgroup v1;
--hybrid keeps the host layout and skips crun.

Runtimes that are missing are skipped with a note; a runtime that fails even
at --max-kib is reported with its error.  Containers, cgroup directories and
temp dirs are cleaned up at the end and on Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True   # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

MEMCG = "/sys/fs/cgroup/memory"


class Prober:
    def __init__(self, s: common.Session, rt: common.Runtime, bundle: str,
                 base: dict, rootfs: str, a):
        self.s, self.rt, self.bundle, self.base, self.rootfs, self.a = \
            s, rt, bundle, base, rootfs, a
        self.memsw = os.path.exists(os.path.join(MEMCG, "memory.memsw.limit_in_bytes")) \
            or common.cgroup_layout() == "unified"
        self.n = 0           # runs done
        self.log: list[tuple[int, bool, str]] = []   # (kib, passed, why)

    def once(self, kib: int) -> tuple[bool, str]:
        self.n += 1
        cid = self.s.cid(self.rt, f"m{kib}k-{self.n}")
        r = self.s.runner.run(self.rt.argv("run", "--bundle", self.bundle, cid),
                              capture=True, timeout=self.a.timeout)
        ok = r.ok and r.out == "hi\n"
        if r.ok and not ok:
            why = f"exit 0 but stdout {r.out[:80]!r}"
        else:
            why = "" if ok else self.s.anon(r.why(), cid)
        if not ok or os.path.exists(os.path.join(self.rt.root, cid)):
            self.s.delete_container(self.rt, cid, f"(run at {kib} KiB)")
        common.reap_orphans()
        return ok, why

    def probe(self, kib: int, times: int) -> bool:
        """True if `times` runs under a limit of kib KiB all pass."""
        nbytes = kib * 1024
        mem = {"limit": nbytes}
        if self.memsw:
            mem["swap"] = nbytes
        common.write_bundle(self.bundle, self.base, self.rootfs,
                            ["/bin/echo", "hi"], mem)
        for _ in range(times):
            ok, why = self.once(kib)
            if not ok:
                self.log.append((kib, False, why))
                log(f"    {self.rt.name}: {kib:6d} KiB  fail  {why[:110]}")
                return False
        self.log.append((kib, True, ""))
        log(f"    {self.rt.name}: {kib:6d} KiB  pass x{times}")
        return True


def find_floor(p: Prober, a) -> dict:
    step = a.step_kib
    kmin = max(1, -(-a.min_kib // step))
    kmax = max(kmin, a.max_kib // step)
    res = {"floor_kib": None, "result": None, "fails_at_kib": None,
           "fail_error": None}
    if not p.probe(kmax * step, a.repeat):
        res["result"] = f"fails even at --max-kib {kmax * step}"
        res["fail_error"] = p.log[-1][2]
        return res
    if p.probe(kmin * step, a.repeat):
        res["result"] = f"works at --min-kib {kmin * step}: the floor is at most that"
        res["floor_kib"] = kmin * step
        return res
    lo, hi = kmin, kmax           # lo fails, hi passes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if p.probe(mid * step, a.repeat):
            hi = mid
        else:
            lo = mid
    for _ in range(16):           # confirm; noise moves the floor up
        if hi >= kmax or p.probe(hi * step, a.confirm):
            break
        lo, hi = hi, hi + 1
    fails = [(k, w) for k, ok, w in p.log if not ok and k < hi * step]
    res["floor_kib"] = hi * step
    res["result"] = "ok"
    if fails:
        k, w = max(fails)
        res["fails_at_kib"], res["fail_error"] = k, w
    return res


def pass_profile(p: Prober, floor_kib: int, a) -> list[list[int]]:
    """[[kib, passes], ...] with a.profile runs each, from floor + 1 step
    down until two consecutive steps pass 0 times (at most 12 steps)."""
    out, zeros = [], 0
    kib = floor_kib + a.step_kib
    while kib >= a.min_kib and len(out) < 13 and zeros < 2:
        common.write_bundle(p.bundle, p.base, p.rootfs, ["/bin/echo", "hi"],
                            {"limit": kib * 1024, **({"swap": kib * 1024} if p.memsw else {})})
        n = sum(p.once(kib)[0] for _ in range(a.profile))
        log(f"    {p.rt.name}: {kib:6d} KiB  {n}/{a.profile} pass")
        out.append([kib, n])
        zeros = zeros + 1 if n == 0 else 0
        kib -= a.step_kib
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtimes", default="pyrunc,runc,crun",
                    help="comma list; name or name=/path (default pyrunc,runc,crun)")
    ap.add_argument("--pyrunc", metavar="PATH", help="pyrunc binary (default: `which pyrunc`)")
    ap.add_argument("--min-kib", type=int, default=64)
    ap.add_argument("--max-kib", type=int, default=64 * 1024)
    ap.add_argument("--step-kib", type=int, default=64,
                    help="granularity (default 64 KiB)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs that must all pass for a limit to pass (default 3)")
    ap.add_argument("--confirm", type=int, default=5,
                    help="extra runs confirming the floor found (default 5)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the search, N runs at each step from the floor "
                         "down (until 2 steps pass 0/N, at most 12 steps): "
                         "pass rates, to show how noisy the floor is (default off)")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds before one `run` is killed (default 20)")
    ap.add_argument("--hybrid", action="store_true",
                    help="keep the host's hybrid cgroup layout; skips crun")
    ap.add_argument("--json", action="store_true", help="JSON on stdout")
    a = ap.parse_args(argv)
    if a.step_kib < 4 or a.step_kib % 4 or a.min_kib > a.max_kib or a.repeat < 1:
        ap.error("need --step-kib a multiple of 4, --min-kib <= --max-kib, --repeat >= 1")

    s = common.Session("memfloor.py", a.hybrid)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    rts: list[common.Runtime] = []
    interrupted = False
    t_all = time.perf_counter()
    try:
        layout = common.cgroup_layout()
        if layout in ("legacy", "hybrid") and not os.path.isdir(MEMCG):
            raise SystemExit("memfloor.py: no cgroup v1 memory controller at " + MEMCG)
        prepared = common.prepare_runtimes(a, s)
        if prepared is None:
            return 2
        rts, skipped, base, spec_src, rootfs = prepared
        bundle = os.path.join(s.workdir, "bundle-echo")
        log(f"cgroups: {s.ns}")
        log(f"bundle: busybox rootfs, config from `{spec_src}`, echo hi; tag {s.tag}")
        for rt in rts:
            log(f"  {rt.name}: {rt.path} [{rt.version}]")
            p = Prober(s, rt, bundle, base, rootfs, a)
            t0 = time.perf_counter()
            res = find_floor(p, a)
            if a.profile > 0 and res["result"] == "ok":
                res["profile"] = pass_profile(p, res["floor_kib"], a)
            res["runs"] = p.n
            res["seconds"] = round(time.perf_counter() - t0, 1)
            res["swap_set"] = p.memsw
            res["probes"] = [{"kib": k, "pass": ok, "error": w} for k, ok, w in p.log]
            results[rt.name] = res
            log(f"  {rt.name}: floor {res['floor_kib']} KiB ({res['result']}), "
                f"{p.n} runs, {res['seconds']}s")
    except KeyboardInterrupt:
        interrupted = s.interrupted = True
        log("\ninterrupted: cleaning up")
    finally:
        leaks = s.close()

    have = [rt.name for rt in rts if results.get(rt.name, {}).get("floor_kib")]
    subject = have[0] if have else None
    ratios = {f"{subject}/{o}": results[subject]["floor_kib"] / results[o]["floor_kib"]
              for o in have[1:]} if subject else {}
    doc = {"cgroups": s.ns, "step_kib": a.step_kib, "min_kib": a.min_kib,
           "max_kib": a.max_kib, "repeat": a.repeat, "confirm": a.confirm,
           "elapsed_s": round(time.perf_counter() - t_all, 1),
           "interrupted": interrupted,
           "runtimes": {rt.name: dict(path=rt.path, version=rt.version,
                                      **results.get(rt.name, {})) for rt in rts},
           "skipped": skipped, "ratios": ratios, "leaks": leaks}
    if a.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
        return 130 if interrupted else 0

    print(f"cgroups: {doc['cgroups']}")
    print(f"memory floor of `RT run` of `echo hi`: limit = swap, {a.step_kib} KiB steps "
          f"in [{a.min_kib}, {a.max_kib}] KiB, {a.repeat}/{a.repeat} runs must pass, "
          f"floor confirmed {a.confirm} more times; {doc['elapsed_s']}s"
          + ("; INTERRUPTED" if interrupted else ""))
    print()
    print(f"{'runtime':9}{'floor KiB':>10}{'MiB':>7}{'fails at':>10}  {'runs':>5}  version / error just below the floor")
    for rt in rts:
        r = results.get(rt.name)
        if not r:
            print(f"{rt.name:9}{'-':>10}  (not measured)")
            continue
        fl = r["floor_kib"]
        cells = (f"{fl:10d}{fl / 1024:7.2f}" if fl else f"{'-':>10}{'':7}")
        fa = r["fails_at_kib"]
        print(f"{rt.name:9}{cells}{(str(fa) if fa else '-'):>10}  {r['runs']:5d}  {rt.version}")
        if r["result"] != "ok":
            print(f"{'':9}  {r['result']}")
        if r["fail_error"]:
            print(f"{'':9}  at {fa or a.max_kib} KiB: {r['fail_error'][:300]}")
    for name, why in skipped.items():
        print(f"{name:9}  {why}")
    prof = {rt.name: results[rt.name]["profile"] for rt in rts
            if results.get(rt.name, {}).get("profile")}
    if prof:
        print()
        print(f"pass rate, {a.profile} runs per limit (KiB: passes):")
        for name, rows in prof.items():
            print(f"  {name:7} " + "  ".join(f"{k}:{n}" for k, n in rows))
    if ratios:
        print()
        print("ratios: " + ", ".join(f"{k} = {v:.2f}x" for k, v in ratios.items()))
    for l in leaks[:10]:
        print(f"note: LEAK (cleaned up): {l}")
    if len(leaks) > 10:
        print(f"note: ... and {len(leaks) - 10} more leaks (see --json)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
