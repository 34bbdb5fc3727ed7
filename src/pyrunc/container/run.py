"""`run`: create, release the init (Msg.GO), run the poststart hooks, and in
the foreground stay with the container until it exits (signals forwarded,
terminal proxied), then delete it unless kept. `pyrunc run` and
`pyrunc.Container.run` are this code."""
from __future__ import annotations

from ..errors import InitError, PyruncError
from ..init.sync import Msg
from .launch import CreateOptions, Launched, create


def run(root: str, cid: str, o: CreateOptions, keep: bool = False) -> int:
    """The container's exit status (128+N for signal N); 0 once started
    when detached. keep: leave the stopped container (not deleted)."""
    if o.detach:
        launched = create(root, cid, o)
        go(launched)
        poststart(launched, keep=False)
        launched.sd.unlock()
        return 0
    from . import foreground as F
    fwd = F.Forwarder()  # signals are recorded from here on, forwarded once the init runs
    # before the stage child can exit, so that its child, the init, is
    # reparented to us (the syscall layer is loaded before the early fork)
    prev = F.become_subreaper()
    try:
        return _foreground(root, cid, o, keep, fwd)
    finally:
        F.restore_subreaper(prev)  # a library caller's process is not ours to change


def _foreground(root: str, cid: str, o: CreateOptions, keep: bool, fwd) -> int:
    from . import foreground as F
    o.after_join = _while_init_mounts
    try:
        launched = create(root, cid, o)
        if launched.master is not None:
            from ..terminal import clear_onlcr
            clear_onlcr(launched.master)  # as runc: the host terminal does the CR
        go(launched)
        launched.sd.unlock()
        poststart(launched, keep=keep, relock=True)
        status = F.wait_foreground(launched.pid, fwd, launched.master)
    finally:
        fwd.close()
    _end(launched, keep)
    from .. import log
    if log.debug_enabled():
        log.debug(f"run: container {cid} exited, status {status}")
    return status


def _end(launched: Launched, keep: bool) -> None:
    """The init has exited: kill what is left; delete unless kept."""
    from .ops import _signal_all, destroy
    from .state import status_of
    sd = launched.sd
    sd.lock()
    if keep:
        _signal_all(launched.state, 9)
        sd.unlock()
    else:
        destroy(sd, launched.state, status_of(launched.state, sd.fifo))


def _while_init_mounts() -> None:
    """In the parent while the init sets up: load what the end of the run
    needs, off the critical path."""
    from . import ops  # noqa: F401


def go(launched: Launched) -> None:
    """Release the init and wait until it has exec'd (EOF on the channel);
    an error before exec (a startContainer hook, say) undoes the container."""
    ch = launched.ch
    ch.send(Msg.GO)
    tag, payload, _ = ch.recv()
    ch.close()
    if tag == Msg.ERROR:
        from .ops import destroy
        destroy(launched.sd, launched.state, "running")
        reason = payload.decode(errors="replace")
        raise InitError(f"pyrunc run failed: {reason}", reason, "run")


def poststart(launched: Launched, keep: bool, relock: bool = False) -> None:
    """runc 1.2+ and runtime-spec 1.2: a failing poststart hook fails the run;
    the container is stopped and, unless kept, deleted."""
    if not (launched.state["config"].get("hooks") or {}).get("poststart"):
        return
    from . import ops
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
