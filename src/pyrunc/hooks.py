"""Running OCI hooks (config.json "hooks").

Hooks are the one place where the runtime runs external programs by design:
the user's own. Behaviour follows runtime-spec config.md#posix-platform-hooks
and runc's configs.Command.Run, with runc's error texts:

    error running prestart hook #0: exit status 1, stdout: ..., stderr: ...
    error running prestart hook #0: fork/exec /x: no such file or directory
    error running prestart hook #0: hook ran past specified timeout of 5.0s

* argv is `args` as given (args[0] is argv[0]); no args -> [path].
* The environment is exactly `env`; when it is absent or empty the hook
  gets `default_env`, which defaults to nothing at all, as the spec says
  ("same semantics as environ"). runc differs de facto: Go's exec gives
  such a hook runc's own environment, and runc gives startContainer hooks
  the container process's env; callers wanting that pass default_env.
* Python cannot exec with an empty argv[0] (args: ["", ...]); such a hook
  fails with a clear error where Go would run it.
* stdin carries the state JSON; a hook that exits without reading it is
  fine (EPIPE is ignored, as Go does).
* stdout and stderr are captured for the error message.
* timeout (seconds, > 0): the hook is SIGKILLed and the run fails.
* The hook starts with default signal dispositions and an empty signal
  mask, and without any of our file descriptors but 0, 1 and 2.
* It inherits our credentials, and our cwd unless `cwd` is given: runc
  runs the runtime's hooks (prestart, createRuntime, poststart) from the
  bundle directory, having chdir'ed there for `create` and `run`.

posix_spawn (vfork+exec in glibc) keeps this lean: no subprocess import and
no copy of the Python process. We wait on a pidfd, so a hook that leaves a
daemon holding its stdout does not hang us (runc would hang there): once the
hook itself has exited, whatever it wrote is already in the pipes.
"""

from __future__ import annotations

import os

from pyrunc.errors import PyruncError

#: Hook kinds, in the order the lifecycle runs them.
HOOK_NAMES: tuple[str, ...] = (
    "prestart",  # deprecated by the spec, still run (before createRuntime)
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)

_CHUNK = 65536


class HookError(PyruncError):
    """A hook could not be run or failed; str() is one runc-style line.

    A PyruncError, so the CLI reports it like any other failure.

    `kind` and `index` say which hook (None when run_hook was called
    without them); `detail` is the message without the "error running"
    prefix.
    """

    def __init__(self, detail: str, kind: str | None = None, index: int | None = None):
        self.detail = detail
        self.kind = kind
        self.index = index
        if kind is not None:
            msg = f"error running {kind} hook #{index if index is not None else 0}: {detail}"
        else:
            msg = detail
        super().__init__(msg)


def state_json(state: dict) -> bytes:
    """The state as Go's json.Marshal writes it: compact, UTF-8, HTML-safe."""
    from pyrunc.fastjson import dumps, go_escape

    return go_escape(dumps(state, ascii=False)).encode()


def validate_hook(hook: object) -> str | None:
    """Return why `hook` is not a valid hook object, or None if it is."""
    if not isinstance(hook, dict):
        return "hook must be an object"
    path = hook.get("path")
    if not isinstance(path, str) or not path:
        return "hook path is missing"
    if not path.startswith("/"):
        return f'hook path "{path}" is not absolute'
    for key in ("args", "env"):
        v = hook.get(key)
        if v is not None and (
            not isinstance(v, list) or not all(isinstance(s, str) for s in v)
        ):
            return f"hook {key} must be an array of strings"
    t = hook.get("timeout")
    if t is not None and (type(t) is not int or t <= 0):
        return f"hook timeout must be a positive integer, not {t!r}"
    return None


def run_hooks(
    kind: str,
    hooks: list[dict] | None,
    state: dict | bytes,
    *,
    default_env: list[str] | None = None,
    cwd: str | None = None,
) -> None:
    """Run `hooks` of `kind` in order; stop at the first failure.

    `state` is the container state (serialised once) or its JSON bytes.
    `cwd`: the hooks' working directory (posix_spawn cannot chdir, so this
    process goes there while it spawns them, and back).
    """
    if not hooks:
        return
    data = state if isinstance(state, bytes) else state_json(state)
    back = -1
    if cwd:
        back = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(cwd)
        except OSError:
            os.close(back)
            back = -1  # gone: the hooks run where we are, as before
    try:
        for i, hook in enumerate(hooks):
            run_hook(hook, data, kind=kind, index=i, default_env=default_env)
    finally:
        if back >= 0:
            os.fchdir(back)
            os.close(back)


def run_hook(
    hook: dict,
    state_json: bytes,
    *,
    kind: str | None = None,
    index: int | None = None,
    default_env: list[str] | None = None,
) -> None:
    """Run one hook with `state_json` on stdin; raise HookError on failure.

    `kind`/`index` only name the hook in the error ("error running
    prestart hook #0: ..."); without them the error is the bare detail.
    """

    def fail(detail: str) -> HookError:
        return HookError(detail, kind, index)

    why = validate_hook(hook)
    if why is not None:
        raise fail(why)
    path: str = hook["path"]
    argv: list[str] = hook.get("args") or [path]
    env: dict[str, str] = {}
    for kv in hook.get("env") or default_env or ():
        k, sep, v = kv.partition("=")
        if sep and k:  # environ entries without a name cannot be passed
            env[k] = v  # later entries win, as in Go's exec
    timeout: int | None = hook.get("timeout")

    fds: list[int] = []  # every fd we own, closed in finally
    child = [0]  # pid until reaped, then 0
    try:
        in_r, in_w = _pipe(fds)
        out_r, out_w = _pipe(fds)
        err_r, err_w = _pipe(fds)
        try:
            child[0] = _spawn(path, argv, env, in_r, out_w, err_w, fds)
        except (OSError, ValueError) as e:
            raise fail(_spawn_error(path, e)) from None
        for fd in (in_r, out_w, err_w):
            _close(fd, fds)
        try:
            status, out, err = _communicate(child, state_json, in_w, out_r, err_r, fds, timeout)
        except ChildProcessError as e:  # someone else reaped it
            child[0] = 0
            raise fail(f"wait: {_strerror(e.errno)}") from None
        if status is None:
            raise fail(f"hook ran past specified timeout of {float(timeout or 0):.1f}s")
        if status != 0:
            o = out.decode("utf-8", "replace")
            er = err.decode("utf-8", "replace")
            raise fail(f"{_status_str(status)}, stdout: {o}, stderr: {er}")
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if child[0]:  # interrupted (e.g. KeyboardInterrupt): leave no orphan
            _kill(child)


def _pipe(fds: list[int]) -> tuple[int, int]:
    """os.pipe() whose ends are never 0, 1 or 2.

    If our stdio is closed, pipe() may return those numbers and the dup2
    file actions onto 0..2 would clobber one another.
    """
    r, w = os.pipe()
    pair = []
    for fd in (r, w):
        if fd < 3:
            import fcntl

            new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = new
        fds.append(fd)
        pair.append(fd)
    return pair[0], pair[1]


def _close(fd: int, fds: list[int]) -> None:
    fds.remove(fd)
    os.close(fd)


def _spawn(
    path: str, argv: list[str], env: dict[str, str], stdin: int, stdout: int, stderr: int,
    ours: list[int],
) -> int:  # fmt: skip
    import _signal as signal

    actions: list[tuple] = [
        (os.POSIX_SPAWN_DUP2, stdin, 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    # Python opens everything O_CLOEXEC, but fds we inherited without it
    # (an engine's preserved fds, say) would leak into the hook.
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = []
    for name in names:
        fd = int(name)
        if fd < 3 or fd in ours:
            continue
        try:
            if os.get_inheritable(fd):
                actions.append((os.POSIX_SPAWN_CLOSE, fd))
        except OSError:  # the listdir fd itself, now closed
            pass
    sigdef = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
    return os.posix_spawn(path, argv, env, file_actions=actions, setsigmask=(), setsigdef=sigdef)


def _communicate(
    child: list[int], data: bytes, in_w: int, out_r: int, err_r: int, fds: list[int],
    timeout: int | None,
) -> tuple[int | None, bytes, bytes]:  # fmt: skip
    """Feed stdin, collect stdout/stderr, wait for exit or the deadline.

    Returns (wait status, stdout, stderr), status None on timeout; the
    child is reaped either way (child[0] is then 0).
    """
    pid = child[0]
    import select
    import time

    POLLIN, POLLOUT = select.POLLIN, select.POLLOUT
    POLLERR, POLLHUP = select.POLLERR, select.POLLHUP
    deadline = time.monotonic() + timeout if timeout else None
    bufs: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        poller.register(fd, POLLIN)
    view = memoryview(data)
    pos = 0
    if data:
        os.set_blocking(in_w, False)
        poller.register(in_w, POLLOUT)
    else:
        _close(in_w, fds)
        in_w = -1
    try:
        pidfd = os.pidfd_open(pid)
        fds.append(pidfd)
        poller.register(pidfd, POLLIN)
    except (AttributeError, OSError):  # kernel < 5.3: poll waitpid instead
        pidfd = -1

    status: int | None = None
    while status is None:
        wait_ms: int | None = None if pidfd >= 0 else 20
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(child)
                return None, b"", b""
            left_ms = min(int(left * 1000) + 1, 0x7FFFFFFF)  # poll() takes a C int
            wait_ms = left_ms if wait_ms is None else min(wait_ms, left_ms)
        for fd, ev in poller.poll(wait_ms):
            if fd == in_w:
                done = bool(ev & (POLLERR | POLLHUP))
                if not done:
                    try:
                        pos += os.write(in_w, view[pos : pos + _CHUNK])
                    except BlockingIOError:
                        pass
                    except OSError:  # EPIPE: the hook does not read stdin
                        done = True
                if done or pos >= len(view):
                    poller.unregister(in_w)
                    _close(in_w, fds)
                    in_w = -1
            elif fd in bufs:
                if not _read_into(fd, bufs[fd]):
                    poller.unregister(fd)
            elif fd == pidfd:
                _, status = os.waitpid(pid, 0)
                child[0] = 0
        if pidfd < 0 and status is None:
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid:
                status = st
                child[0] = 0
    # The hook has exited: what it wrote is in the pipes. Take that without
    # waiting for EOF, which a daemon it left behind may hold off forever.
    for fd, buf in bufs.items():
        while _read_into(fd, buf) is True:
            pass
    return status, b"".join(bufs[out_r]), b"".join(bufs[err_r])


def _read_into(fd: int, buf: list[bytes]) -> bool | None:
    """Read once: True if data came, False at EOF/error, None if empty now."""
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return False
    if not chunk:
        return False
    buf.append(chunk)
    return True


def _kill(child: list[int]) -> None:
    """SIGKILL and reap child[0] (Go's Process.Kill: the hook only)."""
    pid, child[0] = child[0], 0
    try:
        os.kill(pid, 9)  # SIGKILL on every Linux architecture
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _strerror(errno: int | None) -> str:
    """strerror as Go spells it: "No such file" -> "no such file"."""
    s = os.strerror(errno or 0)
    return s[0].lower() + s[1:] if len(s) > 1 and s[1].islower() else s


def _spawn_error(path: str, e: Exception) -> str:
    if isinstance(e, OSError) and e.errno is not None:
        return f"fork/exec {path}: {_strerror(e.errno)}"
    return f"fork/exec {path}: {e}"  # ValueError: NUL byte in argv/env


def _status_str(status: int) -> str:
    """A wait status as Go's os.ProcessState.String() writes it."""
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        import _signal as signal

        sig = os.WTERMSIG(status)
        name = signal.strsignal(sig) if sig < 32 else None
        if name and not name.startswith("Unknown"):
            name = name[0].lower() + name[1:] if len(name) > 1 and name[1].islower() else name
        else:
            name = f"signal {sig}"
        s = f"signal: {name}"
        if os.WCOREDUMP(status):
            s += " (core dumped)"
        return s
    return f"unknown status {status}"
