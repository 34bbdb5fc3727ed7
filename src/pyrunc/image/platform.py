"""The platform an image is pulled for, and the choice of one image from an
OCI index or a Docker manifest list, as containers/image makes them
(internal/pkg/platform and internal/manifest's ChooseInstance): the same host
names (GOOS/GOARCH/variant), the same variant fallbacks, the same preferences
and the same error text, so `pyrunc image copy` picks what skopeo picks.
"""
from __future__ import annotations

import math
import os as _os
from dataclasses import dataclass
from typing import Optional

from pyrunc.errors import PyruncError

# os.uname().machine → GOARCH.
_GOARCH = {
    "x86_64": "amd64", "amd64": "amd64",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386",
    "aarch64": "arm64", "arm64": "arm64", "aarch64_be": "arm64be",
    "ppc64le": "ppc64le", "ppc64": "ppc64",
    "s390x": "s390x", "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips": "mips", "mipsel": "mipsle",
}

# How far an arch's variants fall back: arm v7 can run v6 and v5 images.
COMPATIBILITY: dict[str, list[str]] = {
    "arm": ["v8", "v7", "v6", "v5"],
    "arm64": ["v8"],
}

ZSTD_ANNOTATION = "io.github.containers.compression.zstd"
OCI_INDEX = "oci"
DOCKER_LIST = "docker"


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""


def goarch(machine: str) -> str:
    """GOARCH for a uname machine; arm*/mips64* by prefix, else the machine."""
    if machine in _GOARCH:
        return _GOARCH[machine]
    if machine.startswith("arm"):
        return "arm"
    if machine.startswith("mips64"):
        import sys
        return "mips64le" if sys.byteorder == "little" else "mips64"
    return machine


def cpuinfo_field(text: str, pattern: str) -> Optional[str]:
    """The first /proc/cpuinfo value whose key matches, case-insensitively."""
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) > 1 and parts[0].strip().lower() == pattern.lower():
            return parts[1].strip()
    return None


def arm_variant(cpuinfo: str) -> str:
    """The arm variant from /proc/cpuinfo's `CPU architecture` field."""
    arch = cpuinfo_field(cpuinfo, "Cpu architecture")
    if arch is None:
        return ""
    arch = arch.lower()
    if arch in ("8", "aarch64"):
        return "v8"
    if arch in ("7m", "?(12)", "?(13)", "?(14)", "?(15)", "?(16)", "?(17)"):
        return "v7"
    if arch == "7":
        model = cpuinfo_field(cpuinfo, "model name")
        if model is None:
            return ""
        return "v6" if model.lower().startswith("armv6-compatible") else "v7"
    return {"6": "v6", "6tej": "v6", "5": "v5", "5t": "v5", "5te": "v5",
            "5tej": "v5", "4": "v4", "4t": "v4", "3": "v3"}.get(arch, "")


def host() -> Platform:
    """This machine as containers/image names it (linux, GOARCH, variant)."""
    arch = goarch(_os.uname().machine)
    variant = ""
    if arch in ("arm", "arm64"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                variant = arm_variant(f.read())
        except OSError:
            variant = ""
    return Platform("linux", arch, variant)


def wanted(os: Optional[str] = None, arch: Optional[str] = None,
           variant: Optional[str] = None) -> list[Platform]:
    """platform.WantedPlatforms: the acceptable platforms, best first.

    An explicit arch drops the host's detected variant, as --override-arch does.
    """
    h = host() if os is None or arch is None else None
    want_arch = arch if arch is not None else h.architecture if h else ""
    # The host's variant only goes with the host's arch.
    want_variant = h.variant if arch is None and h else ""
    if variant is not None:
        want_variant = variant
    want_os = os if os is not None else h.os if h else ""

    if want_variant:
        order = COMPATIBILITY.get(want_arch)
        variants = order[order.index(want_variant):] if order and want_variant in order \
            else [want_variant]
        variants = variants + [""]
    else:
        variants = [""] + COMPATIBILITY.get(want_arch, [])
    return [Platform(want_os, want_arch, v) for v in variants]


def _descriptor_platform(d: dict) -> Optional[Platform]:
    p = d.get("platform")
    if not isinstance(p, dict):
        return None
    return Platform(str(p.get("os", "")), str(p.get("architecture", "")),
                    str(p.get("variant", "")))


def _is_zstd(d: dict) -> bool:
    ann = d.get("annotations")
    return isinstance(ann, dict) and ann.get(ZSTD_ANNOTATION) == "true"


def choose(manifests: list[dict], os: Optional[str] = None, arch: Optional[str] = None,
           variant: Optional[str] = None, kind: str = OCI_INDEX,
           prefer_gzip: bool = False) -> dict:
    """The descriptor skopeo would pull from an index's `manifests`.

    OCI index (kind "oci"): the best platform rank wins (an exact variant
    before a fallback); an entry without a platform is acceptable but last;
    among equals a zstd instance is preferred unless prefer_gzip, then the
    first listed. Docker list (kind "docker"): for each wanted platform in
    turn, the first entry that matches; entries without a platform never do.
    """
    plats = wanted(os, arch, variant)
    if kind == DOCKER_LIST:
        for w in plats:
            for d in manifests:
                p: Optional[Platform] = _descriptor_platform(d) or Platform("", "", "")
                if p == w:
                    return d
        what = "manifest list"
    else:
        best: Optional[tuple] = None
        for pos, d in enumerate(manifests):
            p = _descriptor_platform(d)
            rank: float = math.inf
            if p is not None:
                if p not in plats:
                    continue
                rank = plats.index(p)
            zstd = _is_zstd(d)
            key = (rank, zstd == prefer_gzip, pos)
            if best is None or key < best[0]:
                best = (key, d)
        if best is not None:
            return best[1]
        what = "image index"
    w = plats[0]
    raise PyruncError(
        f"no image found in {what} for architecture {_q(w.architecture)}, "
        f"variant {_q(w.variant)}, OS {_q(w.os)}")


def _q(s: str) -> str:
    from pyrunc.image.reference import go_quote
    return go_quote(s)
