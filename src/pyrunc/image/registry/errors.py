"""Registry and network failures as one line, worded as containers/image
words them (docker/errors.go, distribution's errcode), so that a message
users search for means the same thing here."""
from __future__ import annotations

import json
import socket
import ssl
from typing import Iterable, Iterator, Optional

from ...errors import PyruncError

# distribution's registered error codes and their default messages
# (registry/api/errcode and registry/api/v2): a message equal to its code's
# default is shown alone, as containers/image does.
CODE_MESSAGES = {
    "UNKNOWN": "unknown error",
    "UNSUPPORTED": "The operation is unsupported.",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNAVAILABLE": "service unavailable",
    "TOOMANYREQUESTS": "too many requests",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "SIZE_INVALID": "provided length did not match content length",
    "NAME_INVALID": "invalid repository name",
    "TAG_INVALID": "manifest tag did not match URI",
    "NAME_UNKNOWN": "repository name not known to registry",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNVERIFIED": "manifest failed signature verification",
    "MANIFEST_BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "RANGE_INVALID": "invalid content range",
}

HTTP_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
    416: "Requested Range Not Satisfiable", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


class RegistryError(PyruncError):
    """A registry answered with an error; `code` is its first errcode
    (MANIFEST_UNKNOWN, UNAUTHORIZED, ...) or "" when it sent none."""

    def __init__(self, msg: str, status: int = 0, error_code: str = "") -> None:
        super().__init__(msg)
        self.status = status
        self.error_code = error_code

    def wrap(self, context: str) -> "RegistryError":
        """The same error with `context: ` in front of its message."""
        return RegistryError(f"{context}: {self}", self.status, self.error_code)


def status_text(status: int, reason: Optional[str] = None) -> str:
    """Go's resp.Status: `404 Not Found`."""
    return f"{status} {reason or HTTP_REASONS.get(status, '')}".rstrip()


def _errcode_text(code: str, message: str) -> str:
    default = CODE_MESSAGES.get(code)
    if default is None:   # Go maps an unregistered code to UNKNOWN
        code, default = "UNKNOWN", CODE_MESSAGES["UNKNOWN"]
    if not message or message == default:
        return default
    return f"{code.replace('_', ' ').lower()}: {message}"


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    if len(text) > 50:
        text = text[:50] + "..."
    return json.dumps(text, ensure_ascii=False)


def response_error(status: int, body: bytes, challenges: Iterable[tuple[str, dict]] = (),
                   reason: Optional[str] = None) -> RegistryError:
    """registryHTTPResponseToError: the first error of a registry's error
    body, or the status when it sent no usable body."""
    if status == 401:
        for scheme, params in challenges:
            if scheme == "bearer" and params.get("error") in ("invalid_token", "insufficient_scope"):
                code = "UNAUTHORIZED" if params["error"] == "invalid_token" else "DENIED"
                return RegistryError(_errcode_text(code, params.get("error_description", "")),
                                     status, code)
    if not 400 <= status < 500:
        return RegistryError(f"received unexpected HTTP status: {status_text(status, reason)}", status)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("details"), str) and doc["details"]:
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")
        return RegistryError(_errcode_text(code, doc["details"]), status, code)
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        c, m = first.get("code"), first.get("message")
        code = c if isinstance(c, str) else "UNKNOWN"
        message = m if isinstance(m, str) else ""
        if code not in CODE_MESSAGES:
            code = "UNKNOWN"
        return RegistryError(_errcode_text(code, message), status, code)
    if status == 401:
        return RegistryError(CODE_MESSAGES["UNAUTHORIZED"], status, "UNAUTHORIZED")
    return RegistryError(f"StatusCode: {status}, {_short(body)}", status)


# OpenSSL's verify messages as Go's crypto/x509 words them
_X509_GO = {
    "unable to get local issuer certificate": "certificate signed by unknown authority",
    "self-signed certificate": "certificate signed by unknown authority",
    "self-signed certificate in certificate chain": "certificate signed by unknown authority",
    "self signed certificate": "certificate signed by unknown authority",
    "self signed certificate in certificate chain": "certificate signed by unknown authority",
    "certificate has expired": "certificate has expired or is not yet valid",
    "certificate is not yet valid": "certificate has expired or is not yet valid",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def network_reason(exc: BaseException, host: str) -> str:
    """Why a request got no answer, in Go's words where users know them
    (`connect: connection refused`, `x509: ...`)."""
    import errno as _errno
    import http.client
    for e in _chain(exc):
        if isinstance(e, http.client.RemoteDisconnected):
            return "EOF"
        if isinstance(e, http.client.BadStatusLine):
            return f"malformed HTTP response {json.dumps(str(e.args[0] if e.args else '')[:50])}"
        if isinstance(e, ssl.SSLCertVerificationError):
            msg = e.verify_message or "certificate verify failed"
            msg = _X509_GO.get(msg, msg)
            return f"tls: failed to verify certificate: x509: {msg}"
        if isinstance(e, ssl.SSLError):
            if e.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                            "HTTP_REQUEST"):
                return "http: server gave HTTP response to HTTPS client"
            reason = e.reason or "HANDSHAKE_FAILURE"
            for alert in ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_"):
                if reason.startswith(alert):   # the server refused us (Go: remote error)
                    return f"remote error: tls: {reason[len(alert):].lower().replace('_', ' ')}"
            return f"tls: {reason.lower().replace('_', ' ')}"
        if isinstance(e, socket.gaierror):
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                return f"dial tcp: lookup {name}: no such host"
            return f"dial tcp: lookup {name}: {e.strerror}"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == _errno.ECONNREFUSED:
            return f"dial tcp {host}: connect: connection refused"
        if isinstance(e, ConnectionResetError):
            return "read: connection reset by peer"
        if isinstance(e, (socket.timeout, TimeoutError)) and not hasattr(e, "pool"):
            return "i/o timeout"
        if isinstance(e, OSError) and e.errno in (_errno.EHOSTUNREACH, _errno.ENETUNREACH):
            return f"dial tcp {host}: connect: {(e.strerror or '').lower()}"
    name = type(exc).__name__
    if "Timeout" in name:
        return "i/o timeout"
    if "Protocol" in name or "IncompleteRead" in name or "RemoteDisconnected" in str(exc):
        return "unexpected EOF"
    return "connection failed"


def network_error(method: str, url: str, exc: BaseException, host: str) -> PyruncError:
    """Go's *url.Error: `Get "https://HOST/v2/": <reason>`."""
    op = method[:1].upper() + method[1:].lower()
    return PyruncError(f'{op} "{url}": {network_reason(exc, host)}')
