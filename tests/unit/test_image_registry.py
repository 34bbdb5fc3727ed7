"""The registry client's pure logic: WWW-Authenticate challenges, auth
files found and matched as containers/image's pkg/docker/config does,
registry errors worded as skopeo's, token answers, URLs, certs.d."""
from __future__ import annotations

import base64
import json
import os

import pytest

from pyrunc.errors import PyruncError
from pyrunc.image.registry import auth, certs, errors
from pyrunc.image.registry.client import Client, registry_host
from pyrunc.image.transport import Options
from pyrunc.image.transports import docker as D


# --- challenges --------------------------------------------------------------

@pytest.mark.parametrize("header, scheme, params", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
     "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"}),
    ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ('BEARER Realm="https://x/t", Service=reg , scope="repository:a/b:pull,push"',
     "bearer", {"realm": "https://x/t", "service": "reg", "scope": "repository:a/b:pull,push"}),
    ("Bearer realm=https://x/t,service=reg", "bearer", {"realm": "https"}),  # ':' ends a token (Go's parser)
    (r'Bearer realm="a\"b\\c"', "bearer", {"realm": 'a"b\\c'}),
    ('Bearer realm="x",error="insufficient_scope",scope="repository:r:pull"',
     "bearer", {"realm": "x", "error": "insufficient_scope", "scope": "repository:r:pull"}),
    ("Negotiate", "negotiate", {}),
    ('Bearer realm="unterminated', "bearer", {}),   # a broken value ends the parameters
    ("", "", {}),
])
def test_parse_challenge(header, scheme, params):
    assert auth.parse_challenge(header) == (scheme, params)


def test_parse_challenges_drops_empty():
    assert auth.parse_challenges(["", 'Basic realm="r"']) == [("basic", {"realm": "r"})]


def test_scope_and_token_query():
    s = auth.Scope("repository", "lib/alpine", "pull,push")
    assert str(s) == "repository:lib/alpine:pull,push"
    assert auth.Scope.parse("repository:x:pull") == auth.Scope("repository", "x", "pull")
    assert auth.Scope.parse("nonsense") is None
    q = auth.token_query(auth.Credentials("bob", "pw"), {"service": "reg"}, [s])
    assert q == [("account", "bob"), ("service", "reg"), ("scope", "repository:lib/alpine:pull,push")]
    assert auth.token_query(auth.Credentials(), {}, [s]) == [("scope", str(s))]


def test_token_response():
    tok, exp = auth.parse_token_response(b'{"token": "t1", "expires_in": 300}', "u", now=1000)
    assert (tok, exp) == ("t1", 1300)
    tok, exp = auth.parse_token_response(b'{"access_token": "t2"}', "u", now=1000)
    assert (tok, exp) == ("t2", 1000 + auth.MINIMUM_TOKEN_LIFETIME)   # short lifetimes raised to 60 s
    tok, exp = auth.parse_token_response(
        b'{"token": "t3", "expires_in": 120, "issued_at": "2020-01-01T00:00:00Z"}', "u")
    assert exp == 1577836800 + 120
    with pytest.raises(PyruncError, match=r'^decoding bearer token \(last URL "https://t/x", body start "<html>'):
        auth.parse_token_response(b"<html>nope</html>", "https://t/x")


# --- credentials -----------------------------------------------------------------

def test_parse_creds():
    assert auth.parse_creds("u:p:q") == auth.Credentials("u", "p:q")
    assert auth.parse_creds("u") == auth.Credentials("u", "")
    with pytest.raises(PyruncError, match="^credentials can't be empty$"):
        auth.parse_creds("")
    with pytest.raises(PyruncError, match="^username can't be empty$"):
        auth.parse_creds(":p")


def test_auth_file_paths_order(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    env = {"XDG_RUNTIME_DIR": str(run), "HOME": str(tmp_path / "home")}
    paths = auth.auth_file_paths(env=env, home=str(tmp_path / "home"))
    home = tmp_path / "home"
    assert paths == [auth.AuthPath(str(run / "containers/auth.json")),
                     auth.AuthPath(str(home / ".config/containers/auth.json")),
                     auth.AuthPath(str(home / ".docker/config.json")),
                     auth.AuthPath(str(home / ".dockercfg"), legacy=True)]
    env = {"XDG_CONFIG_HOME": "/cfg", "DOCKER_CONFIG": "/dc"}
    paths = auth.auth_file_paths(env=env, home="/h", uid=1234)
    assert [p.path for p in paths] == ["/run/containers/1234/auth.json", "/cfg/containers/auth.json",
                                       "/dc/config.json", "/h/.dockercfg"]
    # a missing $XDG_RUNTIME_DIR is skipped; --authfile or $REGISTRY_AUTH_FILE alone
    assert auth.auth_file_paths(env={"XDG_RUNTIME_DIR": "/nonexistent"}, home="/h")[0].path == \
        "/h/.config/containers/auth.json"
    assert auth.auth_file_paths("/a.json", env=env) == [auth.AuthPath("/a.json")]
    assert auth.auth_file_paths(env={"REGISTRY_AUTH_FILE": "/r.json"}) == [auth.AuthPath("/r.json")]


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_lookup_matches_as_containers_image(tmp_path):
    f = tmp_path / "auth.json"
    f.write_text(json.dumps({"auths": {
        "reg.example:5000": {"auth": _b64("host:pw")},
        "reg.example:5000/team": {"auth": _b64("team:pw")},
        "reg.example:5000/team/app": {"auth": _b64("app:pw\x00\x00")},
        "https://index.docker.io/v1/": {"auth": _b64("hub:pw")},
        "http://other.example/v2/": {"auth": _b64("other:pw")},
        "helper.example": {},
    }}))
    look = lambda key: auth.lookup(key, str(f))  # noqa: E731
    assert look("reg.example:5000/team/app") == auth.Credentials("app", "pw")   # NULs trimmed
    assert look("reg.example:5000/team/other") == auth.Credentials("team", "pw")
    assert look("reg.example:5000/x") == auth.Credentials("host", "pw")
    assert look("reg.example/x") == auth.Credentials()                     # the port matters
    assert look("docker.io/library/alpine") == auth.Credentials("hub", "pw")   # normalized keys
    assert look("other.example/a") == auth.Credentials("other", "pw")
    assert look("helper.example/a") == auth.Credentials()


def test_lookup_order_and_legacy(tmp_path):
    home = tmp_path / "home"
    (home / ".config/containers").mkdir(parents=True)
    (home / ".docker").mkdir()
    (home / ".docker/config.json").write_text(json.dumps({"auths": {"r.io": {"auth": _b64("docker:1")}}}))
    (home / ".dockercfg").write_text(json.dumps({"https://legacy.io/v1/": {"auth": _b64("legacy:2")}}))
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "missing")}
    assert auth.lookup("r.io/a", env=env, home=str(home)) == auth.Credentials("docker", "1")
    assert auth.lookup("legacy.io/a", env=env, home=str(home)) == auth.Credentials("legacy", "2")
    (home / ".config/containers/auth.json").write_text(json.dumps({"auths": {"r.io": {"auth": _b64("podman:3")}}}))
    assert auth.lookup("r.io/a", env=env, home=str(home)) == auth.Credentials("podman", "3")


def test_auth_file_errors(tmp_path):
    f = tmp_path / "auth.json"
    f.write_text("{not json")
    with pytest.raises(PyruncError, match=rf'^reading JSON file "{f}": unmarshaling JSON'):
        auth.lookup("r.io/a", str(f))
    f.write_text(json.dumps({"auths": {"r.io": {"auth": "!!!"}}}))
    with pytest.raises(PyruncError, match="is not valid base64"):
        auth.lookup("r.io/a", str(f))
    assert auth.lookup("r.io/a", str(tmp_path / "none.json")) == auth.Credentials()


def test_client_credentials_error_is_one_line(tmp_path):
    f = tmp_path / "auth.json"
    f.write_text("[")
    with pytest.raises(PyruncError, match="^getting username and password: reading JSON file"):
        Client("r.io", "a", "pull", Options(authfile=str(f)))
    with pytest.raises(PyruncError, match="^docker reference has no registry domain$"):
        Client("", "a", "pull", Options())


# --- errors --------------------------------------------------------------------

def _body(code, message, detail=None):
    e = {"code": code, "message": message}
    if detail is not None:
        e["detail"] = detail
    return json.dumps({"errors": [e, {"code": "UNKNOWN", "message": "second"}]}).encode()


@pytest.mark.parametrize("status, body, want", [
    (404, _body("MANIFEST_UNKNOWN", "manifest unknown", {"Tag": "x"}), "manifest unknown"),
    (404, _body("NAME_UNKNOWN", "repository name not known to registry"), "repository name not known to registry"),
    (401, _body("UNAUTHORIZED", "authentication required"), "authentication required"),
    (403, _body("DENIED", "go away"), "denied: go away"),
    (400, _body("WEIRD_CODE", "odd"), "unknown: odd"),
    (401, b"", "authentication required"),
    (403, b"<html>forbidden</html>", 'StatusCode: 403, "<html>forbidden</html>"'),
    (404, b"x" * 60, 'StatusCode: 404, "' + "x" * 50 + '..."'),
    (429, b'{"details": "slow down"}', "toomanyrequests: slow down"),
    (500, b"oops", "received unexpected HTTP status: 500 Internal Server Error"),
])
def test_response_error(status, body, want):
    e = errors.response_error(status, body)
    assert str(e) == want and e.status == status


def test_response_error_bearer_challenge():
    ch = [("bearer", {"error": "insufficient_scope", "error_description": "no push for you"})]
    assert str(errors.response_error(401, b"", ch)) == "denied: no push for you"
    ch = [("bearer", {"error": "invalid_token"})]
    assert str(errors.response_error(401, b"", ch)) == "authentication required"


def test_network_reason():
    import socket
    import ssl
    try:
        raise OSError("wrapped") from ConnectionRefusedError(111, "Connection refused")
    except OSError as e:
        assert errors.network_reason(e, "h:1") == "dial tcp h:1: connect: connection refused"
    e = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    e.verify_message = "self-signed certificate"
    assert errors.network_reason(e, "h:1") == \
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    e = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    e.reason = "WRONG_VERSION_NUMBER"
    assert errors.network_reason(e, "h:1") == "http: server gave HTTP response to HTTPS client"
    e = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    e.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert errors.network_reason(e, "h:1") == "remote error: tls: certificate required"
    import http.client
    assert errors.network_reason(http.client.RemoteDisconnected("closed"), "h:1") == "EOF"
    assert errors.network_reason(http.client.BadStatusLine("SSH-2.0-x\r\n"), "h:1") == \
        'malformed HTTP response "SSH-2.0-x\\r\\n"'
    e = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert errors.network_reason(e, "nohost.invalid:443") == "dial tcp: lookup nohost.invalid: no such host"
    assert str(errors.network_error("GET", "https://h/v2/", e, "h:443")) == \
        'Get "https://h/v2/": dial tcp: lookup h: no such host'


# --- URLs and media types ---------------------------------------------------------------

def test_registry_host_and_urls():
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("quay.io") == "quay.io"
    c = Client("docker.io", "library/alpine", "pull", Options(creds="u:p"))
    assert c.url("/v2/") == "https://registry-1.docker.io/v2/"
    assert c.name == "docker.io/library/alpine"
    assert str(c.scope) == "repository:library/alpine:pull"


def test_upload_url_digest():
    d = "sha256:" + "a" * 64
    assert D._with_digest("http://h/v2/r/blobs/uploads/u1?_state=abc", d) == \
        f"http://h/v2/r/blobs/uploads/u1?_state=abc&digest=sha256%3A{'a' * 64}"
    assert D._with_digest("http://h/up?digest=old", d).endswith("?digest=sha256%3A" + "a" * 64)


def test_guess_media_type():
    from pyrunc.image import mediatypes as M
    assert M.guess_media_type(b'{"schemaVersion": 1, "signatures": []}') == M.SCHEMA1_SIGNED
    assert M.guess_media_type(b'{"schemaVersion": 1}') == M.SCHEMA1
    assert M.guess_media_type(b'{"schemaVersion": 2, "manifests": []}') == M.OCI_INDEX
    assert M.guess_media_type(json.dumps({"schemaVersion": 2, "config": {"mediaType": M.DOCKER_CONFIG}}).encode()) \
        == M.DOCKER_MANIFEST
    assert M.guess_media_type(b'{"schemaVersion": 2, "config": {}}') == M.OCI_MANIFEST
    assert M.guess_media_type(json.dumps({"mediaType": M.DOCKER_LIST}).encode()) == M.DOCKER_LIST
    assert M.guess_media_type(b"not json") == ""
    assert D.simplify_content_type("application/JSON; charset=utf-8") == "application/json"


def test_accept_list_is_skopeos():
    assert D.ACCEPT.split(", ") == [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json"]


# --- certs.d ------------------------------------------------------------------------

def test_cert_dir_lookup(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "reg:5000").mkdir(parents=True)
    monkeypatch.setattr(certs, "PER_HOST_DIRS", (str(a), str(b)))
    assert certs.cert_dir("reg:5000") == str(b / "reg:5000")
    (a / "reg:5000").mkdir(parents=True)
    assert certs.cert_dir("reg:5000") == str(a / "reg:5000")
    assert certs.cert_dir("other") is None
    assert certs.cert_dir("reg:5000", "/explicit") == "/explicit"


def test_cert_dir_errors(tmp_path):
    (tmp_path / "client.cert").write_text("x")
    with pytest.raises(PyruncError, match=r"^missing key client.key for client certificate client.cert\. "
                                          r"Note that CA certificates should use the extension \.crt$"):
        certs.ssl_context(str(tmp_path), True)
    os.unlink(tmp_path / "client.cert")
    (tmp_path / "lone.key").write_text("x")
    with pytest.raises(PyruncError, match="^missing client certificate lone.cert for key lone.key$"):
        certs.ssl_context(str(tmp_path), True)
    os.unlink(tmp_path / "lone.key")
    (tmp_path / "bad.crt").write_text("not a certificate")
    with pytest.raises(PyruncError, match=f"^loading {tmp_path}/bad.crt: "):
        certs.ssl_context(str(tmp_path), True)
    assert certs.ssl_context(str(tmp_path / "none"), False).verify_mode == 0


# --- registries.conf --------------------------------------------------------------------

from pyrunc.image.registry import registriesconf  # noqa: E402


@pytest.mark.parametrize("ref, prefix, ok", [
    ("reg.io/a/b", "reg.io", True), ("reg.io", "reg.io", True), ("reg.io:5000/a", "reg.io", True),
    ("reg.io/a/b", "reg.io/a", True), ("reg.io/ab", "reg.io/a", False), ("reg.iox/a", "reg.io", False),
    ("x.example.com/a", "*.example.com", True), ("a.b.example.com:1/a", "*.example.com", True),
    ("example.com/a", "*.example.com", False), ("h/x.example.com", "*.example.com", False),
])
def test_registries_conf_prefix_match(ref, prefix, ok):
    assert registriesconf._matches(ref, prefix) is ok


def test_registries_conf_files_merge_and_longest_prefix(tmp_path):
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text('[registries.insecure]\nregistries = ["old.io"]\n'
                 '[[registry]]\nlocation = "reg.io"\ninsecure = true\n'
                 '[[registry]]\nprefix = "reg.io/secure"\nlocation = "reg.io/secure/"\n')
    b.write_text('[[registry]]\nlocation = "bad.io"\nblocked = true\n'
                 '[[registry]]\nlocation = "old.io"\ninsecure = false\n')
    files = [str(a), str(tmp_path / "missing.conf"), str(b)]
    assert registriesconf.find("reg.io/x/y", files) == registriesconf.RegistryConf("reg.io", True, False)
    assert registriesconf.find("reg.io/secure/y", files).insecure is False
    assert registriesconf.find("bad.io/x", files).blocked
    assert registriesconf.find("old.io/x", files).insecure is False     # the later file wins
    assert registriesconf.find("other.io/x", files) is None
    (tmp_path / "c.conf").write_text('[[registry]]\nlocation = "https://x.io"\n')
    with pytest.raises(PyruncError, match="^invalid location 'https://x.io': URI schemes are not supported$"):
        registriesconf.find("x.io/a", [str(tmp_path / "c.conf")])


def test_client_uses_registries_conf(tmp_path, monkeypatch):
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nlocation = "insecure.io"\ninsecure = true\n'
                    '[[registry]]\nlocation = "blocked.io/team"\nblocked = true\n')
    monkeypatch.setattr(registriesconf, "config_files", lambda home=None: [str(conf)])
    assert Client("insecure.io", "a", "pull", Options(creds="u:p")).verify is False
    assert Client("insecure.io", "a", "pull", Options(creds="u:p", tls_verify=True)).verify is True
    assert Client("secure.io", "a", "pull", Options(creds="u:p")).verify is True
    with pytest.raises(PyruncError, match="^registry blocked.io/team is blocked in registries.conf$"):
        Client("blocked.io", "team/app", "pull", Options(creds="u:p"))
    conf.write_text("[[registry]\n")
    with pytest.raises(PyruncError, match=f"^loading registries: loading registries configuration {conf}: "):
        Client("x.io", "a", "pull", Options(creds="u:p"))


def test_credential_helper(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread reg\n'
                      'case "$reg" in\n'
                      '  known.io) echo \'{"ServerURL":"known.io","Username":"hu","Secret":"hs"}\';;\n'
                      '  broken.io) echo "keychain locked"; exit 3;;\n'
                      '  *) echo "credentials not found in native keychain"; exit 1;;\n'
                      'esac\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    f = tmp_path / "auth.json"
    f.write_text(json.dumps({"credHelpers": {"known.io": "fake", "other.io": "fake", "broken.io": "fake",
                                             "gone.io": "missing"},
                             "auths": {"other.io": {"auth": _b64("file:pw")}}}))
    assert auth.lookup("known.io/a/b", str(f)) == auth.Credentials("hu", "hs")
    assert auth.lookup("other.io/a", str(f)) == auth.Credentials()      # the helper wins, and has none
    with pytest.raises(PyruncError, match="^looking up credentials for broken.io in credential helper fake: "
                                          "keychain locked$"):
        auth.lookup("broken.io/a", str(f))
    with pytest.raises(PyruncError, match='executable file not found in \\$PATH$'):
        auth.lookup("gone.io/a", str(f))


def test_registry_error_pickles_with_its_attributes():
    import pickle
    e = errors.response_error(404, _body("MANIFEST_UNKNOWN", "manifest unknown")).wrap("reading manifest x in r/a")
    got = pickle.loads(pickle.dumps(e))
    assert (type(got), got.args, vars(got)) == (type(e), e.args, vars(e))
    assert (got.status, got.error_code, str(got)) == \
        (404, "MANIFEST_UNKNOWN", "reading manifest x in r/a: manifest unknown")
