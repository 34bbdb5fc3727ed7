"""pyrunc image unpack: umoci unpack's command line over image/bundle.py."""
from __future__ import annotations

UNPACK_FLAGS = {"image": ("str", ""), "uid-map": ("list", []), "gid-map": ("list", []), "rootless": ("bool", False)}
UNPACK_HELP = """NAME:
   pyrunc image unpack - unpack an image from an OCI image layout into a runtime bundle

USAGE:
   pyrunc image unpack [--rootless] [--uid-map C:H:N]... [--gid-map C:H:N]... --image DIR[:REF] BUNDLE

DESCRIPTION:
   Reads the OCI image layout DIR, picks the manifest whose
org.opencontainers.image.ref.name annotation is REF (default "latest"),
resolving an image index to the host's platform, verifies every blob against
its digest, applies the layers in order into BUNDLE/rootfs and writes
BUNDLE/config.json from the image config, and BUNDLE/umoci.json (as umoci
unpack does). BUNDLE is created; an existing BUNDLE must be empty. On failure
nothing is left behind.

EXAMPLE:
   # pyrunc image unpack --image ./busybox-oci:latest bb
   # cd bb && pyrunc run bb1

OPTIONS:
   --image value    the OCI image layout and reference, DIR[:REF]
   --uid-map value  a uid mapping container:host:size: owners are mapped on
                    the host and config.json gets a user namespace with it
   --gid-map value  a gid mapping container:host:size
   --rootless       unpack as an unprivileged user: owners are not applied but
                    recorded in the user.rootlesscontainers xattr, device
                    nodes become empty files, and config.json maps the
                    caller's ids to root in a user namespace
"""


def run(ctx, rest: list[str]) -> int:
    import sys
    from ..errors import PyruncError
    from ..image.bundle import unpack
    from .main import parse_flags
    uopts, uargs = parse_flags({**UNPACK_FLAGS, "help": ("bool", False)}, {"h": "help"}, rest, False)
    if uopts["help"]:
        sys.stdout.write(UNPACK_HELP)
        return 0
    if len(uargs) != 1:
        sys.stdout.write("Incorrect Usage.\n\n" + UNPACK_HELP)
        raise PyruncError('pyrunc: "image unpack" requires exactly 1 argument(s)')
    if not uopts["image"]:
        raise PyruncError("image unpack: --image DIR[:REF] is required")
    unpack(uopts["image"], uargs[0], _maps(uopts["uid-map"], "uid"), _maps(uopts["gid-map"], "gid"),
           rootless=uopts["rootless"])
    return 0


def _maps(values: list[str], kind: str) -> list[tuple[int, int, int]]:
    """umoci's --uid-map/--gid-map values, container:host:size."""
    from ..errors import PyruncError
    out = []
    for v in values:
        parts = v.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[2]) == 0 \
                or any(int(p) > 0xFFFFFFFF for p in parts):
            raise PyruncError(f"invalid --{kind}-map {v!r}: expected container:host:size")
        out.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return out
