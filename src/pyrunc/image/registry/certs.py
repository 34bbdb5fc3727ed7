"""TLS settings for one registry: CA certificates and client certificates
from a certs.d directory, as containers/image reads them
(docker_client.go dockerCertDir, pkg/tlsclientconfig): `*.crt` are CAs
(added to the system's), `NAME.cert` + `NAME.key` a client certificate."""
from __future__ import annotations

import os
import ssl
from typing import Optional

from ...errors import PyruncError

# searched in this order for HOST[:PORT]/ when no cert dir is given
PER_HOST_DIRS = ("~/.config/containers/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


def cert_dir(host_port: str, explicit: Optional[str] = None) -> Optional[str]:
    """The directory to read for `host_port` (the registry as the reference
    names it: docker.io, not registry-1.docker.io); None when none exists."""
    if explicit:
        return explicit
    for base in PER_HOST_DIRS:
        path = os.path.join(os.path.expanduser(base), host_port)
        try:
            os.stat(path)
            return path
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    return None


def ssl_text(e: ssl.SSLError) -> str:
    """An ssl error without OpenSSL's `[LIB: REASON]` and `(_ssl.c:NNN)`."""
    text = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], str) else str(e)
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(" (_ssl.c:", 1)[0]


def ssl_context(directory: Optional[str], verify: bool) -> ssl.SSLContext:
    """The system's CAs plus the directory's; client certificates; no
    verification at all when `verify` is False (--tls-verify=false)."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if directory is None:
        return ctx
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return ctx
    except OSError as e:
        raise PyruncError(f"reading certificates in {directory}: {e.strerror}") from None
    for name in names:
        path = os.path.join(directory, name)
        try:
            if name.endswith(".crt"):
                ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = name[:-len(".cert")] + ".key"
                if key not in names:
                    raise PyruncError(f"missing key {key} for client certificate {name}. "
                                      "Note that CA certificates should use the extension .crt")
                ctx.load_cert_chain(path, os.path.join(directory, key))
            elif name.endswith(".key"):
                cert = name[:-len(".key")] + ".cert"
                if cert not in names:
                    raise PyruncError(f"missing client certificate {cert} for key {name}")
        except ssl.SSLError as e:
            raise PyruncError(f"loading {path}: {ssl_text(e)}") from None
        except FileNotFoundError:
            continue   # removed since the listing
        except OSError as e:
            raise PyruncError(f"loading {path}: {e.strerror}") from None
    return ctx
