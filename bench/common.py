"""Shared plumbing for bench/bench.py and bench/memfloor.py (stdlib only).

- the private mount namespace in which all runtimes are measured
  (see enter_bench_namespace),
- runtime discovery; each runtime gets its own ``--root`` temp dir,
- a command runner that times one runtime invocation without polling,
- the busybox rootfs and bundle construction,
- cleanup of everything a run may leave behind: containers (``delete
  --force``), cgroup directories named after this run's tag, processes
  reparented to us, temp dirs -- also after Ctrl-C or SIGTERM.

Nothing here is specific to one runtime: a runtime is just a binary that
speaks the runc command line (``--root R create|start|state|kill|delete|run``).
"""
from __future__ import annotations

import copy
import ctypes
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
MNT_DETACH = 2
PR_SET_CHILD_SUBREAPER = 36

KNOWN_RUNTIMES = ("pyrunc", "runc", "crun")
SEARCH_PATH = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"


def log(*args) -> None:
    """Progress and notes go to stderr, so that --json output stays clean."""
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# syscalls (ctypes)

_libc = None


def libc():
    global _libc
    if _libc is None:
        lc = ctypes.CDLL(None, use_errno=True)
        lc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                             ctypes.c_ulong, ctypes.c_char_p]
        lc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lc.unshare.argtypes = [ctypes.c_int]
        lc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                             ctypes.c_ulong, ctypes.c_ulong]
        _libc = lc
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def become_subreaper() -> None:
    """Orphaned container inits (create/run -d leave no runtime process
    behind) get reparented to us, as they would be to containerd's shim."""
    _check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0),
           "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans() -> int:
    """Reap every exited child without blocking.  Only call this when no
    subprocess.Popen of ours is outstanding."""
    n = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        n += 1


def _children() -> list[tuple[int, str]]:
    """Live (non-zombie) children of this process: (pid, command line)."""
    me, out = str(os.getpid()), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[1] != me or fields[0] == "Z":
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        out.append((int(d), cmd))
    return out


def kill_children() -> list[str]:
    """SIGKILL every live child (as a subreaper, orphaned descendants are
    our children too) until none is left; reap them.  Only call this when
    no process of ours should be alive.  Returns what was killed."""
    killed = []
    for _ in range(50):
        kids = _children()
        if not kids:
            break
        for pid, cmd in kids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(f"pid {pid}: {cmd[:120]}")
            except OSError:
                pass
        time.sleep(0.01)
        reap_orphans()
    reap_orphans()
    return killed


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Block until process pid has exited (reaping it if it is our child,
    which it is when we are its subreaper).  True if it exited in time."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        if not ready:
            return False
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass                     # not our child: someone else reaps it
    return True


# --------------------------------------------------------------------------
# mounts and the cgroup layout

def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fstype) from /proc/self/mountinfo, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            out.append((_unescape(left.split()[4]), right.split()[0]))
    return out


def fstype_at(path: str) -> str | None:
    t = None
    for mp, fstype in mounts():
        if mp == path:
            t = fstype          # the last one mounted there is visible
    return t


def cgroup_layout() -> str:
    """'unified' (pure v2), 'hybrid' (v1 + cgroup2 at unified), 'legacy'."""
    top = fstype_at(CGROUP_ROOT)
    if top == "cgroup2":
        return "unified"
    if top is None and not os.path.isdir(os.path.join(CGROUP_ROOT, "memory")):
        return "none"
    return "hybrid" if fstype_at(UNIFIED) == "cgroup2" else "legacy"


def enter_bench_namespace(hybrid: bool) -> str:
    """Put this process (and so every runtime it starts) in the cgroup
    layout the measurement is done in; return a one-line description.

    crun 1.8 refuses hybrid cgroups.  So that every runtime sees the same
    layout, the whole benchmark runs in one private mount namespace in which
    the cgroup2 mount at /sys/fs/cgroup/unified is replaced by a small empty
    tmpfs: runc, crun (and pyrunc, if it follows runc) detect cgroup mode by
    statfs() of /sys/fs/cgroup and of /sys/fs/cgroup/unified, so they all
    see plain legacy v1.  The tmpfs (rather than a bare unmount) matters:
    crun in legacy mode still mkdir()s /sys/fs/cgroup/unified/<id> and writes
    a cgroup.procs file there; on the bare tmpfs under the mount that would
    be an invisible, permanent leftover, in our tmpfs it vanishes with the
    namespace.

    With hybrid=True nothing is changed (crun is then skipped by callers).
    """
    layout = cgroup_layout()
    if hybrid:
        return f"{layout} cgroups, host mount namespace (--hybrid)"
    if layout != "hybrid":
        return f"{layout} cgroups, host mount namespace (nothing to hide)"
    lc = libc()
    _check(lc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(lc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None),
           "mount(/, MS_REC|MS_PRIVATE)")
    while fstype_at(UNIFIED) == "cgroup2":
        if lc.umount2(UNIFIED.encode(), 0) != 0:
            _check(lc.umount2(UNIFIED.encode(), MNT_DETACH),
                   f"umount2({UNIFIED})")
    _check(lc.mount(b"pyrunc-bench-unified-sink", UNIFIED.encode(), b"tmpfs",
                    MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=1m,mode=0755"),
           f"mount tmpfs on {UNIFIED}")
    now = cgroup_layout()
    if now != "legacy":
        raise RuntimeError(f"cgroup layout is {now!r} after hiding {UNIFIED}")
    return ("legacy cgroup v1 (private mount namespace: cgroup2 at "
            f"{UNIFIED} hidden under an empty tmpfs)")


def cgroup_mount_points() -> list[str]:
    return sorted({mp for mp, t in mounts()
                   if t in ("cgroup", "cgroup2")
                   and (mp == CGROUP_ROOT or mp.startswith(CGROUP_ROOT + "/"))})


def find_cgroup_dirs(tag: str, max_depth: int = 8) -> list[str]:
    """cgroup directories (in any hierarchy) whose name contains tag."""
    found = []
    for mp in cgroup_mount_points():
        base_depth = mp.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(mp):
            keep = []
            for d in dirnames:
                if tag in d:
                    found.append(os.path.join(dirpath, d))
                else:
                    keep.append(d)
            deep = dirpath.count("/") - base_depth >= max_depth
            dirnames[:] = [] if deep else keep
    return found


def remove_cgroup_dir(path: str) -> bool:
    """Kill what is inside and rmdir the tree bottom-up.  True if gone."""
    for dirpath, _, _ in list(os.walk(path, topdown=False)):  # children first
        for attempt in range(50):
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            reap_orphans()
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
    return not os.path.exists(path)


# --------------------------------------------------------------------------
# running commands

class Result:
    __slots__ = ("rc", "secs", "out", "err", "timed_out", "cpu")

    def __init__(self, rc, secs, out="", err="", timed_out=False, cpu=None):
        self.rc, self.secs, self.out, self.err = rc, secs, out, err
        self.timed_out = timed_out
        # user+sys CPU seconds of the command and every descendant it
        # reaped (wait4's rusage): what load on the machine does not change
        self.cpu = cpu

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        """One line saying why the command failed."""
        if self.timed_out:
            what = f"timed out after {self.secs:.1f}s"
        elif self.rc is None:
            what = "could not be started"
        elif self.rc < 0:
            what = f"killed by signal {-self.rc}"
        else:
            what = f"exit {self.rc}"
        lines = [l.strip() for l in self.err.splitlines() if l.strip()]
        if lines:
            last = lines[-1]
            m = re.search(r'\bmsg="((?:[^"\\]|\\.)*)"', last)   # logrus (runc) line
            what += ": " + (m.group(1).replace('\\"', '"') if m else last)[:300]
        return what


class Runner:
    """Runs one command at a time: stdin /dev/null, stdout to /dev/null or a
    capture file, stderr to a capture file (files, not pipes: a container
    started by `create` inherits them and would hold a pipe open).  The
    wait for the exit is a blocking select() on a pidfd, never a sleep loop,
    so the measured time is the command's wall time plus the fork/exec of
    the Python harness (see the spawn baseline in bench.py).  The child is
    reaped with wait4, whose rusage gives its CPU time (Result.cpu)."""

    def __init__(self, workdir: str):
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.outfd = os.open(os.path.join(workdir, "cmd.out"), flags, 0o600)
        self.errfd = os.open(os.path.join(workdir, "cmd.err"), flags, 0o600)

    @staticmethod
    def _read(fd: int) -> str:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")

    def run(self, argv, capture: bool = False, timeout: float = 30.0) -> Result:
        os.ftruncate(self.outfd, 0)
        os.ftruncate(self.errfd, 0)
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(argv, stdin=self.devnull,
                                 stdout=self.outfd if capture else self.devnull,
                                 stderr=self.errfd, close_fds=True)
        except OSError as e:
            return Result(None, 0.0, "", f"{argv[0]}: {e}")
        timed_out = False
        cpu = None
        try:
            pfd = os.pidfd_open(p.pid)
        except OSError:
            pfd = None
        if pfd is not None:
            try:
                ready, _, _ = select.select([pfd], [], [], timeout)
            finally:
                os.close(pfd)
            if not ready:
                timed_out = True
                p.kill()
            _, status, ru = os.wait4(p.pid, 0)
            rc = p.returncode = os.waitstatus_to_exitcode(status)
            cpu = ru.ru_utime + ru.ru_stime
        else:                                  # no pidfd: Popen's own wait
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                p.kill()
                rc = p.wait()
        secs = time.perf_counter() - t0
        out = self._read(self.outfd) if capture else ""
        err = self._read(self.errfd) if (rc != 0 or timed_out) else ""
        return Result(rc, secs, out, err, timed_out, cpu)


# --------------------------------------------------------------------------
# runtimes

class Runtime:
    def __init__(self, name: str, path: str, workdir: str):
        self.name = name
        self.path = path
        self.root = os.path.join(workdir, f"root-{name}")
        os.mkdir(self.root, 0o711)
        self.version = "?"

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def probe_version(self, runner: Runner) -> None:
        r = runner.run([self.path, "--version"], capture=True, timeout=10)
        first = (r.out or "").strip().splitlines()
        self.version = first[0] if (r.ok and first) else f"? ({r.why()})"

    def container_dirs(self) -> list[str]:
        try:
            return sorted(d for d in os.listdir(self.root)
                          if os.path.isdir(os.path.join(self.root, d)))
        except OSError:
            return []


def parse_runtime_list(spec: str) -> list[tuple[str, str | None]]:
    """'pyrunc,runc,crun' or 'name=/path,...' -> [(name, path-or-None)]."""
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, path = item.partition("=")
        out.append((name, path or None))
    return out


def resolve_runtimes(spec: str, pyrunc_path: str | None, hybrid: bool,
                     workdir: str) -> tuple[list[Runtime], dict[str, str]]:
    """Return the usable runtimes and {name: reason} for skipped ones."""
    rts, skipped = [], {}
    for name, path in parse_runtime_list(spec):
        if name in skipped or any(r.name == name for r in rts):
            continue
        if path is None and name == "pyrunc" and pyrunc_path:
            path = pyrunc_path
        if path is None:
            path = shutil.which(name, path=SEARCH_PATH)
        elif os.sep not in path:
            path = shutil.which(path, path=SEARCH_PATH) or path
        if hybrid and name == "crun":
            skipped[name] = "skipped: crun 1.8 refuses hybrid cgroups (--hybrid)"
            continue
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            skipped[name] = f"skipped: binary not found ({path or name})"
            continue
        rts.append(Runtime(name, os.path.abspath(path), workdir))
    return rts, skipped


# --------------------------------------------------------------------------
# rootfs and bundles

def _elf_is_static(path: str) -> bool:
    """True if the ELF file has no PT_INTERP program header."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF":
            return False
        bits64 = hdr[4] == 2
        order = "little" if hdr[5] == 1 else "big"
        u = lambda b: int.from_bytes(b, order)
        if bits64:
            phoff, phentsize, phnum = u(hdr[0x20:0x28]), u(hdr[0x36:0x38]), u(hdr[0x38:0x3A])
        else:
            phoff, phentsize, phnum = u(hdr[0x1C:0x20]), u(hdr[0x2A:0x2C]), u(hdr[0x2C:0x2E])
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(u(table[i * phentsize:i * phentsize + 4]) != 3 for i in range(phnum))


def find_static_busybox() -> str:
    for cand in (shutil.which("busybox"), "/usr/bin/busybox", "/bin/busybox"):
        if cand and os.path.isfile(cand) and _elf_is_static(cand):
            return cand
    raise RuntimeError("no static busybox found (Debian: apt-get install busybox-static)")


def build_rootfs(dest: str) -> str:
    """A minimal busybox root file system: bin/busybox + one symlink per
    applet, /etc/passwd, /etc/group, /etc/hosts and the usual mount points."""
    busybox = find_static_busybox()
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(dest, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        if a != "busybox" and "/" not in a:
            os.symlink("busybox", os.path.join(dest, "bin", a))
    os.symlink("bin", os.path.join(dest, "sbin"))
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
        "etc/hostname": "bench\n",
    }
    for rel, text in files.items():
        with open(os.path.join(dest, rel), "w") as f:
            f.write(text)
    return dest


def base_spec(runner: Runner, runtimes: list[Runtime], workdir: str) -> tuple[dict, str]:
    """config.json as `runc spec` writes it (falls back to another runtime's
    `spec` if runc is not there)."""
    cands = []
    for name in ("runc", "crun", "pyrunc"):
        p = next((r.path for r in runtimes if r.name == name), None) \
            or shutil.which(name, path=SEARCH_PATH)
        if p:
            cands.append((name, p))
    errors = []
    for name, path in cands:
        d = tempfile.mkdtemp(prefix="spec-", dir=workdir)
        try:
            r = subprocess.run([path, "spec"], cwd=d, capture_output=True,
                               text=True, timeout=30)
            cfg_path = os.path.join(d, "config.json")
            if r.returncode == 0 and os.path.exists(cfg_path):
                with open(cfg_path) as f:
                    return json.load(f), f"{name} spec"
            errors.append(f"{name} spec: exit {r.returncode}: {r.stderr.strip()[-200:]}")
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            errors.append(f"{name} spec: {e}")
        finally:
            shutil.rmtree(d, ignore_errors=True)
    raise RuntimeError("cannot produce a base config.json: " + "; ".join(errors or ["no runtime"]))


def write_bundle(bundle: str, base: dict, rootfs: str, args: list[str],
                 memory: dict | None = None) -> str:
    """bundle/config.json = base with terminal false, the given args, root.path
    -> the shared rootfs (absolute), optional linux.resources.memory."""
    cfg = copy.deepcopy(base)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    cfg.setdefault("root", {})["path"] = os.path.abspath(rootfs)
    if memory is not None:
        cfg.setdefault("linux", {}).setdefault("resources", {})["memory"] = memory
    os.makedirs(bundle, exist_ok=True)
    tmp = os.path.join(bundle, "config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, os.path.join(bundle, "config.json"))
    return bundle


# --------------------------------------------------------------------------
# the session: workdir, signals, cleanup

def work_parent() -> str | None:
    """Where the run's files go (the runtimes' state roots among them): an
    explicit TMPDIR; else a tmpfs, as engines keep runtime state on /run (a
    tmpfs on systemd hosts); else the default temp dir. On a disk file
    system the benchmark's own churn of files (state.json, exec fifos) can
    make each new inode slow: ext4 skips recently deleted inodes, and a
    mkfifo in a busy /tmp took 0.8 ms here against 6 us on a tmpfs."""
    if os.environ.get("TMPDIR"):
        return None
    for d in ("/run", "/dev/shm"):
        if fstype_at(d) == "tmpfs" and os.access(d, os.W_OK):
            return d
    return None


def _raise_terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Session:
    """Owns the temp dir, the runtimes and the run's tag (a random string
    in every container id, hence in every cgroup directory name).  close()
    deletes every container left in any runtime's root, removes cgroup
    directories carrying the tag, reaps orphans and removes the temp dir;
    it is called from a finally block, so it also runs after Ctrl-C."""

    def __init__(self, prog: str, hybrid: bool):
        if os.geteuid() != 0:
            raise SystemExit(f"{prog}: must run as root (real containers, cgroups)")
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _raise_terminate)
        self.ns = enter_bench_namespace(hybrid)
        become_subreaper()
        self.tag = "pb" + secrets.token_hex(3)
        self.workdir = tempfile.mkdtemp(prefix=f"pyrunc-bench-{self.tag}-", dir=work_parent())
        os.chmod(self.workdir, 0o755)
        self.runner = Runner(self.workdir)
        self.runtimes: list[Runtime] = []
        self.mounts_before = mounts()
        self.leaks: list[str] = []     # what cleanup had to remove
        self.interrupted = False       # Ctrl-C: leftovers are expected

    def cid(self, rt: Runtime, what: str) -> str:
        return f"{self.tag}-{rt.name}-{what}"

    def anon(self, msg: str, cid: str) -> str:
        """An error message without the run-specific id and temp dir, so
        that repeated failures read (and de-duplicate) as one."""
        return msg.replace(cid, "<id>").replace(self.workdir, "<tmp>")

    def delete_container(self, rt: Runtime, cid: str, when: str = "") -> None:
        """Remove one container after a failed step or a leak, whatever the
        runtime manages: `delete --force`, then by hand its processes (any
        live child of ours: nothing else should be running now), cgroup
        directories and state dir.  What had to be done by hand is recorded
        as one leak line."""
        reap_orphans()
        left = []
        state = os.path.join(rt.root, cid)
        if os.path.exists(state):
            r = self.runner.run(rt.argv("delete", "--force", cid), timeout=20)
            if not r.ok:
                left.append("delete --force failed (" + self.anon(r.why(), cid) + ")")
        procs = kill_children()
        if procs:
            left.append(f"{len(procs)} process(es) [{'; '.join(procs)[:200]}]")
        dirs = find_cgroup_dirs(cid)
        if dirs:
            hier = sorted({os.path.relpath(d, CGROUP_ROOT).split("/")[0] for d in dirs})
            left.append(f"cgroup dirs in {','.join(hier)}")
        for path in dirs:
            if not remove_cgroup_dir(path):
                left.append(f"could not remove cgroup dir {path}")
        if os.path.exists(state):
            left.append("state dir")
            shutil.rmtree(state, ignore_errors=True)
        if left and not self.interrupted:
            self.leaks.append(f"{rt.name}: {cid}{' ' + when if when else ''}: "
                              + ", ".join(left))

    def close(self) -> list[str]:
        """Remove everything; return a list of what was found left over."""
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        leaks = self.leaks
        try:
            reap_orphans()
            for rt in self.runtimes:
                for cid in rt.container_dirs():
                    if not self.interrupted:
                        leaks.append(f"{rt.name}: container {cid} still in --root at the end")
                    self.delete_container(rt, cid, "at the end")
            for p in kill_children():
                if not self.interrupted:
                    leaks.append(f"process left: {p}")
            for path in find_cgroup_dirs(self.tag):
                if not self.interrupted:
                    leaks.append(f"cgroup dir left: {path}")
                if not remove_cgroup_dir(path):
                    leaks.append(f"could not remove cgroup dir {path}")
            before = set(self.mounts_before)
            for m in reversed(mounts()):
                if m not in before:
                    leaks.append(f"new mount in the benchmark's namespace: {m[0]} ({m[1]})")
                    if m[0].startswith(self.workdir + "/"):
                        libc().umount2(m[0].encode(), MNT_DETACH)
            reap_orphans()
        finally:
            for fd in (self.runner.outfd, self.runner.errfd, self.runner.devnull):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.workdir, ignore_errors=True)
            if os.path.exists(self.workdir):
                leaks.append(f"could not remove {self.workdir}")
        return leaks


def prepare_runtimes(a, s) -> tuple[list, dict, dict, str, str] | None:
    """The set-up both scripts share: resolve and probe the runtimes, the base
    config and the busybox rootfs. None when there is nothing to measure."""
    rts, skipped = resolve_runtimes(a.runtimes, a.pyrunc, a.hybrid, s.workdir)
    s.runtimes = rts
    for name, why in skipped.items():
        log(f"note: {name} {why}")
    if not rts:
        log("no runtime to measure")
        return None
    for rt in rts:
        rt.probe_version(s.runner)
    base, spec_src = base_spec(s.runner, rts, s.workdir)
    rootfs = build_rootfs(os.path.join(s.workdir, "rootfs"))
    return rts, skipped, base, spec_src, rootfs
