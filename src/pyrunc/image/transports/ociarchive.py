"""oci-archive:FILE[:REF], an OCI image layout in a tar file, as
containers/image's oci/archive transport: reading extracts the tar into a
temporary directory and reads it as oci:; writing builds a fresh layout in a
temporary directory (the archive holds this image only, as skopeo writes it)
and, at commit, tars it into a temporary file beside FILE that is renamed to
FILE. Nothing is left on failure: no FILE, no temporary file or directory.

Temporary directories go where containers/image puts big files: $TMPDIR,
else /var/tmp.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from typing import Optional

from ..layout import ImageError
from ..reference import OCIArchiveReference, go_quote
from ..transport import BlobStream, ImageDestination, ImageSource, Options, VerifiedStream
from .oci import OCIDestination, OCISource, write_file


def big_files_dir() -> str:
    return os.environ.get("TMPDIR") or "/var/tmp"


def _extract(tar: tarfile.TarFile, dest: str) -> None:
    """Regular files and directories only (a layout holds nothing else),
    each inside `dest`: no absolute name, no `..`, no links to follow, no
    file written twice."""
    for m in tar:
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        if m.name.startswith("/") or ".." in parts:
            raise ImageError(f"unsafe entry {m.name!r} in the archive")
        if not parts:
            continue
        path = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        if m.isdir():
            os.makedirs(path, 0o755, exist_ok=True)
        elif m.isfile():
            src = tar.extractfile(m)
            assert src is not None  # a regular file has contents
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            raise ImageError(f"unexpected entry {m.name!r} in the archive (not a file or directory)")


class OCIArchiveSource(ImageSource):
    def __init__(self, ref: OCIArchiveReference) -> None:
        self.reference: OCIArchiveReference = ref
        self._tmp: Optional[str] = None
        try:
            f = open(ref.file, "rb")
        except FileNotFoundError:
            raise ImageError(f"archive file not found: {go_quote(ref.file)}") from None
        except OSError as e:
            raise ImageError(f"{ref.file}: {e.strerror}") from None
        try:
            self._tmp = tempfile.mkdtemp(prefix="oci", dir=big_files_dir())
            try:
                with tarfile.open(fileobj=f, mode="r:") as tar:
                    _extract(tar, self._tmp)
            except (tarfile.TarError, EOFError) as e:
                raise ImageError(f"untarring file {go_quote(self._tmp)}: {_tar_error(e)}") from None
            except OSError as e:
                raise ImageError(f"untarring file {go_quote(self._tmp)}: {e.strerror}") from None
            self._inner = OCISource(ref, self._tmp)
        except BaseException:
            self.close()
            raise
        finally:
            f.close()

    def get_manifest(self, instance: Optional[str] = None) -> tuple[bytes, str]:
        return self._inner.get_manifest(instance)

    def get_blob(self, desc: dict) -> BlobStream:
        return self._inner.get_blob(desc)

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _tar_error(e: Exception) -> str:
    return "not a valid tar file" if not isinstance(e, EOFError) else "unexpected end of file"


class OCIArchiveDestination(ImageDestination):
    def __init__(self, ref: OCIArchiveReference) -> None:
        self.reference: OCIArchiveReference = ref
        # Checked now rather than after the whole copy, when the tar is written.
        if not ref.file:
            raise ImageError("the archive file name is empty")
        parent = os.path.dirname(os.path.abspath(ref.file))
        if not os.path.isdir(parent):
            raise ImageError(f"creating tar file {go_quote(ref.file)}: {parent}: no such directory")
        if os.path.isdir(ref.file):
            raise ImageError(f"creating tar file {go_quote(ref.file)}: is a directory")
        try:
            self._tmp = tempfile.mkdtemp(prefix="oci", dir=big_files_dir())
        except OSError as e:
            raise ImageError(f"creating temp directory: {e.strerror}") from None
        try:
            self._inner = OCIDestination(ref, self._tmp, ref.image)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def has_blob(self, desc: dict) -> bool:
        return self._inner.has_blob(desc)

    def put_blob(self, desc: dict, stream: VerifiedStream) -> None:
        self._inner.put_blob(desc, stream)

    def put_manifest(self, raw: bytes, media_type: str, instance: Optional[str] = None) -> None:
        self._inner.put_manifest(raw, media_type, instance)

    def commit(self) -> None:
        self._inner.commit()
        target = self.reference.file
        try:
            write_file(target, lambda f: _tar_layout(self._tmp, f),
                       os.path.dirname(os.path.abspath(target)), ".oci-archive-")
        except OSError as e:
            raise ImageError(f"writing {go_quote(target)}: {e.strerror}") from None

    def close(self) -> None:
        self._inner.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _tar_layout(root: str, f) -> None:
    """The layout's files as skopeo tars them: relative names, directories
    first, owned by root."""
    with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(rel: str) -> None:
            for name in sorted(os.listdir(os.path.join(root, rel))):
                arc = os.path.join(rel, name) if rel else name
                p = os.path.join(root, arc)
                ti = tar.gettarinfo(p, arcname=arc)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                if ti.isfile():
                    with open(p, "rb") as src:
                        tar.addfile(ti, src)
                else:
                    tar.addfile(ti)
                    if ti.isdir():
                        add(arc)
        add("")


def open_source(ref: OCIArchiveReference, opts: Options) -> OCIArchiveSource:
    return OCIArchiveSource(ref)


def open_destination(ref: OCIArchiveReference, opts: Options) -> OCIArchiveDestination:
    return OCIArchiveDestination(ref)
