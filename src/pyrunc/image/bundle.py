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


def unpack(image: str, bundle: str, uid_map: list | None = None, gid_map: list | None = None,
           rootless: bool = False) -> Bundle:
    """Unpack DIR[:REF] into `bundle`; on any failure remove what was made
    and raise a one-line PyruncError. uid_map/gid_map: umoci's --uid-map/
    --gid-map ranges, (container, host, size) tuples. rootless: umoci's
    --rootless (owners recorded in user.rootlesscontainers, not applied;
    the caller's ids mapped to root in config.json unless maps are given)."""
    import os
    from ..errors import PyruncError
    from .layout import Layout
    path, ref = parse_image(image)
    layout = Layout(path)
    desc = layout.find_ref(ref)
    walk: list = []
    mdesc, manifest = layout.resolve(desc, walk=walk)
    cdesc = manifest.get("config")
    if not isinstance(cdesc, dict):
        raise PyruncError("manifest: no config descriptor")
    config = layout.read_json(cdesc, "config")
    uid_map, gid_map = list(uid_map or []), list(gid_map or [])
    if rootless:
        uid_map = uid_map or [(0, os.geteuid(), 1)]
        gid_map = gid_map or [(0, os.getegid(), 1)]
    meta = umoci_meta(walk, uid_map, gid_map, rootless)
    old_umask = os.umask(0o022)  # implicit parents and the rootfs are 0755 whatever the caller's umask
    try:
        _unpack_into(layout, manifest, config, bundle, uid_map, gid_map, rootless, meta)
    finally:
        os.umask(old_umask)
    return Bundle(bundle, os.path.join(bundle, "rootfs"), os.path.join(bundle, "config.json"), mdesc["digest"])


UMOCI_META = "umoci.json"
_DESC_KEYS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")


def umoci_meta(walk: list, uid_map: list, gid_map: list, rootless: bool) -> str:
    """BUNDLE/umoci.json as umoci writes it (its bundle metadata, version
    "2"): the descriptors from index.json to the manifest, the id maps and
    whether the unpack was rootless. umoci repack reads it."""
    import json

    def ordered(d: dict) -> dict:  # Go's field order, so the file reads as umoci's
        out = {k: d[k] for k in _DESC_KEYS if k in d and d[k] not in (None, {}, [])}
        out.update((k, v) for k, v in d.items() if k not in out and k not in _DESC_KEYS)
        return out

    def maps(ranges: list):
        return [{"containerID": c, "hostID": h, "size": n} for c, h, n in ranges] or None

    return json.dumps({"umoci_version": "2",
                       "from_descriptor_path": {"descriptor_walk": [ordered(d) for d in walk]},
                       "map_options": {"uid_mappings": maps(uid_map), "gid_mappings": maps(gid_map),
                                       "rootless": rootless},
                       "whiteout_mode": 0}, separators=(",", ":")) + "\n"


def _unpack_into(layout, manifest: dict, config: dict, bundle: str, uid_map: list, gid_map: list,
                 rootless: bool, meta: str) -> None:
    import os
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
        try:
            os.mkdir(rootfs, 0o755)
            unpack_image(layout, manifest, config, rootfs, IdMap("uid", [] if rootless else uid_map),
                         IdMap("gid", [] if rootless else gid_map), rootless)
            spec = to_runtime_spec(config, rootfs, uid_map, gid_map, rootless)
            for name, text in (("config.json", dumps(spec)), (UMOCI_META, meta)):
                with open(os.path.join(bundle, name), "x") as f:
                    f.write(text)
        except OSError as e:  # a full disk, a read-only bundle: one line
            if isinstance(e, PyruncError):
                raise
            raise PyruncError(f"bundle {bundle}: {e.strerror or e}") from None
    except BaseException:
        if made_bundle:
            _rmtree(bundle)
        else:
            _rmtree(rootfs)
            for name in ("config.json", UMOCI_META):
                try:
                    os.unlink(os.path.join(bundle, name))
                except OSError:
                    pass
        raise


def _rmtree(path: str) -> None:
    """Remove what a failed unpack made, also directories whose mode locks
    their owner out (a rootless unpack leaves modes as the image has them)."""
    import os
    import shutil
    import stat

    def unlock(func, p, exc):
        try:
            parent = os.path.dirname(p)
            os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | 0o700)
                shutil.rmtree(p, onerror=unlock)
            else:
                func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=unlock)
