"""pyrunc run: create and start a container, and in the foreground stay with
it until it exits, returning its exit status."""
from __future__ import annotations

from .create import FLAGS as _CREATE_FLAGS

FLAGS = {**_CREATE_FLAGS, "detach": ("bool", False), "keep": ("bool", False),
         "no-subreaper": ("bool", False)}
ALIASES = {"b": "bundle", "d": "detach"}
HELP = """USAGE:
   pyrunc run [command options] <container-id>

DESCRIPTION:
   The run command creates an instance of a container for a bundle and starts
it. In the foreground pyrunc forwards signals to the container, proxies its
terminal, and exits with the container's exit status (128+N when it was killed
by signal N), deleting the container unless --keep is given.

EXAMPLE:
   # cd /mycontainer && pyrunc run mycontainer
   # pyrunc run -d --pid-file /run/my.pid -b /mycontainer mycontainer

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory, defaults to the current directory
   --console-socket value    path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --detach, -d              detach from the container's process
   --keep                    do not delete the container after it exits
   --pid-file value          specify the file to write the process id to
   --no-subreaper            disable the use of the subreaper used to reap reparented processes
   --no-pivot                do not use pivot root to jail process inside rootfs.
   --no-new-keyring          do not create a new session keyring for the container.
   --preserve-fds value      Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("run", args, 1)
    from ..container.launch import create
    from .create import options
    detach = opts["detach"]
    o = options(opts, "run", detach, ctx)
    if detach:
        launched = create(ctx.root, args[0], o)
        _go(launched)
        _poststart(launched, keep=False)
        launched.sd.unlock()
        return 0
    from ..container import foreground as F
    fwd = F.Forwarder()  # signals are recorded from here on, forwarded once the init runs
    # before the stage child can exit, so that its child, the init, is
    # reparented to us (the syscall layer is loaded before the early fork)
    F.become_subreaper()
    o.after_join = _while_init_mounts
    try:
        launched = create(ctx.root, args[0], o)
        if launched.master is not None:
            from ..terminal import clear_onlcr
            clear_onlcr(launched.master)  # as runc: the host terminal does the CR
        _go(launched)
        launched.sd.unlock()
        _poststart(launched, keep=opts["keep"], relock=True)
        status = F.wait_foreground(launched.pid, fwd, launched.master)
    finally:
        fwd.close()
    from ..container.ops import destroy
    from ..container.state import status_of
    sd = launched.sd
    sd.lock()
    if opts["keep"]:
        from ..container.ops import _signal_all
        _signal_all(launched.state, 9)
        sd.unlock()
    else:
        destroy(sd, launched.state, status_of(launched.state, sd.fifo))
    from .. import log
    if log.debug_enabled():
        log.debug(f"run: container {args[0]} exited, status {status}")
    return status


def _while_init_mounts() -> None:
    """In the parent while the init sets up: load what the end of the run
    needs, off the critical path."""
    from ..container import ops  # noqa: F401


def _go(launched) -> None:
    """Release the init and wait until it has exec'd (EOF on the channel);
    an error before exec (a startContainer hook, say) undoes the container."""
    ch = launched.ch
    ch.send("g")
    tag, payload, _ = ch.recv()
    ch.close()
    if tag == "E":
        from ..container.ops import destroy
        from ..errors import InitError
        destroy(launched.sd, launched.state, "running")
        reason = payload.decode(errors="replace")
        raise InitError(f"pyrunc run failed: {reason}", reason, "run")


def _poststart(launched, keep: bool, relock: bool = False) -> None:
    """runc 1.2+ and runtime-spec 1.2: a failing poststart hook fails the run;
    the container is stopped and, unless --keep, deleted."""
    if not (launched.state["config"].get("hooks") or {}).get("poststart"):
        return
    from ..container import ops
    from ..errors import PyruncError
    try:
        ops.run_poststart(launched.state)
    except PyruncError as e:
        if launched.master is not None:
            import os
            os.close(launched.master)
            launched.master = None
        if relock:
            launched.sd.lock()
        if keep:
            launched.sd.unlock()
        else:
            ops.destroy(launched.sd, launched.state, "stopped")
        raise PyruncError(f"pyrunc run failed: {e}") from None
