"""The manifest media types pyrunc's image tools read and write, and
containers/image's GuessMIMEType for a manifest that comes without one."""
from __future__ import annotations

import json

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"


def guess_media_type(raw: bytes) -> str:
    """A manifest's media type from its content (GuessMIMEType): a declared
    type pyrunc knows, else schemaVersion 1 or 2's shape; "" for no manifest.
    For registries that answer without a useful Content-Type, and layout
    descriptors without a mediaType."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    mt = doc.get("mediaType")
    if mt in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, SCHEMA1, SCHEMA1_SIGNED):
        return mt
    version = doc.get("schemaVersion")
    if version == 1:
        return SCHEMA1_SIGNED if "signatures" in doc else SCHEMA1
    if version == 2:
        if "manifests" in doc:
            return OCI_INDEX
        config = doc.get("config")
        if isinstance(config, dict) and config.get("mediaType") == DOCKER_CONFIG:
            return DOCKER_MANIFEST
        return OCI_MANIFEST
    return ""
