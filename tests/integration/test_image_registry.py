"""The docker:// transport against real registries (Debian's docker-registry,
distribution 2.8: plain HTTP, htpasswd, TLS with a CA of its own, token
auth with a token service of our own; tests/registry_server.py), cross-
checked with skopeo both ways, and against a scripted fake registry for
what a real one will not do on demand (wrong bytes, redirects, 5xx,
dropped connections, Link pages, schema 1)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from oci_layout import OCI_INDEX, LayoutBuilder, entry, layer_tar
from registry_server import FakeRegistry, RegistryServer, available, bcrypt_hash, error_body, free_port, reply
from pyrunc.errors import PyruncError
from pyrunc.image import digest as digests
from pyrunc.image.registry import certs, client as client_mod
from pyrunc.image.transport import Options
from pyrunc.image.transports import open_destination, open_source
from pyrunc.image.transports import docker as docker_mod

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")
USERS = {"alice": "wonderland"}
HAVE_SKOPEO = shutil.which("skopeo") is not None
needs_skopeo = pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")
INSECURE = Options(tls_verify=False)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- fixtures --------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fresh_blob_locations(monkeypatch):
    """Each test starts without the blob locations earlier ones recorded
    (else pushes mount instead of uploading)."""
    monkeypatch.setattr(docker_mod, "_locations", {})


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("registry")


def _server(work: Path, name: str, **kw):
    reg = RegistryServer(work / name, **kw).start()
    return reg


@pytest.fixture(scope="module")
def reg_plain(work):
    reg = _server(work, "plain")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def reg_basic(work):
    try:
        bcrypt_hash("probe")
    except ImportError:
        pytest.skip("no bcrypt for htpasswd: Python's crypt module (< 3.13) or the bcrypt module")
    reg = _server(work, "basic", auth="htpasswd", users=USERS)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def reg_tls(work):
    reg = _server(work, "tls", tls=True)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def reg_token(work):
    reg = _server(work, "token", auth="token", users=USERS, anonymous_pull=True)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def layout(work) -> Path:
    """Two gzip layers (one of 40 KiB of noise: several upload chunks) and a config."""
    b = LayoutBuilder(work / "layout")
    noise = layer_tar([entry("noise", data=os.urandom(40 << 10))])
    b.tag(b.image([layer_tar([entry("etc/motd", data=b"hi\n")]), noise], {"Cmd": ["sh"]}, gzip_layers=True), "v1")
    return b.path


@pytest.fixture(scope="module")
def multi(work) -> Path:
    """An index of two platforms (amd64, arm64)."""
    b = LayoutBuilder(work / "multi")
    descs = []
    for arch in ("amd64", "arm64"):
        d = b.image([layer_tar([entry("arch", data=arch.encode())])], arch=arch, gzip_layers=True)
        descs.append({**d, "platform": {"os": "linux", "architecture": arch}})
    index = b.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}).encode(), OCI_INDEX)
    b.tag(index, "all")
    return b.path


def layout_manifest(path: Path, ref: str = "v1") -> tuple[dict, bytes]:
    index = json.loads((path / "index.json").read_text())
    desc = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == ref)
    return desc, (path / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()


def blob_bytes(path: Path, d: str) -> bytes:
    return (path / "blobs" / "sha256" / d.split(":")[1]).read_bytes()


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def skopeo_push(layout: Path, ref: str, dest: str, *flags: str) -> None:
    skopeo("copy", "-q", "--all", "--dest-tls-verify=false", *flags, f"oci:{layout}:{ref}", f"docker://{dest}")


def read_all(src, desc: dict) -> bytes:
    r = digests.VerifyingReader(src.get_blob(desc), desc["digest"], desc["size"])
    data = r.read()
    r.finish()
    r.close()
    return data


def push_image(layout: Path, dest: str, opts: Options, ref: str = "v1", monolithic_max=None, chunk_size=None):
    """Our ImageDestination, fed from the layout's files; returns the requests' methods."""
    desc, raw = layout_manifest(layout, ref)
    dst = open_destination(f"docker://{dest}", opts)
    if monolithic_max is not None:
        dst.monolithic_max = monolithic_max
    if chunk_size is not None:
        dst.chunk_size = chunk_size
    methods = []
    orig = dst.client.request

    def spy(method, path, *a, **kw):
        methods.append(method)
        return orig(method, path, *a, **kw)
    dst.client.request = spy
    try:
        manifests = [(raw, desc["mediaType"], None)]
        doc = json.loads(raw)
        if "manifests" in doc:   # an index: its instances first, by digest
            manifests = [(blob_bytes(layout, m["digest"]), m["mediaType"], m["digest"]) for m in doc["manifests"]] \
                + manifests
        for mraw, mt, inst in manifests:
            m = json.loads(mraw)
            for b in [m["config"]] + m["layers"] if "config" in m else []:
                if not dst.has_blob(b):
                    with open(layout / "blobs" / "sha256" / b["digest"].split(":")[1], "rb") as f:
                        dst.put_blob(b, digests.VerifyingReader(f, b["digest"], b["size"]))
                assert dst.has_blob(b)
            dst.put_manifest(mraw, mt, inst)
        dst.commit()
    finally:
        dst.close()
    return methods


# --- pull ------------------------------------------------------------------------

@needs_skopeo
def test_pull_what_skopeo_pushed(reg_plain, layout):
    skopeo_push(layout, "v1", f"{reg_plain.host}/pull/app:v1")
    desc, raw = layout_manifest(layout)
    src = open_source(f"docker://{reg_plain.host}/pull/app:v1", INSECURE)
    try:
        got, mt = src.get_manifest()
        assert got == raw and sha(got) == desc["digest"] and mt == desc["mediaType"]
        m = json.loads(got)
        for b in [m["config"]] + m["layers"]:
            assert read_all(src, b) == blob_bytes(layout, b["digest"])
        assert src.tags() == ["v1"]
        assert src.client.scheme == "http"    # HTTPS refused, then HTTP as skopeo --tls-verify=false
    finally:
        src.close()
    # by digest too
    src = open_source(f"docker://{reg_plain.host}/pull/app@{desc['digest']}", INSECURE)
    assert src.get_manifest()[0] == raw
    src.close()


@needs_skopeo
def test_pull_index_and_instances(reg_plain, multi):
    skopeo_push(multi, "all", f"{reg_plain.host}/pull/multi:all")
    desc, raw = layout_manifest(multi, "all")
    src = open_source(f"docker://{reg_plain.host}/pull/multi:all", INSECURE)
    try:
        got, mt = src.get_manifest()
        assert (got, mt) == (raw, OCI_INDEX)
        for inst in json.loads(got)["manifests"]:
            iraw, imt = src.get_manifest(inst["digest"])
            assert iraw == blob_bytes(multi, inst["digest"]) and imt == inst["mediaType"]
    finally:
        src.close()


def test_parallel_blob_reads_share_one_client(reg_plain, layout):
    """Six threads read blobs at once through one source (the copy engine's way)."""
    from concurrent.futures import ThreadPoolExecutor
    push_image(layout, f"{reg_plain.host}/par/app:v1", INSECURE)
    src = open_source(f"docker://{reg_plain.host}/par/app:v1", INSECURE)
    m = json.loads(src.get_manifest()[0])
    blobs = ([m["config"]] + m["layers"]) * 4
    with ThreadPoolExecutor(6) as ex:
        got = list(ex.map(lambda b: read_all(src, b), blobs))
    assert [sha(g) for g in got] == [b["digest"] for b in blobs]
    src.close()


# --- push ------------------------------------------------------------------------

@needs_skopeo
@pytest.mark.parametrize("mode", ["monolithic", "streamed", "chunked"])
def test_push_read_back_by_skopeo(reg_plain, layout, tmp_path, mode):
    repo = f"{reg_plain.host}/push/{mode}:v1"
    kw = {"monolithic": {"monolithic_max": 1 << 30}, "streamed": {"monolithic_max": 0},
          "chunked": {"monolithic_max": 0, "chunk_size": 16 << 10}}[mode]
    methods = push_image(layout, repo, INSECURE, **kw)
    if mode == "monolithic":
        assert "PATCH" not in methods
    elif mode == "streamed":
        assert methods.count("PATCH") == methods.count("POST") == 3   # one per blob
    else:
        assert methods.count("PATCH") >= 5   # 40 KiB of noise in 16 KiB chunks, plus the small blobs
    desc, raw = layout_manifest(layout)
    assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo}").stdout.encode() == raw
    out = tmp_path / "out"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{repo}", f"oci:{out}:v1")
    got = json.loads((out / "index.json").read_text())["manifests"][0]
    assert got["digest"] == desc["digest"]
    for b in [json.loads(raw)["config"]] + json.loads(raw)["layers"]:
        assert blob_bytes(out, b["digest"]) == blob_bytes(layout, b["digest"])


@needs_skopeo
def test_push_index(reg_plain, multi):
    repo = f"{reg_plain.host}/push/multi:all"
    push_image(multi, repo, INSECURE, ref="all")
    desc, raw = layout_manifest(multi, "all")
    assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo}").stdout.encode() == raw
    inst = json.loads(raw)["manifests"][1]["digest"]
    assert skopeo("inspect", "--raw", "--tls-verify=false",
                  f"docker://{reg_plain.host}/push/multi@{inst}").stdout.encode() == blob_bytes(multi, inst)


@pytest.mark.parametrize("mode", ["monolithic", "streamed", "chunked"])
def test_push_blob_digest_mismatch_leaves_nothing(reg_plain, mode, tmp_path):
    """The stream is checked (stream.finish()) before the PUT that would make
    the blob exist: bytes that are not the digest's never land."""
    data = b"the real content" * 100
    wrong = {"digest": sha(b"something else"), "size": len(data),
             "mediaType": "application/vnd.oci.image.layer.v1.tar"}
    dst = open_destination(f"docker://{reg_plain.host}/push/bad:{mode}", INSECURE)
    if mode != "monolithic":
        dst.monolithic_max, dst.chunk_size = 0, (500 if mode == "chunked" else None)
    f = tmp_path / "blob"
    f.write_bytes(data)
    with open(f, "rb") as fh, pytest.raises(digests.DigestError, match="content does not match its digest"):
        dst.put_blob(wrong, digests.VerifyingReader(fh, wrong["digest"], wrong["size"]))
    assert not dst.has_blob(wrong)
    assert not dst.has_blob({"digest": sha(data), "size": len(data)})
    dst.close()


def test_push_source_failure_mid_stream_is_the_sources(reg_plain):
    """A source that fails while its blob streams up is reported as itself,
    not as a network failure, and the upload is dropped."""
    class Failing:
        def __init__(self):
            self.n = 0

        def read(self, n=-1):
            self.n += 1
            if self.n > 3:
                raise OSError(5, "Input/output error (the source disk)")
            return b"x" * 1000

        def close(self):
            pass
    data_digest = sha(b"x" * 10_000)
    dst = open_destination(f"docker://{reg_plain.host}/push/failing:v1", INSECURE)
    dst.monolithic_max = 0
    with pytest.raises(OSError, match="the source disk"):
        dst.put_blob({"digest": data_digest, "size": 10_000}, digests.VerifyingReader(Failing(), data_digest, 10_000))
    assert not dst.has_blob({"digest": data_digest, "size": 10_000})
    dst.close()


@needs_skopeo
@pytest.mark.parametrize("flavour", ["reg_plain", "reg_token"])
def test_push_mounts_blobs_from_another_repository(flavour, layout, request):
    reg = request.getfixturevalue(flavour)
    opts = Options(tls_verify=False, creds="alice:wonderland" if flavour == "reg_token" else None)
    first = push_image(layout, f"{reg.host}/mount/one:v1", opts)
    assert first.count("PUT") == 4      # three blobs uploaded, and the manifest
    if flavour == "reg_token":
        reg.token.requests.clear()
    second = push_image(layout, f"{reg.host}/mount/two:v1", opts)
    assert second.count("POST") == 3 and second.count("PUT") == 1   # three mounts; the manifest PUT only
    if flavour == "reg_token":   # the mount's token also grants pull on the first repository
        assert ["repository:mount/two:pull,push", "repository:mount/one:pull"] in \
            [r["scope"] for r in reg.token.requests]
    creds = ["--creds", "alice:wonderland"] if flavour == "reg_token" else []
    assert skopeo("inspect", "--raw", "--tls-verify=false", *creds,
                  f"docker://{reg.host}/mount/two:v1").stdout.encode() == layout_manifest(layout)[1]


def test_nothing_tagged_before_commit(reg_plain, layout):
    desc, raw = layout_manifest(layout)
    dst = open_destination(f"docker://{reg_plain.host}/push/uncommitted:v1", INSECURE)
    dst.put_manifest(raw, desc["mediaType"])
    dst.close()
    with pytest.raises(PyruncError, match="^reading manifest v1 in .*/push/uncommitted: "):
        open_source(f"docker://{reg_plain.host}/push/uncommitted:v1", INSECURE)


def test_put_manifest_instance_digest_checked(reg_plain, layout):
    desc, raw = layout_manifest(layout)
    dst = open_destination(f"docker://{reg_plain.host}/push/x:v1", INSECURE)
    with pytest.raises(PyruncError, match=r"^Attempted to PutManifest using an explicitly specified digest"):
        dst.put_manifest(raw, desc["mediaType"], sha(b"other"))
    dst.close()


def test_push_manifest_with_missing_blobs_is_one_line(reg_plain, layout):
    desc, raw = layout_manifest(layout)
    dst = open_destination(f"docker://{reg_plain.host}/push/missing:v1", INSECURE)
    dst.put_manifest(raw, desc["mediaType"])
    with pytest.raises(PyruncError, match=r"^uploading manifest v1 to 127\.0\.0\.1:\d+/push/missing: "
                                          r"manifest blob unknown: blob unknown to registry$|"
                                          r"^uploading manifest v1 to .*: blob unknown to registry$"):
        dst.commit()
    dst.close()


# --- errors ------------------------------------------------------------------------

def test_no_such_tag_or_repo(reg_plain, layout):
    push_image(layout, f"{reg_plain.host}/err/app:v1", INSECURE)
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{reg_plain.host}/err/app:nope", INSECURE)
    assert str(e.value) == f"reading manifest nope in {reg_plain.host}/err/app: manifest unknown"
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{reg_plain.host}/err/none:v1", INSECURE)
    assert str(e.value) == f"reading manifest v1 in {reg_plain.host}/err/none: manifest unknown"


def test_connection_refused():
    port = free_port()
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://127.0.0.1:{port}/a:v1")
    assert str(e.value) == (f'pinging container registry 127.0.0.1:{port}: Get "https://127.0.0.1:{port}/v2/": '
                            f"dial tcp 127.0.0.1:{port}: connect: connection refused")
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://127.0.0.1:{port}/a:v1", INSECURE)   # the HTTP try's error
    assert str(e.value).endswith(f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: '
                                 "connection refused")


def test_unknown_host_and_empty_domain():
    with pytest.raises(PyruncError, match=r'^pinging container registry nosuchhost\.invalid: '
                                          r'Get "https://nosuchhost\.invalid/v2/": '
                                          r'dial tcp: lookup nosuchhost\.invalid: '):
        open_source("docker://nosuchhost.invalid/x:v1")
    from pyrunc.image.reference import DockerReference
    with pytest.raises(PyruncError, match="^docker reference has no registry domain$"):
        open_source(DockerReference("", "x", "v1"))


def test_https_to_a_plain_http_registry(reg_plain):
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{reg_plain.host}/a:v1")
    assert str(e.value) == (f'pinging container registry {reg_plain.host}: Get "https://{reg_plain.host}/v2/": '
                            "http: server gave HTTP response to HTTPS client")


# --- TLS -----------------------------------------------------------------------

def test_tls_with_cert_dir(reg_tls, layout):
    opts = Options(cert_dir=str(reg_tls.cert_dir))
    push_image(layout, f"{reg_tls.host}/tls/app:v1", opts)
    src = open_source(f"docker://{reg_tls.host}/tls/app:v1", opts)
    assert src.client.scheme == "https"
    assert sha(src.get_manifest()[0]) == layout_manifest(layout)[0]["digest"]
    src.close()


def test_tls_certs_d_per_host(reg_tls, layout, tmp_path, monkeypatch):
    d = tmp_path / "certs.d" / reg_tls.host
    d.mkdir(parents=True)
    shutil.copy(reg_tls.ca, d / "ca.crt")
    monkeypatch.setattr(certs, "PER_HOST_DIRS", (str(tmp_path / "nothing"), str(tmp_path / "certs.d")))
    push_image(layout, f"{reg_tls.host}/tls/certsd:v1", Options())
    src = open_source(f"docker://{reg_tls.host}/tls/certsd:v1")
    src.close()


def test_tls_unknown_authority(reg_tls):
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{reg_tls.host}/tls/app:v1")
    assert str(e.value) == (f'pinging container registry {reg_tls.host}: Get "https://{reg_tls.host}/v2/": '
                            "tls: failed to verify certificate: x509: certificate signed by unknown authority")


def test_tls_verify_false_skips_verification(reg_tls, layout):
    push_image(layout, f"{reg_tls.host}/tls/noverify:v1", INSECURE)
    src = open_source(f"docker://{reg_tls.host}/tls/noverify:v1", INSECURE)
    assert src.client.scheme == "https"
    src.close()


def test_tls_client_certificate(work, layout, tmp_path):
    reg = RegistryServer(work / "mtls", tls=True, client_certs=True).start()
    try:
        opts = Options(cert_dir=str(reg.cert_dir))      # ca.crt + client.cert/client.key
        push_image(layout, f"{reg.host}/mtls/app:v1", opts)
        open_source(f"docker://{reg.host}/mtls/app:v1", opts).close()
        only_ca = tmp_path / "only-ca"
        only_ca.mkdir()
        shutil.copy(reg.ca, only_ca / "ca.crt")
        with pytest.raises(PyruncError) as e:
            open_source(f"docker://{reg.host}/mtls/app:v1", Options(cert_dir=str(only_ca)))
        assert str(e.value) in [f'pinging container registry {reg.host}: Get "https://{reg.host}/v2/": '
                                f"remote error: tls: {why}" for why in ("bad certificate", "certificate required")]
    finally:
        reg.stop()


# --- Basic auth ------------------------------------------------------------------

def test_basic_auth(reg_basic, layout, tmp_path, monkeypatch):
    creds = Options(tls_verify=False, creds="alice:wonderland")
    push_image(layout, f"{reg_basic.host}/basic/app:v1", creds)
    src = open_source(f"docker://{reg_basic.host}/basic/app:v1", creds)
    assert src.tags() == ["v1"]
    src.close()
    # from an auth file, matched by host/repo key (the most specific entry wins)
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {
        reg_basic.host: {"auth": "d3Jvbmc6d3Jvbmc="},          # wrong:wrong
        f"{reg_basic.host}/basic": {"auth": "YWxpY2U6d29uZGVybGFuZA=="},   # alice:wonderland
    }}))
    src = open_source(f"docker://{reg_basic.host}/basic/app:v1", Options(tls_verify=False, authfile=str(authfile)))
    src.close()
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(authfile))
    src = open_source(f"docker://{reg_basic.host}/basic/app:v1", INSECURE)
    src.close()


def test_basic_auth_wrong_password(reg_basic):
    for opts in (Options(tls_verify=False, creds="alice:nope"), INSECURE):
        with pytest.raises(PyruncError) as e:
            open_source(f"docker://{reg_basic.host}/basic/app:v1", opts)
        assert str(e.value) == f"reading manifest v1 in {reg_basic.host}/basic/app: authentication required"


# --- token auth ------------------------------------------------------------------

def test_token_auth_push_pull_and_cache(reg_token, layout):
    creds = Options(tls_verify=False, creds="alice:wonderland")
    reg_token.token.requests.clear()
    push_image(layout, f"{reg_token.host}/tok/app:v1", creds)
    asked = reg_token.token.requests
    assert len(asked) == 1, asked      # one token for the whole push: cached per scope
    assert asked[0]["account"] == "alice" and asked[0]["scope"] == ["repository:tok/app:pull,push"]
    reg_token.token.requests.clear()
    src = open_source(f"docker://{reg_token.host}/tok/app:v1", creds)
    m = json.loads(src.get_manifest()[0])
    for b in m["layers"]:
        read_all(src, b)
    src.close()
    assert [r["scope"] for r in reg_token.token.requests] == [["repository:tok/app:pull"]]


def test_token_anonymous_pull(reg_token, layout):
    push_image(layout, f"{reg_token.host}/tok/anon:v1", Options(tls_verify=False, creds="alice:wonderland"))
    reg_token.token.requests.clear()
    src = open_source(f"docker://{reg_token.host}/tok/anon:v1", INSECURE)
    assert sha(src.get_manifest()[0]) == layout_manifest(layout)[0]["digest"]
    src.close()
    assert reg_token.token.requests[0]["account"] is None
    # but no anonymous push
    with pytest.raises(PyruncError, match=rf"^uploading manifest v2 to {reg_token.host}/tok/anon: "
                                          "requested access to the resource is denied$"):
        push_image(layout, f"{reg_token.host}/tok/anon:v2", INSECURE)


def test_token_wrong_password(reg_token):
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{reg_token.host}/tok/app:v1", Options(tls_verify=False, creds="alice:nope"))
    assert str(e.value).startswith("unable to retrieve auth token: invalid username/password: "
                                   "unauthorized: invalid username or password")
    assert "\n" not in str(e.value)


# --- a scripted registry -----------------------------------------------------------

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": docker_mod.OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": sha(b"{}"), "size": 2}, "layers": []}).encode()


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(client_mod, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    f = FakeRegistry()
    f.routes["/v2/f/manifests/v1"] = lambda h, q: reply(h, 200, MANIFEST, {"Content-Type": docker_mod.OCI_MANIFEST})
    yield f
    f.stop()


def test_corrupted_blob_is_a_digest_error(fake):
    data = b"good bytes"
    fake.routes[f"/v2/f/blobs/{sha(data)}"] = lambda h, q: reply(h, 200, b"evil bytes")
    src = open_source(f"docker://{fake.host}/f:v1", INSECURE)
    with pytest.raises(digests.DigestError, match="content does not match its digest"):
        read_all(src, {"digest": sha(data), "size": len(data)})
    src.close()


def test_retries_5xx_and_resumes_dropped_blob(fake):
    data = os.urandom(300_000)
    calls = {"manifest": 0, "blob": []}

    def manifest(h, q):
        calls["manifest"] += 1
        if calls["manifest"] <= 2:
            return reply(h, 503, b"busy")
        reply(h, 200, MANIFEST, {"Content-Type": docker_mod.OCI_MANIFEST})

    def blob(h, q):
        rng = h.headers.get("Range")
        calls["blob"].append(rng)
        if rng is None:   # half of it, then the connection drops
            return reply(h, 200, data[:200_000], length=len(data))
        start = int(rng.split("=")[1].rstrip("-"))
        reply(h, 206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
    fake.routes["/v2/f/manifests/v1"] = manifest
    fake.routes[f"/v2/f/blobs/{sha(data)}"] = blob
    src = open_source(f"docker://{fake.host}/f:v1", INSECURE)
    assert calls["manifest"] == 3
    assert read_all(src, {"digest": sha(data), "size": len(data)}) == data
    # picked up where the reader stopped (after the last whole read), not from 0
    assert calls["blob"][0] is None and len(calls["blob"]) == 2
    assert 0 < int(calls["blob"][1][len("bytes="):-1]) <= 200_000
    src.close()


def test_5xx_gives_up_with_one_line(fake):
    fake.routes["/v2/f/manifests/v1"] = lambda h, q: reply(h, 502, b"bad gateway")
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{fake.host}/f:v1", INSECURE)
    assert str(e.value) == f"reading manifest v1 in {fake.host}/f: received unexpected HTTP status: 502 Bad Gateway"
    assert sum(1 for r in fake.requests if r[1] == "/v2/f/manifests/v1") == 4


def test_blob_redirect_to_another_host_drops_authorization(monkeypatch):
    monkeypatch.setattr(client_mod, "RETRY_DELAYS", (0.01,))
    data = b"layer bytes"
    with FakeRegistry(basic_auth=("u", "p")) as f:
        f.routes["/v2/f/manifests/v1"] = lambda h, q: reply(h, 200, MANIFEST, {"Content-Type": docker_mod.OCI_MANIFEST})
        f.routes[f"/v2/f/blobs/{sha(data)}"] = lambda h, q: reply(
            h, 307, b"", {"Location": f"http://localhost:{f.port}/storage/blob?sig=1"})
        f.routes["/storage/blob"] = lambda h, q: reply(h, 200, data)
        src = open_source(f"docker://{f.host}/f:v1", Options(tls_verify=False, creds="u:p"))
        assert read_all(src, {"digest": sha(data), "size": len(data)}) == data
        src.close()
        blob_req = [r for r in f.requests if r[1].startswith("/v2/f/blobs/")][-1]
        storage_req = [r for r in f.requests if r[1].startswith("/storage/")][-1]
        assert blob_req[2].get("Authorization", "").startswith("Basic ")
        assert "Authorization" not in storage_req[2]


def test_tags_follow_link_pages(fake):
    pages = {None: (["a", "b"], "</v2/f/tags/list?last=b&n=2>; rel=\"next\""),
             "b": (["c", "", "sha256:" + "0" * 64], "</v2/f/tags/list?last=d&n=2>; rel=\"next\""),
             "d": (["e"], None)}

    def tags(h, q):
        tags, link = pages[(q.get("last") or [None])[0]]
        reply(h, 200, json.dumps({"name": "f", "tags": tags}).encode(), {"Link": link} if link else {})
    fake.routes["/v2/f/tags/list"] = tags
    src = open_source(f"docker://{fake.host}/f:v1", INSECURE)
    assert src.tags() == ["a", "b", "c", "e"]   # an empty tag and a digest skipped, as skopeo
    src.close()


def test_schema1_is_refused_in_one_line(fake):
    fake.routes["/v2/f/manifests/old"] = lambda h, q: reply(
        h, 200, b'{"schemaVersion": 1, "name": "f", "tag": "old", "fsLayers": []}',
        {"Content-Type": docker_mod.SCHEMA1_SIGNED})
    with pytest.raises(PyruncError) as e:
        open_source(f"docker://{fake.host}/f:old", INSECURE)
    assert str(e.value).startswith(f"reading manifest old in {fake.host}/f: manifest schema 1 is not supported")
    accept = [r[2].get("Accept") for r in fake.requests if r[1] == "/v2/f/manifests/old"][0]
    assert accept == docker_mod.ACCEPT


def test_manifest_by_digest_is_verified(fake):
    d = sha(b"another manifest")
    fake.routes[f"/v2/f/manifests/{d}"] = lambda h, q: reply(h, 200, MANIFEST,
                                                             {"Content-Type": docker_mod.OCI_MANIFEST})
    with pytest.raises(digests.DigestError, match=f"^manifest {d} in {fake.host}/f: content does not match"):
        open_source(f"docker://{fake.host}/f@{d}", INSECURE)


def test_registries_conf_insecure_means_http(reg_plain, layout, tmp_path, monkeypatch):
    from pyrunc.image.registry import registriesconf
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{reg_plain.host}"\ninsecure = true\n')
    monkeypatch.setattr(registriesconf, "config_files", lambda home=None: [str(conf)])
    push_image(layout, f"{reg_plain.host}/conf/app:v1", Options())
    src = open_source(f"docker://{reg_plain.host}/conf/app:v1")
    assert src.client.scheme == "http"
    src.close()
    with pytest.raises(PyruncError, match="http: server gave HTTP response to HTTPS client"):
        open_source(f"docker://{reg_plain.host}/conf/app:v1", Options(tls_verify=True))


# --- through the CLI (pyrunc image copy) ----------------------------------------------

@pytest.fixture
def copy_cli(rt):
    if rt.run("image", "copy", "--help").rc != 0:
        pytest.skip("the runtime under test has no `image copy`")
    return rt


def test_cli_copy_registry_to_oci(copy_cli, reg_plain, multi, tmp_path):
    push_image(multi, f"{reg_plain.host}/cli/multi:all", INSECURE, ref="all")
    desc, raw = layout_manifest(multi, "all")
    out = tmp_path / "out"
    copy_cli.ok("image", "copy", "-q", "--all", "--src-tls-verify=false",
                f"docker://{reg_plain.host}/cli/multi:all", f"oci:{out}:all")
    got = json.loads((out / "index.json").read_text())["manifests"][0]
    assert got["digest"] == desc["digest"]
    for name in os.listdir(multi / "blobs" / "sha256"):
        if (out / "blobs" / "sha256" / name).exists():
            assert (out / "blobs" / "sha256" / name).read_bytes() == (multi / "blobs" / "sha256" / name).read_bytes()
    for inst in json.loads(raw)["manifests"]:   # --all: every instance and its blobs
        m = json.loads(blob_bytes(out, inst["digest"]))
        for b in [m["config"]] + m["layers"]:
            assert sha(blob_bytes(out, b["digest"])) == b["digest"]


@needs_skopeo
def test_cli_copy_oci_to_registry_with_creds(copy_cli, reg_token, layout, tmp_path):
    desc, raw = layout_manifest(layout)
    repo = f"{reg_token.host}/cli/app:v2"
    copy_cli.ok("image", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
                f"oci:{layout}:v1", f"docker://{repo}")
    got = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "alice:wonderland", f"docker://{repo}")
    assert got.stdout.encode() == raw


def test_cli_copy_registry_failures_are_one_line(copy_cli, reg_basic, tmp_path):
    port = free_port()
    out = tmp_path / "out"
    copy_cli.fail("image", "copy", f"docker://127.0.0.1:{port}/a:v1", f"oci:{out}:v1", one_line=True,
                  match="connection refused")
    copy_cli.fail("image", "copy", "--src-tls-verify=false", "--src-creds", "alice:nope",
                  f"docker://{reg_basic.host}/basic/app:v1", f"oci:{out}:v1", one_line=True,
                  match="authentication required")
    assert not out.exists()


def test_refused_token_is_renewed_once(fake):
    realm = f"http://{fake.host}/token"
    issued = []
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'}
    fake.routes["/v2/"] = lambda h, q: reply(h, 401, b"{}", challenge)

    def token(h, q):
        issued.append(q.get("scope"))
        reply(h, 200, json.dumps({"token": f"t{len(issued)}", "expires_in": 300}).encode())

    def manifest(h, q):
        if h.headers.get("Authorization") != "Bearer t2":   # the first token is refused
            return reply(h, 401, error_body("UNAUTHORIZED", "authentication required"),
                         {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",error="invalid_token"'})
        reply(h, 200, MANIFEST, {"Content-Type": docker_mod.OCI_MANIFEST})
    fake.routes["/token"] = token
    fake.routes["/v2/f/manifests/v1"] = manifest
    src = open_source(f"docker://{fake.host}/f:v1", INSECURE)
    assert src.get_manifest()[0] == MANIFEST
    assert issued == [["repository:f:pull"]] * 2
    src.close()


# --- pyrunc image list-tags ----------------------------------------------------------

@needs_skopeo
def test_cli_list_tags_as_skopeo(rt, reg_basic, layout):
    if rt.run("image", "list-tags", "--help").rc != 0:
        pytest.skip("the runtime under test has no `image list-tags`")
    opts = Options(tls_verify=False, creds="alice:wonderland")
    for tag in ("v1", "v2", "latest"):
        push_image(layout, f"{reg_basic.host}/lt/app:{tag}", opts)
    args = ["--tls-verify=false", "--creds", "alice:wonderland", f"docker://{reg_basic.host}/lt/app"]
    ours = rt.ok("image", "list-tags", *args).stdout
    assert ours == skopeo("list-tags", *args).stdout
    assert json.loads(ours) == {"Repository": f"{reg_basic.host}/lt/app", "Tags": ["latest", "v1", "v2"]}
    rt.fail("image", "list-tags", "--tls-verify=false", f"docker://{reg_basic.host}/lt/app:v1", one_line=True,
            match="No tag or digest allowed in reference")
    rt.fail("image", "list-tags", "oci:/tmp/x", one_line=True, match="Unsupported transport 'oci' for tag listing")
    rt.fail("image", "list-tags", *args[:3], f"docker://{reg_basic.host}/lt/none", one_line=True,
            match="Error listing repository tags: fetching tags list: repository name not known to registry")


def test_library_list_tags(reg_plain, layout):
    import pyrunc.image
    push_image(layout, f"{reg_plain.host}/lib/app:1.0", INSECURE)
    assert pyrunc.image.list_tags(f"docker://{reg_plain.host}/lib/app", INSECURE) == ["1.0"]


def test_push_to_a_digest_reference(reg_plain, layout):
    desc, raw = layout_manifest(layout)
    push_image(layout, f"{reg_plain.host}/bydigest/app@{desc['digest']}", INSECURE)
    src = open_source(f"docker://{reg_plain.host}/bydigest/app@{desc['digest']}", INSECURE)
    assert src.get_manifest()[0] == raw
    src.close()
    dst = open_destination(f"docker://{reg_plain.host}/bydigest/app@{sha(b'other')}", INSECURE)
    with pytest.raises(digests.DigestError, match="does not match its digest"):
        dst.put_manifest(raw, desc["mediaType"])
    dst.close()
