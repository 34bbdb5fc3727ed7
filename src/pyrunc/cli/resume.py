"""pyrunc resume: resume all processes of a container (cgroup freezer)."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc resume <container-id>

DESCRIPTION:
   The resume command resumes all processes in the instance of the container,
using the cgroup freezer (v1 freezer.state, v2 cgroup.freeze).

EXAMPLE:
   # pyrunc resume mycontainer
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("resume", args, 1)
    from ..container.ops import resume
    resume(ctx.root, args[0])
    return 0
