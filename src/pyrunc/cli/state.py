"""pyrunc state: the OCI state of a container as JSON."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc state <container-id>

DESCRIPTION:
   The state command outputs current state information for the instance of a
container (ociVersion, id, pid, status, bundle, rootfs, created, owner,
annotations), as the OCI runtime spec defines it.

EXAMPLE:
   # pyrunc state mycontainer
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("state", args, 1)
    import sys
    from ..fastjson import dumps
    from ..container.state import state_doc
    sys.stdout.write(dumps(state_doc(ctx.root, args[0]), indent=2))
    return 0
