"""pyrunc image inspect: skopeo inspect's command line over image/inspector.py."""
from __future__ import annotations

INSPECT_FLAGS = {
    "tls-verify": ("bool", None), "creds": ("str", None), "authfile": ("str", None),
    "cert-dir": ("str", None), "raw": ("bool", False), "config": ("bool", False),
    "override-os": ("str", None), "override-arch": ("str", None), "override-variant": ("str", None),
    "no-tags": ("bool", False), "manifest-digest": ("str", None), "help": ("bool", False),
}
INSPECT_HELP = """NAME:
   pyrunc image inspect - show what skopeo inspect shows about an image

USAGE:
   pyrunc image inspect [command options] TRANSPORT:IMAGE

DESCRIPTION:
   Prints, as skopeo inspect does, a JSON object about the image: Name (the
Docker reference, where the transport has one), Digest (of the top-level
manifest: an index's when the reference names one), RepoTags (the
repository's tags, docker:// only), Created, DockerVersion, Labels,
Architecture, Os, Layers, LayersData and Env, the last ones from the image
chosen for the platform. Transports: docker://, oci:, oci-archive:,
docker-archive:.

EXAMPLE:
   # pyrunc image inspect docker-archive:/images/busybox.tar
   # pyrunc image inspect --raw oci:/images/alpine:3.20
   # pyrunc image inspect --config --override-arch arm64 docker://docker.io/library/alpine:3.20

OPTIONS:
   --raw                    print the top-level manifest (or index) exactly as stored
   --config                 print the image config (as an OCI image config; with --raw,
                            exactly as stored)
   --no-tags, -n            do not list the repository's tags (docker://)
   --override-os value      choose the image of an index for this OS
   --override-arch value    choose the image of an index for this architecture
   --override-variant value choose the image of an index for this variant
   --manifest-digest value  algorithm of Digest (sha256, sha384, sha512; default:
                            the config digest's)
   --tls-verify=false       allow HTTP and unverified TLS (docker://)
   --creds USER[:PASS]      registry credentials (docker://)
   --authfile value         registry auth file (default: skopeo's lookup)
   --cert-dir value         directory of CA and client certificates (docker://)
"""


def run(ctx, rest: list[str]) -> int:
    import sys
    from ..errors import PyruncError
    from ..image import inspector
    from ..image.transport import Options
    from .main import parse_flags
    o, args = parse_flags(INSPECT_FLAGS, {"h": "help", "n": "no-tags"}, rest, False)
    if o["help"]:
        sys.stdout.write(INSPECT_HELP)
        return 0
    if len(args) != 1:
        sys.stdout.write("Incorrect Usage.\n\n" + INSPECT_HELP)
        raise PyruncError('pyrunc: "image inspect" requires exactly 1 argument(s)')
    opts = Options(tls_verify=o["tls-verify"], creds=o["creds"], authfile=o["authfile"],
                   cert_dir=o["cert-dir"], os=o["override-os"], arch=o["override-arch"],
                   variant=o["override-variant"])
    image = args[0]
    if o["raw"] and not o["config"]:
        out = inspector.raw_manifest(image, opts)
    elif o["config"] and o["raw"]:
        out = inspector.config_blob(image, opts)
    elif o["config"]:
        from ..image.gojson import marshal_indent
        out = (marshal_indent(inspector.oci_config(image, opts)) + "\n").encode()
    else:
        alg = o["manifest-digest"]
        if alg == "":
            alg = "sha256"   # go-digest's Canonical, as skopeo's flag takes ""
        out = inspector.inspect(image, opts, o["no-tags"], alg).to_json().encode()
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0
