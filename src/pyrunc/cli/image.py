"""pyrunc image: image tools (issue 12). `unpack` makes a runtime bundle
from an OCI image layout on disk, as `umoci unpack` does."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc image command [command options] [arguments...]

COMMANDS:
   unpack   unpack an image from an OCI image layout into a runtime bundle

Run 'pyrunc image COMMAND --help' for a command's options.
"""
UNPACK_FLAGS = {"image": ("str", ""), "uid-map": ("list", []), "gid-map": ("list", [])}
UNPACK_HELP = """NAME:
   pyrunc image unpack - unpack an image from an OCI image layout into a runtime bundle

USAGE:
   pyrunc image unpack [--uid-map C:H:N]... [--gid-map C:H:N]... --image DIR[:REF] BUNDLE

DESCRIPTION:
   Reads the OCI image layout DIR, picks the manifest whose
org.opencontainers.image.ref.name annotation is REF (default "latest"),
resolving an image index to the host's platform, verifies every blob against
its digest, applies the layers in order into BUNDLE/rootfs and writes
BUNDLE/config.json from the image config (as umoci unpack does). BUNDLE is
created; an existing BUNDLE must be empty. On failure nothing is left behind.

EXAMPLE:
   # pyrunc image unpack --image ./busybox-oci:latest bb
   # cd bb && pyrunc run bb1

OPTIONS:
   --image value    the OCI image layout and reference, DIR[:REF]
   --uid-map value  a uid mapping container:host:size: owners are mapped on
                    the host and config.json gets a user namespace with it
   --gid-map value  a gid mapping container:host:size
"""
DEFAULT_REF = "latest"
def parse_image(arg: str) -> tuple[str, str]:
    """(layout dir, ref) of DIR[:REF]: split on the last ':' only when what
    follows is a valid ref name."""
    from ..image.reference import _OCI_REF_RE  # umoci's ref.name grammar too
    d, sep, ref = arg.rpartition(":")
    if sep and d and _OCI_REF_RE.fullmatch(ref):
        return d, ref
    return arg, DEFAULT_REF


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys
    from ..errors import PyruncError
    from .main import parse_flags
    if not args:
        sys.stdout.write("Incorrect Usage.\n\n" + HELP)
        raise PyruncError('pyrunc: "image" requires a minimum of 1 argument(s)')
    sub, rest = args[0], args[1:]
    if sub != "unpack":
        raise PyruncError(f"image: unknown command {sub!r}")
    uopts, uargs = parse_flags({**UNPACK_FLAGS, "help": ("bool", False)}, {"h": "help"}, rest, False)
    if uopts["help"]:
        sys.stdout.write(UNPACK_HELP)
        return 0
    if len(uargs) != 1:
        sys.stdout.write("Incorrect Usage.\n\n" + UNPACK_HELP)
        raise PyruncError('pyrunc: "image unpack" requires exactly 1 argument(s)')
    if not uopts["image"]:
        raise PyruncError("image unpack: --image DIR[:REF] is required")
    return unpack(uopts["image"], uargs[0], _maps(uopts["uid-map"], "uid"), _maps(uopts["gid-map"], "gid"))


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


def unpack(image: str, bundle: str, uid_map: list | None = None, gid_map: list | None = None) -> int:
    """Unpack; on any failure remove what was made and raise a one-line error."""
    import os
    from ..errors import PyruncError
    from ..image.layout import Layout
    path, ref = parse_image(image)
    layout = Layout(path)
    desc = layout.find_ref(ref)
    _, manifest = layout.resolve(desc)
    cdesc = manifest.get("config")
    if not isinstance(cdesc, dict):
        raise PyruncError("manifest: no config descriptor")
    config = layout.read_json(cdesc, "config")
    old_umask = os.umask(0o022)  # implicit parents and the rootfs are 0755 whatever the caller's umask
    try:
        return _unpack_into(layout, manifest, config, bundle, uid_map or [], gid_map or [])
    finally:
        os.umask(old_umask)


def _unpack_into(layout, manifest: dict, config: dict, bundle: str, uid_map: list, gid_map: list) -> int:
    import os
    import shutil
    from ..errors import PyruncError
    from ..image.imageconfig import to_runtime_spec
    from ..image.unpack import IdMap, unpack_image
    from ..spec.example import dumps
    made_bundle = False
    try:
        os.mkdir(bundle, 0o755)
        made_bundle = True
    except FileExistsError:
        if not os.path.isdir(bundle) or os.listdir(bundle):
            raise PyruncError(f"bundle {bundle} exists and is not an empty directory") from None
    except OSError as e:
        raise PyruncError(f"bundle {bundle}: {e.strerror}") from None
    rootfs = os.path.join(bundle, "rootfs")
    try:
        os.mkdir(rootfs, 0o755)
        unpack_image(layout, manifest, config, rootfs, IdMap("uid", uid_map), IdMap("gid", gid_map))
        spec = to_runtime_spec(config, rootfs, uid_map, gid_map)
        with open(os.path.join(bundle, "config.json"), "x") as f:
            f.write(dumps(spec))
    except BaseException:
        if made_bundle:
            shutil.rmtree(bundle, ignore_errors=True)
        else:
            shutil.rmtree(rootfs, ignore_errors=True)
            try:
                os.unlink(os.path.join(bundle, "config.json"))
            except OSError:
                pass
        raise
    return 0
