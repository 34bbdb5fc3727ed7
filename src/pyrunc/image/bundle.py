"""A runtime bundle from an image in an OCI layout: umoci unpack's job.

`unpack` resolves DIR[:REF] to a manifest (through indexes, for the host's
platform), applies the layers into BUNDLE/rootfs (layers.py) and writes
BUNDLE/config.json from the image config (imageconfig.py). On failure it
removes what it made.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REF = "latest"


def parse_image(arg: str) -> tuple[str, str]:
    """(layout dir, ref) of DIR[:REF]: split on the last ':' only when what
    follows is a valid ref name."""
    from .reference import _OCI_REF_RE  # umoci's ref.name grammar too
    d, sep, ref = arg.rpartition(":")
    if sep and d and _OCI_REF_RE.fullmatch(ref):
        return d, ref
    return arg, DEFAULT_REF




@dataclass(frozen=True)
class Bundle:
    """What unpack made: the bundle directory, its rootfs and config.json,
    and the digest of the manifest that was applied."""

    path: str
    rootfs: str
    config: str
    manifest_digest: str


def unpack(image: str, bundle: str, uid_map: list | None = None, gid_map: list | None = None) -> Bundle:
    """Unpack DIR[:REF] into `bundle`; on any failure remove what was made
    and raise a one-line PyruncError. uid_map/gid_map: umoci's --uid-map/
    --gid-map ranges, (container, host, size) tuples."""
    import os
    from ..errors import PyruncError
    from .layout import Layout
    path, ref = parse_image(image)
    layout = Layout(path)
    desc = layout.find_ref(ref)
    mdesc, manifest = layout.resolve(desc)
    cdesc = manifest.get("config")
    if not isinstance(cdesc, dict):
        raise PyruncError("manifest: no config descriptor")
    config = layout.read_json(cdesc, "config")
    old_umask = os.umask(0o022)  # implicit parents and the rootfs are 0755 whatever the caller's umask
    try:
        _unpack_into(layout, manifest, config, bundle, uid_map or [], gid_map or [])
    finally:
        os.umask(old_umask)
    return Bundle(bundle, os.path.join(bundle, "rootfs"), os.path.join(bundle, "config.json"), mdesc["digest"])


def _unpack_into(layout, manifest: dict, config: dict, bundle: str, uid_map: list, gid_map: list) -> None:
    import os
    import shutil
    from ..errors import PyruncError
    from .imageconfig import to_runtime_spec
    from .layers import IdMap, unpack_image
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
