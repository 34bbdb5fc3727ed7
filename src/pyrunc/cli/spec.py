"""pyrunc spec: write a starter config.json like runc's."""
from __future__ import annotations

FLAGS = {"bundle": ("str", ""), "rootless": ("bool", False)}
ALIASES = {"b": "bundle"}
HELP = """USAGE:
   pyrunc spec [command options]

DESCRIPTION:
   The spec command creates the new specification file named "config.json" for
the bundle. It refuses to overwrite an existing one.

EXAMPLE:
   # mkdir -p hello/rootfs && tar -C hello/rootfs -xf busybox.tar
   # cd hello && pyrunc spec && sed -i 's;"sh";"/bin/echo", "hi";' config.json
   # pyrunc run hello1

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory
   --rootless                generate a configuration for a rootless container
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    import os
    from .main import check_args
    from ..errors import PyruncError
    from ..spec import example as E
    check_args("spec", args, 0)
    spec = E.example()
    if opts["rootless"]:
        E.to_rootless(spec)
    path = os.path.join(opts["bundle"] or ".", "config.json")
    if os.path.lexists(path):
        raise PyruncError(f"File {path} exists. Remove it first")
    try:
        with open(path, "x") as f:
            f.write(E.dumps(spec))
    except OSError as e:
        raise PyruncError(f"{path}: {e.strerror}") from None
    return 0
