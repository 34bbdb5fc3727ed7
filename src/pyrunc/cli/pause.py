"""pyrunc pause: pause all processes of a container (cgroup freezer)."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc pause <container-id>

DESCRIPTION:
   The pause command pauses all processes in the instance of the container,
using the cgroup freezer (v1 freezer.state, v2 cgroup.freeze).

EXAMPLE:
   # pyrunc pause mycontainer
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("pause", args, 1)
    from ..container.ops import pause
    pause(ctx.root, args[0])
    return 0
