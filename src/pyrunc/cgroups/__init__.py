"""cgroup managers: one interface, a v1 (cgroupfs per controller) and a v2
(unified) driver, chosen from the host the way runc chooses.

Paths follow runc's cgroupsPath rules: absolute paths are taken from each
hierarchy's root, relative ones from pyrunc's own cgroup, and an empty one
means `<id>` relative to pyrunc's own cgroup.
"""
from __future__ import annotations

import errno
import os
import sys
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def _mountinfo() -> list[tuple[str, str, str, str]]:
    """(mount root, mount point, fstype, super options) of every mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            a = pre.split()
            b = post.split()
            out.append((a[3], a[4].replace("\\040", " "), b[0], b[2] if len(b) > 2 else ""))
    return out


def _own_cgroups() -> dict[str, str]:
    """controller (or '' for v2, or 'name=x') -> our cgroup path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                own[c] = path
    return own


def running_in_userns() -> bool:
    """Whether this process is in a user namespace other than the host's."""
    try:  # os-level: asked on every create (is_rootless, the device rules, the init)
        fd = os.open("/proc/self/uid_map", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fields = os.read(fd, 4096).split()
        finally:
            os.close(fd)
    except OSError:
        return False
    return fields != [b"0", b"0", b"4294967295"]


def is_rootless(flag: str = "auto") -> bool:
    """runc's --rootless: "auto" means an unprivileged user or root of a
    user namespace (rootless podman), where cgroups we may not write to, and
    device rules, are best effort."""
    if flag in ("true", "false"):
        return flag == "true"
    return os.geteuid() != 0 or running_in_userns()


_hierarchies: dict[str, tuple[str, str]] | None = None


def hierarchies() -> dict[str, tuple[str, str]]:
    """key -> (mount point, mount root); keys are v1 mount option names
    ('cpu,cpuacct', 'name=systemd') and '' for the unified hierarchy.
    Read once per process: a command asks several times, and the host's
    cgroup mounts do not change under it."""
    global _hierarchies
    if _hierarchies is None:
        _hierarchies = _read_hierarchies()
    return _hierarchies


def _read_hierarchies() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for root, mp, fstype, opts in _mountinfo():
        if not mp.startswith(CGROUP_ROOT):
            continue
        if fstype == "cgroup2":
            out.setdefault("", (mp, root))
        elif fstype == "cgroup":
            ctrls = [o for o in opts.split(",") if o not in ("rw", "ro") and not o.startswith(("release_agent", "clone_children", "noprefix", "xattr"))]
            out.setdefault(",".join(ctrls), (mp, root))
    return out


def resolve_paths(cgroups_path: str, cid: str) -> dict[str, str]:
    """Absolute directory of the container's cgroup in every hierarchy."""
    rel = cgroups_path or cid
    own = _own_cgroups()
    paths: dict[str, str] = {}
    for key, (mp, mroot) in hierarchies().items():
        if rel.startswith("/"):
            inner = os.path.normpath(rel)
        else:
            base = own.get(key.split(",")[0], "/")
            inner = os.path.normpath(os.path.join(base, rel))
        if mroot != "/" and (inner + "/").startswith(mroot.rstrip("/") + "/"):
            inner = inner[len(mroot.rstrip("/")):] or "/"
        paths[key] = os.path.join(mp, inner.lstrip("/"))
    return paths


class Manager:
    """Create, join and destroy one container's cgroup in every hierarchy."""

    def __init__(self, paths: dict[str, str], rootless: bool = False, explicit: bool = False) -> None:
        self.paths = paths
        # runc's rule for rootless containers (euid != 0, or in a user
        # namespace): a hierarchy we may not write to is dropped rather than
        # an error, unless the config names the cgroup (cgroupsPath); a limit
        # asked for in a dropped hierarchy is an error when it is written
        self.rootless = rootless
        self.explicit = explicit
        self._devices_plan: tuple | None = None  # plan()'s, for the next apply()

    @classmethod
    def for_container(cls, cgroups_path: str, cid: str, rootless: bool = False) -> "Manager":
        return cls(resolve_paths(cgroups_path, cid), rootless, bool(cgroups_path))

    def _ignorable(self, e: OSError) -> bool:
        return self.rootless and not self.explicit and e.errno in (errno.EPERM, errno.EACCES, errno.EROFS)

    def create(self) -> None:
        for key, path in list(self.paths.items()):
            cpuset = "cpuset" in key.split(",")
            if os.path.isdir(path):
                if cpuset:  # made by someone else, maybe with a plain mkdir: empty
                    _cpuset_ensure(path)
                continue
            try:
                _mkdir_p(path, copy_cpuset=cpuset)
            except OSError as e:
                if not self._ignorable(e):
                    raise
                del self.paths[key]

    def join_fds(self, pid: int) -> tuple[list[int], list[str]]:
        """Join the container's init `pid`: where the kernel lets a thread
        move itself without the global lock (see self_join_ok), open fds of
        the v1 hierarchies' `tasks` files, which the init writes "0" to (it
        is single-threaded, so that moves the whole process); the unified
        hierarchy, and any other kernel or driver, get the pid written here.
        The write that needs the lock waits for an RCU grace period (8-16
        ms) holding cgroup_mutex; the init's own write does not. The fds
        were opened by us (the kernel checks the opener's credentials), so
        this works from inside a user namespace too. Returns the fds and
        the files they are, for the init's error message."""
        if type(self) is not Manager or not self_join_ok():
            self.add(pid)
            return [], []
        fds: list[int] = []
        names: list[str] = []
        try:
            for key, path in list(self.paths.items()):
                if key == "":
                    self._add_one(key, path, pid)
                    continue
                tasks = os.path.join(path, "tasks")
                try:
                    fds.append(os.open(tasks, os.O_WRONLY | os.O_CLOEXEC))
                except OSError as e:
                    if not self._ignorable(e):
                        raise join_error(pid, tasks, e.errno) from None
                    del self.paths[key]
                    _rmtree_cgroup(path)
                    continue
                names.append(tasks)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds, names

    def add(self, pid: int) -> None:
        for key, path in list(self.paths.items()):
            self._add_one(key, path, pid)

    def _add_one(self, key: str, path: str, pid: int) -> None:
        procs = os.path.join(path, "cgroup.procs")
        try:
            _write(procs, str(pid).encode())
        except OSError as e:
            if not self._ignorable(e):
                raise join_error(pid, procs, e.errno) from None
            del self.paths[key]
            _rmtree_cgroup(path)

    def mount_sources(self) -> list[tuple[str, str, str]]:
        """(hierarchy key, mount point, host dir) for the container's cgroup
        mounts: its own cgroup, or where it could not have one (rootless),
        the cgroup it stays in, ours (what runc's init binds: its own)."""
        own = None
        out = []
        for key, (mp, mroot) in hierarchies().items():
            path = self.paths.get(key)
            if path is None:
                if own is None:
                    own = _own_cgroups()
                rel = own.get(key.split(",")[0])
                if rel is None:
                    continue
                if mroot != "/" and (rel + "/").startswith(mroot.rstrip("/") + "/"):
                    rel = rel[len(mroot.rstrip("/")):] or "/"
                path = os.path.join(mp, rel.lstrip("/"))
            out.append((key, mp, path))
        return out

    def pids(self) -> list[int]:
        """Processes in the container's cgroup (the first hierarchy that answers)."""
        for key in ("", "pids", "freezer", "memory"):
            path = self.paths.get(key)
            if path:
                try:
                    return _read_pids(path)
                except OSError:
                    continue
        return []

    def kill_all(self) -> bool:
        """SIGKILL every process of the cgroup, sub-cgroups included, as
        runc's signalAllProcesses: cgroup.kill where the kernel has it (v2,
        or the unified hierarchy of a hybrid host), else freeze, kill each,
        thaw, so that nothing forks past the list. False if the cgroup
        does not exist."""
        if not any(os.path.isdir(p) for p in self.paths.values()):
            return False
        path = self.paths.get("")
        if path:
            try:
                _write(os.path.join(path, "cgroup.kill"), b"1")
                return True
            except FileNotFoundError:
                pass  # before Linux 5.14
        freezer = self.paths.get("freezer") or path or ""  # "": no freezer
        try:
            frozen = bool(freezer) and set_frozen(freezer, True)
        except OSError:
            frozen = False  # no freezer: kill what the list holds
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                try:
                    set_frozen(freezer, False)
                except OSError:
                    pass
        return True

    def check_unused(self) -> None:
        """runc 1.2+'s refusal of a cgroup that exists already but is not
        fresh: one holding processes (another container's), or a frozen one
        (the init would freeze on joining it, and create hang). A failed open
        is all it costs where the cgroup does not exist yet."""
        from ..errors import PyruncError
        n = len(self.pids())
        if n:
            raise PyruncError(f"container's cgroup is not empty: {n} process(es) found")
        if is_frozen(self.paths):
            raise PyruncError("container's cgroup unexpectedly frozen")

    def destroy(self) -> None:
        """Remove the cgroup and any sub-cgroups the container made, retrying
        while the last processes leave (rmdir fails with EBUSY until then)."""
        for path in self.paths.values():
            _rmtree_cgroup(path)

    def plan(self, resources: dict, linux_devices: list | None = None) -> None:
        """Compute ahead what apply() with the same arguments can (the device
        rules, and on v1 the writes that get there from what the new cgroup
        inherited), so that apply() only writes: a create calls this while
        the init mounts, and apply() while the init waits for it. A failure
        here is apply()'s to report, as without a plan."""
        from ..errors import PyruncError
        from .resources import plan_devices
        try:
            self._devices_plan = plan_devices(self.paths, resources or {}, linux_devices)
        except (PyruncError, OSError):
            self._devices_plan = None

    def apply(self, resources: dict, linux_devices: list | None = None) -> None:
        """Write linux.resources (and the device rules) into the cgroup; pass
        linux.devices so that a device the config defines replaces runc's
        default rule for it, as runc does. Uses, once, what plan() computed
        for the same arguments."""
        from .resources import apply_resources
        plan, self._devices_plan = self._devices_plan, None
        apply_resources(self.paths, resources or {}, linux_devices, devices_plan=plan)

    def check(self, resources: dict, linux_devices: list | None = None) -> None:
        """Validate linux.resources for this host without touching the
        cgroup (what apply() would refuse before writing anything)."""
        from .resources import check
        check(self.paths, resources or {}, linux_devices)

    def set(self, resources: dict, skip_devices: bool = True) -> None:
        """Apply resources to a live container (update): device rules are
        left alone, as runc's update does."""
        from .resources import apply_resources
        apply_resources(self.paths, resources or {}, skip_devices=skip_devices)

    def stats(self) -> dict:
        """runc's `events` stats (types.Stats) of the cgroup."""
        from .stats import stats
        return stats(self.paths)

    def oom_notifier(self):
        """A pollable OOM notifier (cgroups.notify.OOMNotifier) or None."""
        from .notify import OOMNotifier
        return OOMNotifier.open(self.paths)


def new_manager(cgroups_path: str, cid: str, rootless: bool = False, systemd: bool = False,
                annotations: dict | None = None) -> Manager:
    """The container's Manager: cgroupfs, or with --systemd-cgroup a systemd unit."""
    if systemd:
        from .systemd import SystemdManager
        return SystemdManager.for_container(cgroups_path, cid, rootless, annotations)
    return Manager.for_container(cgroups_path, cid, rootless)


def manager_from_state(st: dict) -> Manager:
    """The Manager of an existing container, from its state.json."""
    if st.get("systemd"):
        from .systemd import SystemdManager
        return SystemdManager.from_state(st)
    return Manager(st.get("cgroup_paths") or {})


def set_frozen(path: str, frozen: bool) -> bool:
    """Freeze or thaw the cgroup at `path` (v1 freezer.state or v2
    cgroup.freeze) and wait until the kernel agrees; False if it does not
    get there in a second. OSError if the cgroup has no freezer."""
    v1 = os.path.exists(os.path.join(path, "freezer.state"))
    name = "freezer.state" if v1 else "cgroup.freeze"
    want = (b"FROZEN" if frozen else b"THAWED") if v1 else (b"1" if frozen else b"0")
    for _ in range(1000):
        _write(os.path.join(path, name), want)
        if v1:
            with open(os.path.join(path, name), "rb") as f:
                if f.read().strip() == want:
                    return True
        else:
            with open(os.path.join(path, "cgroup.events"), "rb") as f:
                if (b"frozen 1" in f.read()) == frozen:
                    return True
        time.sleep(0.001)
    return False


def is_frozen(paths: dict[str, str]) -> bool:
    """Whether the cgroup itself is frozen, as runc's GetFreezerState tells
    it: v1 FROZEN by its own freezer.self_freezing (not an ancestor's), v2
    cgroup.freeze 1. On a hybrid host the unified cgroup.freeze counts too:
    it freezes what joins it just as well. Missing files: not frozen."""
    path = paths.get("freezer")
    if path:
        for _ in range(1000):
            state = _read_or_none(os.path.join(path, "freezer.state"))
            if state != "FREEZING":
                break
            time.sleep(0.001)  # runc waits for a stable state too
        if state == "FROZEN":
            return _read_or_none(os.path.join(path, "freezer.self_freezing")) != "0"
    path = paths.get("")
    if not path:
        return False
    return _read_or_none(os.path.join(path, "cgroup.freeze")) == "1"


def _read_or_none(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_pids(path: str) -> list[int]:
    pids: list[int] = []
    for dirpath, _, files in os.walk(path):
        with open(os.path.join(dirpath, "cgroup.procs")) as f:
            pids.extend(int(x) for x in f.read().split())
    return pids


def _mkdir_p(path: str, copy_cpuset: bool) -> None:
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _mkdir_p(parent, copy_cpuset)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    if copy_cpuset:
        _cpuset_ensure(path)


def _cpuset_ensure(path: str, depth: int = 0) -> dict[str, str]:
    """runc's cpusetEnsureParent: a v1 cpuset starts empty and a task cannot
    join an empty one (ENOSPC), so an empty cpuset.cpus/mems takes its
    parent's, up the tree (an engine's pod cgroup made with a plain mkdir is
    empty too). Returns the values it ends with."""
    vals: dict[str, str] = {}
    for f in ("cpuset.cpus", "cpuset.mems"):
        try:
            with open(os.path.join(path, f)) as cur:
                vals[f] = cur.read().strip()
        except OSError:
            return {}  # not a cpuset directory (the mount's parent): nothing to copy
    if all(vals.values()) or depth > 64:
        return vals
    up = _cpuset_ensure(os.path.dirname(path), depth + 1)
    for f, v in vals.items():
        if not v and up.get(f):
            try:
                _write(os.path.join(path, f), up[f].encode())
                vals[f] = up[f]
            except OSError:
                pass
    return vals


def _rmtree_cgroup(path: str) -> None:
    try:  # the usual case: no sub-cgroups, nobody left
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise
    for dirpath, dirs, _ in os.walk(path, topdown=False):
        for _ in range(100):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.01)


# the pre-arm's cgroup.procs fd: the process keeps it open to the end (only
# the thread uses it, so its number is never reused), and a forked child
# closes its copy at once: no host fd reaches a container's init
_prearm_fd = -1
_prearmed = False  # tried already (the launcher's pyrunc._boot.early, then main)


def join_error(pid: int, path: str, err: int | None) -> Exception:
    """A refused cgroup join, in runc's words, with the file that refused."""
    from ..errors import PyruncError
    return PyruncError(f"unable to apply cgroup configuration: failed to write {pid}: "
                       f"write {path}: {os.strerror(err or 0).lower()}")


def self_join_ok() -> bool:
    """Whether a thread writing "0" to a v1 `tasks` file moves itself
    without taking cgroup_threadgroup_rwsem (Linux 6.0, "cgroup: Optimize
    single thread migration"), so without its RCU grace period."""
    rel = os.uname().release.split(".")
    try:
        return int(rel[0]) >= 6
    except ValueError:
        return False


def _needs_prearm(command: str, systemd: bool) -> bool:
    """run and create on the cgroupfs driver with only v1 hierarchies join
    their init without the lock (Manager.join_fds): a pre-arm would only
    hold cgroup_mutex through a grace period and make our mkdirs wait."""
    if command == "exec" or systemd or not self_join_ok():
        return True
    return "" in hierarchies()


def prearm_migration(command: str = "exec", systemd: bool = False) -> None:
    """Start the kernel's cgroup migration lock warming up, in a thread.

    The first write to any cgroup.procs takes cgroup_threadgroup_rwsem for
    writing, which waits for an RCU grace period (7-10 ms here, 15 and more
    on a loaded machine) while holding cgroup_mutex, so our cgroup mkdirs
    wait for it too; writes shortly after one another share that wait. A
    thread of ours moves this process into the cgroup it is already in (a
    no-op migration) at once, so the grace period runs while we import and
    read the config, and the container's mkdirs and join find the lock warm.
    A thread rather than a child: a fork would make every page we touch
    afterwards a copy-on-write fault.

    "At once" matters: a new thread waits for the GIL, and a main thread
    busy importing hands it over only after the switch interval (5 ms), so
    the write started that late and its grace period ran into our mkdirs.
    Here the main thread finds and opens the file, the interval is cut for
    the thread's two short turns (start, end), and the thread only calls
    write(), which blocks without the GIL; os._exit ends it if need be.
    """
    global _prearm_fd, _prearmed
    if _prearmed:
        return
    _prearmed = True
    import _thread
    try:
        if not _needs_prearm(command, systemd):
            return
        path = _own_procs_file()
        if path is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return  # an optimisation only
    _prearm_fd = fd
    os.register_at_fork(after_in_child=_close_prearm_fd)
    sys.setswitchinterval(0.0002)  # one thread from here on: no cost
    # the new thread is queued on our CPU and would wait out our time slice
    # (2-3 ms seen): we wait for it instead, a few tens of microseconds
    started = _thread.allocate_lock()
    started.acquire()
    try:
        _thread.start_new_thread(_noop_migration, (fd, started))
    except RuntimeError:
        return  # an optimisation only
    started.acquire(True, 0.05)


_rearm_busy = False
_rearm_path = ""


def rearm_migration(systemd: bool = False) -> None:
    """prearm_migration for a long-lived caller (the containerd shim), once
    per container it is about to create: requests come seconds apart, by
    which time the lock has cooled, and its grace period would fall inside
    the create. One no-op migration at a time, in a thread; the fd stays
    open for the next (closed in forked children, as the pre-arm's)."""
    global _prearm_fd, _rearm_busy, _rearm_path
    if _rearm_busy:
        return
    import _thread
    try:
        if not _needs_prearm("create", systemd):
            return
        # our cgroup now: moved since (a shim_cgroup), the old fd would move us back
        path = _own_procs_file()
        if path is None:
            return
        if path != _rearm_path or _prearm_fd < 0:
            old, _prearm_fd = _prearm_fd, os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            if not _rearm_path:  # once per process (a forked child inherits it)
                os.register_at_fork(after_in_child=_close_prearm_fd)
            _rearm_path = path
            if old >= 0:
                os.close(old)
        _rearm_busy = True
        _thread.start_new_thread(_rearm, (_prearm_fd,))
    except (OSError, ValueError, RuntimeError):
        _rearm_busy = False  # an optimisation only


def _rearm(fd: int) -> None:
    global _rearm_busy
    try:
        os.write(fd, b"0")
    except OSError:
        pass  # an optimisation only
    finally:
        _rearm_busy = False


def _close_prearm_fd() -> None:
    """In a forked child: our copy of the pre-arm's fd goes, and with -1
    the child's own children do not close that number again; a re-arm
    thread under way was the parent's (the child has none)."""
    global _prearm_fd, _rearm_busy
    _rearm_busy = False
    if _prearm_fd >= 0:
        try:
            os.close(_prearm_fd)
        except OSError:
            pass
        _prearm_fd = -1


def _own_procs_file() -> str | None:
    """cgroup.procs of our own cgroup in the first v1 hierarchy (or the
    unified one) that /proc/self/cgroup names and that is mounted."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    hier = hierarchies()
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        key = next((k for k in hier if k == ctrls or (ctrls and ctrls in k.split(","))), None)
        if key is None:
            continue
        mp, mroot = hier[key]
        rel = path[len(mroot.rstrip("/")):] if mroot != "/" else path
        return os.path.join(mp, rel.lstrip("/"), "cgroup.procs")
    return None


def _noop_migration(fd: int, started) -> None:
    started.release()
    try:
        os.write(fd, b"0")
    except OSError:
        pass  # an optimisation only
