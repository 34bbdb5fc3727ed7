"""Fixtures for the runtime-agnostic integration suite (real containers, root).

The runtime under test comes from PYRUNC_TEST_RUNTIME (see tests/conftest.py);
PYRUNC_TEST_TIMEOUT (default 30) bounds every runtime call, in seconds.

Fixtures
--------
rt / runtime   Runtime: runs `<runtime> --root <per-test root> ...` (root in
               tmp_path/state, cwd tmp_path) and returns a Result; see Runtime.
               rt.new_id(prefix) gives ids unique to the test (they carry
               rt.token, which the cgroup leak check keys on).
bundle         Bundle: a fresh bundle (busybox rootfs + config.json from
               `<runtime> spec`, terminal false, args ["sleep", "3600"], the
               host dir bundle.hostdir bind-mounted read-write at /host).
               Bundles live on a tmpfs (/dev/shm) for speed.
make_bundle    factory: make_bundle(args=None, name=None, host_mount=True) -> Bundle
leakcheck      LeakCheck (autouse): after every test that uses the runtime,
               `delete --force` every container left in the test's root, then
               fail the test (an error at teardown) if a state dir, cgroup dir,
               host mount or process is left behind, after cleaning it up.
               leakcheck.assert_clean() checks the same thing mid-test.
busybox_rootfs session: the template rootfs (don't modify it).
spec_template  session: the config.json dict `<runtime> spec` generates.

Helpers (`from integration_conftest import ...`): wait_until(pred, timeout),
Result (rc/stdout/stderr/err_lines + expect_ok()/expect_fail(rc, match, one_line)),
LOGRUS_TEXT_RE / parse_logrus_line() for logrus text lines, RFC3339_RE,
descendants(), processes_mentioning(), proc_cmdline().
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # helpers_console etc.

# Test modules import the helpers below as `from integration_conftest import ...`:
# the bare name "conftest" is shared with tests/conftest.py (and pytest swaps it).
if __name__ in sys.modules:
    sys.modules["integration_conftest"] = sys.modules[__name__]


BUSYBOX = Path("/usr/bin/busybox")
DEFAULT_TIMEOUT = float(os.environ.get("PYRUNC_TEST_TIMEOUT", "30"))  # seconds per runtime call
DEFAULT_ARGS = ["sleep", "3600"]
CGROUP_ROOT = Path("/sys/fs/cgroup")

# time="2026-01-02T03:04:05Z" level=error msg="container does not exist"
LOGRUS_TEXT_RE = re.compile(r'^time="(?P<time>[^"]+)" level=(?P<level>\w+) msg=(?P<msg>"(?:[^"\\]|\\.)*"|\S+)(?P<rest>.*)$')
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_logrus_line(line: str) -> dict[str, str] | None:
    """Parse one logrus text-format line into {time, level, msg}, or None."""
    m = LOGRUS_TEXT_RE.match(line.strip())
    if not m:
        return None
    msg = m.group("msg")
    if msg.startswith('"'):
        msg = json.loads(msg)  # logrus quotes with Go's strconv.Quote: JSON-compatible enough
    return {"time": m.group("time"), "level": m.group("level"), "msg": msg}


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `pred` until it returns something truthy; return it. Fail on timeout."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= end:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


# --------------------------------------------------------------------------- results


@dataclass(repr=False)
class Result:
    args: list[str]
    rc: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def err_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    @property
    def out_lines(self) -> list[str]:
        return [ln for ln in self.stdout.splitlines() if ln.strip()]

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, args={' '.join(self.args[-3:])!r})"

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.args)}\n-> rc={self.rc}{' (TIMED OUT)' if self.timed_out else ''}"
            f" in {self.duration:.2f}s\n--- stdout:\n{self.stdout[-3000:]}\n--- stderr:\n{self.stderr[-3000:]}"
        )

    def expect_ok(self) -> "Result":
        assert not self.timed_out, f"command timed out\n{self}"
        assert self.rc == 0, f"expected success\n{self}"
        assert "Traceback" not in self.stderr, f"traceback on stderr\n{self}"
        return self

    def expect_fail(self, rc: int | None = None, match: str | None = None, one_line: bool = False) -> "Result":
        """Non-zero exit (or exactly `rc`), no traceback, stderr mentions `match`
        (case-insensitive regex) and, with one_line, exactly one non-empty line."""
        assert not self.timed_out, f"command timed out\n{self}"
        if rc is None:
            assert self.rc not in (0, None), f"expected failure\n{self}"
        else:
            assert self.rc == rc, f"expected exit status {rc}\n{self}"
        assert "Traceback" not in self.stderr, f"traceback on stderr\n{self}"
        assert self.err_lines, f"expected an error message on stderr\n{self}"
        if match is not None:
            assert re.search(match, self.stderr, re.I), f"stderr should match {match!r}\n{self}"
        if one_line:
            assert len(self.err_lines) == 1, f"expected exactly one non-empty stderr line\n{self}"
        return self

    @property
    def error_message(self) -> str:
        """The message of the (last) error line: logrus msg= if logrus-formatted."""
        for line in reversed(self.err_lines):
            parsed = parse_logrus_line(line)
            if parsed:
                return parsed["msg"]
        return self.err_lines[-1] if self.err_lines else ""


class RuntimeProcess:
    """A runtime invocation running in the background (Popen + output files)."""

    def __init__(self, argv: list[str], popen: subprocess.Popen, out, err, started: float) -> None:
        self.argv = argv
        self.popen = popen
        self._out, self._err = out, err
        self._started = started
        self.result: Result | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def poll(self) -> int | None:
        return self.popen.poll()

    def output_so_far(self) -> tuple[str, str]:
        def read(f) -> str:
            f.flush()
            f.seek(0)
            return f.read().decode(errors="replace")

        return read(self._out), read(self._err)

    def finish(self, timeout: float = DEFAULT_TIMEOUT) -> Result:
        if self.result is not None:
            return self.result
        timed_out = False
        try:
            rc: int | None = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.popen.kill()
            self.popen.wait()
            rc = None
        duration = time.monotonic() - self._started
        out, err = self.output_so_far()
        self._out.close()
        self._err.close()
        self.result = Result(self.argv, rc, out, err, duration, timed_out)
        return self.result

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.finish(timeout=10)


# --------------------------------------------------------------------------- runtime


class Runtime:
    """Drives `<runtime> --root <root> ...` for one test.

    rt("state", cid) / rt.run(...) -> Result (never raises on failure)
    rt.ok(...) / rt.fail(...) -> Result, asserting success / clean failure
    rt.popen(...) -> RuntimeProcess (background; .finish() -> Result)
    Lifecycle shortcuts: create, start, run_fg, run_d, state, status, kill,
    delete, exec_, list_json, wait_status.
    """

    def __init__(self, info: Any, root: Path, token: str, cwd: Path) -> None:
        self.info = info
        self.cmd = list(info.cmd)
        self.root = root
        self.token = token
        self.cwd = cwd
        self._n = 0
        self._procs: list[RuntimeProcess] = []

    # -- identity

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_runc(self) -> bool:
        return self.info.is_runc

    def new_id(self, prefix: str = "c") -> str:
        """A container id unique to this test (contains the test's token)."""
        self._n += 1
        return f"{prefix}-{self.token}-{self._n}"

    # -- running the runtime

    def argv(self, args: Iterable[Any], root: bool | os.PathLike | str = True, global_args: Iterable[str] = ()) -> list[str]:
        argv = list(self.cmd)
        if root is True:
            argv += ["--root", str(self.root)]
        elif root:
            argv += ["--root", os.fspath(root)]
        argv += [str(a) for a in global_args]
        argv += [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
        return argv

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        base = dict(os.environ)
        base.update(dict(self.info.env))
        base.pop("NOTIFY_SOCKET", None)
        if env:
            base.update(env)
        return base

    def popen(
        self,
        *args: Any,
        root: bool | os.PathLike | str = True,
        global_args: Iterable[str] = (),
        cwd: os.PathLike | str | None = None,
        env: dict[str, str] | None = None,
        stdin: Any = subprocess.DEVNULL,
        extra_fds: dict[int, os.PathLike | str] | None = None,
    ) -> RuntimeProcess:
        """Start the runtime in the background. Output goes to temporary files
        (never pipes: a detached container inherits the runtime's stdio and would
        hold a pipe open forever). extra_fds={3: path} opens `path` read-write as
        that fd number in the runtime (via a tiny sh wrapper that execs it)."""
        argv = self.argv(args, root=root, global_args=global_args)
        real_argv = argv
        if extra_fds:
            redirs = " ".join(f'{int(fd)}<>"$PYRUNC_TEST_FD{int(fd)}"' for fd in extra_fds)
            real_argv = ["/bin/sh", "-c", f'exec "$@" {redirs}', "sh", *argv]
            env = dict(env or {})
            for fd, path in extra_fds.items():
                env[f"PYRUNC_TEST_FD{int(fd)}"] = os.fspath(path)
        out = tempfile.TemporaryFile(prefix="rt-out-")
        err = tempfile.TemporaryFile(prefix="rt-err-")
        started = time.monotonic()
        p = subprocess.Popen(
            real_argv,
            stdin=stdin,
            stdout=out,
            stderr=err,
            cwd=os.fspath(cwd or self.cwd),
            env=self._env(env),
        )
        proc = RuntimeProcess(argv, p, out, err, started)
        self._procs.append(proc)
        return proc

    def run(self, *args: Any, timeout: float = DEFAULT_TIMEOUT, **kw: Any) -> Result:
        return self.popen(*args, **kw).finish(timeout=timeout)

    __call__ = run

    def ok(self, *args: Any, **kw: Any) -> Result:
        return self.run(*args, **kw).expect_ok()

    def fail(self, *args: Any, match: str | None = None, one_line: bool = False, rc: int | None = None, **kw: Any) -> Result:
        return self.run(*args, **kw).expect_fail(rc=rc, match=match, one_line=one_line)

    def reap_all(self) -> None:
        """Kill and reap every background invocation still running."""
        for p in self._procs:
            if p.result is None:
                with contextlib.suppress(Exception):
                    p.kill()

    # -- lifecycle shortcuts

    def create(self, cid: str, bundle: "Bundle | os.PathLike | str", *flags: Any, **kw: Any) -> Result:
        path = bundle.path if isinstance(bundle, Bundle) else bundle
        return self.ok("create", "--bundle", path, *flags, cid, **kw)

    def start(self, cid: str, **kw: Any) -> Result:
        return self.ok("start", cid, **kw)

    def run_fg(self, cid: str, bundle: "Bundle | os.PathLike | str", *flags: Any, **kw: Any) -> Result:
        """`run` in the foreground; returns the Result without asserting."""
        path = bundle.path if isinstance(bundle, Bundle) else bundle
        return self.run("run", "--bundle", path, *flags, cid, **kw)

    def run_d(self, cid: str, bundle: "Bundle | os.PathLike | str", *flags: Any, **kw: Any) -> Result:
        """`run -d`, asserting success."""
        path = bundle.path if isinstance(bundle, Bundle) else bundle
        return self.ok("run", "-d", "--bundle", path, *flags, cid, **kw)

    def state(self, cid: str) -> dict[str, Any]:
        res = self.ok("state", cid)
        try:
            return json.loads(res.stdout)
        except ValueError:
            pytest.fail(f"state output is not JSON\n{res}")

    def status(self, cid: str) -> str | None:
        res = self.run("state", cid)
        if res.rc != 0:
            return None
        return json.loads(res.stdout).get("status")

    def wait_status(self, cid: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until `state` reports one of `statuses`; return the state."""
        last: list[Any] = [None]

        def check() -> dict[str, Any] | None:
            res = self.run("state", cid)
            if res.rc != 0:
                last[0] = res
                return None
            st = json.loads(res.stdout)
            last[0] = st.get("status")
            return st if st.get("status") in statuses else None

        end = time.monotonic() + timeout
        while True:
            st = check()
            if st:
                return st
            if time.monotonic() >= end:
                pytest.fail(f"{cid}: status never became {statuses} within {timeout}s (last: {last[0]})")
            time.sleep(0.05)

    def kill(self, cid: str, *sig: str, **kw: Any) -> Result:
        return self.ok("kill", cid, *sig, **kw)

    def delete(self, cid: str, force: bool = False, **kw: Any) -> Result:
        return self.ok("delete", *(["--force"] if force else []), cid, **kw)

    def exec_(self, cid: str, *cmd: Any, flags: Iterable[Any] = (), **kw: Any) -> Result:
        """`exec [flags] cid cmd...`; returns the Result without asserting."""
        return self.run("exec", *flags, cid, *cmd, **kw)

    def list_json(self) -> list[dict[str, Any]]:
        res = self.ok("list", "--format", "json")
        data = json.loads(res.stdout)
        return data or []

    def container_dirs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))


# --------------------------------------------------------------------------- bundle


class Bundle:
    """A bundle directory: rootfs (busybox) + config.json.

    bundle.config is the parsed config; change it with bundle.edit() (a context
    manager that saves on exit), bundle.set_args(...), bundle.update(fn) or
    assign and call bundle.save(). bundle.hostdir is a host directory mounted
    at /host inside the container (rw), for markers and results.
    """

    def __init__(self, path: Path, rootfs: Path, hostdir: Path | None, config: dict[str, Any]) -> None:
        self.path = path
        self.rootfs = rootfs
        self.hostdir = hostdir
        self.config = config
        self.save()

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def save(self) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.config, indent=2))
        os.replace(tmp, self.config_path)

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        yield self.config
        self.save()

    def update(self, fn: Callable[[dict[str, Any]], Any]) -> "Bundle":
        fn(self.config)
        self.save()
        return self

    def set_args(self, *args: str) -> "Bundle":
        self.config["process"]["args"] = list(args)
        self.save()
        return self

    def sh(self, script: str) -> "Bundle":
        """Make the container process `sh -c script`."""
        return self.set_args("sh", "-c", script)

    def host(self, name: str) -> Path:
        assert self.hostdir is not None, "bundle made with host_mount=False"
        return self.hostdir / name

    def wait_host_file(self, name: str, timeout: float = 10.0, contains: str | None = None) -> str:
        """Wait until hostdir/name exists (and contains `contains`); return its text."""
        path = self.host(name)

        def ready() -> str | None:
            try:
                text = path.read_text()
            except FileNotFoundError:
                return None
            if contains is not None and contains not in text:
                return None
            return text or (None if contains else " ")

        text = wait_until(ready, timeout=timeout, what=f"{path}" + (f" to contain {contains!r}" if contains else ""))
        return path.read_text() if text == " " else text

    def dir_inodes(self) -> set[tuple[int, int]]:
        """(st_dev, st_ino) of every directory in the bundle (for the process leak check)."""
        found: set[tuple[int, int]] = set()
        for top in [self.path] + ([self.hostdir] if self.hostdir else []):
            for dirpath, dirnames, _ in os.walk(top):
                with contextlib.suppress(OSError):
                    st = os.stat(dirpath)
                    found.add((st.st_dev, st.st_ino))
        return found


def build_busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: bin/busybox + applet symlinks, /etc/passwd and group
    (root, nobody, user 1000), and the usual empty directories."""
    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} (busybox-static) is not installed")
    dest.mkdir(parents=True)
    for d in ("bin", "proc", "sys", "dev", "etc", "root", "tmp", "home/user", "host", "run", "var"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    os.chmod(dest / "root", 0o700)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet == "busybox" or "/" in applet:
            continue
        os.symlink("busybox", dest / "bin" / applet)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "user:x:1000:1000:user:/home/user:/bin/sh\n"
    )
    (dest / "etc" / "group").write_text("root:x:0:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n")
    (dest / "etc" / "hostname").write_text("busybox\n")
    os.chown(dest / "home" / "user", 1000, 1000)
    return dest


def clone_rootfs(src: Path, dest: Path) -> None:
    """Copy the template rootfs: directories and small files are copied,
    symlinks recreated, bin/busybox hard-linked (fast, and safe because no
    test writes to it)."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dest if rel == "." else dest / rel
        target.mkdir(exist_ok=True)
        st = os.lstat(dirpath)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.chown(target, st.st_uid, st.st_gid)
        for name in dirnames + filenames:
            s = os.path.join(dirpath, name)
            t = target / name
            if os.path.islink(s):
                os.symlink(os.readlink(s), t)
            elif os.path.isfile(s):
                if name == "busybox":
                    try:
                        os.link(s, t)
                    except OSError:  # another file system
                        shutil.copy2(s, t)
                else:
                    shutil.copy2(s, t)


# --------------------------------------------------------------------------- leak check


def _proc_stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, starttime) of a pid, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2 :].split()
    return int(rest[1]), rest[0], int(rest[19])


def all_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def descendants(root_pid: int) -> set[tuple[int, int]]:
    """(pid, starttime) of every live descendant of root_pid."""
    children: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for pid in all_pids():
        st = _proc_stat(pid)
        if st is None:
            continue
        children[st[0]].append((pid, st[2]))
    out: set[tuple[int, int]] = set()
    todo = [root_pid]
    while todo:
        p = todo.pop()
        for child in children.get(p, []):
            if child not in out:
                out.add(child)
                todo.append(child[0])
    return out


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose command line contains `text`."""
    out = []
    me = os.getpid()
    for pid in all_pids():
        if pid == me:
            continue
        cmd = proc_cmdline(pid)
        if text in cmd:
            st = _proc_stat(pid)
            if st and st[1] not in ("Z", "X"):
                out.append((pid, cmd))
    return out


def processes_rooted_in(inodes: set[tuple[int, int]]) -> list[tuple[int, str]]:
    """Processes whose root or cwd is one of the given directories."""
    out = []
    for pid in all_pids():
        for what in ("root", "cwd"):
            try:
                st = os.stat(f"/proc/{pid}/{what}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in inodes:
                out.append((pid, f"{what}: {proc_cmdline(pid)}"))
                break
    return out


def read_mounts() -> collections.Counter:
    """Host mount table as a multiset of (mountpoint, root, fstype, source)."""
    c: collections.Counter = collections.Counter()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            c[(parts[4], parts[3], parts[sep + 1], parts[sep + 2])] += 1
    return c


def cgroup_hierarchies() -> list[Path]:
    try:
        return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def read_cgroup_dirs(max_depth: int = 8, limit: int = 20000) -> set[str]:
    """Every cgroup directory under /sys/fs/cgroup (bounded walk)."""
    out: set[str] = set()
    hier = cgroup_hierarchies()
    roots = hier if hier else [CGROUP_ROOT]
    for top in roots:
        stack = [(str(top), 0)]
        while stack and len(out) < limit:
            path, depth = stack.pop()
            try:
                with os.scandir(path) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            out.add(e.path)
                            if depth + 1 < max_depth:
                                stack.append((e.path, depth + 1))
            except OSError:
                continue
    return out


def own_cgroup_paths() -> list[str]:
    """Directories of this process's own cgroups in every mounted hierarchy."""
    out = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    hiers = {h.name: h for h in cgroup_hierarchies()}
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if path in ("", "/"):
            continue
        names = [c.replace("name=", "") for c in ctrls.split(",") if c] if ctrls else ["unified"]
        if not ctrls and "unified" not in hiers:
            out.append(str(CGROUP_ROOT) + path)
        for n in names:
            if n in hiers:
                out.append(str(hiers[n]) + path)
        if ctrls and ctrls in hiers:
            out.append(str(hiers[ctrls]) + path)
    return out


class LeakCheck:
    """Compares the host before/after a test: mounts, cgroups, state dirs, processes."""

    def __init__(self, rt: Runtime, basetemp: Path) -> None:
        self.rt = rt
        self.basetemp = basetemp
        self.bundles: list[Bundle] = []
        self.extra_dirs: list[Path] = []
        self.own_dirs: list[Path] = []  # other temp trees of this session (mount cleanup)
        self.mounts = read_mounts()
        self.cgroups = read_cgroup_dirs()
        self.own_cgroups = own_cgroup_paths()
        # trees another manager owns (a test's systemd): only dirs naming
        # this test's token count there
        self.foreign_cgroups: list[str] = []
        self.children = descendants(os.getpid())

    def watch_dir(self, path: Path) -> None:
        """Also treat processes rooted/cwd'ed in `path` as the test's."""
        self.extra_dirs.append(path)

    def _inodes(self) -> set[tuple[int, int]]:
        found: set[tuple[int, int]] = set()
        for b in self.bundles:
            found |= b.dir_inodes()
        for d in [self.rt.root, *self.extra_dirs]:
            with contextlib.suppress(OSError):
                st = os.stat(d)
                found.add((st.st_dev, st.st_ino))
        return found

    SYSTEM_MOUNTS = ("/", "/proc", "/sys", "/dev", "/run", "/tmp", "/dev/shm", "/sys/fs/cgroup")
    SYSTEM_TREES = ("/proc/", "/sys/", "/dev/pts", "/dev/mqueue", "/run/pyrunc", "/run/runc")

    def _mount_is_relevant(self, mountpoint: str, root: str) -> bool:
        ours = [str(self.basetemp), str(self.rt.root), *(str(d) for d in self.own_dirs)]
        ours += [str(b.path) for b in self.bundles] + [str(d) for d in self.extra_dirs]
        if any(mountpoint.startswith(p) or root.startswith(p) for p in ours):
            return True
        if self.rt.token in mountpoint or self.rt.token in root:
            return True
        # a bind mount's root is relative to its file system (e.g. /pyrunc-it-x/... on /dev/shm)
        if any(d.name and f"/{d.name}/" in root + "/" for d in self.own_dirs):
            return True
        if mountpoint in self.SYSTEM_MOUNTS or mountpoint.startswith(self.SYSTEM_TREES):
            return True
        return False

    def find_leaks(self, check_state: bool = True) -> dict[str, list[str]]:
        leaks: dict[str, list[str]] = {}
        # state dirs
        if check_state:
            dirs = self.rt.container_dirs()
            if dirs:
                leaks["state dirs"] = [str(self.rt.root / d) for d in dirs]
        # mounts: only those that touch this test's paths or the host's system
        # mount points (other sessions on the machine mount things too)
        now = read_mounts()
        new = now - self.mounts
        gone = self.mounts - now
        mnt = []
        for (mp, root, fstype, src), n in new.items():
            if self._mount_is_relevant(mp, root):
                mnt.append(f"new mount: {mp} ({fstype} {src} root={root}) x{n}")
        for (mp, root, fstype, src), n in gone.items():
            if self._mount_is_relevant(mp, root):
                mnt.append(f"mount disappeared: {mp} ({fstype} {src}) x{n}")
        if mnt:
            leaks["mounts"] = mnt
        # cgroups: new dirs naming this test's containers or below our own cgroup
        cg = []
        for d in sorted(read_cgroup_dirs() - self.cgroups):
            if self.rt.token in d or (any(d.startswith(p + "/") for p in self.own_cgroups) and
                                      not any(d.startswith(f + "/") for f in self.foreign_cgroups)):
                cg.append(d)
        if cg:
            leaks["cgroups"] = cg
        # processes
        procs = []
        for pid, st in sorted(descendants(os.getpid()) - self.children):
            info = _proc_stat(pid)
            procs.append(f"descendant pid {pid} [{info[1] if info else '?'}]: {proc_cmdline(pid)}")
        for pid, what in processes_rooted_in(self._inodes()):
            procs.append(f"pid {pid} in the bundle ({what})")
        for pid, cmd in processes_mentioning(str(self.rt.root)):
            procs.append(f"runtime pid {pid}: {cmd}")
        if procs:
            leaks["processes"] = sorted(set(procs))
        return leaks

    def assert_clean(self, timeout: float = 3.0, check_state: bool = True) -> None:
        """Assert nothing was left behind (polls up to `timeout` for slow exits)."""
        end = time.monotonic() + timeout
        while True:
            leaks = self.find_leaks(check_state=check_state)
            if not leaks or time.monotonic() >= end:
                break
            time.sleep(0.05)
        assert not leaks, "left behind:\n" + format_leaks(leaks)

    # -- teardown

    def teardown(self) -> list[str]:
        problems: list[str] = []
        self.rt.reap_all()
        for cid in self.rt.container_dirs():
            res = self.rt.run("delete", "--force", cid, timeout=30)
            if res.rc != 0 and (self.rt.root / cid).exists():
                problems.append(f"cleanup `delete --force {cid}` failed:\n{res}")
        end = time.monotonic() + 5.0
        while True:
            leaks = self.find_leaks()
            if not leaks or time.monotonic() >= end:
                break
            time.sleep(0.05)
        if leaks:
            problems.append("left behind after `delete --force` of every container:\n" + format_leaks(leaks))
            self.force_cleanup(leaks)
        return problems

    def force_cleanup(self, leaks: dict[str, list[str]]) -> None:
        for line in leaks.get("processes", []):
            m = re.search(r"pid (\d+)", line)
            if m:
                with contextlib.suppress(OSError):
                    os.kill(int(m.group(1)), signal.SIGKILL)
        for d in sorted(leaks.get("cgroups", []), key=len, reverse=True):
            for _ in range(20):
                with contextlib.suppress(OSError):
                    for pid in Path(d, "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        for line in leaks.get("mounts", []):
            m = re.match(r"new mount: (\S+)", line)
            if m and any(m.group(1).startswith(str(p)) for p in (self.basetemp, *self.own_dirs)):
                subprocess.run(["umount", "-l", m.group(1)], capture_output=True)
        for d in self.rt.container_dirs():
            shutil.rmtree(self.rt.root / d, ignore_errors=True)


def format_leaks(leaks: dict[str, list[str]]) -> str:
    return "\n".join(f"  {kind}:\n" + "\n".join(f"    {x}" for x in items) for kind, items in leaks.items())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def runtime_info_fx(runtime_under_test: Any) -> Any:
    """tests/conftest.py's RuntimeInfo (cmd, name, is_runc, env); fails if not found."""
    info = runtime_under_test
    if info is None:
        pytest.fail(
            "runtime under test not found: set PYRUNC_TEST_RUNTIME (e.g. runc, /path/to/pyrunc, "
            "'python3 -m pyrunc') or put pyrunc on PATH",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    return info


@pytest.fixture(scope="session")
def fast_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session directory on a tmpfs (/dev/shm) for rootfs copies: creating the
    ~270 busybox symlinks of a bundle costs ~0.2 s on this VM's ext4 and ~3 ms
    on tmpfs. Falls back to pytest's basetemp."""
    base: Path | None = None
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        base = Path(tempfile.mkdtemp(prefix="pyrunc-it-", dir=shm))
    if base is None:
        yield tmp_path_factory.mktemp("fast")
        return
    try:
        yield base
    finally:
        mounted = any(mp.startswith(str(base)) for (mp, *_rest) in read_mounts())
        if not mounted:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_rootfs(fast_tmp: Path) -> Path:
    return build_busybox_rootfs(fast_tmp / "template" / "rootfs")


@pytest.fixture(scope="session")
def spec_template(runtime_info_fx: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The config.json that `<runtime> spec` writes."""
    d = tmp_path_factory.mktemp("spec")
    res = subprocess.run(
        [*runtime_info_fx.cmd, "spec"],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **dict(runtime_info_fx.env)},
    )
    if res.returncode != 0 or not (d / "config.json").exists():
        pytest.fail(f"`{runtime_info_fx.display} spec` failed (rc={res.returncode}): {res.stderr}", pytrace=False)
    return json.loads((d / "config.json").read_text())


@pytest.fixture
def token() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def runtime(runtime_info_fx: Any, tmp_path: Path, token: str) -> Runtime:
    root = tmp_path / "state"
    root.mkdir()
    os.chmod(root, 0o700)
    return Runtime(runtime_info_fx, root, token, cwd=tmp_path)


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    """Short alias of `runtime`."""
    return runtime


@pytest.fixture(autouse=True)
def leakcheck(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakCheck | None]:
    if "runtime" not in request.fixturenames and "rt" not in request.fixturenames:
        # tests that never touch the runtime's state (e.g. --help) get no check
        yield None
        return
    rt: Runtime = request.getfixturevalue("runtime")
    lc = LeakCheck(rt, tmp_path_factory.getbasetemp())
    lc.own_dirs.append(request.getfixturevalue("fast_tmp"))
    request.node._leakcheck = lc
    yield lc
    problems = lc.teardown()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def make_bundle(
    spec_template: dict[str, Any], busybox_rootfs: Path, fast_tmp: Path, token: str, request: pytest.FixtureRequest
) -> Callable[..., Bundle]:
    counter = [0]
    base = fast_tmp / f"{request.node.name[:40]}-{token}".replace("/", "_").replace("[", "_").replace("]", "")
    base.mkdir()

    def make(args: list[str] | None = None, name: str | None = None, host_mount: bool = True) -> Bundle:
        counter[0] += 1
        n = counter[0]
        path = base / (name or f"bundle{n}")
        path.mkdir()
        rootfs = path / "rootfs"
        clone_rootfs(busybox_rootfs, rootfs)
        cfg = copy.deepcopy(spec_template)
        proc = cfg.setdefault("process", {})
        proc["terminal"] = False
        proc["args"] = list(args or DEFAULT_ARGS)
        cfg.setdefault("root", {})["path"] = "rootfs"
        hostdir = None
        if host_mount:
            hostdir = base / f"host{n}"
            hostdir.mkdir()
            os.chmod(hostdir, 0o777)
            cfg.setdefault("mounts", []).append(
                {"destination": "/host", "type": "bind", "source": str(hostdir), "options": ["rbind", "rw"]}
            )
        b = Bundle(path, rootfs, hostdir, cfg)
        lc: LeakCheck | None = getattr(request.node, "_leakcheck", None)
        if lc is not None:
            lc.bundles.append(b)
        return b

    return make


@pytest.fixture
def bundle(make_bundle: Callable[..., Bundle]) -> Bundle:
    return make_bundle()
