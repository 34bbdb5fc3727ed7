"""pyrunc events: container statistics and OOM notifications, as JSON lines."""
from __future__ import annotations

FLAGS = {"interval": ("str", "5s"), "stats": ("bool", False)}
HELP = """USAGE:
   pyrunc events [command options] <container-id>

Where "<container-id>" is the name for the instance of the container.

DESCRIPTION:
   The events command displays information about the container. By default the
information is displayed once every 5 seconds: one JSON object a line,
{"type":"stats","id":...,"data":{...}} every interval (cpu, memory, pids,
blkio, hugetlb usage, in runc's format) and {"type":"oom","id":...} whenever
the kernel's OOM killer acts in the container. It stops when the container
stops.

EXAMPLE:
   # pyrunc events --stats mycontainer
   # pyrunc events --interval 1s mycontainer

OPTIONS:
   --interval value  set the stats collection interval (default: 5s)
   --stats           display the container's stats then exit
"""

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s: str) -> float:
    """Go's time.ParseDuration, in seconds ("5s", "1m30s", "1.5h", "100ms", "0")."""
    from ..errors import PyruncError
    orig = s
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise PyruncError(f'time: invalid duration "{orig}"')
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        num = s[:i]
        if not num or num == "." or num.count(".") > 1:
            raise PyruncError(f'time: invalid duration "{orig}"')
        s = s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = s[:j]
        s = s[j:]
        if not unit:
            raise PyruncError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise PyruncError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += float(num) * _UNITS[unit]
    return -total if neg else total


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("events", args, 1)
    from ..errors import PyruncError
    try:
        interval = parse_duration(opts["interval"])
    except PyruncError as e:
        raise PyruncError(f'invalid value "{opts["interval"]}" for flag -interval: {e}') from None
    from ..container.ops import load
    cid = args[0]
    sd, st, status = load(ctx.root, cid, shared=True)
    sd.unlock()
    if interval <= 0:
        raise PyruncError("duration interval must be greater than 0")
    if status == "stopped":
        from ..errors import InvalidState
        raise InvalidState(f"container with id {cid} is not running", status)
    from ..cgroups import Manager
    cg = Manager(st.get("cgroup_paths") or {})
    if opts["stats"]:
        _emit({"type": "stats", "id": cid, "data": cg.stats()})
        return 0
    return stream(cg, cid, st, interval)


def _emit(event: dict) -> None:
    """One JSON line, written at once (Go's json.Encoder on os.Stdout)."""
    import os
    from ..fastjson import dumps
    data = (dumps(event) + "\n").encode()
    while data:
        n = os.write(1, data)
        data = data[n:]


def stream(cg, cid: str, st: dict, interval: float) -> int:
    """Stats every interval and OOM events as they come, until the
    container's init exits (or its cgroup is removed)."""
    import os
    import select
    import time
    from .. import log
    from ..container.state import proc_start_time
    from ..errors import PyruncError
    pid = st.get("pid") or 0
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return 0  # already gone
    notifier = None
    try:
        if proc_start_time(pid) != st.get("init_start"):
            return 0  # the pid was reused: the container has stopped
        notifier = cg.oom_notifier()
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if notifier is not None:
            poller.register(notifier.fileno(), notifier.events)
        next_tick = time.monotonic() + interval
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                ready = poller.poll(int(timeout * 1000) + (1 if timeout > 0 else 0))
            except InterruptedError:
                continue
            stopped = False
            for fd, _ in ready:
                if notifier is not None and fd == notifier.fileno():
                    r = notifier.read()
                    if r > 0:
                        _emit({"type": "oom", "id": cid})
                    elif r < 0:
                        stopped = True
                elif fd == pidfd:
                    stopped = True
            if stopped:
                # an OOM kill of the init is reported before it is seen dead
                if notifier is not None and notifier.fd >= 0 and \
                        any(fd == notifier.fileno() for fd, _ in poller.poll(0)) and notifier.read() > 0:
                    _emit({"type": "oom", "id": cid})
                return 0
            if time.monotonic() >= next_tick:
                try:
                    data = cg.stats()
                except PyruncError as e:
                    log.error(str(e))
                else:
                    _emit({"type": "stats", "id": cid, "data": data})
                next_tick += interval
                if next_tick < time.monotonic():
                    next_tick = time.monotonic() + interval
    except BrokenPipeError:
        return 0
    finally:
        os.close(pidfd)
        if notifier is not None:
            notifier.close()
