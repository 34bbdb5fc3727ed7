#!/usr/bin/env python3
"""Pulling an image from a registry: `pyrunc image copy` next to `skopeo copy`.

A local registry (Debian's docker-registry on 127.0.0.1, plain HTTP, started
by tests/registry_server.py) holds one image: the Debian layout at
/work/cache/bookworm-oci if it is there (or --layout DIR:REF), else a
generated image of several gzip layers. Each run copies
docker://127.0.0.1:PORT/bench:v1 to a fresh oci: directory with each tool,
the two interleaved (who goes first alternates), and the medians are
compared.

    python3 bench/image_pull.py                       # 10 runs
    python3 bench/image_pull.py --runs 20 --json
    python3 bench/image_pull.py --pyrunc /opt/pyrunc-x/link/pyrunc --layout /images/alpine:3.20
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from registry_server import RegistryServer, available  # noqa: E402

DEFAULT_LAYOUT = "/work/cache/bookworm-oci:bookworm"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def generated_layout(d: Path, layers: int = 5, layer_mib: int = 8) -> str:
    """An image of `layers` gzip layers of ~`layer_mib` MiB of tar each
    (half noise, half text: compressible as real layers are)."""
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(data: bytes, mt: str) -> dict:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"mediaType": mt, "digest": f"sha256:{h}", "size": len(data)}

    descs, diff_ids = [], []
    for i in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in ((f"layer{i}/noise", os.urandom(layer_mib << 19)),
                               (f"layer{i}/text", (b"lorem ipsum dolor sit amet %d\n" % i) * ((layer_mib << 19) // 28))):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
        raw = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append(blob(gzip.compress(raw, 6, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = blob(json.dumps({"architecture": arch, "os": "linux",
                              "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode(),
                  "application/vnd.oci.image.config.v1+json")
    manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": config, "layers": descs}).encode(),
                    "application/vnd.oci.image.manifest.v1+json")
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return f"{d}:v1"


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {res.stderr.strip()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pyrunc", default=shutil.which("pyrunc") or "pyrunc")
    ap.add_argument("--skopeo", default=shutil.which("skopeo") or "skopeo")
    ap.add_argument("--layout", default=None, help="DIR:REF of the image to serve (default: the Debian layout, "
                                                     "else a generated one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    why = available()
    if why:
        raise SystemExit(why)
    if subprocess.run([args.pyrunc, "image", "copy", "--help"], capture_output=True).returncode != 0:
        raise SystemExit(f"{args.pyrunc} has no `image copy`")
    tmp = Path(tempfile.mkdtemp(prefix="pyrunc-bench-pull-", dir="/var/tmp"))
    try:
        layout = args.layout
        if layout is None:
            layout = DEFAULT_LAYOUT if Path(DEFAULT_LAYOUT.split(":")[0], "index.json").exists() \
                else generated_layout(tmp / "generated")
        log(f"image: {layout}")
        with RegistryServer(tmp / "registry") as reg:
            ref = f"docker://{reg.host}/bench:v1"
            subprocess.run([args.skopeo, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}", ref], check=True)
            tools = {
                "pyrunc": lambda out: [args.pyrunc, "image", "copy", "-q", "--src-tls-verify=false", ref, f"oci:{out}:v1"],
                "skopeo": lambda out: [args.skopeo, "copy", "-q", "--src-tls-verify=false", ref, f"oci:{out}:v1"],
            }
            times: dict[str, list[float]] = {name: [] for name in tools}
            for name, cmd in tools.items():   # warm-up (page cache, registry)
                timed(cmd(tmp / f"warm-{name}"))
                shutil.rmtree(tmp / f"warm-{name}")
            for i in range(args.runs):
                order = list(tools) if i % 2 == 0 else list(reversed(tools))
                for name in order:
                    out = tmp / f"out-{name}"
                    times[name].append(timed(tools[name](out)))
                    shutil.rmtree(out)
                log(f"run {i + 1}/{args.runs}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in tools))
        med = {n: statistics.median(t) for n, t in times.items()}
        result = {"image": layout, "runs": args.runs, "median_s": med,
                  "min_s": {n: min(t) for n, t in times.items()},
                  "ratio_pyrunc_over_skopeo": med["pyrunc"] / med["skopeo"]}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"image {layout}, {args.runs} runs, docker:// (local registry) -> oci:")
            for n in tools:
                print(f"  {n:7} median {med[n]:.3f}s  min {result['min_s'][n]:.3f}s")
            print(f"  pyrunc / skopeo = {result['ratio_pyrunc_over_skopeo']:.2f}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
