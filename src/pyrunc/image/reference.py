"""Image references as skopeo (containers/image) parses them: TRANSPORT:REF.

The grammar and error texts follow containers/image's docker/reference
(distribution's reference grammar with docker.io normalization), its
alltransports.ParseImageName, and the oci, oci-archive and docker-archive
transports, so that a name skopeo accepts means the same thing here and a
name it refuses is refused with the same words.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Optional, Union

from pyrunc.errors import PyruncError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO = "library"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The distribution grammar, written without its empty-able separator
# (`-*`) so that Python's backtracking matcher stays linear: the language
# and the submatches are the same as Go's leftmost-first RE2 ones.
_ALNUM = r"[a-z0-9]+"
_NAME_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME_RE = re.compile(
    rf"(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_TAG_RE = re.compile(_TAG, re.ASCII)

# go-digest's registered algorithms and their encoded lengths.
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# containers/image oci/internal: the ref.name grammar of an OCI layout.
_OCI_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_OCI_REF_RE = re.compile(rf"{_OCI_COMPONENT}(?:/{_OCI_COMPONENT})*")
_GO_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)

TRANSPORTS = ("docker", "oci", "oci-archive", "docker-archive")


def go_quote(s: str) -> str:
    """Go's %q for the strings users type (close enough: JSON escaping)."""
    return json.dumps(s, ensure_ascii=False)


def _shown(s: str) -> str:
    """User text inside a message: as typed, or Go-quoted if it would break
    the one-line message (a newline, a control character)."""
    return s if s.isprintable() else go_quote(s)


def validate_digest(text: str) -> str:
    """go-digest's Digest.Validate, with its messages."""
    algo, sep, encoded = text.partition(":")
    if not sep or not algo or not encoded:
        raise PyruncError("invalid checksum digest format")
    size = _DIGEST_HEX_LEN.get(algo)
    if size is None:
        if not _ANY_DIGEST_RE.fullmatch(text):
            raise PyruncError("invalid checksum digest format")
        raise PyruncError("unsupported digest algorithm")
    if len(encoded) != size:
        raise PyruncError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise PyruncError("invalid checksum digest format")
    return text


@dataclass(frozen=True, slots=True)
class Named:
    """A repository name with an optional tag and digest (both may be set)."""

    domain: str
    path: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += ":" + self.tag
        if self.digest is not None:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        """docker's short form: docker.io and library/ dropped."""
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            domain = ""
            first, sep, rest = path.partition("/")
            if first == OFFICIAL_REPO and sep and "/" not in rest:
                path = rest
        return str(Named(domain, path, self.tag, self.digest))


def parse_reference(s: str) -> Named:
    """distribution's reference.Parse: no normalization."""
    m = _REFERENCE_RE.fullmatch(s)
    if m is None:
        if s == "":
            raise PyruncError("repository name must have at least one component")
        if _REFERENCE_RE.fullmatch(s.lower()) is not None:
            raise PyruncError("repository name must be lowercase")
        raise PyruncError("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise PyruncError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    nm = _ANCHORED_NAME_RE.fullmatch(name)
    domain, path = (nm.group(1) or "", nm.group(2)) if nm else ("", name)
    if digest is not None:
        validate_digest(digest)
    return Named(domain, path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{OFFICIAL_REPO}/{remainder}"
    return domain, remainder


def parse_normalized_named(s: str) -> Named:
    """reference.ParseNormalizedNamed: `busybox` → docker.io/library/busybox."""
    if _IDENTIFIER_RE.fullmatch(s):
        raise PyruncError(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise PyruncError("invalid reference format: repository name must be lowercase")
    return parse_reference(f"{domain}/{remainder}")


def with_default_tag(n: Named) -> Named:
    """reference.TagNameOnly: a bare name means :latest."""
    if n.tag is None and n.digest is None:
        return Named(n.domain, n.path, DEFAULT_TAG, None)
    return n


@dataclass(frozen=True, slots=True)
class DockerReference(Named):
    """docker://[DOMAIN/]PATH[:TAG|@DIGEST], a registry (API v2) image: a
    Named (its fields, name and familiar form) with the transport's text."""

    transport: ClassVar[Literal["docker"]] = "docker"

    @property
    def named(self) -> Named:
        return Named(self.domain, self.path, self.tag, self.digest)

    def __str__(self) -> str:
        return f"docker://{self.named}"

    @property
    def reference(self) -> str:
        """What the registry API's /manifests/ takes: the digest, else the tag."""
        return self.digest if self.digest is not None else self.tag or DEFAULT_TAG

    def familiar(self) -> str:
        """skopeo's display form: `docker://busybox:latest`."""
        return "docker://" + Named.familiar(self)


@dataclass(frozen=True, slots=True)
class OCIReference:
    """oci:DIR[:REF|:@INDEX], an OCI image layout directory."""

    dir: str
    image: str = ""
    source_index: int = -1

    transport: ClassVar[Literal["oci"]] = "oci"

    def __str__(self) -> str:
        if self.source_index != -1:
            return f"oci:{self.dir}:@{self.source_index}"
        return f"oci:{self.dir}:{self.image}" if self.image else f"oci:{self.dir}"


@dataclass(frozen=True, slots=True)
class OCIArchiveReference:
    """oci-archive:FILE[:REF], an OCI image layout in a tar file."""

    file: str
    image: str = ""

    transport: ClassVar[Literal["oci-archive"]] = "oci-archive"

    def __str__(self) -> str:
        return f"oci-archive:{self.file}:{self.image}" if self.image else f"oci-archive:{self.file}"


@dataclass(frozen=True, slots=True)
class DockerArchiveReference:
    """docker-archive:FILE[:NAME:TAG|:@INDEX], a `docker save` tar file."""

    path: str
    ref: Optional[Named] = None
    source_index: int = -1

    transport: ClassVar[Literal["docker-archive"]] = "docker-archive"

    def __str__(self) -> str:
        if self.ref is not None:
            return f"docker-archive:{self.path}:{self.ref}"
        if self.source_index != -1:
            return f"docker-archive:{self.path}:@{self.source_index}"
        return f"docker-archive:{self.path}"


Reference = Union[DockerReference, OCIReference, OCIArchiveReference, DockerArchiveReference]


def parse_docker(within: str) -> DockerReference:
    if not within.startswith("//"):
        raise PyruncError(f"docker: image reference {_shown(within)} does not start with //")
    n = with_default_tag(parse_normalized_named(within[2:]))
    if n.tag is not None and n.digest is not None:
        raise PyruncError("Docker references with both a tag and digest are currently not supported")
    return DockerReference(n.domain, n.path, n.tag, n.digest)


def _source_index(text: str) -> int:
    if not _GO_INT_RE.fullmatch(text):
        raise PyruncError(f"Invalid source index @{_shown(text)}: not an integer")
    i = int(text)
    if i < 0:
        raise PyruncError(f"Invalid source index @{i}: must not be negative")
    return i


def _validate_oci_image(image: str) -> None:
    if image and not _OCI_REF_RE.fullmatch(image):
        raise PyruncError(f"Invalid image {_shown(image)}")


def parse_oci(within: str) -> OCIReference:
    # On Linux the path ends at the first colon: a directory whose name has
    # a colon cannot be named (containers/image's SplitPathAndImage).
    path, _, image = within.partition(":")
    if image.startswith("@"):
        return OCIReference(path, "", _source_index(image[1:]))
    _validate_oci_image(image)
    return OCIReference(path, image)


def parse_oci_archive(within: str) -> OCIArchiveReference:
    path, _, image = within.partition(":")
    _validate_oci_image(image)
    return OCIArchiveReference(path, image)


def parse_docker_archive(within: str) -> DockerArchiveReference:
    if within == "":
        raise PyruncError(
            f"docker-archive reference {_shown(within)} isn't of the form <path>[:<reference>]")
    path, sep, rest = within.partition(":")
    if not sep:
        return DockerArchiveReference(path)
    if rest.startswith("@"):
        return DockerArchiveReference(path, None, _source_index(rest[1:]))
    try:
        n = with_default_tag(parse_normalized_named(rest))
    except PyruncError as e:
        raise PyruncError(f"docker-archive parsing reference: {e}") from None
    if n.tag is None:
        raise PyruncError(f"reference does not include a tag: {n}")
    if n.digest is not None:
        raise PyruncError(f"docker-archive doesn't support digest references: {n}")
    return DockerArchiveReference(path, n)


_PARSERS: dict[str, Callable[[str], Reference]] = {
    "docker": parse_docker,
    "oci": parse_oci,
    "oci-archive": parse_oci_archive,
    "docker-archive": parse_docker_archive,
}


def parse(text: str) -> Reference:
    """alltransports.ParseImageName: TRANSPORT:REFERENCE."""
    transport, sep, within = text.partition(":")
    if not sep:
        raise PyruncError(
            f"Invalid image name {go_quote(text)}, expected colon-separated transport:reference")
    parser = _PARSERS.get(transport)
    if parser is None:
        raise PyruncError(
            f"Invalid image name {go_quote(text)}, unknown transport {go_quote(transport)}")
    return parser(within)
