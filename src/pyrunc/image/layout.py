"""Reading an OCI image layout (image-spec image-layout.md) on disk.

`oci-layout`, `index.json`, and `blobs/<alg>/<hex>`; a reference names a
descriptor of index.json by its `org.opencontainers.image.ref.name`
annotation, and an index (or a Docker manifest list) on the way is resolved
to the host's platform. Every blob is verified against its digest.
"""
from __future__ import annotations

import json
import os

from ..errors import PyruncError
from .digest import VerifyingReader, parse

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
MAX_JSON = 16 << 20  # a manifest, index or config larger than this is no image

# uname -m -> (GOARCH, variant)
_MACHINES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", ""), "i686": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "mips64": ("mips64", ""), "loongarch64": ("loong64", ""),
}


class ImageError(PyruncError):
    """A layout, manifest or config that cannot be used."""


def host_platform() -> dict:
    """The host's platform as image-spec names it (os, architecture, variant)."""
    machine = os.uname().machine
    arch, variant = _MACHINES.get(machine, (machine, ""))
    return {"os": "linux", "architecture": arch, "variant": variant}


class Layout:
    """An image layout directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(os.path.join(path, "oci-layout"), "rb") as f:
                marker = json.loads(f.read(4096))
        except FileNotFoundError:
            raise ImageError(f"{path}: not an OCI image layout (no oci-layout file)") from None
        except (OSError, ValueError) as e:
            raise ImageError(f"{path}/oci-layout: {getattr(e, 'strerror', None) or 'invalid JSON'}") from None
        version = marker.get("imageLayoutVersion") if isinstance(marker, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise ImageError(f"{path}/oci-layout: unsupported imageLayoutVersion {version!r}")
        self.index = self._json_file(os.path.join(path, "index.json"), "index.json")

    def _json_file(self, p: str, what: str) -> dict:
        try:
            with open(p, "rb") as f:
                data = f.read(MAX_JSON + 1)
        except OSError as e:
            raise ImageError(f"{p}: {e.strerror}") from None
        return _loads(data, what)

    def blob_path(self, digest: str) -> str:
        alg, hexpart = parse(digest)  # checked: no '/' or '..' can reach the path
        return os.path.join(self.path, "blobs", alg, hexpart)

    def open_blob(self, desc: dict, what: str = "blob") -> VerifyingReader:
        """A stream of the blob `desc` names, verified as it is read."""
        digest, size = _digest_size(desc)
        try:
            raw = open(self.blob_path(digest), "rb")
        except OSError as e:
            raise ImageError(f"{what} {digest}: {e.strerror}") from None
        return VerifyingReader(raw, digest, size, what)

    def read_json(self, desc: dict, what: str) -> dict:
        """A JSON blob (manifest, index, config), verified before it is parsed."""
        r = self.open_blob(desc, what)
        try:
            _, size = _digest_size(desc)
            if size > MAX_JSON:
                raise ImageError(f"{what} {desc['digest']}: too large ({size} bytes)")
            data = r.read(size + 1)
            r.finish()
        finally:
            r.close()
        return _loads(data, f"{what} {desc['digest']}")

    def find_ref(self, ref: str) -> dict:
        """The descriptor of index.json whose ref.name annotation is `ref`."""
        found = [d for d in _manifests(self.index, "index.json")
                 if isinstance(d, dict) and (d.get("annotations") or {}).get(REF_NAME) == ref]
        if not found:
            raise ImageError(f"image reference not found in {self.path}: {ref}")
        if len(found) > 1:
            raise ImageError(f"image reference {ref} is ambiguous in {self.path}: {len(found)} descriptors")
        return found[0]

    def resolve(self, desc: dict, platform: dict | None = None, depth: int = 0) -> tuple[dict, dict]:
        """(manifest descriptor, manifest) for `desc`, through indexes."""
        if depth > 8:
            raise ImageError("image index nested too deeply")
        mt = desc.get("mediaType")
        if mt in MANIFEST_TYPES:
            return desc, self.read_json(desc, "manifest")
        if mt not in INDEX_TYPES:
            raise ImageError(f"unsupported media type {mt!r} for {desc.get('digest')}")
        index = self.read_json(desc, "index")
        chosen = select_platform(_manifests(index, f"index {desc.get('digest')}"), platform or host_platform())
        if chosen is None:
            p = platform or host_platform()
            name = "/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)
            raise ImageError(f"no manifest for platform {name} in index {desc.get('digest')}")
        return self.resolve(chosen, platform, depth + 1)


def select_platform(descs: list, platform: dict) -> dict | None:
    """The first descriptor for `platform`: os and architecture must match;
    a variant on both sides must match too, and an exact variant wins."""
    best = None
    for d in descs:
        if not isinstance(d, dict):
            continue
        p = d.get("platform")
        if p is None:
            if best is None and d.get("mediaType") in MANIFEST_TYPES + INDEX_TYPES:
                best = d
            continue
        if not isinstance(p, dict) or p.get("os") != platform["os"] or p.get("architecture") != platform["architecture"]:
            continue
        want, have = platform.get("variant") or "", p.get("variant") or ""
        if want and have == want:
            return d
        if not want or not have:
            if best is None or best.get("platform") is None:
                best = d
    return best


def _manifests(index: dict, what: str) -> list:
    m = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(m, list):
        raise ImageError(f"{what}: no manifests list")
    return m


def _digest_size(desc: dict) -> tuple[str, int]:
    digest, size = desc.get("digest"), desc.get("size")
    parse(digest)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"descriptor {digest}: invalid size {size!r}")
    return digest, size


def _loads(data: bytes, what: str) -> dict:
    if len(data) > MAX_JSON:
        raise ImageError(f"{what}: too large")
    try:
        obj = json.loads(data)
    except ValueError:
        raise ImageError(f"{what}: invalid JSON") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{what}: not a JSON object")
    return obj
