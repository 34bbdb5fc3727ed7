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


def cri_config(base: str, pause: str, pyrunc: str, root: str, snapshotter: str, default: str) -> str:
    """The CRI plugin's section: its handlers `runc` (runc's shim + runc),
    `pyrunc` (runc's shim + pyrunc as its BinaryName, its state under
    `root`) and `pyrunc-shim` (pyrunc's own shim), `default` the default.
    restrict_oom_score_adj: root may lack CAP_SYS_RESOURCE (this VM's does,
    as CI sandboxes do), and the sandbox's oom_score_adj -998 could not be
    set; no CNI config (pods use the host's network)."""
    return f"""[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{base}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "{default}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc.options]
        BinaryName = "{pyrunc}"
        Root = "{root}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc-shim]
      runtime_type = "io.containerd.pyrunc.v1"
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
    """A private containerd in `base`: its config.toml (daemon_config with
    the CRI plugin off, or `config`), its log appended to
    base/containerd.log, `ctl(*args, timeout=...)` running ctr against it.
    start() and kill(sig) end and start it again on the same root and state
    (its shims run on); stop() removes every task and container (through
    each of `ctls`), ends it, and removes `base` and what the runtimes made
    for the `namespaces` (their empty cgroup parents and state roots)."""

    def __init__(self, base: str, env: dict, ctl, config: str | None = None) -> None:
        with open(os.path.join(base, "config.toml"), "w") as f:
            f.write(daemon_config(base, cri=False) if config is None else config)
        self.base, self.env, self.ctl = base, env, ctl
        self.proc = None

    def start(self, *args: str) -> bool:
        """Start it and wait (30 s at most) until it answers: False if it
        exited (log_tail says why)."""
        import subprocess
        import time
        with open(os.path.join(self.base, "containerd.log"), "a") as log:
            self.proc = p = subprocess.Popen(["containerd", "--config", os.path.join(self.base, "config.toml"), *args],
                                             stdout=log, stderr=log, env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while p.poll() is None and self.ctl("version").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return p.poll() is None

    def log_tail(self) -> str:
        with open(os.path.join(self.base, "containerd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def kill(self, sig: int = 15) -> None:
        """containerd ended by `sig` (SIGKILL after 15 s); its shims run on."""
        import subprocess
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self, ctls=None, namespaces=(), cgroup_parents=()) -> None:
        """`cgroup_parents`: the cgroup parents the tests gave their
        containers (ctr --cgroup), removed with their empty children."""
        import shutil
        import subprocess
        import time
        try:  # a hung call must not keep containerd running
            for ctl in ctls or [self.ctl]:
                if self.proc is None:
                    break
                tasks = ctl("task", "ls", "-q").stdout.split()
                for task in tasks:
                    ctl("task", "kill", "-s", "SIGKILL", task, timeout=20)
                if tasks:
                    time.sleep(0.2)
                for cont in ctl("container", "ls", "-q").stdout.split():
                    ctl("task", "delete", "-f", cont, timeout=20)
                    ctl("container", "delete", cont, timeout=20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.kill()
            subprocess.run(["umount", "-R", self.base], capture_output=True)
            shutil.rmtree(self.base, ignore_errors=True)
            for parent in cgroup_parents:
                for top in [os.path.join("/sys/fs/cgroup", c, parent.lstrip("/")) for c in os.listdir("/sys/fs/cgroup")]:
                    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                        try:
                            os.rmdir(dirpath)
                        except OSError:
                            pass
            for ns in namespaces:
                for d in [*(os.path.join("/sys/fs/cgroup", c, ns) for c in os.listdir("/sys/fs/cgroup")),
                          f"/sys/fs/cgroup/{ns}",  # cgroup v2 only
                          f"/run/containerd/pyrunc/{ns}", f"/run/containerd/runc/{ns}"]:
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass


# -- processes and tasks, as the tests and the bench look at them --------------------------

def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def argv_of(pid: int) -> list[bytes]:
    """The process's command line (its trailing padding dropped), [] if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read().rstrip(b"\0")
    except OSError:
        return []
    return data.split(b"\0") if data else []


def processes() -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every live process."""
    return [(int(name), argv) for name in os.listdir("/proc")
            if name.isdigit() and (argv := argv_of(int(name))) and alive(int(name))]


def shims_of(ids) -> list[int]:
    """The live shim processes (containerd-shim-*, or a python running one:
    the script after the interpreter and its flags) serving one of `ids`."""
    ids = {i.encode() for i in ids}
    return [pid for pid, argv in processes() if any(b"containerd-shim-" in arg for arg in argv[:3])
            and any(argv[i] == b"-id" and argv[i + 1] in ids for i in range(len(argv) - 1))]


def task_status(ctl, cid: str, want: str, timeout: float = 10) -> str:
    """The task's status (`ctr task ls`: TASK PID STATUS) once it is `want`,
    or what it is after `timeout` seconds; `ctl` runs ctr, checked."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in ctl("task", "ls").stdout.splitlines()[1:]]
        status = next((row[2] for row in rows if row[0] == cid), "")
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def cgroups_of(ns: str, cid: str) -> list[str]:
    """Container `cid`'s cgroups under containerd namespace `ns` (its
    cgroup parent), in every v1 hierarchy and on a v2-only host."""
    import glob
    return glob.glob(f"/sys/fs/cgroup/*/{ns}/{cid}") + glob.glob(f"/sys/fs/cgroup/{ns}/{cid}")


def leftovers(ctl, ns: str, cid: str, container_counts: bool = False) -> list[str]:
    """What a test left of container `cid` in namespace `ns`, removed where
    it can be (a task, the container, a shim) and said: problems for the
    test's teardown to report. A container left is reported only if
    `container_counts`; mounts, cgroups and pyrunc's state are only said."""
    import signal
    import time
    problems = []
    if cid in ctl("task", "ls", "-q").stdout.split():
        ctl("task", "kill", "-s", "SIGKILL", cid)
        time.sleep(0.2)
        ctl("task", "delete", "-f", cid)
        problems.append(f"task {cid} left")
    if cid in ctl("container", "ls", "-q").stdout.split():
        ctl("container", "delete", cid)
        if container_counts:
            problems.append(f"container {cid} left")
    shims = shims_of([cid])
    end = time.monotonic() + 5
    while [p for p in shims if alive(p)] and time.monotonic() < end:
        time.sleep(0.05)
    shims = [p for p in shims if alive(p)]
    if shims:
        problems.append(f"shim of {cid} left: {shims}")
        for p in shims:
            os.kill(p, signal.SIGKILL)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if f"/{cid}/" in line.split()[4] + "/"]
    if mounts:
        problems.append(f"mounts of {cid} left: {mounts}")
    cgroups = cgroups_of(ns, cid)
    if cgroups:
        problems.append(f"cgroups of {cid} left: {cgroups}")
    state = os.path.join("/run/containerd/pyrunc", ns, cid)
    if os.path.exists(state):
        problems.append(f"pyrunc state of {cid} left: {state}")
    return problems
