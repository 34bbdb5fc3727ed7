"""A private containerd for the tests and bench/shim.py: its config file
and the oci-archive images they import (`ctr image import`)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile


def daemon_config(base: str, cri: bool = True) -> str:
    """containerd 1.6's config for a daemon whose root, state and sockets
    all live in `base` (the CRI plugin's own section is the caller's)."""
    cri_off = "" if cri else '"io.containerd.grpc.v1.cri", '
    return f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = [{cri_off}"io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = "{base}/debug.sock"
"""


def oci_archive(rootfs_tar: bytes, name: str, cmd: tuple[str, ...] | list[str] = ("sh",)) -> bytes:
    """An OCI image layout (one gzip layer) as a tar, named `name`."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest, len(data)

    layer = gzip.compress(rootfs_tar, mtime=0)
    ldig, lsize = blob(layer)
    config = {"architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
              "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": list(cmd)},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(rootfs_tar).hexdigest()]}}
    cdig, csize = blob(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ldig,
                            "size": lsize}]}
    mdig, msize = blob(json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}}]}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.split(":", 1)[1], data)
    return out.getvalue()


class Daemon:
    """A running private containerd in `base` (daemon_config, CRI off), its
    log in base/containerd.log; `ctl(*args)` runs ctr against it (a
    CompletedProcess). stop() removes every task and container, ends it and
    removes `base`."""

    def __init__(self, base: str, env: dict, ctl) -> None:
        import subprocess
        with open(os.path.join(base, "config.toml"), "w") as f:
            f.write(daemon_config(base, cri=False))
        self.base, self.ctl = base, ctl
        self.log = open(os.path.join(base, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", os.path.join(base, "config.toml")],
                                     stdout=self.log, stderr=self.log, env=env, start_new_session=True)

    def started(self, wait_until) -> bool:
        wait_until(lambda: self.proc.poll() is not None or self.ctl("version").returncode == 0, 30,
                   what="containerd")
        return self.proc.poll() is None

    def stop(self) -> None:
        import shutil
        import subprocess
        import time
        try:  # a hung call must not keep containerd running
            for task in self.ctl("task", "ls", "-q").stdout.split():
                self.ctl("task", "kill", "-s", "SIGKILL", task, timeout=20)
            time.sleep(0.2)
            for cont in self.ctl("container", "ls", "-q").stdout.split():
                self.ctl("task", "delete", "-f", cont, timeout=20)
                self.ctl("container", "delete", cont, timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        subprocess.run(["umount", "-R", self.base], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
