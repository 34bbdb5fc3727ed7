"""The last steps of every container process (init and exec): rlimits, user,
capabilities, no_new_privs, seccomp, cwd, then execve.

`prepare_exec` does the look-ups that can fail (the executable, the user's
home) before the container reports ready, so `create` fails instead of the
later `start`; `Exec.execute` then only makes syscalls, in runc's order.
"""
from __future__ import annotations

import errno
import os

from ..errors import ExecveError, PyruncError
from ..linux import consts as C
from ..linux.fdio import read_all  # the init reads /etc/passwd after its imports are sealed

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from .seccomp import Seccomp



PASSWD = "/etc/passwd"  # the container's: read after pivot_root


def _passwd_home(uid: int) -> str:
    """The home directory of `uid` in the container's /etc/passwd (runc reads
    it inside the container's root); "/" without an entry or a file."""
    want = str(uid).encode()
    try:
        fd = os.open(PASSWD, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = read_all(fd)
        finally:
            os.close(fd)
        for line in data.split(b"\n"):
            p = line.strip().split(b":")
            if len(p) >= 3 and p[2] == want:
                return p[5].decode() if len(p) > 5 else ""
    except (OSError, UnicodeDecodeError):
        pass
    return "/"


def prepare_env(env: list[str] | None, uid: int) -> list[str]:
    """runc's prepareEnv: NAME=VALUE entries only, the last of each name
    kept (in the place of its last occurrence), and HOME from the user's
    passwd entry when the environment lacks it or has it empty. No env at
    all (absent from the config) stays empty, without HOME, as in runc."""
    if env is None:
        return []
    out: list[str] = []
    seen: set[str] = set()
    home_set = False
    for kv in reversed(env):
        key, sep, val = kv.partition("=")
        if not sep:
            raise PyruncError("invalid environment variable: missing '='")
        if not key:
            raise PyruncError("invalid environment variable: name cannot be empty")
        if key in seen:
            continue
        seen.add(key)
        if "\0" in kv:
            raise PyruncError(f'invalid environment variable "{key}": contains nul byte (\\x00)')
        if key == "HOME":
            if not val:
                continue  # empty: replaced below
            home_set = True
        out.append(kv)
    out.reverse()
    if not home_set:
        out.append("HOME=" + _passwd_home(uid))
    return out


def lookup_path(arg0: str, env: list[str]) -> str:
    """exec.LookPath as runc uses it: PATH from the process env, runc's messages."""
    if "/" in arg0:
        try:
            st = os.stat(arg0)
        except OSError as e:
            raise PyruncError(f'exec: "{arg0}": stat {arg0}: {(e.strerror or str(e)).lower()}') from None
        if not (st.st_mode & 0o111) or os.path.isdir(arg0):
            raise PyruncError(f'exec: "{arg0}": permission denied')
        return arg0
    path = next((e[5:] for e in env if e.startswith("PATH=")), "")
    for d in path.split(":"):
        cand = os.path.join(d or ".", arg0)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if st.st_mode & 0o111 and not os.path.isdir(cand):
            return cand
    raise PyruncError(f'exec: "{arg0}": executable file not found in $PATH')


def cap_mask(names: list[str] | None) -> int:
    from .capabilities import cap_number, last_cap
    top = last_cap()
    mask = 0
    for n in names or []:
        nr = cap_number(n)
        if nr is None or nr > top:
            from .. import log
            log.warn(f"ignoring unknown or unavailable capability {n!r}")
            continue
        mask |= 1 << nr
    return mask


class Exec:
    """A process ready to be executed: every value computed, only syscalls left."""

    def __init__(self, process: dict, path: str, env: list[str]) -> None:
        user = process.get("user") or {}
        self.uid = user.get("uid", 0)
        self.gid = user.get("gid", 0)
        umask = user.get("umask")
        # the kernel keeps only the permission bits (umask(2)); os.umask
        # takes a C int, which a uint32 from the config may not fit
        self.umask = None if umask is None else umask & 0o777
        self.groups = user.get("additionalGids") or []
        self.args = process["args"]
        self.path = path
        self.env = env
        self.cwd = process.get("cwd", "/")
        self.nnp = bool(process.get("noNewPrivileges"))
        self.apparmor = process.get("apparmorProfile") or ""
        self.selinux_label = process.get("selinuxLabel") or ""
        self.rlimits = [(C.RLIMITS[r["type"]], r.get("soft", 0), r.get("hard", 0)) for r in process.get("rlimits") or []
                        if r.get("type") in C.RLIMITS]
        bad = [r.get("type") for r in process.get("rlimits") or [] if r.get("type") not in C.RLIMITS]
        if bad:
            raise PyruncError(f"invalid rlimit type {bad[0]!r}")
        caps = process.get("capabilities")
        self.caps = None if caps is None else {k: cap_mask(caps.get(k)) for k in
                                               ("bounding", "effective", "permitted", "inheritable", "ambient")}
        self.oom = process.get("oomScoreAdj")
        self.setgroups = True
        self.seccomp: Seccomp | None = None  # built before the root changed

    def execute(self, preserve_fds: int = 0) -> None:
        """Become the process and exec it (`exec`: nothing comes between)."""
        self.become()
        self.exec_now(preserve_fds)

    def become(self) -> None:
        """Everything but the exec, in runc's order (finalizeNamespace):
        rlimits, oom_score_adj, a seccomp filter that needs CAP_SYS_ADMIN,
        the cwd (as root, or after the id switch if root may not enter it),
        the bounding set, groups and ids, capabilities, no_new_privs,
        umask. The init waits for `start` after this, as the container's
        user, and runs the startContainer hooks so."""
        from ..linux import sys as L
        if self.apparmor or self.selinux_label:  # at the next execve (runc: after ready)
            from . import lsm
            lsm.apply_apparmor(self.apparmor)
            lsm.set_exec_label(self.selinux_label)
        sc = self.seccomp
        if sc is not None:
            sc.ready()  # the program; the notify agent connected while ids and caps are intact
        for typ, soft, hard in self.rlimits:
            try:
                L.setrlimit(typ, soft, hard)
            except OSError as e:
                raise PyruncError(f"error setting rlimit type {typ}: {os.strerror(e.errno or 0).lower()}") from None
        if self.oom is not None:
            from ..linux.sys import open_procfs
            fd = open_procfs("/proc/self/oom_score_adj")
            try:
                os.write(fd, str(self.oom).encode())
            finally:
                os.close(fd)
        if sc is not None and not self.nnp:
            # runc: without no_new_privs loading a filter needs CAP_SYS_ADMIN,
            # so before capabilities and ids change
            sc.apply()
        # runc's finalizeNamespace: the cwd first as the runtime's user (which
        # may enter what the container's user cannot); on a permission error
        # once more after the switch to the container's user
        chdir_later = False
        try:
            os.chdir(self.cwd)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM):
                raise PyruncError(self._chdir_error(e)) from None
            chdir_later = True
        if self.caps is not None:
            for nr in range(L.capget()[1].bit_length() or 64):
                if not self.caps["bounding"] >> nr & 1:
                    try:
                        L.prctl(C.PR_CAPBSET_DROP, nr)
                    except OSError:
                        pass
        L.prctl(C.PR_SET_KEEPCAPS, 1)
        fix_stdio_permissions(self.uid)
        try:
            if self.setgroups:
                try:
                    os.setgroups(self.groups)
                except PermissionError:
                    if self.groups:
                        raise
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        except OSError as e:
            raise PyruncError(f"failed to set user {self.uid}:{self.gid}: {e.strerror}") from None
        if chdir_later:  # as the user: a directory only it may enter (runc)
            self._chdir()
        L.prctl(C.PR_SET_KEEPCAPS, 0)
        if self.caps is not None:
            c = self.caps
            try:
                L.capset(c["effective"], c["permitted"], c["inheritable"])
            except OSError as e:  # runc's words
                raise PyruncError(f"unable to apply caps: {os.strerror(e.errno or 0).lower()}") from None
            L.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_CLEAR_ALL)
            for nr in range(64):
                if c["ambient"] >> nr & 1:
                    try:
                        L.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_RAISE, nr)
                    except OSError as e:  # runc warns and goes on
                        from .. import log
                        from .capabilities import cap_name
                        log.warn(f"can't raise ambient capability {cap_name(nr)}: {os.strerror(e.errno or 0).lower()}")
        if self.nnp:
            L.prctl(C.PR_SET_NO_NEW_PRIVS, 1)
        if self.umask is not None:
            os.umask(self.umask)

    def _chdir(self) -> None:
        try:
            os.chdir(self.cwd)
        except OSError as e:
            raise PyruncError(self._chdir_error(e)) from None

    def _chdir_error(self, e: OSError) -> str:
        from .attrs import _goq
        return f"chdir to cwd ({_goq(self.cwd)}) set in config.json failed: {os.strerror(e.errno or 0).lower()}"

    def seccomp_now(self) -> None:
        """Load a filter that waits for the end (no_new_privs) now: runc
        loads it before the startContainer hooks, which run under it."""
        if self.seccomp is not None and self.nnp:
            self.seccomp.apply()
            self.seccomp = None

    def exec_now(self, preserve_fds: int = 0) -> None:
        """Only fds, signals and the late seccomp filter are left: exec."""
        from ..linux import sys as L
        sc = self.seccomp
        # no fd lies past the file table's limit (fs.nr_open, 2^20 by
        # default): a huge --preserve-fds must not loop for hours
        end = min(3 + max(preserve_fds, 0), max(os.sysconf("SC_OPEN_MAX"), 1 << 20))
        for fd in range(3, end):
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass
        try:
            L.close_range(end, 0xFFFFFFFF, 4)  # CLOSE_RANGE_CLOEXEC
        except OSError:
            pass
        L.reset_signals()
        env = dict(_env_pairs(self.env))
        if sc is not None and self.nnp:
            sc.apply()  # runc: as late as possible, so few syscalls run under it
        try:
            os.execve(self.path, self.args, env)
        except OSError as e:
            raise ExecveError(f"exec {self.path}: {os.strerror(e.errno or 0).lower()}") from None


def fix_stdio_permissions(uid: int) -> None:
    """runc's fixStdioPermissions: stdio not owned by the process's user (the
    console the runtime made, a pipe from the caller) is given to it, so it
    can reopen /dev/stdout or /proc/self/fd/N; /dev/null is left alone and so
    is the group (the devpts mount's gid=5). Only the uid changes."""
    for fd, name in ((0, "/dev/stdin"), (1, "/dev/stdout"), (2, "/dev/stderr")):
        try:
            st = os.fstat(fd)
        except OSError as e:
            if e.errno == 9:  # EBADF: a closed stdio has nothing to fix
                continue
            raise PyruncError(f"fstat {name}: {os.strerror(e.errno or 0).lower()}") from None
        if st.st_uid == uid or (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == os.makedev(1, 3)):
            continue
        try:
            os.fchown(fd, uid, -1)
        except OSError as e:
            if e.errno in (1, 30):  # EPERM (owner not mapped here), EROFS: leave it, as runc
                continue
            raise PyruncError(f"chown {name}: {os.strerror(e.errno or 0).lower()}") from None


def _env_pairs(env: list[str]):
    for e in env:
        k, _, v = e.partition("=")
        yield k, v


def prepare_exec(process: dict, rlimits_set: bool = False) -> Exec:
    env = prepare_env(process.get("env"), (process.get("user") or {}).get("uid", 0))
    path = lookup_path(process["args"][0], env)
    ex = Exec(process, path, env)
    if rlimits_set:
        ex.rlimits = []
    return ex
