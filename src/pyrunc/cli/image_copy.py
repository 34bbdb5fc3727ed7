"""pyrunc image copy: skopeo copy's command line over image/copier.py."""
from __future__ import annotations

COPY_FLAGS: dict[str, tuple[str, object]] = {
    "src-tls-verify": ("bool", None), "dest-tls-verify": ("bool", None),
    "src-creds": ("str", ""), "dest-creds": ("str", ""),
    "authfile": ("str", ""), "src-authfile": ("str", ""), "dest-authfile": ("str", ""),
    "src-cert-dir": ("str", ""), "dest-cert-dir": ("str", ""),
    "override-arch": ("str", ""), "override-os": ("str", ""), "override-variant": ("str", ""),
    "all": ("bool", False), "quiet": ("bool", False), "preserve-digests": ("bool", False),
    "additional-tag": ("list", []),
    "help": ("bool", False),
}
COPY_ALIASES = {"a": "all", "q": "quiet", "h": "help", "screds": "src-creds", "dcreds": "dest-creds"}
COPY_HELP = """NAME:
   pyrunc image copy - copy an image from one location to another (as skopeo copy)

USAGE:
   pyrunc image copy [command options] SOURCE-IMAGE DESTINATION-IMAGE

DESCRIPTION:
   Copies the image SOURCE-IMAGE names to DESTINATION-IMAGE, both written
TRANSPORT:DETAILS as skopeo writes them:

   oci:DIR[:REF]          an OCI image layout directory (REF: the ref.name
                          annotation; a source without REF must hold exactly
                          one image; oci:DIR:@N is the Nth entry of index.json)
   oci-archive:FILE[:REF] an OCI image layout in a tar file
   docker://NAME[:TAG|@DIGEST]  an image in a registry (API v2)
   docker-archive:FILE[:NAME:TAG]  a `docker save` tar file

Manifests and blobs are copied byte for byte: the copy has the digests of
the source (as skopeo copy --preserve-digests). An image index is resolved
to the host's platform (or --override-os/--override-arch/--override-variant)
unless --all copies every image of it and then the index. Every blob is
verified against its digest as it streams. On any failure the destination
is left as it was.

EXAMPLE:
   # pyrunc image copy oci-archive:busybox.tar oci:images:busybox
   # pyrunc image copy --all docker://docker.io/library/busybox:latest oci:images:busybox
   # pyrunc image copy --override-arch arm64 oci:images:multi oci:arm64-only:latest

OPTIONS:
   --all, -a                   copy all images if SOURCE-IMAGE is a list
   --quiet, -q                 suppress output information when copying images
   --override-arch ARCH        use ARCH instead of the host's architecture to
                               choose an image from a list
   --override-os OS            use OS instead of the host's (linux)
   --override-variant VARIANT  use VARIANT instead of the host's arch variant
   --src-creds USER[:PASS]     credentials for the source registry
   --dest-creds USER[:PASS]    credentials for the destination registry
   --authfile FILE             the registry credentials file of both sides
   --src-authfile FILE         the source's credentials file (overrides --authfile)
   --dest-authfile FILE        the destination's credentials file
   --src-cert-dir DIR          CA certificates and client keys for the source registry
   --dest-cert-dir DIR         the same for the destination registry
   --src-tls-verify=BOOL       require HTTPS and verify certificates (source)
   --dest-tls-verify=BOOL      the same for the destination
   --preserve-digests          accepted for skopeo's sake: digests are always kept
   --additional-tag NAME:TAG   another tag for a docker-archive destination's
                               image (repeatable; other destinations ignore it)
"""


def run(ctx, rest: list[str]) -> int:
    import sys
    from ..errors import PyruncError
    from ..image.copier import copy
    from ..image.transport import Options
    from .main import parse_flags
    o, args = parse_flags(COPY_FLAGS, COPY_ALIASES, rest, False)
    if o["help"]:
        sys.stdout.write(COPY_HELP)
        return 0
    if len(args) != 2:
        sys.stdout.write("Incorrect Usage.\n\n" + COPY_HELP)
        raise PyruncError("Exactly two arguments expected")

    def side(prefix: str) -> Options:
        return Options(tls_verify=o[f"{prefix}-tls-verify"],
                       creds=o[f"{prefix}-creds"] or None,
                       authfile=o[f"{prefix}-authfile"] or o["authfile"] or None,
                       cert_dir=o[f"{prefix}-cert-dir"] or None,
                       os=o["override-os"] or None, arch=o["override-arch"] or None,
                       variant=o["override-variant"] or None)

    dest = side("dest")
    tags = [t for v in o["additional-tag"] for t in v.split(",")]   # a string slice, as pflag's
    if tags:
        from ..image.transports.dockerarchive import additional_tag
        for t in tags:
            additional_tag(t)   # checked for every destination, as skopeo does
        dest.additional_tags = tuple(tags)
    copy(args[0], args[1], side("src"), dest, all=o["all"], quiet=o["quiet"])
    return 0
