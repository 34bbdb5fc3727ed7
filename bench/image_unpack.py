#!/usr/bin/env python3
"""Side-by-side timings of `pyrunc image unpack` against `umoci unpack`.

    python3 bench/image_unpack.py [--image LAYOUT:REF] [--runs N] [--warmup N]
                                  [--dir DIR] [--pyrunc PATH] [--umoci PATH]
                                  [--rootless] [--json]

The image: by default /work/cache/bookworm-oci:bookworm, Debian bookworm
minbase as one gzip layer (~90 MB, ~6800 entries) built by
bench/make_debian_image.sh DIR (its documented prerequisite).

Each iteration unpacks the same image once with each tool (the order
alternates every iteration, so page cache and disk drifts hit both alike)
into a fresh bundle under --dir (default: a temp dir next to the image;
put it on tmpfs with --dir /dev/shm to leave the disk's inode-creation
cost out); the wall time of the command is recorded. Bundles are removed
at the end (or, with --remove-each, right after each run, then `sync`: on
this machine's ext4 the freed inodes make the next runs much slower). --warmup iterations first are not
recorded. Caches are not dropped: both tools read the layer from the page
cache. Reported: median, min and max per tool and the ratio of medians
pyrunc/umoci. --rootless runs both as the unprivileged user `nobody`
(setpriv) with --rootless.

Stdlib only; run as root.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_IMAGE = "/work/cache/bookworm-oci:bookworm"


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs {cpu}, Linux {platform.release()}, Python {platform.python_version()}"


def fs_type(path: str) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for ln in f:
            parts = ln.split()
            mp = parts[1]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, kind = mp, parts[2]
    return kind


def run_once(cmd: list[str], bundle: str, rootless: bool) -> float:
    if rootless:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd, "--rootless"]
    cmd = [*cmd, bundle]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (rc {r.returncode}): {r.stderr.decode(errors='replace')[-500:]}")
    return dt


def remove(path: str) -> None:
    subprocess.run(["rm", "-rf", path], check=False)
    os.sync()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default=DEFAULT_IMAGE, help="LAYOUT:REF (default %(default)s)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dir", default=None, help="where bundles are made (default: a temp dir next to the image)")
    ap.add_argument("--pyrunc", default=shutil.which("pyrunc") or "pyrunc")
    ap.add_argument("--umoci", default=shutil.which("umoci") or "umoci")
    ap.add_argument("--rootless", action="store_true", help="both as user nobody, with --rootless")
    ap.add_argument("--remove-each", action="store_true",
                    help="remove each bundle (and sync) right after it is timed, not all at the end")
    ap.add_argument("--json", action="store_true", help="JSON on stdout")
    a = ap.parse_args(argv)
    layout = a.image.rpartition(":")[0] or a.image
    if not os.path.isfile(os.path.join(layout, "index.json")):
        print(f"no OCI layout at {layout}: build it with  sh bench/make_debian_image.sh DIR", file=sys.stderr)
        return 1
    base = tempfile.mkdtemp(prefix="unpack-bench-", dir=a.dir or os.path.dirname(os.path.abspath(layout)))
    if a.rootless:
        os.chmod(base, 0o777)
    tools = {"pyrunc": [a.pyrunc, "image", "unpack", "--image", a.image],
             "umoci": [a.umoci, "unpack", "--image", a.image]}
    samples: dict[str, list[float]] = {k: [] for k in tools}
    try:
        for i in range(a.warmup + a.runs):
            order = list(tools) if i % 2 == 0 else list(reversed(tools))
            for name in order:
                bundle = os.path.join(base, f"{name}-{i}")
                dt = run_once(tools[name], bundle, a.rootless)
                if a.remove_each:
                    remove(bundle)
                if i >= a.warmup:
                    samples[name].append(dt)
    finally:
        remove(base)
    med = {k: statistics.median(v) for k, v in samples.items()}
    doc = {"image": a.image, "runs": a.runs, "warmup": a.warmup, "rootless": a.rootless,
           "bundle_fs": fs_type(base), "machine": machine(),
           "median_s": med, "min_s": {k: min(v) for k, v in samples.items()},
           "max_s": {k: max(v) for k, v in samples.items()},
           "ratio_pyrunc_umoci": med["pyrunc"] / med["umoci"], "samples_s": samples}
    if a.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
        return 0
    print(f"image {a.image}, bundles on {doc['bundle_fs']}, {a.runs} runs each (+{a.warmup} warm-up), "
          f"interleaved{', rootless' if a.rootless else ''}")
    print(f"machine: {doc['machine']}")
    print(f"{'tool':8} {'median':>8} {'min':>8} {'max':>8}")
    for k in tools:
        print(f"{k:8} {med[k]:8.3f} {doc['min_s'][k]:8.3f} {doc['max_s'][k]:8.3f}")
    print(f"ratio pyrunc/umoci (medians): {doc['ratio_pyrunc_umoci']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
