"""HTTP to one registry, as containers/image's dockerClient talks to it:
the /v2/ ping that picks the scheme and learns the auth challenges, the
Authorization each request carries, retries and redirects.

One Client serves one repository with one scope (pull, or pull,push) and
is shared by the threads that copy layers in parallel: one urllib3
PoolManager, the ping done once, the token cache under a lock.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlencode, urljoin, urlsplit

from ...errors import PyruncError
from . import auth, certs
from .errors import RegistryError, network_error, response_error, status_text

if TYPE_CHECKING:
    import urllib3  # imported where used: only a registry client loads it

DOCKER_HOSTNAME = "docker.io"
DOCKER_REGISTRY = "registry-1.docker.io"
USER_AGENT = "pyrunc (image tools)"

# Waits before the 2nd, 3rd and 4th try of a request that got no answer
# (a dropped connection) or a 429/5xx: a few tries, short waits.
RETRY_DELAYS = (0.25, 0.5, 1.0)
RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
MAX_RETRY_AFTER = 10.0
MAX_REDIRECTS = 10
MAX_ERROR_BODY = 1 << 20
POOL_SIZE = 8           # >= the copy engine's parallel layers
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0


def registry_host(domain: str) -> str:
    """Where the API of `domain` is: docker.io's is registry-1.docker.io."""
    return DOCKER_REGISTRY if domain == DOCKER_HOSTNAME else domain


def _retryable(exc: BaseException) -> bool:
    """A connection dropped or timed out while the request was answered
    (not a refused connection, an unknown host or a TLS failure)."""
    import urllib3.exceptions as ue
    if isinstance(exc, (ue.ConnectTimeoutError, ue.SSLError, ue.LocationParseError)):
        return False   # connecting: see Client._call
    return isinstance(exc, (ue.ProtocolError, ue.ReadTimeoutError, ConnectionResetError, BrokenPipeError))


def read_body(res, limit: int = MAX_ERROR_BODY) -> bytes:
    """At most `limit` bytes of a response, which is then released."""
    try:
        data = res.read(limit + 1)
    except Exception as e:   # the connection dropped while the body came
        url = getattr(res, "pyrunc_url", "")
        parts = urlsplit(url)
        raise network_error("GET", url, e, parts.netloc) from None
    finally:
        res.release_conn()
    if len(data) > limit:
        raise PyruncError(f"exceeded maximum allowed size of {limit} bytes")
    return data


class Client:
    """A registry (`domain` as the reference names it) and one repository."""

    def __init__(self, domain: str, repo: str, actions: str, opts) -> None:
        if not domain:
            raise PyruncError("docker reference has no registry domain")
        self.domain = domain
        self.registry = registry_host(domain)
        self.repo = repo
        self.scope = auth.Scope("repository", repo, actions)
        from . import registriesconf
        try:
            conf = registriesconf.find(f"{domain}/{repo}")
        except PyruncError as e:
            raise PyruncError(f"loading registries: {e}") from None
        if conf is not None and conf.blocked:
            raise PyruncError(f"registry {conf.prefix} is blocked in registries.conf")
        # --tls-verify, when given, wins over registries.conf's `insecure`
        self.verify = opts.tls_verify if opts.tls_verify is not None else not (conf and conf.insecure)
        try:
            self.creds = (auth.parse_creds(opts.creds) if opts.creds is not None
                          else auth.lookup(f"{domain}/{repo}", opts.authfile))
        except PyruncError as e:
            raise PyruncError(f"getting username and password: {e}") from None
        self._cert_dir = certs.cert_dir(domain, opts.cert_dir)
        self._pool: urllib3.PoolManager | None = None
        self._lock = threading.RLock()   # the ping, and the pool's creation under it
        self._token_lock = threading.Lock()
        self._pinged = False
        self._ping_error: Optional[PyruncError] = None
        self.scheme = "https"
        self.challenges: list[tuple[str, dict]] = []
        self._tokens: dict[str, tuple[str, float]] = {}

    @property
    def name(self) -> str:
        """HOST/REPO as messages name the repository (docker.io, not registry-1)."""
        return f"{self.domain}/{self.repo}"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.registry}{path}"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()

    # --- the connection ---------------------------------------------------------

    def _pool_manager(self):
        if self._pool is not None:
            return self._pool
        with self._lock:
            if self._pool is not None:
                return self._pool
            import urllib3
            ctx = certs.ssl_context(self._cert_dir, self.verify)
            if not self.verify:   # asked for: not a warning on every request
                import warnings
                warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
            self._pool = urllib3.PoolManager(
                num_pools=4, maxsize=POOL_SIZE, ssl_context=ctx, retries=False,
                cert_reqs="CERT_REQUIRED" if self.verify else "CERT_NONE",
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT))
        return self._pool

    def _send(self, method: str, url: str, headers: dict, body):
        """One request; a network failure is raised as it came (see request)."""
        return self._pool_manager().urlopen(method, url, body=body, headers=headers, redirect=False,
                                           retries=False, preload_content=False,
                                           decode_content=True)

    def _send_following(self, method: str, url: str, headers: dict, body, follow: bool = True):
        """_send, following the redirects of GET and HEAD (a blob stored
        elsewhere); the Authorization header goes to the same host only."""
        for _ in range(MAX_REDIRECTS + 1):
            res = self._send(method, url, headers, body)
            res.pyrunc_url = url   # what relative Locations are relative to
            location = res.headers.get("Location")
            if not (follow and method in ("GET", "HEAD") and location
                    and res.status in (301, 302, 303, 307, 308)):
                return res
            res.drain_conn()
            res.release_conn()
            new = urljoin(url, location)
            if urlsplit(new)[:2] != urlsplit(url)[:2]:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = new
        op = method[:1] + method[1:].lower()
        raise PyruncError(f'{op} "{url}": stopped after {MAX_REDIRECTS} redirects')

    def _base_headers(self, headers: Optional[dict]) -> dict:
        h = {"Docker-Distribution-API-Version": "registry/2.0", "User-Agent": USER_AGENT}
        if headers:
            h.update(headers)
        return h

    def _host_of(self, url: str) -> str:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"

    # --- ping -------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/ once: HTTPS, and plain HTTP after it when TLS is not
        verified (--tls-verify=false), as containers/image's detectProperties."""
        with self._lock:
            if self._pinged:
                if self._ping_error is not None:
                    raise self._ping_error
                return
            self._pinged = True
            try:
                self._ping_scheme("https")
            except PyruncError as e:
                err: PyruncError | None = e
                if not self.verify:
                    try:
                        self._ping_scheme("http")
                        err = None
                    except PyruncError as e2:
                        err = e2
                if err is not None:
                    self._ping_error = PyruncError(f"pinging container registry {self.registry}: {err}")
                    raise self._ping_error from None

    def _ping_scheme(self, scheme: str) -> None:
        url = f"{scheme}://{self.registry}/v2/"
        res = self._call("GET", url, self._base_headers(None), None, retry_connect=False)
        body = read_body(res)
        if res.status not in (200, 401):
            raise response_error(res.status, body, self._challenges_of(res), res.reason)
        self.challenges = self._challenges_of(res)
        self.scheme = scheme

    @staticmethod
    def _challenges_of(res) -> list[tuple[str, dict]]:
        return auth.parse_challenges(res.headers.getlist("WWW-Authenticate"))

    # --- requests ---------------------------------------------------------------

    def _call(self, method: str, url: str, headers: dict, body, follow: bool = True,
              retry_connect: bool = True):
        """_send_following with retries: a dropped connection (and a refused
        one unless `retry_connect` is False) or a 429/5xx answer is tried
        again after a short wait, when the body can be sent again."""
        replayable = body is None or isinstance(body, (bytes, bytearray))
        attempt = 0
        while True:
            try:
                res = self._send_following(method, url, headers, body, follow)
            except PyruncError:
                raise
            except Exception as e:   # urllib3's and the socket's failures
                import urllib3.exceptions as ue
                # refused or timed out while connecting (NewConnectionError is a
                # ConnectTimeoutError): not tried again at the first contact
                connecting = isinstance(e, ue.ConnectTimeoutError) and not isinstance(e, ue.NameResolutionError)
                if replayable and attempt < len(RETRY_DELAYS) and (
                        retry_connect if connecting else _retryable(e)):
                    time.sleep(RETRY_DELAYS[attempt])
                    attempt += 1
                    continue
                raise network_error(method, url, e, self._host_of(url)) from None
            if res.status in RETRY_STATUSES and replayable and attempt < len(RETRY_DELAYS):
                delay = self._retry_after(res, RETRY_DELAYS[attempt])
                res.drain_conn()
                res.release_conn()
                time.sleep(delay)
                attempt += 1
                continue
            return res

    @staticmethod
    def _retry_after(res, fallback: float) -> float:
        value = res.headers.get("Retry-After")
        if value and value.isdigit():
            return min(float(value), MAX_RETRY_AFTER)
        return fallback

    def request(self, method: str, path: str, headers: Optional[dict] = None, body=None,
                authenticate: bool = True, follow: bool = True,
                extra_scope: Optional[auth.Scope] = None):
        """A request to the registry (`path` from /v2/, or a URL it gave,
        such as an upload's Location), authenticated as its challenges ask
        (a bearer token also granting `extra_scope` when given).
        Returns the urllib3 response, its body not read yet."""
        self.ping()
        url = path if "://" in path else self.url(path)
        extra: Optional[auth.Scope] = extra_scope
        retried_auth = False
        while True:
            h = self._base_headers(headers)
            if authenticate:
                value = self._authorization(extra)
                if value:
                    h["Authorization"] = value
            res = self._call(method, url, h, body, follow)
            if res.status != 401 or not authenticate or retried_auth or not (
                    body is None or isinstance(body, (bytes, bytearray))):
                return res
            retried_auth = True
            challenges = self._challenges_of(res)
            new_scope = self._insufficient_scope(challenges)
            if new_scope is not None:
                extra = new_scope
            elif not self.challenges and challenges:
                # the ping answered 200 but this resource wants credentials
                self.challenges = challenges
            elif any(c[0] == "bearer" for c in self.challenges):
                # a cached token refused before its time (clock skew,
                # revocation): ask for a new one, once
                with self._token_lock:
                    self._tokens.pop(str(extra) if extra is not None else "", None)
            else:
                return res
            res.drain_conn()
            res.release_conn()

    @staticmethod
    def _insufficient_scope(challenges) -> Optional[auth.Scope]:
        for scheme, params in challenges:
            if scheme == "bearer" and params.get("error") == "insufficient_scope" and params.get("scope"):
                return auth.Scope.parse(params["scope"])
        return None

    def get_external(self, url: str):
        """GET a URL that is not the registry's (a foreign layer's), with
        retries but never with our credentials (CVE-2020-15157)."""
        return self._call("GET", url, self._base_headers(None), None)

    @staticmethod
    def location(res) -> Optional[str]:
        """The absolute URL of a response's Location header."""
        value = res.headers.get("Location")
        return urljoin(res.pyrunc_url, value) if value else None

    def error(self, res, context: str) -> RegistryError:
        """The error of a failed answer, with `context: ` before it."""
        try:
            body = read_body(res)
        except PyruncError:
            body = b""
        return response_error(res.status, body, self._challenges_of(res), res.reason).wrap(context)

    # --- auth -------------------------------------------------------------------

    def _authorization(self, extra: Optional[auth.Scope]) -> Optional[str]:
        for scheme, params in self.challenges:
            if scheme == "basic":
                return auth.basic_header(self.creds) if (self.creds.username or self.creds.password) else None
            if scheme == "bearer":
                return "Bearer " + self._token(params, extra)
        return None

    def _token(self, params: dict, extra: Optional[auth.Scope]) -> str:
        key = str(extra) if extra is not None else ""
        with self._token_lock:
            cached = self._tokens.get(key)
            if cached is not None and time.time() < cached[1]:
                return cached[0]
            scopes = [self.scope] + ([extra] if extra is not None else [])
            token = self._fetch_token(params, scopes)
            self._tokens[key] = token
            return token[0]

    def _fetch_token(self, params: dict, scopes: list[auth.Scope]) -> tuple[str, float]:
        realm = params.get("realm")
        if not realm:
            raise PyruncError("missing realm in bearer auth challenge")
        query = urlencode(auth.token_query(self.creds, params, scopes))
        url = realm + ("&" if "?" in realm else "?") + query if query else realm
        headers = {"User-Agent": USER_AGENT}
        if self.creds.username and self.creds.password:
            headers["Authorization"] = auth.basic_header(self.creds)
        res = self._call("GET", url, headers, None)
        body = read_body(res, auth.MAX_TOKEN_BODY)
        if res.status == 200:
            return auth.parse_token_response(body, url)
        if res.status == 401:
            err = response_error(401, body, self._challenges_of(res), res.reason)
            raise RegistryError(f"unable to retrieve auth token: invalid username/password: {err}",
                                401, err.error_code)
        if res.status == 429:
            raise RegistryError("too many requests to registry", 429)
        raise RegistryError("Requesting bearer token: received unexpected HTTP status: "
                            f"{status_text(res.status, res.reason)}", res.status)


class BlobReader:
    """A blob's body; a connection dropped mid-way is picked up where it
    stopped with a Range request (a few times), as containers/image's
    bodyReader does, so one hiccup does not restart a big layer."""

    MAX_RESUMES = 3

    def __init__(self, client: Client, path: str, res) -> None:
        self._client = client
        self._path = path
        self._res = res
        self._offset = 0
        self._resumes = 0
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        if self._res is None:
            return b""
        if n is None or n < 0:   # piece by piece: what came before a drop is kept
            parts: list[bytes] = []
            while True:
                data = self.read(1 << 16)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        while True:
            try:
                data = self._res.read(n)
            except Exception as e:  # urllib3's and the socket's failures
                if isinstance(e, PyruncError) or not _retryable(e) or self._resumes >= self.MAX_RESUMES:
                    if isinstance(e, PyruncError):
                        raise
                    url = self._client.url(self._path)
                    raise PyruncError(f"reading blob {self._path.rsplit('/', 1)[-1]}: "
                                      f"{network_error('GET', url, e, self._client._host_of(url))}") from None
                self._resume()
                continue
            self._offset += len(data)
            if not data:
                self._eof = True
            return data

    def _resume(self) -> None:
        self._resumes += 1
        try:
            self._res.release_conn()
        except Exception:
            pass
        time.sleep(RETRY_DELAYS[min(self._resumes - 1, len(RETRY_DELAYS) - 1)])
        res = self._client.request("GET", self._path, {"Range": f"bytes={self._offset}-"})
        expect = f"bytes {self._offset}-"
        if res.status != 206 or not (res.headers.get("Content-Range") or "").startswith(expect):
            what = f"status {status_text(res.status, res.reason)}"
            res.drain_conn()
            res.release_conn()
            raise PyruncError(f"reading blob {self._path.rsplit('/', 1)[-1]}: the connection was dropped "
                              f"and the registry did not resume it at byte {self._offset} ({what})")
        self._res = res

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        # a body not read to its end leaves the connection unusable: close it
        if self._res is not None:
            try:
                if not self._eof:
                    self._res.close()
                self._res.release_conn()
            except Exception:
                pass
            self._res = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
