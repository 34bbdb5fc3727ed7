"""Local registries for tests: Debian's docker-registry (distribution 2.8)
on 127.0.0.1 with a free port and a temporary storage directory, plain,
with htpasswd (Basic) auth, with TLS (a CA made by openssl here), or with
token (Bearer) auth served by a small token service in a thread that signs
RS256 JWTs with an openssl-made key.

    with RegistryServer(tmp, auth="htpasswd", users={"u": "p"}) as reg:
        reg.host   # "127.0.0.1:PORT"
"""
from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Optional

REGISTRY_BIN = "/usr/bin/docker-registry"


def available() -> Optional[str]:
    """None when a registry can be run here, else why not."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        return f"{REGISTRY_BIN} is not installed (Debian package docker-registry)"
    if shutil.which("openssl") is None:
        return "openssl is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, cwd: Optional[Path] = None, data: Optional[bytes] = None) -> bytes:
    return subprocess.run(args, cwd=cwd, input=data, check=True, capture_output=True).stdout


def make_ca_and_server_cert(d: Path, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(ca.crt, server.cert, server.key): a CA and a server certificate it
    signed for `ip` (EC keys: fast to make)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=pyrunc test CA", cwd=d)
    _run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={ip}", cwd=d)
    (d / "ext.cnf").write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.cert", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d / "ca.crt", d / "server.cert", d / "server.key"


def make_client_cert(d: Path, ca: Path, ca_key: Path, name: str = "client") -> tuple[Path, Path]:
    """(NAME.cert, NAME.key): a client certificate signed by the CA."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run("openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.cnf").write_text("extendedKeyUsage=clientAuth\n")
    _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", f"{name}.cert", "-days", "2", "-extfile", f"{name}.cnf", cwd=d)
    return d / f"{name}.cert", d / f"{name}.key"


def bcrypt_hash(password: str) -> str:
    """An htpasswd bcrypt hash (crypt's METHOD_BLOWFISH, else the bcrypt module)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
            if crypt.METHOD_BLOWFISH in crypt.methods:
                return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
        except ImportError:
            pass
    import bcrypt  # type: ignore[import-not-found]
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """A token server (the distribution token auth spec): GET /token with
    service, scope and (optionally) Basic credentials; grants the asked
    scope to a known user, `pull` only to anonymous callers when
    `anonymous_pull`, and answers 401 to wrong credentials."""

    def __init__(self, d: Path, users: dict[str, str], service: str, issuer: str,
                 anonymous_pull: bool = True) -> None:
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key",
             "-out", "token.crt", "-days", "2", "-subj", "/CN=pyrunc test token issuer", cwd=d)
        der = _run("openssl", "x509", "-in", "token.crt", "-outform", "DER", cwd=d)
        self.cert = d / "token.crt"
        self.key = d / "token.key"
        self.x5c = base64.b64encode(der).decode()
        self.users, self.service, self.issuer = users, service, issuer
        self.anonymous_pull = anonymous_pull
        self.requests: list[dict] = []     # what was asked: account, scope, authenticated
        self.port = free_port()
        self._server: Optional[http.server.ThreadingHTTPServer] = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = _run("openssl", "dgst", "-sha256", "-sign", str(self.key), data=signing_input.encode())
        return f"{signing_input}.{_b64url(sig)}"

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        user = None
        authz = handler.headers.get("Authorization", "")
        if authz.startswith("Basic "):
            u, _, p = base64.b64decode(authz[6:]).decode().partition(":")
            if self.users.get(u) != p:
                self.requests.append({"account": u, "scope": q.get("scope", []), "ok": False})
                body = json.dumps({"details": "invalid username or password"}).encode()
                handler.send_response(401)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)
                return
            user = u
        access = []
        for scope in q.get("scope", []):
            typ, name, actions = scope.split(":")
            wanted = actions.split(",")
            granted = wanted if user else (["pull"] if self.anonymous_pull and "pull" in wanted else [])
            if granted:
                access.append({"type": typ, "name": name, "actions": granted})
        self.requests.append({"account": user, "scope": q.get("scope", []), "ok": True})
        now = int(time.time())
        token = self.sign({"iss": self.issuer, "sub": user or "", "aud": self.service,
                           "exp": now + 300, "nbf": now - 10, "iat": now,
                           "jti": base64.b16encode(os.urandom(8)).decode(), "access": access})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> None:
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                svc._answer(self)

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class RegistryServer:
    """docker-registry serve, in one flavour: auth None, "htpasswd" or
    "token"; tls True for HTTPS with a CA of its own (`ca`, `cert_dir`
    holding ca.crt); client_certs True to require a client certificate
    signed by that CA (then in `cert_dir` too, as client.cert/client.key)."""

    def __init__(self, tmp: Path, auth: Optional[str] = None, tls: bool = False,
                 users: Optional[dict[str, str]] = None, anonymous_pull: bool = True,
                 client_certs: bool = False) -> None:
        self.client_certs = client_certs
        self.dir = Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.auth, self.tls = auth, tls
        self.users = users or {}
        self.anonymous_pull = anonymous_pull
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        self.token: Optional[TokenService] = None
        self.ca: Optional[Path] = None
        self.cert_dir: Optional[Path] = None

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.dir / 'storage'}",
                 "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}", "  secret: pyrunc-test-secret"]
        if self.tls:
            ca, cert, key = make_ca_and_server_cert(self.dir / "tls")
            self.ca = ca
            self.cert_dir = self.dir / "certs.d"
            self.cert_dir.mkdir(exist_ok=True)
            shutil.copy(ca, self.cert_dir / "ca.crt")
            lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
            if self.client_certs:
                ccert, ckey = make_client_cert(self.dir / "tls", ca, self.dir / "tls" / "ca.key")
                shutil.copy(ccert, self.cert_dir / "client.cert")
                shutil.copy(ckey, self.cert_dir / "client.key")
                lines += ["    clientcas:", f"      - {ca}"]
        if self.auth == "htpasswd":
            htpasswd = self.dir / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in self.users.items()))
            lines += ["auth:", "  htpasswd:", "    realm: pyrunc-test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            self.token = TokenService(self.dir / "token", self.users, "pyrunc-test-registry",
                                      "pyrunc-test-issuer", self.anonymous_pull)
            self.token.start()
            lines += ["auth:", "  token:", f"    realm: {self.token.realm}",
                      f"    service: {self.token.service}", f"    issuer: {self.token.issuer}",
                      f"    rootcertbundle: {self.token.cert}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "RegistryServer":
        config = self.dir / "config.yml"
        config.write_text(self._config())
        self.log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: " + (self.dir / "registry.log").read_text()[-2000:])
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start listening in 15 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        if self.token is not None:
            self.token.stop()
            self.token = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"


class FakeRegistry:
    """A scripted registry (http.server in a thread) for what a real one
    will not do on demand: wrong bytes, redirects, 5xx, dropped
    connections, Link pages, schema 1. `routes` maps a path to a callable
    (handler, query) -> None that writes the whole answer; every request
    is recorded in `requests` as (method, path, headers)."""

    def __init__(self, basic_auth: Optional[tuple[str, str]] = None) -> None:
        self.routes: dict = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.basic_auth = basic_auth
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                path, _, query = self.path.partition("?")
                fake.requests.append((self.command, self.path, dict(self.headers)))
                if fake.basic_auth and path.startswith("/v2/") and self.headers.get("Host", "").startswith("127."):
                    want = "Basic " + base64.b64encode(":".join(fake.basic_auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        return reply(self, 401, error_body("UNAUTHORIZED", "authentication required"),
                                     {"WWW-Authenticate": 'Basic realm="fake"'})
                route = fake.routes.get(path)
                if route is None:
                    return reply(self, 404, error_body("NAME_UNKNOWN", "repository name not known to registry"))
                route(self, urllib.parse.parse_qs(query))

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, *args) -> None:
                pass

        self.routes["/v2/"] = lambda h, q: reply(h, 200, b"{}")
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeRegistry":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def error_body(code: str, message: str) -> bytes:
    """A registry's error answer (the distribution spec's errors list)."""
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def reply(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
          headers: Optional[dict] = None, length: Optional[int] = None) -> None:
    """One answer; `length` announces another Content-Length than len(body)
    (then the connection is closed after the body: a dropped connection)."""
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    if length is not None:
        h.send_header("Connection", "close")
        h.close_connection = True
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)
        h.wfile.flush()
