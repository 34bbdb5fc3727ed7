"""docker://: images in a registry (API v2), as skopeo reads and writes
them (containers/image docker_image_src.go, docker_image_dest.go).

Reading: the manifest is asked for with skopeo's Accept list and kept
byte for byte (its digest is the image's); blobs stream raw, the copy
engine verifies them. Writing: blobs by POST + PUT (small ones) or POST +
PATCH chunks + PUT (big ones), each verified (stream.finish()) before the
PUT that makes it exist; instance manifests by digest as they come, the
top one under its tag (or digest) in commit(), so nothing is named before
the whole image is there.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import PyruncError
from .. import digest as digests
from ..mediatypes import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, SCHEMA1,
                          SCHEMA1_SIGNED, guess_media_type)
from ..reference import DockerReference
from ..registry import auth
from ..registry.client import BlobReader, Client, read_body
from ..transport import BlobStream, ImageDestination, ImageSource, Options, VerifiedStream


# manifest.DefaultRequestedManifestMIMETypes: what skopeo asks for (schema 1
# included, so that a schema 1 image is told apart from a missing one)
ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, SCHEMA1_SIGNED, SCHEMA1, DOCKER_LIST, OCI_INDEX))
MAX_MANIFEST_SIZE = 4 << 20

# put_blob: a blob up to MONOLITHIC_MAX bytes is read, verified and sent in
# one PUT; a bigger one (or one of unknown size) streams in one PATCH
# (chunked transfer encoding, as skopeo sends it), or, with CHUNK_SIZE set,
# in PATCH requests of CHUNK_SIZE bytes each (for registries or proxies
# that limit a request's size).
MONOLITHIC_MAX = 4 << 20
CHUNK_SIZE: Optional[int] = None
STREAM_PIECE = 1 << 20

_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)


def simplify_content_type(value: str) -> str:
    """The media type of a Content-Type header, parameters dropped."""
    return value.split(";", 1)[0].strip().lower() if value else ""


def _check_digest(raw: bytes, want: str, what: str) -> None:
    alg, hexpart = digests.parse(want)
    got = hashlib.new(alg, raw).hexdigest()
    if got != hexpart:
        raise digests.DigestError(f"{what}: content does not match its digest {want} (got {alg}:{got})")


# Where blobs were seen in this process: (registry host, digest) -> repos.
# A destination missing a blob that another repository of the same
# registry holds asks the registry to mount it from there (skopeo does
# the same from its blob info cache): nothing crosses the network.
_locations: dict[tuple[str, str], list[str]] = {}
_locations_lock = threading.Lock()


def _record(client: Client, digest: str) -> None:
    with _locations_lock:
        repos = _locations.setdefault((client.registry, digest), [])
        if client.repo not in repos:
            repos.append(client.repo)


def _known_elsewhere(client: Client, digest: str) -> list[str]:
    with _locations_lock:
        return [r for r in _locations.get((client.registry, digest), ()) if r != client.repo]


def _docker_ref(ref) -> DockerReference:
    if not isinstance(ref, DockerReference):
        raise PyruncError(f"not a docker:// reference: {ref}")
    return ref


class DockerSource(ImageSource):
    def __init__(self, ref: DockerReference, opts: Options) -> None:
        self.reference: DockerReference = ref
        self.client = Client(ref.domain, ref.path, "pull", opts)
        self._top: Optional[tuple[bytes, str]] = None

    def _manifest_path(self, tag_or_digest: str) -> str:
        return f"/v2/{self.client.repo}/manifests/{tag_or_digest}"

    def fetch_manifest(self, tag_or_digest: str) -> tuple[bytes, str]:
        context = f"reading manifest {tag_or_digest} in {self.client.name}"
        res = self.client.request("GET", self._manifest_path(tag_or_digest), {"Accept": ACCEPT})
        if res.status != 200:
            raise self.client.error(res, context)
        try:
            raw = read_body(res, MAX_MANIFEST_SIZE)
        except PyruncError as e:
            raise PyruncError(f"{context}: {e}") from None
        media_type = simplify_content_type(res.headers.get("Content-Type", ""))
        if media_type in ("", "text/plain", "application/json", "application/octet-stream"):
            media_type = guess_media_type(raw) or media_type
        if media_type in (SCHEMA1, SCHEMA1_SIGNED) or guess_media_type(raw) in (SCHEMA1, SCHEMA1_SIGNED):
            raise PyruncError(f"{context}: manifest schema 1 is not supported "
                              "(the image must be pushed again as schema 2 or OCI)")
        if ":" in tag_or_digest:
            _check_digest(raw, tag_or_digest, f"manifest {tag_or_digest} in {self.client.name}")
        if media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
            try:
                doc = json.loads(raw)
                for b in [doc.get("config")] + list(doc.get("layers") or ()):
                    if isinstance(b, dict) and isinstance(b.get("digest"), str):
                        _record(self.client, b["digest"])
            except (ValueError, TypeError, AttributeError):
                pass   # not ours to judge: the copy engine reads it
        return raw, media_type

    def get_manifest(self, instance: Optional[str] = None) -> tuple[bytes, str]:
        if instance is not None:
            digests.parse(instance)
            return self.fetch_manifest(instance)
        if self._top is None:   # one answer for the life of the source: the digest stays put
            self._top = self.fetch_manifest(self.reference.reference)
        return self._top

    def get_blob(self, desc: dict) -> BlobStream:
        d = desc.get("digest", "")
        digests.parse(d)
        urls = [u for u in desc.get("urls") or () if isinstance(u, str)
                and urlsplit(u).scheme in ("http", "https")]
        if urls:
            return self._external_blob(urls)
        path = f"/v2/{self.client.repo}/blobs/{d}"
        res = self.client.request("GET", path)
        if res.status != 200:
            raise self.client.error(res, "fetching blob")
        _record(self.client, d)
        return BlobReader(self.client, path, res)

    def _external_blob(self, urls: list[str]) -> BlobStream:
        """A foreign layer from its own URLs, never with our credentials
        (CVE-2020-15157)."""
        errors = []
        for u in urls:
            try:
                res = self.client.get_external(u)
            except PyruncError as e:
                errors.append(str(e))
                continue
            if res.status == 200:
                return _Body(res)
            errors.append(f'error fetching external blob from "{u}": received unexpected HTTP status: '
                          f"{res.status} {res.reason or ''}".rstrip())
            res.drain_conn()
            res.release_conn()
        raise PyruncError("failed fetching external blob from all urls: " + ", ".join(errors))

    def tags(self) -> list[str]:
        path = f"/v2/{self.client.repo}/tags/list"
        out: list[str] = []
        while True:
            res = self.client.request("GET", path)
            if res.status != 200:
                raise self.client.error(res, "fetching tags list")
            link = res.headers.get("Link", "")
            try:
                doc = json.loads(read_body(res, MAX_MANIFEST_SIZE))
            except ValueError:
                raise PyruncError("fetching tags list: the registry's answer is not JSON") from None
            tags = doc.get("tags") if isinstance(doc, dict) else None
            for tag in tags or ():
                if not isinstance(tag, str) or tag == "":
                    continue   # JSON null (Nexus)
                if not _TAG_RE.fullmatch(tag):
                    if re.fullmatch(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", tag):
                        continue   # a digest in the list (Artifactory)
                    raise PyruncError(f"registry returned invalid tag {json.dumps(tag)}: invalid tag format")
                out.append(tag)
            if not link:
                return out
            target = urlsplit(link.split(";", 1)[0].strip().strip("<>"))
            path = target.path + ("?" + target.query if target.query else "")

    def close(self) -> None:
        self.client.close()


class _Body:
    """A response body as a stream (external blobs: no resuming)."""

    def __init__(self, res) -> None:
        self._res = res

    def read(self, n: int = -1) -> bytes:
        return self._res.read(None if n is None or n < 0 else n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._res.close()
        self._res.release_conn()


def _read_full(stream, n: int) -> bytes:
    """Up to `n` bytes, fewer only at the end of the stream."""
    parts, left = [], n
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _streamed(stream, failed: list):
    """The body of a streamed PATCH: the blob, then stream.finish() before
    the body's end, so that a blob that does not match its digest is cut
    off and never completes. A failure is kept in `failed` for the caller."""
    try:
        while True:
            data = stream.read(STREAM_PIECE)
            if not data:
                break
            yield data
        stream.finish()
    except BaseException as e:
        failed.append(e)
        raise


def _with_digest(location: str, d: str) -> str:
    parts = urlsplit(location)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "digest"]
    query.append(("digest", d))
    return urlunsplit(parts._replace(query=urlencode(query)))


class DockerDestination(ImageDestination):
    def __init__(self, ref: DockerReference, opts: Options) -> None:
        self.reference: DockerReference = ref
        self.client = Client(ref.domain, ref.path, "pull,push", opts)
        self._top: Optional[tuple[bytes, str]] = None
        self.monolithic_max = MONOLITHIC_MAX
        self.chunk_size = CHUNK_SIZE

    def has_blob(self, desc: dict) -> bool:
        d = desc.get("digest", "")
        digests.parse(d)
        res = self.client.request("HEAD", f"/v2/{self.client.repo}/blobs/{d}")
        if res.status == 200:
            read_body(res)
            size = desc.get("size")
            length = res.headers.get("Content-Length")
            # a known size must match (size -1: not known before the stream ends)
            if isinstance(size, int) and size >= 0 and length and length.isdigit() and int(length) != size:
                return False
            _record(self.client, d)
            return True
        if res.status == 404:
            read_body(res)
            return any(self._mount(d, repo) for repo in _known_elsewhere(self.client, d))
        raise self.client.error(res, f"checking whether a blob {d} exists in {self.client.name}")

    def _mount(self, d: str, from_repo: str) -> bool:
        """Cross-repository blob mount (POST ?mount=&from=): True when the
        registry made it; any failure only means the blob is uploaded."""
        path = f"/v2/{self.client.repo}/blobs/uploads/?" + urlencode({"mount": d, "from": from_repo})
        try:
            res = self.client.request("POST", path, extra_scope=auth.Scope("repository", from_repo, "pull"))
            if res.status == 201:
                read_body(res)
                _record(self.client, d)
                return True
            if res.status == 202:   # an ordinary upload was started instead: drop it
                location = self.client.location(res)
                read_body(res)
                if location:
                    self._cancel(location)
            else:
                read_body(res)
        except PyruncError:
            pass
        return False

    def _location(self, res, context: str) -> str:
        location = self.client.location(res)
        read_body(res)
        if not location:
            raise PyruncError(f"{context}: determining upload URL: no Location in the registry's answer")
        return location

    def put_blob(self, desc: dict, stream: VerifiedStream) -> None:
        d = desc.get("digest", "")
        digests.parse(d)
        size = desc.get("size")
        upload_path = f"/v2/{self.client.repo}/blobs/uploads/"
        res = self.client.request("POST", upload_path)
        if res.status != 202:
            raise self.client.error(res, f"initiating layer upload to {upload_path} in {self.client.registry}")
        location = self._location(res, "initiating layer upload")
        headers = {"Content-Type": "application/octet-stream"}
        try:
            if isinstance(size, int) and 0 <= size <= self.monolithic_max:
                data = _read_full(stream, size + 1)
                stream.finish()
                body = data
            elif not self.chunk_size:
                failed: list[BaseException] = []
                try:
                    res = self.client.request("PATCH", location, headers, _streamed(stream, failed))
                except PyruncError:
                    if failed:   # the source's failure, not the connection's
                        raise failed[0] from None
                    raise
                if failed:
                    raise failed[0]
                if not 200 <= res.status < 400:
                    raise self.client.error(res, "uploading layer chunked")
                location = self._location(res, "uploading layer chunked")
                body = b""
            else:
                offset = 0
                while True:
                    chunk = _read_full(stream, self.chunk_size)
                    if not chunk:
                        break
                    h = dict(headers, **{"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
                    res = self.client.request("PATCH", location, h, chunk)
                    if not 200 <= res.status < 400:
                        raise self.client.error(res, "uploading layer chunked")
                    location = self._location(res, "uploading layer chunked")
                    offset += len(chunk)
                stream.finish()
                body = b""
            target = _with_digest(location, d)
            res = self.client.request("PUT", target, headers, body)
            if res.status != 201:
                raise self.client.error(res, f"uploading layer {d} to {self.client.name}")
            read_body(res)
            _record(self.client, d)
        except BaseException:
            self._cancel(location)
            raise

    def _cancel(self, location: str) -> None:
        """Drop an unfinished upload (best effort: registries may refuse)."""
        try:
            res = self.client.request("DELETE", location)
            res.drain_conn()
            res.release_conn()
        except Exception:
            pass

    def _upload_manifest(self, raw: bytes, media_type: str, tag_or_digest: str) -> None:
        headers = {}
        mt = media_type or guess_media_type(raw)
        if mt:
            headers["Content-Type"] = mt
        res = self.client.request("PUT", f"/v2/{self.client.repo}/manifests/{tag_or_digest}", headers, raw)
        if not 200 <= res.status < 400:
            raise self.client.error(res, f"uploading manifest {tag_or_digest} to {self.client.name}")
        read_body(res)

    def put_manifest(self, raw: bytes, media_type: str, instance: Optional[str] = None) -> None:
        if instance is not None:
            alg, hexpart = digests.parse(instance)
            got = hashlib.new(alg, raw).hexdigest()
            if got != hexpart:
                raise PyruncError(f"Attempted to PutManifest using an explicitly specified digest "
                                  f'("{instance}") that didn\'t match the manifest\'s digest ("{alg}:{got}")')
            self._upload_manifest(raw, media_type, instance)
            return
        if self.reference.digest is not None:
            _check_digest(raw, self.reference.digest, f"manifest for {self.reference}")
        self._top = (bytes(raw), media_type)

    def commit(self) -> None:
        if self._top is None:
            raise PyruncError(f"writing {self.reference}: no manifest was written")
        raw, media_type = self._top
        self._upload_manifest(raw, media_type, self.reference.reference)
        self._top = None

    def close(self) -> None:
        self.client.close()


def repository_tags(text: str, opts: Options) -> tuple[str, list[str]]:
    """skopeo list-tags of docker://NAME (no tag, no digest): the
    repository's name and its tags."""
    from ..reference import parse_normalized_named
    if not text.startswith("docker://"):
        transport = text.split(":", 1)[0] if ":" in text else text
        raise PyruncError(f"Unsupported transport '{transport}' for tag listing. Only supported: docker")
    name = parse_normalized_named(text[len("docker://"):])
    if name.tag is not None or name.digest is not None:
        raise PyruncError("No tag or digest allowed in reference")
    src = DockerSource(DockerReference(name.domain, name.path, "latest"), opts)
    try:
        return name.name, src.tags()
    except PyruncError as e:
        raise PyruncError(f"Error listing repository tags: {e}") from None
    finally:
        src.close()


def open_source(ref, opts: Options) -> DockerSource:
    src = DockerSource(_docker_ref(ref), opts)
    try:
        src.get_manifest()     # as skopeo: a missing image fails at open
    except BaseException:
        src.close()
        raise
    return src


def open_destination(ref, opts: Options) -> DockerDestination:
    return DockerDestination(_docker_ref(ref), opts)
