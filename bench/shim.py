#!/usr/bin/env python3
"""containerd shims side by side: `ctr run --rm IMAGE ID true` through

  runc      io.containerd.runc.v2 + runc (Debian's)
  pyrunc    io.containerd.runc.v2 with pyrunc as its binary (`--runc-binary`)
  shim      io.containerd.pyrunc.v1 (pyrunc's own shim, containers in-process)

interleaved (one of each per round), with medians, p90 and ratios to runc;
then each shim's memory while a container runs; with --cri, a pod of 5
containers through the CRI plugin per handler. A private containerd (temp
root/state/sockets, its own namespace) serves everything; on exit, also on
Ctrl-C or SIGTERM, tasks, containers, the daemon, mounts, cgroups and the
temp dir are removed. Run as root.

    python3 bench/shim.py --runs 30
    python3 bench/shim.py --shim-dir /opt/pyrunc/link --cri --json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the tests' private-containerd helpers (config, image archives) and CRI client
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from common import build_rootfs, log  # noqa: E402
from containerd_env import Daemon, cri_config, daemon_config, oci_archive  # noqa: E402
from oci_layout import tree_tar  # noqa: E402

IMAGE = "docker.io/pyrunc-bench/busybox:latest"
PAUSE = "docker.io/pyrunc-bench/pause:latest"
CRI_NS = "k8s.io"
SHIM_NAME = "containerd-shim-pyrunc-v1"
# containerd's default (Docker's and Kubernetes' too); --snapshotter native
# copies the whole image per container, a cost that is no runtime's
SNAPSHOTTER = "overlayfs"


class Containerd:
    """A private containerd (tests/containerd_env.py's Daemon); close()
    leaves nothing behind."""

    def __init__(self, shim_dir: str, pyrunc: str, cri: bool) -> None:
        self.base = tempfile.mkdtemp(prefix="pyrunc-shimbench-", dir="/tmp")
        self.ns = f"pyrunc-bench-{os.getpid()}"
        self.sock = f"{self.base}/containerd.sock"
        self.cri = cri
        text = daemon_config(self.base, cri)
        if cri:
            os.mkdir(f"{self.base}/cni")
            text += cri_config(self.base, PAUSE, pyrunc, f"{self.base}/pyrunc-root", SNAPSHOTTER, "runc")
        env = dict(os.environ, PATH=f"{shim_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
        self.d: Daemon | None = Daemon(self.base, env, self.ctr, config=text)
        if not self.d.start():
            tail = self.d.log_tail()
            self.close()
            raise RuntimeError("containerd did not start:\n" + tail)

    def ctr(self, *args: str, ns: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", self.sock, "--namespace", ns or self.ns, *args],
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str, ns: str | None = None) -> str:
        r = self.ctr(*args, ns=ns)
        if r.returncode:
            raise RuntimeError(f"ctr {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def import_image(self, archive: bytes, ns: str | None = None) -> None:
        path = f"{self.base}/image.tar"
        with open(path, "wb") as f:
            f.write(archive)
        self.ok("image", "import", "--snapshotter", SNAPSHOTTER, path, ns=ns)
        os.unlink(path)

    def close(self) -> None:
        if self.d is None:
            return
        namespaces = (self.ns, CRI_NS) if self.cri else (self.ns,)
        d, self.d = self.d, None
        d.stop([lambda *a, ns=ns, **kw: self.ctr(*a, ns=ns, **kw) for ns in namespaces], namespaces)


# -- measurements --------------------------------------------------------------------------

def timed(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds of one command, its status and its stderr's last line."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        rc = p.wait()
        secs = time.perf_counter() - t0
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return secs, rc, lines[-1] if lines else ""


def variants(pyrunc: str, runtime_root: str) -> dict[str, list[str]]:
    return {
        "runc": ["--runtime", "io.containerd.runc.v2"],
        "pyrunc": ["--runtime", "io.containerd.runc.v2", "--runc-binary", pyrunc, "--runc-root", runtime_root],
        "shim": ["--runtime", "io.containerd.pyrunc.v1"],
    }


def bench_run(d: Containerd, names: list[str], opts: dict[str, list[str]], runs: int, warmup: int,
              cmd: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {n: [] for n in names}
    fails: dict[str, int] = {n: 0 for n in names}
    for i in range(warmup + runs):
        for n in names:
            cid = f"b{i}-{n}"
            argv = ["ctr", "--address", d.sock, "--namespace", d.ns, "run", "--rm", *opts[n],
                    "--snapshotter", SNAPSHOTTER, IMAGE, cid, *cmd]
            secs, rc, err = timed(argv)
            if rc:
                fails[n] += 1
                if fails[n] == 1:
                    log(f"note: {n}: ctr run failed (rc {rc}): {err}")
                d.ctr("task", "delete", "-f", cid)
                d.ctr("container", "delete", cid)
            elif i >= warmup:
                times[n].append(secs)
        if i == warmup - 1:
            log(f"  warm-up done ({warmup} rounds)")
    return times


def stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    s = sorted(xs)
    return {"n": len(s), "median": statistics.median(s), "p90": s[min(len(s) - 1, int(0.9 * len(s)))],
            "min": s[0]}


def _pids_of(cid: str) -> list[int]:
    """Shim processes serving container `cid` (their command line names it
    after -id)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any("containerd-shim" in a for a in args[:3]) and "-id" in args and \
                args[args.index("-id") + 1:args.index("-id") + 2] == [cid]:
            pids.append(int(entry))
    return pids


def _memory(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Private_Dirty"):
                out[key.lower()] = int(rest.split()[0])
    return out


def shim_memory(d: Containerd, names: list[str], opts: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """KiB of each shim's server while one container sleeps in it."""
    result = {}
    for n in names:
        cid = f"mem-{n}"
        d.ok("run", "-d", *opts[n], "--snapshotter", SNAPSHOTTER, IMAGE, cid, "sleep", "600")
        try:
            pids = _pids_of(cid)
            if pids:
                result[n] = {k: sum(_memory(p)[k] for p in pids) for k in ("rss", "pss", "private_dirty")}
                result[n]["processes"] = len(pids)
        finally:
            d.ctr("task", "kill", "-s", "SIGKILL", cid)
            d.ctr("task", "delete", "-f", cid)
            d.ctr("container", "delete", cid)
    return result


# -- CRI: a pod of 5 containers ------------------------------------------------------------

def bench_cri(d: Containerd, handlers: list[str], runs: int, warmup: int, size: int) -> dict[str, list[float]]:
    from cri import call, first, msg  # the tests' stdlib CRI client

    sock = d.sock
    namespaces = msg((1, 2), (2, 1))  # network NODE (no CNI needed), pid CONTAINER
    times: dict[str, list[float]] = {h: [] for h in handlers}
    for i in range(warmup + runs):
        for h in handlers:
            pod = msg((1, msg((1, f"pod-{h}-{i}"), (2, f"uid-{h}-{i}"), (3, "default"))),
                      (3, f"{d.base}/pod-logs"),
                      (8, msg((2, msg((1, namespaces))))))
            t0 = time.perf_counter()
            sandbox = first(call(sock, "RunPodSandbox", msg((1, pod), (2, h))), 1).decode()
            cids = []
            try:
                for k in range(size):
                    container = msg((1, msg((1, f"c{k}"))), (2, msg((1, IMAGE))),
                                    (3, ["sleep", "600"]), (11, f"c{k}-{i}.log"),
                                    (15, msg((2, msg((3, namespaces))))))
                    cid = first(call(sock, "CreateContainer", msg((1, sandbox), (2, container), (3, pod))),
                                1).decode()
                    cids.append(cid)
                    call(sock, "StartContainer", msg((1, cid)))
                secs = time.perf_counter() - t0
                if i >= warmup:
                    times[h].append(secs)
            finally:
                for cid in cids:
                    call(sock, "StopContainer", msg((1, cid), (2, 0)))
                    call(sock, "RemoveContainer", msg((1, cid)))
                call(sock, "StopPodSandbox", msg((1, sandbox)))
                call(sock, "RemovePodSandbox", msg((1, sandbox)))
    return times


# -- report --------------------------------------------------------------------------------

def table(title: str, times: dict[str, list[float]], base: str) -> list[str]:
    st = {n: stats(t) for n, t in times.items()}
    ref = st.get(base, {}).get("median")
    lines = [title, f"  {'':11} {'n':>4} {'median':>9} {'p90':>9} {'min':>9} {'ratio':>7}"]
    for n, s in st.items():
        if not s:
            lines.append(f"  {n:11} no successful run")
            continue
        ratio = f"{s['median'] / ref:.2f}x" if ref else "-"
        lines.append(f"  {n:11} {s['n']:4d} {s['median'] * 1e3:7.1f}ms {s['p90'] * 1e3:7.1f}ms "
                     f"{s['min'] * 1e3:7.1f}ms {ratio:>7}")
    return lines


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    global SNAPSHOTTER
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="recorded rounds (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="rounds not recorded (default 2)")
    ap.add_argument("--shim-dir", help="directory of containerd-shim-pyrunc-v1 and pyrunc "
                    "(default: where `pyrunc` is on PATH)")
    ap.add_argument("--variants", default="runc,pyrunc,shim", help="of runc,pyrunc,shim")
    ap.add_argument("--no-memory", action="store_true", help="skip the shims' memory")
    ap.add_argument("--cri", action="store_true", help="also a pod of --pod-size containers through CRI")
    ap.add_argument("--pod-size", type=int, default=5)
    ap.add_argument("--cri-runs", type=int, default=5, help="recorded pods per handler (default 5)")
    ap.add_argument("--snapshotter", default=SNAPSHOTTER, choices=("overlayfs", "native"),
                    help="containerd's snapshotter for the containers' rootfs (default overlayfs)")
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    a = ap.parse_args()
    SNAPSHOTTER = a.snapshotter
    if os.geteuid() != 0:
        ap.error("must run as root")
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            ap.error(f"{tool} is not installed")
    shim_dir = a.shim_dir or os.path.dirname(shutil.which("pyrunc") or "")
    pyrunc = os.path.join(shim_dir, "pyrunc")
    if not os.path.exists(os.path.join(shim_dir, SHIM_NAME)) or not os.path.exists(pyrunc):
        ap.error(f"no {SHIM_NAME} and pyrunc in {shim_dir or '(pyrunc not on PATH)'}: give --shim-dir")
    names = [n for n in a.variants.split(",") if n]
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)  # also when started with SIGINT ignored (`&`)
    d = None
    out: dict[str, object] = {"shim_dir": shim_dir, "snapshotter": SNAPSHOTTER}
    lines: list[str] = []
    try:
        d = Containerd(shim_dir, pyrunc, a.cri)
        with tempfile.TemporaryDirectory() as tmp:
            layer = tree_tar(Path(build_rootfs(tmp)))
        d.import_image(oci_archive(layer, IMAGE, ["sh"]))
        opts = variants(pyrunc, f"{d.base}/pyrunc-root")
        log(f"ctr run --rm {IMAGE} ID true: {a.runs} rounds of {','.join(names)}")
        times = bench_run(d, names, opts, a.runs, a.warmup, ["true"])
        out["run"] = {n: stats(t) for n, t in times.items()}
        out["run_times"] = times
        lines += table("ctr run --rm IMAGE ID true", times, "runc")
        if not a.no_memory:
            mem = shim_memory(d, names, opts)
            out["memory_kib"] = mem
            lines += ["", "shim memory while a container runs (KiB, smaps_rollup)",
                      f"  {'':11} {'rss':>8} {'pss':>8} {'private':>8}"]
            for n, m in mem.items():
                lines.append(f"  {n:11} {m['rss']:8d} {m['pss']:8d} {m['private_dirty']:8d}")
        if a.cri:
            for name, cmd in ((IMAGE, ["sh"]), (PAUSE, ["sleep", "2147483647"])):
                d.import_image(oci_archive(layer, name, cmd), ns=CRI_NS)
            handlers = ["runc", "pyrunc", "pyrunc-shim"]
            log(f"CRI: pod of {a.pod_size}, {a.cri_runs} rounds of {','.join(handlers)}")
            pods = bench_cri(d, handlers, a.cri_runs, 1, a.pod_size)
            out["cri"] = {h: stats(t) for h, t in pods.items()}
            lines += [""] + table(f"CRI: RunPodSandbox + {a.pod_size}x (CreateContainer + StartContainer)",
                                  pods, "runc")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if d is not None:
            d.close()
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
