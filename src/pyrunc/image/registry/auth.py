"""Who we are to a registry: credentials (--creds, else the auth files
skopeo reads, pkg/docker/config), the challenges of WWW-Authenticate
(docker/wwwauthenticate.go) and bearer tokens (docker_client.go)."""
from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Optional

from ...errors import PyruncError

MINIMUM_TOKEN_LIFETIME = 60    # seconds, as containers/image
MAX_TOKEN_BODY = 1 << 20


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)


# --- credentials -------------------------------------------------------------

def parse_creds(text: str) -> Credentials:
    """skopeo's --creds USERNAME[:PASSWORD]."""
    if text == "":
        raise PyruncError("credentials can't be empty")
    user, sep, password = text.partition(":")
    if sep and user == "":
        raise PyruncError("username can't be empty")
    return Credentials(user, password)


@dataclass(frozen=True)
class AuthPath:
    path: str
    legacy: bool = False     # ~/.dockercfg: the "auths" map alone, keyed by registry


def auth_file_paths(authfile: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    home: Optional[str] = None, uid: Optional[int] = None) -> list[AuthPath]:
    """The files skopeo reads, in order (getAuthFilePaths): --authfile or
    $REGISTRY_AUTH_FILE alone; otherwise $XDG_RUNTIME_DIR/containers/auth.json
    (/run/containers/UID/auth.json without it), $XDG_CONFIG_HOME (~/.config)
    /containers/auth.json, $DOCKER_CONFIG/config.json (~/.docker/config.json)
    and ~/.dockercfg."""
    env = os.environ if env is None else env
    authfile = authfile or env.get("REGISTRY_AUTH_FILE")
    if authfile:
        return [AuthPath(authfile)]
    home = home if home is not None else (env.get("HOME") or os.path.expanduser("~"))
    uid = os.getuid() if uid is None else uid
    paths = []
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        # containers/image skips it (with a warning) when the directory is missing
        if os.path.exists(runtime_dir):
            paths.append(AuthPath(os.path.join(runtime_dir, "containers", "auth.json")))
    else:
        paths.append(AuthPath(f"/run/containers/{uid}/auth.json"))
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths.append(AuthPath(os.path.join(config_home, "containers", "auth.json")))
    docker_config = env.get("DOCKER_CONFIG")
    paths.append(AuthPath(os.path.join(docker_config, "config.json") if docker_config
                          else os.path.join(home, ".docker", "config.json")))
    paths.append(AuthPath(os.path.join(home, ".dockercfg"), legacy=True))
    return paths


def normalize_registry(registry: str) -> str:
    return "index.docker.io" if registry in ("registry-1.docker.io", "docker.io") else registry


def normalize_key(key: str, legacy: bool) -> str:
    """An auth file key as a registry: `https://index.docker.io/v1/` → index.docker.io."""
    stripped = key.removeprefix("http://").removeprefix("https://")
    if legacy or stripped != key:
        stripped = stripped.split("/", 1)[0]
    return normalize_registry(stripped)


def key_lookup_order(key: str, registry: str, legacy: bool) -> Iterator[str]:
    """host/ns/repo, host/ns, host: the most specific entry wins."""
    if legacy:
        yield registry
        return
    while True:
        yield key
        if "/" not in key:
            return
        key = key.rsplit("/", 1)[0]


def _read_file(path: AuthPath) -> dict:
    try:
        with open(path.path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise PyruncError(f'reading JSON file "{path.path}": {e.strerror}') from None
    try:
        doc = json.loads(raw)
    except ValueError as e:
        why = getattr(e, "msg", "invalid JSON")
        raise PyruncError(f'reading JSON file "{path.path}": unmarshaling JSON at "{path.path}": '
                          f'{why}') from None
    if not isinstance(doc, dict):
        raise PyruncError(f'reading JSON file "{path.path}": not a JSON object')
    return doc


def _auths(path: AuthPath, doc: dict) -> dict:
    auths = doc if path.legacy else doc.get("auths") or {}
    if not isinstance(auths, dict):
        raise PyruncError(f'reading JSON file "{path.path}": "auths" is not a JSON object')
    return auths


def from_helper(helper: str, registry: str) -> Credentials:
    """docker-credential-HELPER get: the registry on stdin, JSON
    {Username, Secret} on stdout; "credentials not found" means none."""
    import subprocess
    prog = f"docker-credential-{helper}"
    try:
        res = subprocess.run([prog, "get"], input=registry.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise PyruncError(f'looking up credentials for {registry} in credential helper {helper}: '
                          f'exec: "{prog}": executable file not found in $PATH') from None
    except (OSError, subprocess.TimeoutExpired) as e:
        why = e.strerror if isinstance(e, OSError) else "timed out"
        raise PyruncError(f"looking up credentials for {registry} in credential helper {helper}: {why}") from None
    out = res.stdout.decode("utf-8", "replace").strip()
    if res.returncode != 0:
        if "credentials not found" in out.lower():
            return Credentials()
        why = out.splitlines()[0] if out else f"exit status {res.returncode}"
        raise PyruncError(f"looking up credentials for {registry} in credential helper {helper}: {why}")
    try:
        doc = json.loads(out)
        user, secret = doc.get("Username", ""), doc.get("Secret", "")
    except (ValueError, AttributeError):
        raise PyruncError(f"looking up credentials for {registry} in credential helper {helper}: "
                          "its answer is not JSON") from None
    if user == "<token>":     # an identity token (OAuth2): not supported, as if none
        return Credentials(identity_token=secret)
    return Credentials(str(user), str(secret))


def _decode(path: str, key: str, entry) -> Credentials:
    if not isinstance(entry, dict):
        return Credentials()
    auth = entry.get("auth") or ""
    token = entry.get("identitytoken") or ""
    try:
        decoded = base64.b64decode(auth, validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise PyruncError(f'reading JSON file "{path}": the "auth" field of {key!r} is not valid base64') from None
    user, sep, password = decoded.partition(":")
    if not sep:     # an entry of a credential helper, or a broken one: no credentials
        return Credentials()
    return Credentials(user, password.strip("\x00"), token if isinstance(token, str) else "")


def find_in_file(key: str, registry: str, path: AuthPath) -> Credentials:
    """findCredentialsInFile: a credHelpers entry for the registry runs its
    helper; otherwise the most specific `auths` entry."""
    doc = _read_file(path)
    helpers = doc.get("credHelpers") if not path.legacy else None
    if isinstance(helpers, dict) and isinstance(helpers.get(registry), str):
        return from_helper(helpers[registry], registry)
    auths = _auths(path, doc)
    for k in key_lookup_order(key, registry, path.legacy):
        if k in auths:
            return _decode(path.path, k, auths[k])
    want = normalize_registry(registry)
    for k, v in auths.items():
        if normalize_key(k, path.legacy) == want:
            return _decode(path.path, k, v)
    return Credentials()


def lookup(key: str, authfile: Optional[str] = None, env: Optional[dict] = None,
           home: Optional[str] = None) -> Credentials:
    """Credentials for `key` (HOST[:PORT][/REPO]) from the first auth file
    that has an entry for it (GetCredentialsForRef)."""
    registry = key.split("/", 1)[0]
    for path in auth_file_paths(authfile, env, home):
        creds = find_in_file(key, registry, path)
        if creds:
            return creds
    return Credentials()


# --- challenges ----------------------------------------------------------------

_SEPARATORS = set(' \t"(),/:;<=>?@[]\\{}')


def _is_token(c: str) -> bool:
    return 32 < ord(c) < 127 and c not in _SEPARATORS


def _token(s: str) -> tuple[str, str]:
    i = 0
    while i < len(s) and _is_token(s[i]):
        i += 1
    return s[:i], s[i:]


def _token_or_quoted(s: str) -> tuple[str, str]:
    if not s.startswith('"'):
        return _token(s)
    out: list[str] = []
    i = 1
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), s[i + 1:]
        if c == "\\":
            i += 1
            if i >= len(s):
                break
            c = s[i]
        out.append(c)
        i += 1
    return "", ""


def parse_challenge(header: str) -> tuple[str, dict]:
    """One WWW-Authenticate value: (scheme in lower case, {param: value})."""
    params: dict = {}
    scheme, s = _token(header)
    if not scheme:
        return "", params
    s = "," + s.lstrip(" \t\r\n")
    while s.startswith(","):
        key, s = _token(s[1:].lstrip(" \t\r\n"))
        if not key or not s.startswith("="):
            break
        value, s = _token_or_quoted(s[1:])
        if value == "":
            break
        params[key.lower()] = value
        s = s.lstrip(" \t\r\n")
    return scheme.lower(), params


def parse_challenges(headers: Iterable[str]) -> list[tuple[str, dict]]:
    return [c for c in map(parse_challenge, headers) if c[0]]


@dataclass(frozen=True)
class Scope:
    """repository:NAME:ACTIONS, what a bearer token grants."""

    resource_type: str
    name: str
    actions: str

    def __str__(self) -> str:
        return f"{self.resource_type}:{self.name}:{self.actions}"

    @classmethod
    def parse(cls, text: str) -> Optional["Scope"]:
        parts = text.split(":")
        return cls(*parts) if len(parts) == 3 else None


def token_query(creds: Credentials, params: dict, scopes: Iterable[Scope]) -> list[tuple[str, str]]:
    """The query of a token request (account, service, scope...)."""
    q = []
    if creds.username:
        q.append(("account", creds.username))
    if params.get("service"):
        q.append(("service", params["service"]))
    for s in scopes:
        if s.resource_type and s.name and s.actions:
            q.append(("scope", str(s)))
    return q


def parse_token_response(body: bytes, url: str, now: Optional[float] = None) -> tuple[str, float]:
    """(token, expiry as time.time()) from a token service's answer."""
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise ValueError
    except ValueError:
        sample = body[:50].decode("utf-8", "replace")
        raise PyruncError(f"decoding bearer token (last URL {json.dumps(url)}, body start "
                          f"{json.dumps(sample)}): not a JSON object") from None
    token = doc.get("token") or doc.get("access_token") or ""
    if not isinstance(token, str):
        token = ""
    expires_in = doc.get("expires_in")
    if not isinstance(expires_in, int) or expires_in < MINIMUM_TOKEN_LIFETIME:
        expires_in = MINIMUM_TOKEN_LIFETIME
    issued = None
    issued_at = doc.get("issued_at")
    if isinstance(issued_at, str) and issued_at:
        try:
            from datetime import datetime
            issued = datetime.fromisoformat(issued_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            issued = None
    base = issued if issued is not None else (time.time() if now is None else now)
    return token, base + expires_in


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode("utf-8", "surrogateescape")
    return "Basic " + base64.b64encode(raw).decode("ascii")
