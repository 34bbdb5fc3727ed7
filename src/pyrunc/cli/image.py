"""pyrunc image: the image tools (skopeo's and umoci's jobs). Each
subcommand is its own module (cli/image_<name>.py), imported only when
named, so that no runtime command pays for them."""
from __future__ import annotations

FLAGS: dict = {}
# subcommand -> (module under pyrunc.cli, one-line summary)
SUBCOMMANDS = {
    "copy": ("image_copy", "copy an image from one location to another (as skopeo copy)"),
    "inspect": ("image_inspect", "show an image's digest, config and layers (as skopeo inspect)"),
    "list-tags": ("image_list_tags", "list the tags of a registry repository (as skopeo list-tags)"),
    "unpack": ("image_unpack", "unpack an image from an OCI image layout into a runtime bundle"),
}


def _help() -> str:
    width = max(len(n) for n in SUBCOMMANDS) + 3
    lines = "".join(f"   {n:<{width}}{s}\n" for n, (_, s) in SUBCOMMANDS.items())
    return ("USAGE:\n   pyrunc image command [command options] [arguments...]\n\n"
            f"COMMANDS:\n{lines}\nRun 'pyrunc image COMMAND --help' for a command's options.\n")


def __getattr__(name: str) -> str:
    """HELP for cli/main.py's `pyrunc image --help`, made from the table."""
    if name == "HELP":
        return _help()
    raise AttributeError(name)


def run(ctx, opts: dict, args: list[str]) -> int:
    import importlib
    import sys
    from ..errors import PyruncError
    if not args:
        sys.stdout.write("Incorrect Usage.\n\n" + _help())
        raise PyruncError('pyrunc: "image" requires a minimum of 1 argument(s)')
    sub, rest = args[0], args[1:]
    if sub in ("help", "--help", "-h"):
        sys.stdout.write(_help())
        return 0
    if sub not in SUBCOMMANDS:
        raise PyruncError(f"image: unknown command {sub!r}")
    mod = importlib.import_module(f"pyrunc.cli.{SUBCOMMANDS[sub][0]}")
    return mod.run(ctx, rest)
