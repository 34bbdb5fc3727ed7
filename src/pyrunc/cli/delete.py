"""pyrunc delete: remove a container's resources."""
from __future__ import annotations

FLAGS = {"force": ("bool", False)}
ALIASES = {"f": "force"}
HELP = """USAGE:
   pyrunc delete [command options] <container-id>

DESCRIPTION:
   The delete command deletes any resources held by the container: its state,
its cgroup, and (for a created container, or with --force) its processes.

EXAMPLE:
   # pyrunc delete ubuntu01
   # pyrunc delete --force ubuntu01

OPTIONS:
   --force, -f  Forcibly deletes the container if it is still running (uses SIGKILL)
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("delete", args, 1)
    from ..container.ops import delete
    from ..errors import ContainerNotFound
    try:
        delete(ctx.root, args[0], opts["force"])
    except ContainerNotFound:
        if not opts["force"]:
            raise
    return 0
