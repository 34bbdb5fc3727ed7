"""Building OCI image layouts for tests: layers from tarfile entries, a
config and a manifest, and index.json naming them (image-spec layout)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Iterable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def entry(name: str, kind: str = "file", data: bytes = b"", mode: int = 0o644, uid: int = 0,
          gid: int = 0, mtime: int = 1_600_000_000, link: str = "", dev: tuple[int, int] = (0, 0),
          xattrs: dict[str, bytes] | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    """One tar entry: kind is file, dir, symlink, hardlink, char, block or fifo."""
    ti = tarfile.TarInfo(name)
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
               "fifo": tarfile.FIFOTYPE}[kind]
    ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = mode, uid, gid, mtime, link
    ti.devmajor, ti.devminor = dev
    if kind == "file":
        ti.size = len(data)
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
    return ti, (data if kind == "file" else None)


def layer_tar(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tree_tar(root: Path) -> bytes:
    """A layer of a whole directory tree (owners, modes, links as they are)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                p = os.path.join(dirpath, name)
                tar.add(p, arcname=os.path.relpath(p, root), recursive=False)
    return buf.getvalue()


class LayoutBuilder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.manifests: list[dict] = []

    def blob(self, data: bytes, media_type: str) -> dict:
        d = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / d).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{d}", "size": len(data)}

    def image(self, layers: list[bytes], config: dict[str, Any] | None = None, gzip_layers: bool = False,
              arch: str | None = None) -> dict:
        """Blobs for one image; returns the manifest's descriptor."""
        descs, diff_ids = [], []
        for raw in layers:
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            data = gzip.compress(raw, mtime=0) if gzip_layers else raw
            descs.append(self.blob(data, LAYER_GZIP if gzip_layers else LAYER_TAR))
        cfg = {"architecture": arch or host_arch(), "os": "linux", "config": config or {},
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        cdesc = self.blob(json.dumps(cfg).encode(), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": descs}
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)

    def tag(self, desc: dict, ref: str = "latest") -> None:
        self.manifests.append({**desc, "annotations": {"org.opencontainers.image.ref.name": ref}})
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.manifests}))


def host_arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def user_xattrs_supported(path: Path) -> bool:
    """Whether files under `path` take user.* xattrs (tmpfs before 6.6 does not)."""
    probe = Path(path) / ".xattr-probe"
    probe.write_text("")
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def docker_save_tar(path: Path, images: list[dict], style: str = "legacy", gzip_layers: bool = False,
                    dup_symlink: bool = False) -> Path:
    """A `docker save` archive. Each image: {"layers": [tar bytes], "config": {...},
    "tags": ["busybox:latest"]}. style "legacy" (docker < 25: <id>/layer.tar,
    <config hex>.json) or "oci" (docker 25+: blobs/sha256/<hex> beside an OCI
    layout); gzip_layers stores the layers compressed (containerd's store);
    dup_symlink makes a repeated layer a symlink to the first copy, as docker does."""
    buf = io.BytesIO()
    written: set[str] = set()
    manifest, repos = [], {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            if name in written:
                return
            written.add(name)
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        def link(name: str, target: str) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tar.addfile(ti)

        for img in images:
            diff_ids, paths, first = [], [], {}
            for raw in img["layers"]:
                diff = hashlib.sha256(raw).hexdigest()
                data = gzip.compress(raw, mtime=0) if gzip_layers else raw
                if style == "oci":
                    p = "blobs/sha256/" + hashlib.sha256(data).hexdigest()
                else:
                    p = hashlib.sha256((diff + str(len(paths))).encode()).hexdigest() + "/layer.tar"
                if diff in first and dup_symlink and style == "legacy":
                    link(p, "../" + first[diff])
                else:
                    add(p, data)
                    first.setdefault(diff, p)
                diff_ids.append("sha256:" + diff)
                paths.append(p)
            cfg = {"architecture": host_arch(), "os": "linux", "config": img.get("config", {}),
                   "rootfs": {"type": "layers", "diff_ids": diff_ids}, **img.get("extra", {})}
            cdata = json.dumps(cfg).encode()
            chex = hashlib.sha256(cdata).hexdigest()
            cpath = f"blobs/sha256/{chex}" if style == "oci" else f"{chex}.json"
            add(cpath, cdata)
            manifest.append({"Config": cpath, "RepoTags": img.get("tags"), "Layers": paths})
            for t in img.get("tags") or []:
                name, _, tag = t.rpartition(":")
                repos.setdefault(name, {})[tag] = chex
        add("manifest.json", json.dumps(manifest).encode())
        add("repositories", json.dumps(repos).encode())
    Path(path).write_bytes(buf.getvalue())
    return Path(path)
