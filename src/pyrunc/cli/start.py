"""pyrunc start: run the user's process in a created container."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc start <container-id>

DESCRIPTION:
   The start command executes the user defined process in a created container.

EXAMPLE:
   # pyrunc create -b /mycontainer mycontainer && pyrunc start mycontainer
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("start", args, 1)
    from ..container.ops import start
    start(ctx.root, args[0])
    return 0
