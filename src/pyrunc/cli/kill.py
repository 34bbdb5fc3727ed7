"""pyrunc kill: send a signal to the container's init (or all its processes)."""
from __future__ import annotations

FLAGS = {"all": ("bool", False)}
ALIASES = {"a": "all"}
HELP = """USAGE:
   pyrunc kill [command options] <container-id> [signal]

DESCRIPTION:
   The kill command sends the specified signal (default: SIGTERM) to the
container's init process. Signals are given by name (KILL, SIGKILL) or number.

EXAMPLE:
   # pyrunc kill ubuntu01 KILL

OPTIONS:
   --all, -a  send the specified signal to all processes inside the container
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("kill", args, 1, "min")
    check_args("kill", args, 2, "max")
    from ..container.ops import kill, parse_signal
    sig = parse_signal(args[1]) if len(args) > 1 else 15
    kill(ctx.root, args[0], sig, opts["all"])
    return 0
