"""What `skopeo inspect` tells about an image, on any transport.

The image is read through transports.open_source. Its top-level manifest
gives the digest (an index's, when the reference names one); the fields come
from the instance chosen for the platform (platform.py, --override-*), and
from its config, as containers/image's Inspect fills types.ImageInspectInfo:
a Docker schema2 config has a Created even when absent (Go's zero time), an
OCI config a null one; Labels and Env are null when absent and {} / [] when
empty. The JSON is skopeo's byte for byte (gojson.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import PyruncError
from . import gojson
from .digest import read_at_most
from .transport import ImageSource, Options
from .transports import open_source
from .mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST

DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
MAX_MANIFEST = 4 << 20   # iolimits.MaxManifestBodySize
MAX_CONFIG = 4 << 20     # iolimits.MaxConfigBodySize
DIGEST_ALGORITHMS = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class LayerData:
    """One layer as the manifest describes it (skopeo's LayersData)."""

    mime_type: str
    digest: str
    size: int
    annotations: Optional[dict[str, str]]


@dataclass(frozen=True)
class ImageInfo:
    """skopeo inspect's fields (Name, Digest, RepoTags, Created, ...) in
    Python names; `to_json()` is skopeo's output. `name` is "" where the
    transport has no Docker reference (oci:, oci-archive:, a docker-archive
    without NAME:TAG); `created` is RFC 3339 text or None."""

    name: str
    digest: str
    repo_tags: list[str]
    created: Optional[str]
    docker_version: str
    labels: Optional[dict[str, str]]
    architecture: str
    os: str
    layers: list[str]
    layers_data: list[LayerData]
    env: Optional[list[str]]

    def as_skopeo(self) -> dict[str, Any]:
        """skopeo's inspect.Output: its field names, in its order."""
        out: dict[str, Any] = {}
        if self.name:
            out["Name"] = self.name
        out.update({
            "Digest": self.digest,
            "RepoTags": list(self.repo_tags),
            "Created": self.created,
            "DockerVersion": self.docker_version,
            "Labels": None if self.labels is None else dict(sorted(self.labels.items())),
            "Architecture": self.architecture,
            "Os": self.os,
            "Layers": list(self.layers),
            "LayersData": [{"MIMEType": l.mime_type, "Digest": l.digest, "Size": l.size,
                            "Annotations": None if l.annotations is None
                            else dict(sorted(l.annotations.items()))}
                           for l in self.layers_data],
            "Env": None if self.env is None else list(self.env),
        })
        return out

    def to_json(self) -> str:
        """skopeo inspect's output (with its final newline)."""
        return gojson.marshal_indent(self.as_skopeo()) + "\n"


class _Image:
    """An opened image: the top-level manifest and the platform's instance."""

    def __init__(self, image: str, opts: Optional[Options]) -> None:
        self.opts = opts or Options()
        try:
            self.src: ImageSource = open_source(image, self.opts)
        except PyruncError as e:
            raise PyruncError(f"Error parsing image name {gojson.marshal(image)}: {e}") from None
        try:
            self.raw, self.media_type = self._manifest(None)
        except BaseException:
            self.src.close()
            raise
        self._instance: Optional[tuple[bytes, str, dict]] = None

    def _manifest(self, instance: Optional[str]) -> tuple[bytes, str]:
        try:
            raw, mt = self.src.get_manifest(instance)
        except PyruncError as e:
            raise PyruncError(f"Error retrieving manifest for image: {e}") from None
        return raw, mt   # each transport guesses it where its store does not say

    def instance(self) -> tuple[bytes, str, dict]:
        """(raw, media type, parsed) of the image's own manifest: the top-level
        one, or the instance of an index chosen for the platform."""
        if self._instance is None:
            raw, mt = self.raw, self.media_type
            if mt in (OCI_INDEX, DOCKER_LIST):
                from .platform import DOCKER_LIST as LIST_KIND, OCI_INDEX as INDEX_KIND, choose
                index = _parse(raw, "manifest list")
                manifests = gojson.field(index, "manifests") or []
                if not isinstance(manifests, list) or not all(isinstance(d, dict) for d in manifests):
                    raise PyruncError("Error parsing manifest for image: invalid manifests list")
                chosen = choose(manifests, self.opts.os, self.opts.arch, self.opts.variant,
                                kind=LIST_KIND if mt == DOCKER_LIST else INDEX_KIND)
                digest = str(chosen.get("digest", ""))
                raw, mt = self._manifest(digest)
                _verify(raw, digest, "manifest")
            if mt not in (OCI_MANIFEST, DOCKER_MANIFEST):
                if mt in DOCKER_SCHEMA1:
                    raise PyruncError("Error parsing manifest for image: Docker schema 1 manifests are not supported")
                raise PyruncError(f"Error parsing manifest for image: unsupported manifest type {mt!r}")
            self._instance = (raw, mt, _parse(raw, "manifest"))
        return self._instance

    def config_blob(self) -> bytes:
        """The instance's config, verified against its digest."""
        _, _, man = self.instance()
        desc = gojson.field(man, "config")
        if not isinstance(desc, dict):
            raise PyruncError("Error parsing manifest for image: no config descriptor")
        digest = str(desc.get("digest", ""))
        try:
            stream = self.src.get_blob(desc)
            try:
                data = read_at_most(stream, MAX_CONFIG)
            finally:
                stream.close()
        except PyruncError as e:
            raise PyruncError(f"Error reading configuration blob: {e}") from None
        if data is None:
            raise PyruncError(f"Error reading configuration blob: exceeded maximum allowed size of {MAX_CONFIG} bytes")
        _verify(data, digest, "config")
        return data

    def close(self) -> None:
        self.src.close()


def _parse(raw: bytes, what: str) -> dict:
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise PyruncError(f"Error parsing {what} for image: {e}") from None
    if not isinstance(obj, dict):
        raise PyruncError(f"Error parsing {what} for image: not a JSON object")
    return obj


def _verify(data: bytes, digest: str, what: str) -> None:
    from .digest import DigestError, parse
    try:
        alg, hexpart = parse(digest)
    except DigestError as e:
        raise PyruncError(f"Error reading {what}: {e}") from None
    got = hashlib.new(alg, data).hexdigest()
    if got != hexpart:
        raise PyruncError(f"{what} digest {alg}:{got} does not match expected {digest}")


def _str(v: Any, what: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise PyruncError(f"Error parsing image config: {what} is not a string")
    return v


def _str_map(v: Any, what: str) -> Optional[dict[str, str]]:
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise PyruncError(f"Error parsing image config: {what} is not a map of strings")
    return v


def _str_list(v: Any, what: str) -> Optional[list[str]]:
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise PyruncError(f"Error parsing image config: {what} is not a list of strings")
    return v


def _layers(man: dict, oci: bool) -> list[LayerData]:
    layers = gojson.field(man, "layers") or []
    if not isinstance(layers, list) or not all(isinstance(l, dict) for l in layers):
        raise PyruncError("Error parsing manifest for image: invalid layers")
    out = []
    for l in layers:
        size = l.get("size", 0)
        if not isinstance(size, int) or isinstance(size, bool):
            raise PyruncError("Error parsing manifest for image: invalid layer size")
        ann = _str_map(l.get("annotations"), "a layer's annotations") if oci else None
        out.append(LayerData(_str(l.get("mediaType"), "mediaType"), _str(l.get("digest"), "digest"), size, ann))
    return out


def _info(img: _Image, name: str, repo_tags: list[str], digest_alg: Optional[str]) -> ImageInfo:
    _, mt, man = img.instance()
    oci = mt == OCI_MANIFEST
    cdesc = gojson.field(man, "config")
    if oci and (not isinstance(cdesc, dict) or cdesc.get("mediaType") != OCI_CONFIG):
        ctype = cdesc.get("mediaType") if isinstance(cdesc, dict) else ""
        raise PyruncError(f"unsupported image-specific operation on artifact with type {gojson.marshal(ctype)}")
    cfg = _parse(img.config_blob(), "image config")
    created_raw = gojson.field(cfg, "created")
    if created_raw is None:
        created = None if oci else gojson.ZERO_TIME
    else:
        created = gojson.go_time(created_raw, "created")
    inner = gojson.field(cfg, "config")
    if inner is not None and not isinstance(inner, dict):
        raise PyruncError("Error parsing image config: config is not an object")
    layers_data = _layers(man, oci)
    alg = digest_alg
    if alg is None:
        cd = str(cdesc.get("digest", "")) if isinstance(cdesc, dict) else ""
        alg = cd.partition(":")[0] if ":" in cd else "sha256"
    if alg not in DIGEST_ALGORITHMS:
        raise PyruncError(f"digest algorithm {gojson.marshal(alg)} is not available")
    return ImageInfo(
        name=name,
        digest=f"{alg}:{hashlib.new(alg, img.raw).hexdigest()}",
        repo_tags=repo_tags,
        created=created,
        docker_version=_str(gojson.field(cfg, "docker_version"), "docker_version"),
        labels=_str_map(gojson.field(inner, "Labels"), "Labels"),
        architecture=_str(gojson.field(cfg, "architecture"), "architecture"),
        os=_str(gojson.field(cfg, "os"), "os"),
        layers=[l.digest for l in layers_data],
        layers_data=layers_data,
        env=_str_list(gojson.field(inner, "Env"), "Env"),
    )


def _tags_blocked(e: PyruncError) -> bool:
    """A registry that refuses the tags list (ECR's DENIED, public.ecr.aws's
    404 page): skopeo warns and goes on without the tags."""
    code = getattr(e, "error_code", "")
    return code == "DENIED" or (code == "UNKNOWN" and "404 page not found" in str(e))


def _docker_name(src: ImageSource) -> str:
    """DockerReference().Name(): docker:// and docker-archive:…:NAME:TAG only."""
    ref = src.reference
    if ref.transport == "docker":
        return ref.name
    if ref.transport == "docker-archive" and ref.ref is not None:
        return ref.ref.name
    return ""


def inspect(image: str, opts: Optional[Options] = None, no_tags: bool = False,
            manifest_digest: Optional[str] = None) -> ImageInfo:
    """skopeo inspect IMAGE. `opts`: credentials, TLS and the platform
    (os/arch/variant) an index is resolved for. RepoTags lists the
    repository's tags for docker:// (unless no_tags), [] elsewhere. The
    digest's algorithm is manifest_digest, else the config digest's."""
    img = _Image(image, opts)
    try:
        tags: list[str] = []
        if not no_tags and img.src.reference.transport == "docker":
            try:
                tags = list(img.src.tags())
            except PyruncError as e:
                if not _tags_blocked(e):
                    raise PyruncError(f"Error determining repository tags: {e}") from None
                from .. import log
                log.warn("Registry disallows tag list retrieval; skipping")
        return _info(img, _docker_name(img.src), tags, manifest_digest)
    finally:
        img.close()


def raw_manifest(image: str, opts: Optional[Options] = None) -> bytes:
    """The top-level manifest (or index) exactly as stored (inspect --raw)."""
    img = _Image(image, opts)
    try:
        return img.raw
    finally:
        img.close()


def config_blob(image: str, opts: Optional[Options] = None) -> bytes:
    """The image config exactly as stored (inspect --config --raw)."""
    img = _Image(image, opts)
    try:
        return img.config_blob()
    finally:
        img.close()


def oci_config(image: str, opts: Optional[Options] = None) -> dict[str, Any]:
    """The image config as an OCI image-spec Image (inspect --config): the
    fields image-spec defines, in its order, the others dropped."""
    img = _Image(image, opts)
    try:
        _, mt, man = img.instance()
        cdesc = gojson.field(man, "config")
        if mt == OCI_MANIFEST and (not isinstance(cdesc, dict) or cdesc.get("mediaType") != OCI_CONFIG):
            ctype = cdesc.get("mediaType") if isinstance(cdesc, dict) else ""
            raise PyruncError("Error reading OCI-formatted configuration data: unsupported image-specific "
                              f"operation on artifact with type {gojson.marshal(ctype)}")
        return to_oci_image(_parse(img.config_blob(), "image config"))
    finally:
        img.close()


def _put(out: dict, key: str, value: Any) -> None:
    """An `omitempty` field: left out when empty (false, 0, "", [], {}, null)."""
    if value is not None and value is not False and value not in ("", [], {}):
        out[key] = value


def to_oci_image(cfg: dict) -> dict[str, Any]:
    """imgspecv1.Image as json.Unmarshal then json.Marshal make it."""
    f = gojson.field
    out: dict[str, Any] = {}
    created = f(cfg, "created")
    if created is not None:
        out["created"] = gojson.go_time(created, "created")
    _put(out, "author", _str(f(cfg, "author"), "author"))
    out["architecture"] = _str(f(cfg, "architecture"), "architecture")
    out["os"] = _str(f(cfg, "os"), "os")
    _put(out, "os.version", _str(f(cfg, "os.version"), "os.version"))
    _put(out, "os.features", _str_list(f(cfg, "os.features"), "os.features"))
    _put(out, "variant", _str(f(cfg, "variant"), "variant"))
    inner = f(cfg, "config")
    if inner is not None and not isinstance(inner, dict):
        raise PyruncError("Error parsing image config: config is not an object")
    conf: dict[str, Any] = {}
    zero = True   # `omitzero`: every field its zero value (a nil map or slice, not an empty one)
    for key, kind in (("User", "s"), ("ExposedPorts", "set"), ("Env", "l"), ("Entrypoint", "l"),
                      ("Cmd", "l"), ("Volumes", "set"), ("WorkingDir", "s"), ("Labels", "m"),
                      ("StopSignal", "s"), ("ArgsEscaped", "b")):
        v = f(inner, key)
        if kind == "s":
            v = _str(v, key)
        elif kind == "l":
            v = _str_list(v, key)
        elif kind == "m":
            v = _str_map(v, key)
            v = None if v is None else dict(sorted(v.items()))
        elif kind == "set":
            if v is not None and not isinstance(v, dict):
                raise PyruncError(f"Error parsing image config: {key} is not an object")
            v = None if v is None else {k: {} for k in sorted(v)}
        else:
            if v is not None and not isinstance(v, bool):
                raise PyruncError(f"Error parsing image config: {key} is not a boolean")
            v = bool(v)
        if v not in (None, "", False):
            zero = False
        _put(conf, key, v)
    if not zero:
        out["config"] = conf
    rootfs = f(cfg, "rootfs")
    if rootfs is not None and not isinstance(rootfs, dict):
        raise PyruncError("Error parsing image config: rootfs is not an object")
    out["rootfs"] = {"type": _str(f(rootfs, "type"), "rootfs.type"),
                     "diff_ids": _str_list(f(rootfs, "diff_ids"), "rootfs.diff_ids")}
    history = f(cfg, "history")
    if history is not None:
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise PyruncError("Error parsing image config: history is not a list of objects")
        hs = []
        for h in history:
            e: dict[str, Any] = {}
            hc = f(h, "created")
            if hc is not None:
                e["created"] = gojson.go_time(hc, "history created")
            _put(e, "created_by", _str(f(h, "created_by"), "created_by"))
            _put(e, "author", _str(f(h, "author"), "author"))
            _put(e, "comment", _str(f(h, "comment"), "comment"))
            empty = f(h, "empty_layer")
            if empty is not None and not isinstance(empty, bool):
                raise PyruncError("Error parsing image config: empty_layer is not a boolean")
            _put(e, "empty_layer", bool(empty))
            hs.append(e)
        _put(out, "history", hs)
    return out
