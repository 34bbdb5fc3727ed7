"""pyrunc features: what this runtime supports, as runtime-spec features.json."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc features

DESCRIPTION:
   Show the enabled features (runtime-spec features.json): OCI versions, hooks,
mount options, namespaces, capabilities, cgroup, seccomp, AppArmor, SELinux.

EXAMPLE:
   # pyrunc features | jq .linux.namespaces
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys
    from .main import check_args
    from ..spec import features as F
    check_args("features", args, 0)
    sys.stdout.write(F.dumps(F.features()))
    return 0
