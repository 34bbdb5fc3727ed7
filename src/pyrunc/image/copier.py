"""The copy engine behind `pyrunc image copy` (skopeo copy's job), over the
ImageSource/ImageDestination interface of transport.py.

What it keeps: digests. Manifests, indexes, configs and layers are copied
byte for byte, never re-encoded nor recompressed, so the image copied has
the digest of the image read. The one exception is a destination that
stores layers uncompressed (docker-archive): each layer is then decompressed
and checked against the config's diff_id, and that conversion is announced.

How: the top manifest is read; an index (or Docker manifest list) is
resolved to the platform wanted (image/platform.py, as skopeo chooses), or
with `all` every instance is copied and then the index. For each image the
layers are copied in parallel, each in one pass (source stream -> digest
check -> destination), then the config, then the manifest: a destination
never names a blob it does not hold. Any failure closes the destination
without commit, which removes what was written.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

from ..errors import PyruncError
from .digest import VerifyingReader
from .layout import INDEX_TYPES, MAX_JSON
from .platform import DOCKER_LIST, OCI_INDEX, choose
from .transport import ImageDestination, ImageSource, Options
from .transports import open_destination, open_source

WORKERS = 6  # containers/image's maxParallelDownloads
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")


@dataclass
class CopyResult:
    """What a copy wrote: the top manifest's digest and media type (the index
    with `all`), the instances copied, and the blobs copied or skipped
    because the destination had them already."""

    manifest_digest: str
    media_type: str
    instances: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    decompressed: bool = False


class _Cancelled(Exception):
    """Another layer failed: this one stops reading."""


def copy(src_ref, dst_ref, src_opts: Optional[Options] = None, dst_opts: Optional[Options] = None,
         all: bool = False, quiet: bool = False, progress=None) -> CopyResult:
    """Copy the image `src_ref` names to `dst_ref` (references as skopeo
    writes them, or parsed ones). src_opts/dst_opts: transport.Options (or a
    dict of its fields; the platform fields of src_opts choose the image of
    an index). `progress` is where the report goes
    (default stdout, as skopeo); `quiet` reports nothing. Raises PyruncError
    with one line; on failure the destination is left as it was."""
    from .progress import Report
    from .reference import parse
    src_ref = _parse(parse, src_ref, "source")
    dst_ref = _parse(parse, dst_ref, "destination")
    src_opts = _options(src_opts)
    dst_opts = _options(dst_opts)
    report = Report(sys.stdout if progress is None else progress, quiet)
    dest = _open(open_destination, dst_ref, dst_opts, "initializing destination")
    try:
        src = _open(open_source, src_ref, src_opts, "initializing source")
        try:
            result = _Copier(src, dest, src_opts, report, quiet).run(all)
            with _context("committing the finished image"):
                dest.commit()
            return result
        finally:
            src.close()
    finally:
        dest.close()


def _options(opts) -> Options:
    """Options, or a dict of its fields (the library's convenience)."""
    if opts is None:
        return Options()
    if isinstance(opts, dict):
        try:
            return Options(**opts)
        except TypeError:
            known = ", ".join(Options.__dataclass_fields__)
            raise PyruncError(f"unknown option in {sorted(opts)}: the options are {known}") from None
    return opts


def _parse(parse, ref, what: str):
    if not isinstance(ref, str):
        return ref
    try:
        return parse(ref)
    except PyruncError as e:
        raise PyruncError(f"Invalid {what} name {ref}: {e}") from None


def _open(opener, ref, opts: Options, what: str):
    with _context(f"{what} {ref}"):
        return opener(ref, opts)


@contextmanager
def _context(what: str):
    """One-line errors with what was being done in front, as containers/image
    wraps them ("writing blob: ..."); OSError made one line too."""
    try:
        yield
    except PyruncError as e:
        raise PyruncError(f"{what}: {e}", e.code) from None
    except OSError as e:
        raise PyruncError(f"{what}: {_oserror(e)}") from None


def _oserror(e: OSError) -> str:
    return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else (e.strerror or str(e))


def _digest_of(raw: bytes, digest: str) -> bool:
    alg, _, hexpart = digest.partition(":")
    try:
        return hashlib.new(alg, raw).hexdigest() == hexpart
    except ValueError:
        return False


def _json(raw: bytes, what: str) -> dict:
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise PyruncError(f"{what}: invalid JSON")
    return obj


class _Counting:
    """A source stream that feeds the progress bar and stops when another
    layer has failed."""

    def __init__(self, raw, bar, cancel: threading.Event) -> None:
        self.raw, self.bar, self.cancel = raw, bar, cancel

    def read(self, n: int = -1) -> bytes:
        if self.cancel.is_set():
            raise _Cancelled()
        data = self.raw.read(n)
        self.bar.add(len(data))
        return data

    def close(self) -> None:
        self.raw.close()


class _Decompressed:
    """The tar stream of a compressed layer for a destination that stores
    layers uncompressed: `finish()` checks the tar against its diff_id and
    then the compressed bytes against the layer's digest."""

    def __init__(self, tar: VerifyingReader, compressed: VerifyingReader) -> None:
        self.tar, self.compressed = tar, compressed
        self.digest = tar.digest

    def read(self, n: int = -1) -> bytes:
        return self.tar.read(n)

    def readable(self) -> bool:
        return True

    def finish(self) -> None:
        self.tar.finish()
        self.compressed.finish()

    def close(self) -> None:
        self.compressed.close()


class _Copier:
    def __init__(self, src: ImageSource, dest: ImageDestination, opts: Options, report, quiet: bool) -> None:
        self.src, self.dest, self.opts, self.report, self.quiet = src, dest, opts, report, quiet
        self.result = CopyResult("", "")
        self._lock = threading.Lock()
        self._announced = False

    def run(self, all_images: bool) -> CopyResult:
        raw, mt = self.src.get_manifest()
        if mt in INDEX_TYPES:
            if all_images:
                self._copy_all(raw, mt)
            else:
                digest = self._choose(raw, mt)
                with _context("copying system image from manifest list"):
                    self._copy_single(*self._instance(digest), None)
        else:
            self._copy_single(raw, mt, None)
        return self.result

    # ---- lists

    def _choose(self, raw: bytes, mt: str) -> object:
        index = _json(raw, "manifest list")
        manifests = index.get("manifests")
        if not isinstance(manifests, list):
            raise PyruncError(f"parsing primary manifest as list for {self.src.reference}: no manifests")
        try:
            d = choose([m for m in manifests if isinstance(m, dict)], self.opts.os, self.opts.arch,
                       self.opts.variant, kind=DOCKER_LIST if mt == INDEX_TYPES[1] else OCI_INDEX)
        except PyruncError as e:
            raise PyruncError(f"choosing an image from manifest list {self.src.reference}: {e}") from None
        return d.get("digest")

    def _instance(self, digest: object) -> tuple[bytes, str]:
        from .digest import parse as parse_digest
        parse_digest(digest)
        assert isinstance(digest, str)  # parse() accepts only a str
        raw, mt = self.src.get_manifest(digest)
        if not _digest_of(raw, digest):
            raise PyruncError(f"Manifest does not match provided manifest digest {digest}")
        return raw, mt

    def _copy_all(self, raw: bytes, mt: str) -> None:
        if not self.dest.supports_index:
            raise PyruncError(f"copying multiple images: destination transport "
                              f"\"{self.dest.reference.transport}\" does not support copying multiple "
                              f"images as a group")
        index = _json(raw, "manifest list")
        manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
        self.report.line("Getting image list signatures")
        n = len(manifests)
        self.report.line(f"Copying {n} images generated from {n} images in list")
        for i, d in enumerate(manifests, 1):
            digest = d.get("digest")
            self.report.line(f"Copying image {digest} ({i}/{n})")
            with _context(f"copying image {i}/{n} from manifest list"):
                self._copy_single(*self._instance(digest), digest)
            self.result.instances.append(str(digest))  # a str: _instance() parsed it
        self.report.line("Writing manifest list to image destination")
        self._put_manifest(raw, mt, None)

    # ---- one image

    def _copy_single(self, raw: bytes, mt: str, instance: Optional[str]) -> None:
        if mt in INDEX_TYPES:
            raise PyruncError("Unexpectedly received a manifest list instead of a manifest for a single image")
        if mt in SCHEMA1:
            raise PyruncError(f"unsupported manifest type {mt}: Docker schema 1 images cannot be copied")
        manifest = _json(raw, "manifest")
        config = manifest.get("config")
        layers = manifest.get("layers")
        if not isinstance(config, dict) or not isinstance(layers, list) \
                or not all(isinstance(x, dict) for x in layers):
            raise PyruncError(f"manifest sha256:{hashlib.sha256(raw).hexdigest()}: no config and layers "
                              f"(not an image manifest: {mt or 'unknown media type'})")
        if instance is None:
            self.result.instances.append("sha256:" + hashlib.sha256(raw).hexdigest())
        self.report.line("Getting image source signatures")
        config_raw = None
        diff_ids: list = []
        if self.dest.needs_uncompressed_layers:
            config_raw = self._read_config(config)
            diff_ids = (_json(config_raw, "config").get("rootfs") or {}).get("diff_ids") or []
            if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
                raise PyruncError(f"config {config.get('digest')}: {len(diff_ids) if isinstance(diff_ids, list) else 0} "
                                  f"diff_ids for {len(layers)} layers")
            self._announce()
        self._copy_layers(layers, diff_ids)
        if config_raw is None:
            config_raw = self._read_config(config)
        self._copy_config(config, config_raw)
        self.report.line("Writing manifest to image destination")
        self._put_manifest(raw, mt, instance)

    def _put_manifest(self, raw: bytes, mt: str, instance: Optional[str]) -> None:
        with _context("writing manifest"):
            self.dest.put_manifest(raw, mt, instance)
        if instance is None:
            self.result.manifest_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            self.result.media_type = mt

    def _announce(self) -> None:
        if self._announced:
            return
        self._announced = True
        self.result.decompressed = True
        if not self.quiet:
            sys.stderr.write(f"Decompressing layers for {self.dest.reference}: it stores them uncompressed, "
                             f"so their digests change (each layer is stored as its diff_id)\n")
            sys.stderr.flush()

    def _read_config(self, desc: dict) -> bytes:
        size = desc.get("size")
        if not isinstance(size, int) or size < 0 or size > MAX_JSON:
            raise PyruncError(f"config {desc.get('digest')}: invalid size {size!r}")
        with _context(f"reading config blob {desc.get('digest')}"):
            stream = VerifyingReader(self.src.get_blob(desc), desc.get("digest"), size, "config")
            try:
                data = stream.read(size + 1)
                stream.finish()
            finally:
                stream.close()
        return data

    def _copy_config(self, desc: dict, data: bytes) -> None:
        digest = desc["digest"]
        bar = self.report.bar("config", digest, len(data))
        with _context("writing blob"):
            if self.dest.has_blob(desc):
                self._record(digest, copied=False)
            else:
                self.dest.put_blob(desc, VerifyingReader(io.BytesIO(data), digest, len(data), "config"))
                self._record(digest, copied=True)
        bar.add(len(data))
        bar.finish("done")
        self.report.done()

    def _record(self, digest: str, copied: bool) -> None:
        with self._lock:
            (self.result.copied if copied else self.result.skipped).append(digest)

    def _copy_layers(self, layers: list[dict], diff_ids: list) -> None:
        from concurrent.futures import ThreadPoolExecutor
        jobs, seen = [], set()
        for i, d in enumerate(layers):
            if d.get("digest") not in seen:
                seen.add(d.get("digest"))
                jobs.append((d, diff_ids[i] if diff_ids else None))
        if not jobs:
            return
        cancel = threading.Event()
        errors: list[tuple[int, BaseException]] = []

        def job(n: int, desc: dict, diff_id) -> None:
            if cancel.is_set():
                return
            try:
                self._copy_layer(desc, diff_id, cancel)
            except _Cancelled:
                pass
            except BaseException as e:
                with self._lock:
                    errors.append((n, e))
                cancel.set()

        pool = ThreadPoolExecutor(max_workers=min(WORKERS, len(jobs)))
        try:
            futures = [pool.submit(job, n, d, diff_id) for n, (d, diff_id) in enumerate(jobs)]
            for f in futures:
                f.result()
        except BaseException:
            cancel.set()  # an interrupt: the running copies stop at their next read
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.report.done()
        if errors:
            e = errors[0][1]
            if isinstance(e, PyruncError):
                raise PyruncError(str(e)) from None
            if isinstance(e, OSError):
                raise PyruncError(_oserror(e)) from None
            raise e

    def _copy_layer(self, desc: dict, diff_id, cancel: threading.Event) -> None:
        digest = desc.get("digest")
        size = desc.get("size")
        from .digest import parse as parse_digest
        parse_digest(digest)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PyruncError(f"layer {digest}: invalid size {size!r}")
        if diff_id is not None:
            parse_digest(diff_id)
            mt = DOCKER_LAYER_TAR if (desc.get("mediaType") or "").startswith("application/vnd.docker.") \
                else OCI_LAYER_TAR
            target = {"mediaType": mt, "digest": diff_id, "size": -1}
        else:
            target = desc
        with _context(f"trying to reuse blob {digest} at destination"):
            exists = self.dest.has_blob(target)
        if exists:
            bar = self.report.bar("blob", digest, 0)
            bar.finish("skipped: already exists")
            self._record(target["digest"], copied=False)
            return
        bar = self.report.bar("blob", digest, size)
        with _context(f"reading blob {digest}"):
            raw = self.src.get_blob(desc)
        verified = VerifyingReader(_Counting(raw, bar, cancel), digest, size, "blob")
        try:
            with _context("writing blob"):
                stream = self._decompressed(desc, verified, diff_id) if diff_id is not None else verified
                try:
                    self.dest.put_blob(target, stream)
                except EOFError:
                    raise PyruncError(f"layer {digest}: truncated compressed data") from None
        finally:
            verified.close()
        bar.finish("done")
        self._record(target["digest"], copied=True)

    def _decompressed(self, desc: dict, verified: VerifyingReader, diff_id: str) -> _Decompressed:
        # By the bytes, as containers/image does: a media type may say gzip
        # over a plain tar (docker-archive: sources name every layer so).
        from .compression import Peeked, decompressing, detect
        peeked = Peeked(verified)
        kind = detect(peeked.head)
        tar = peeked if kind is None else decompressing(kind, peeked)
        return _Decompressed(_diff_reader(tar, diff_id), verified)


def _diff_reader(tar, diff_id: str) -> VerifyingReader:
    """The decompressed tar, hashed against its diff_id; a corrupt
    compressed stream is a one-line error, not the decompressor's."""
    return VerifyingReader(_Guarded(tar, diff_id), diff_id, None, "layer diff_id")


class _Guarded:
    def __init__(self, raw, what: str) -> None:
        self.raw, self.what = raw, what

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except (PyruncError, _Cancelled):
            raise
        except EOFError:
            raise PyruncError(f"layer {self.what}: truncated compressed data") from None
        except Exception as e:  # zlib.error, BadGzipFile, ZstdError: no text fit for the user
            import gzip
            if isinstance(e, OSError) and not isinstance(e, gzip.BadGzipFile):
                raise
            raise PyruncError(f"layer {self.what}: invalid compressed data") from None

    def close(self) -> None:
        pass
