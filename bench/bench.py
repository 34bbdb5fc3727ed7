#!/usr/bin/env python3
"""Side-by-side start-up timings of OCI runtimes: pyrunc against runc and crun.

    python3 bench/bench.py [--runs N] [--warmup N] [--runtimes pyrunc,runc,crun]
                           [--pyrunc PATH] [--stop reap|poll|force]
                           [--measure run,seq] [--timeout S] [--hybrid] [--json]

Must run as root.  Stdlib only (Python >= 3.9; written for 3.11).

What is measured, for every runtime on the SAME bundle (one busybox rootfs
built from the host's static busybox, config.json from `runc spec` with
terminal false; two bundle directories share that rootfs and differ only in
process.args):

  run     `RT --root R run --bundle B <id>` of /bin/true, in the foreground,
          stdin /dev/null, stdout /dev/null: the wall time of the command.

  seq     what an engine (containerd's shim, conmon) does for one container,
          on a `sleep 1000` container, timed as a whole and step by step:
            create  `RT create --bundle B <id>`
            start   `RT start <id>`
            state   `RT state <id>`   (must say "running"; gives the pid)
            kill    `RT kill <id> KILL`
            wait    see --stop
            delete  `RT delete <id>`
          --stop reap (default): the benchmark is a child subreaper
              (PR_SET_CHILD_SUBREAPER), as containerd's shim is, so the
              container init, orphaned when `create` exits, is reparented
              to it; after `kill` it waits for the init's exit on a pidfd
              and reaps it (step "wait"), then runs a plain `delete`.  This
              is what engines do and it does not depend on how fast `state`
              is.
          --stop poll: after `kill`, run `RT state` until it says "stopped"
              (reaping zombies between polls, as a host init would); the
              step is "poll" and the number of state calls is reported.
          --stop force: no wait; `RT delete --force <id>` right after kill.

Fairness:
  * interleaved: every iteration runs each runtime once (run, then seq),
    and the order of runtimes rotates each iteration, so drifts (page cache,
    CPU frequency, cgroup/kernel caches) hit all runtimes alike; --warmup
    iterations first are not recorded;
  * every runtime has its own --root temp dir, every container a unique id;
  * one cgroup layout for all: crun 1.8 refuses the hybrid layout of this
    host, so the WHOLE benchmark runs in one private mount namespace
    (unshare(CLONE_NEWNS) + MS_REC|MS_PRIVATE via ctypes, in-process, no
    re-exec) in which the cgroup2 mount at /sys/fs/cgroup/unified is
    unmounted and covered by an empty tmpfs: every runtime sees plain
    cgroup v1.  --hybrid keeps the host layout (hybrid) and skips crun.
  * the harness's own cost (fork/exec of a child from Python and the pidfd
    wait) is in every number; it is printed as "spawn baseline" (host
    /bin/true), so absolute differences are meaningful, ratios slightly
    compressed.

A runtime whose binary is missing is skipped with a note; a runtime whose
commands fail is reported (failure counts and the first error lines), and a
measurement that fails 3 times in a row is dropped for that runtime.
Everything is cleaned up at the end, also on Ctrl-C / SIGTERM: containers
left in any --root are `delete --force`d, cgroup directories with this run's
tag are removed, orphans reaped, temp dirs deleted; what had to be cleaned
up is reported as a leak (it would be a runtime bug).

Output: median and p90 (nearest rank) in ms per runtime and measurement (also
the CPU time, user+sys from wait4 of the command and all it reaped: a figure
that load on the machine moves much less), and
ratios of medians subject/other, the subject being the first runtime in
--runtimes that produced data (pyrunc by default: pyrunc/runc, pyrunc/crun).
--json prints one JSON document (with the raw samples) on stdout instead.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True   # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import log  # noqa: E402

MAX_CONSECUTIVE_FAILURES = 3
STEP_TIMEOUT = 10.0          # seconds, any single runtime command (--timeout)
STOP_TIMEOUT = 10.0          # seconds for the init to die after kill


def pctl(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


class Recorder:
    """Samples and failures per runtime and metric."""

    def __init__(self):
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.fails: dict[str, dict[str, int]] = {}
        self.attempts: dict[str, dict[str, int]] = {}
        self.errors: dict[str, list[str]] = {}
        self.consecutive: dict[tuple[str, str], int] = {}
        self.disabled: dict[tuple[str, str], str] = {}
        self.extra: dict[str, dict[str, list[float]]] = {}

    def ok(self, rt: str, metrics: dict[str, float], group: str, record: bool):
        self.consecutive[(rt, group)] = 0
        if not record:
            return
        self.attempts.setdefault(rt, {}).setdefault(group, 0)
        self.attempts[rt][group] += 1
        for m, secs in metrics.items():
            self.samples.setdefault(rt, {}).setdefault(m, []).append(secs)

    def fail(self, rt: str, group: str, step: str, why: str, record: bool, it: int):
        if record:
            self.attempts.setdefault(rt, {}).setdefault(group, 0)
            self.attempts[rt][group] += 1
            self.fails.setdefault(rt, {}).setdefault(group, 0)
            self.fails[rt][group] += 1
        msg = f"{group}/{step}: {why}"
        errs = self.errors.setdefault(rt, [])
        if msg not in errs and len(errs) < 5:
            errs.append(msg)
        n = self.consecutive.get((rt, group), 0) + 1
        self.consecutive[(rt, group)] = n
        if n >= MAX_CONSECUTIVE_FAILURES:
            self.disabled[(rt, group)] = (
                f"dropped after {n} consecutive failures (iteration {it})")
            log(f"  {rt}: {group} {self.disabled[(rt, group)]}: {why}")

    def enabled(self, rt: str, group: str) -> bool:
        return (rt, group) not in self.disabled


def measure_run(s: common.Session, rt: common.Runtime, bundle: str, it: int,
                rec: Recorder, record: bool) -> None:
    cid = s.cid(rt, f"run{it}")
    r = s.runner.run(rt.argv("run", "--bundle", bundle, cid), timeout=STEP_TIMEOUT)
    if r.ok:
        m = {"run": r.secs}
        if r.cpu is not None:
            m["run_cpu"] = r.cpu
        rec.ok(rt.name, m, "run", record)
    else:
        rec.fail(rt.name, "run", "run", s.anon(r.why(), cid), record, it)
    if os.path.exists(os.path.join(rt.root, cid)) or not r.ok:
        s.delete_container(rt, cid, "after `run`" if r.ok else "after failed `run`")


def measure_seq(s: common.Session, rt: common.Runtime, bundle: str, it: int,
                rec: Recorder, record: bool, stop: str) -> None:
    cid = s.cid(rt, f"seq{it}")

    def run(argv, **kw):
        r = s.runner.run(argv, **kw)
        cpu[0] += r.cpu or 0.0
        return r
    steps: dict[str, float] = {}
    cpu = [0.0]
    failed = None
    completed = False
    t0 = time.perf_counter()
    try:
        r = run(rt.argv("create", "--bundle", bundle, cid), timeout=STEP_TIMEOUT)
        steps["create"] = r.secs
        if not r.ok:
            failed = ("create", r.why())
            return
        r = run(rt.argv("start", cid), timeout=STEP_TIMEOUT)
        steps["start"] = r.secs
        if not r.ok:
            failed = ("start", r.why())
            return
        r = run(rt.argv("state", cid), capture=True, timeout=STEP_TIMEOUT)
        steps["state"] = r.secs
        if not r.ok:
            failed = ("state", r.why())
            return
        try:
            st = json.loads(r.out)
            pid, status = int(st["pid"]), st["status"]
        except (ValueError, KeyError, TypeError) as e:
            failed = ("state", f"bad state JSON ({e}): {r.out[:200]!r}")
            return
        if status != "running" or pid <= 0:
            failed = ("state", f"status {status!r}, pid {pid} (want running)")
            return
        r = run(rt.argv("kill", cid, "KILL"), timeout=STEP_TIMEOUT)
        steps["kill"] = r.secs
        if not r.ok:
            failed = ("kill", r.why())
            return
        if stop == "reap":
            t = time.perf_counter()
            if not common.wait_pid_exit(pid, STOP_TIMEOUT):
                failed = ("wait", f"init pid {pid} still alive {STOP_TIMEOUT}s after kill")
                return
            steps["wait"] = time.perf_counter() - t
        elif stop == "poll":
            t = time.perf_counter()
            polls = 0
            while True:
                r = run(rt.argv("state", cid), capture=True, timeout=STEP_TIMEOUT)
                polls += 1
                if not r.ok:
                    failed = ("poll", r.why())
                    return
                try:
                    status = json.loads(r.out)["status"]
                except (ValueError, KeyError, TypeError) as e:
                    failed = ("poll", f"bad state JSON ({e})")
                    return
                if status == "stopped":
                    break
                common.reap_orphans()
                if time.perf_counter() - t > STOP_TIMEOUT:
                    failed = ("poll", f"still {status!r} {STOP_TIMEOUT}s after kill")
                    return
            steps["poll"] = time.perf_counter() - t
            if record:
                rec.extra.setdefault(rt.name, {}).setdefault("polls", []).append(polls)
        args = ("delete", "--force", cid) if stop == "force" else ("delete", cid)
        r = run(rt.argv(*args), timeout=STEP_TIMEOUT)
        steps["delete"] = r.secs
        if not r.ok:
            failed = ("delete", r.why())
            return
        steps["seq"] = time.perf_counter() - t0
        steps["seq_cpu"] = cpu[0]
        completed = True
    finally:
        if completed:
            rec.ok(rt.name, steps, "seq", record)
            if os.path.exists(os.path.join(rt.root, cid)):
                s.delete_container(rt, cid, "after `delete`")
        elif failed:
            rec.fail(rt.name, "seq", failed[0], s.anon(failed[1], cid), record, it)
            s.delete_container(rt, cid, f"after failed `{failed[0]}`")
        else:                     # interrupted (Ctrl-C): clean up, record nothing
            s.interrupted = True
            s.delete_container(rt, cid, "after interrupt")
        common.reap_orphans()


def summarize(rec: Recorder, rts: list[common.Runtime], metrics: list[str]) -> dict:
    out = {}
    for rt in rts:
        d = {}
        for m in metrics:
            xs = rec.samples.get(rt.name, {}).get(m, [])
            if xs:
                d[m] = {"n": len(xs),
                        "median_ms": statistics.median(xs) * 1e3,
                        "p90_ms": pctl(xs, 0.9) * 1e3,
                        "min_ms": min(xs) * 1e3,
                        "mean_ms": statistics.fmean(xs) * 1e3}
        out[rt.name] = d
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40,
                    help="recorded iterations per runtime (default 40)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="unrecorded iterations first (default 2)")
    ap.add_argument("--runtimes", default="pyrunc,runc,crun",
                    help="comma list; name or name=/path (default pyrunc,runc,crun)")
    ap.add_argument("--pyrunc", metavar="PATH",
                    help="pyrunc binary (default: `which pyrunc`)")
    ap.add_argument("--stop", choices=("reap", "poll", "force"), default="reap",
                    help="how the sequence waits for the killed init (default reap)")
    ap.add_argument("--measure", default="run,seq",
                    help="which measurements: run,seq (default both)")
    ap.add_argument("--hybrid", action="store_true",
                    help="keep the host's hybrid cgroup layout; skips crun")
    ap.add_argument("--timeout", type=float, default=STEP_TIMEOUT,
                    help=f"seconds before one runtime command is killed "
                         f"(default {STEP_TIMEOUT:g})")
    ap.add_argument("--json", action="store_true", help="JSON on stdout")
    a = ap.parse_args(argv)
    globals()["STEP_TIMEOUT"] = a.timeout
    groups = [g for g in a.measure.split(",") if g]
    if a.runs < 1 or not set(groups) <= {"run", "seq"} or not groups:
        ap.error("--runs must be >= 1 and --measure a subset of run,seq")

    s = common.Session("bench.py", a.hybrid)
    rec = Recorder()
    skipped: dict[str, str] = {}
    spawn: list[float] = []
    interrupted = False
    rts: list[common.Runtime] = []
    t_start = time.perf_counter()
    try:
        prepared = common.prepare_runtimes(a, s)
        if prepared is None:
            return 2
        rts, skipped, base, spec_src, rootfs = prepared
        b_true = common.write_bundle(os.path.join(s.workdir, "bundle-true"),
                                     base, rootfs, ["/bin/true"])
        b_sleep = common.write_bundle(os.path.join(s.workdir, "bundle-sleep"),
                                      base, rootfs, ["/bin/sleep", "1000"])
        log(f"cgroups: {s.ns}")
        log(f"bundle: busybox rootfs, config from `{spec_src}`, terminal false")
        for rt in rts:
            log(f"  {rt.name:8} {rt.path}  [{rt.version}]")
        log(f"{a.warmup} warm-up + {a.runs} recorded iterations, "
            f"measure {','.join(groups)}, stop={a.stop}, tag {s.tag}")

        gc.disable()
        total = a.warmup + a.runs
        for i in range(total):
            record = i >= a.warmup
            k = i % len(rts)
            order = rts[k:] + rts[:k]
            r = s.runner.run(["/bin/true"])
            if record and r.ok:
                spawn.append(r.secs)
            for rt in order:
                if "run" in groups and rec.enabled(rt.name, "run"):
                    measure_run(s, rt, b_true, i, rec, record)
                if "seq" in groups and rec.enabled(rt.name, "seq"):
                    measure_seq(s, rt, b_sleep, i, rec, record, a.stop)
            if (i + 1) % 10 == 0 or i + 1 == total:
                log(f"  iteration {i + 1}/{total}  ({time.perf_counter() - t_start:.0f}s)")
            gc.collect()
    except KeyboardInterrupt:
        interrupted = s.interrupted = True
        log("\ninterrupted: cleaning up, reporting what was measured so far")
    finally:
        gc.enable()
        leaks = s.close()
    elapsed = time.perf_counter() - t_start

    metrics = ["run", "run_cpu"] if "run" in groups else []
    if "seq" in groups:
        metrics += ["seq", "seq_cpu", "create", "start", "state", "kill"]
        metrics += {"reap": ["wait"], "poll": ["poll"], "force": []}[a.stop]
        metrics += ["delete"]
    summ = summarize(rec, rts, metrics)
    have = [rt.name for rt in rts if summ.get(rt.name)]
    subject = have[0] if have else None
    ratios = {}
    if subject:
        for other in have[1:]:
            # a ratio of sub-0.5 ms medians (the reap wait) is noise: left out
            ratios[f"{subject}/{other}"] = {
                m: summ[subject][m]["median_ms"] / summ[other][m]["median_ms"]
                for m in metrics if m in summ[subject] and m in summ[other]
                and min(summ[subject][m]["median_ms"], summ[other][m]["median_ms"]) >= 0.5}

    doc = {
        "cgroups": s.ns, "stop": a.stop, "runs": a.runs, "warmup": a.warmup,
        "elapsed_s": round(elapsed, 1), "interrupted": interrupted,
        "spawn_baseline_ms": statistics.median(spawn) * 1e3 if spawn else None,
        "runtimes": {
            rt.name: {
                "path": rt.path, "version": rt.version,
                "metrics": summ.get(rt.name, {}),
                "attempts": rec.attempts.get(rt.name, {}),
                "failures": rec.fails.get(rt.name, {}),
                "dropped": {g: w for (n, g), w in rec.disabled.items() if n == rt.name},
                "errors": rec.errors.get(rt.name, []),
                "polls": rec.extra.get(rt.name, {}).get("polls"),
                "samples_ms": {m: [round(x * 1e3, 3) for x in xs]
                               for m, xs in rec.samples.get(rt.name, {}).items()},
            } for rt in rts},
        "skipped": skipped, "ratios_of_medians": ratios, "leaks": leaks,
    }
    if a.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        print_table(doc, rts, metrics, a)
    return 130 if interrupted else 0


LABELS = {"run": "run /bin/true", "run_cpu": "  cpu user+sys", "seq": "create..delete",
          "seq_cpu": "  cpu user+sys", "create": "  create",
          "start": "  start", "state": "  state", "kill": "  kill KILL",
          "wait": "  wait (reap)", "poll": "  poll state", "delete": "  delete"}


def print_table(doc: dict, rts: list[common.Runtime], metrics: list[str], a) -> None:
    print(f"cgroups: {doc['cgroups']}")
    print(f"{a.runs} runs (+{a.warmup} warm-up), interleaved; stop={a.stop}; "
          f"{doc['elapsed_s']}s" + ("; INTERRUPTED" if doc["interrupted"] else ""))
    if doc["spawn_baseline_ms"] is not None:
        print(f"spawn baseline (host /bin/true from the harness): "
              f"{doc['spawn_baseline_ms']:.2f} ms median (included in every figure)")
    for rt in rts:
        print(f"  {rt.name:8} {rt.version}  ({rt.path})")
    for name, why in doc["skipped"].items():
        print(f"  {name:8} {why}")
    print()
    names = [rt.name for rt in rts]
    ratio_keys = list(doc["ratios_of_medians"])
    head1 = f"{'ms':16}" + "".join(f"{n:>18}" for n in names) \
        + "".join(f"{k:>14}" for k in ratio_keys)
    head2 = f"{'':16}" + "".join(f"{'median':>10}{'p90':>8}" for _ in names) \
        + "".join(f"{'(medians)':>14}" for _ in ratio_keys)
    print(head1)
    print(head2)
    for m in metrics:
        row = f"{LABELS[m]:16}"
        group = "run" if m.startswith("run") else "seq"
        for n in names:
            st = doc["runtimes"][n]["metrics"].get(m)
            if st:
                row += f"{st['median_ms']:10.1f}{st['p90_ms']:8.1f}"
            else:
                f = doc["runtimes"][n]["failures"].get(group, 0)
                t = doc["runtimes"][n]["attempts"].get(group, 0)
                cell = f"FAIL {f}/{t}" if (f and m in ("run", "seq")) else "-"
                row += f"{cell:>18}"
        for k in ratio_keys:
            v = doc["ratios_of_medians"][k].get(m)
            row += f"{v:13.2f}x" if v is not None else f"{'-':>14}"
        print(row)
    notes = []
    for rt in rts:
        d = doc["runtimes"][rt.name]
        for g, f in d["failures"].items():
            if f:
                notes.append(f"{rt.name}: {g} failed {f}/{d['attempts'].get(g, 0)} times")
        for g, w in d["dropped"].items():
            notes.append(f"{rt.name}: {g} {w}")
        for e in d["errors"]:
            notes.append(f"{rt.name}: error: {e}")
        if d["polls"]:
            notes.append(f"{rt.name}: state polls until stopped: median "
                         f"{statistics.median(d['polls']):.0f}, max {max(d['polls'])}")
    for l in doc["leaks"][:10]:
        notes.append(f"LEAK (cleaned up): {l}")
    if len(doc["leaks"]) > 10:
        notes.append(f"... and {len(doc['leaks']) - 10} more leaks (see --json)")
    if notes:
        print()
        for n in notes:
            print("note: " + n)


if __name__ == "__main__":
    sys.exit(main())
