"""pyrunc image list-tags: skopeo list-tags' command line (docker:// repositories)."""
from __future__ import annotations

LIST_TAGS_FLAGS = {
    "tls-verify": ("bool", None), "creds": ("str", ""), "authfile": ("str", ""),
    "cert-dir": ("str", ""), "help": ("bool", False),
}
LIST_TAGS_HELP = """NAME:
   pyrunc image list-tags - list the tags of a registry repository (as skopeo list-tags)

USAGE:
   pyrunc image list-tags [command options] docker://NAME

DESCRIPTION:
   Prints, as skopeo list-tags does, a JSON object with the repository's
name and its tags (every page of the registry's list). NAME has no tag and
no digest.

EXAMPLE:
   # pyrunc image list-tags docker://docker.io/library/alpine
   # pyrunc image list-tags --tls-verify=false docker://localhost:5000/team/app

OPTIONS:
   --tls-verify=false       allow HTTP and unverified TLS
   --creds USER[:PASS]      registry credentials
   --authfile value         registry auth file (default: skopeo's lookup)
   --cert-dir value         directory of CA and client certificates
"""


def run(ctx, rest: list[str]) -> int:
    import json
    import sys
    from ..errors import PyruncError
    from ..image.transport import Options
    from ..image.transports.docker import repository_tags
    from .main import parse_flags
    o, args = parse_flags(LIST_TAGS_FLAGS, {"h": "help"}, rest, False)
    if o["help"]:
        sys.stdout.write(LIST_TAGS_HELP)
        return 0
    if len(args) != 1:
        sys.stdout.write("Incorrect Usage.\n\n" + LIST_TAGS_HELP)
        raise PyruncError("Exactly one argument expected")
    opts = Options(tls_verify=o["tls-verify"], creds=o["creds"] or None,
                   authfile=o["authfile"] or None, cert_dir=o["cert-dir"] or None)
    name, tags = repository_tags(args[0], opts)
    # Go's json.MarshalIndent(..., "", "    "), as skopeo prints it
    sys.stdout.write(json.dumps({"Repository": name, "Tags": tags}, indent=4) + "\n")
    return 0
