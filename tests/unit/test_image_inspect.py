"""`pyrunc image inspect` (image/inspector.py, image/gojson.py): the fields
skopeo inspect fills, per manifest kind and transport, from stub sources
(indexes, platforms, docker:// tags), and Go's JSON and time formatting."""
from __future__ import annotations

import hashlib
import io
import json

import pytest

import pyrunc.image
from pyrunc.errors import PyruncError
from pyrunc.image import gojson, inspector
from pyrunc.image.reference import parse
from pyrunc.image.transport import ImageSource, Options

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


class Stub(ImageSource):
    """An in-memory source: manifests and blobs by digest."""

    def __init__(self, ref: str, top: bytes, top_type: str, blobs: dict[str, bytes],
                 instances: dict[str, tuple[bytes, str]] | None = None, tags=()) -> None:
        self.reference = parse(ref)
        self.top, self.top_type, self.blobs = top, top_type, blobs
        self.instances = instances or {}
        self._tags = list(tags)
        self.closed = False

    def get_manifest(self, instance=None):
        return (self.top, self.top_type) if instance is None else self.instances[instance]

    def get_blob(self, desc):
        return io.BytesIO(self.blobs[desc["digest"]])

    def tags(self):
        return self._tags

    def close(self):
        self.closed = True


def image(config: dict, oci: bool = True, layers=((b"l1", None), (b"l2", {"a": "b"})), alg="sha256"):
    """(manifest bytes, media type, blobs) of one image."""
    cfg = json.dumps(config).encode()
    blobs = {sha(cfg, alg): cfg}
    descs = []
    for data, ann in layers:
        d = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci
             else "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": sha(data), "size": len(data)}
        if ann is not None:
            d["annotations"] = ann
        descs.append(d)
        blobs[sha(data)] = data
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
         "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "digest": sha(cfg, alg), "size": len(cfg)},
         "layers": descs}
    raw = json.dumps(m, indent=3).encode()
    return raw, m["mediaType"], blobs


@pytest.fixture
def stub(monkeypatch):
    made = []

    def install(src: Stub) -> Stub:
        def opener(ref, opts):
            assert isinstance(opts, Options)
            made.append(src)
            return src
        monkeypatch.setattr(inspector, "open_source", opener)
        return src
    yield install
    assert all(s.closed for s in made)


CFG = {"created": "2024-05-01T10:00:00.500+02:00", "architecture": "amd64", "os": "linux",
       "docker_version": "24.0.7", "author": "me",
       "config": {"Env": ["PATH=/bin", "X=<&>"], "Labels": {"b": "2", "a": "1"}, "Cmd": ["sh"]},
       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}


def test_oci_image(stub):
    raw, mt, blobs = image(CFG)
    stub(Stub("oci:/x:v1", raw, mt, blobs))
    info = inspector.inspect("oci:/x:v1")
    assert info.to_json() == gojson.marshal_indent({
        "Digest": sha(raw), "RepoTags": [], "Created": "2024-05-01T10:00:00.5+02:00",
        "DockerVersion": "24.0.7", "Labels": {"a": "1", "b": "2"}, "Architecture": "amd64", "Os": "linux",
        "Layers": [sha(b"l1"), sha(b"l2")],
        "LayersData": [
            {"MIMEType": "application/vnd.oci.image.layer.v1.tar+gzip", "Digest": sha(b"l1"), "Size": 2,
             "Annotations": None},
            {"MIMEType": "application/vnd.oci.image.layer.v1.tar+gzip", "Digest": sha(b"l2"), "Size": 2,
             "Annotations": {"a": "b"}}],
        "Env": ["PATH=/bin", "X=<&>"]}) + "\n"
    assert '"X=\\u003c\\u0026\\u003e"' in info.to_json()
    assert inspector.raw_manifest("oci:/x:v1") == raw
    assert inspector.config_blob("oci:/x:v1") == blobs[json.loads(raw)["config"]["digest"]]


def test_created_labels_env_absent(stub):
    """Absent: OCI Created null, Docker schema2 Go's zero time; Labels/Env
    null when absent, {} / [] when empty; schema2 layers have no annotations."""
    bare = {"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    raw, mt, blobs = image(bare)
    stub(Stub("oci:/x", raw, mt, blobs))
    info = inspector.inspect("oci:/x").as_skopeo()
    assert (info["Created"], info["Labels"], info["Env"]) == (None, None, None)
    raw, mt, blobs = image(bare, oci=False)
    stub(Stub("oci:/x", raw, mt, blobs))
    info = inspector.inspect("oci:/x").as_skopeo()
    assert (info["Created"], info["Labels"], info["Env"]) == ("0001-01-01T00:00:00Z", None, None)
    assert [l["Annotations"] for l in info["LayersData"]] == [None, None]
    raw, mt, blobs = image({**bare, "config": {"Labels": {}, "Env": []}}, oci=False)
    stub(Stub("oci:/x", raw, mt, blobs))
    info = inspector.inspect("oci:/x").as_skopeo()
    assert (info["Labels"], info["Env"]) == ({}, [])
    assert '"Labels": {},' in inspector.inspect("oci:/x").to_json()


def test_index_digest_and_platform(stub):
    """Digest is the index's; the rest comes from the platform's instance,
    which --override-arch/--override-os change."""
    amd = image({**CFG, "architecture": "amd64"})
    arm = image({**CFG, "architecture": "arm64", "variant": "v8"}, layers=((b"arm", None),))
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(arm[0]), "size": len(arm[0]),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": sha(amd[0]), "size": len(amd[0]),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    instances = {sha(amd[0]): amd[:2], sha(arm[0]): arm[:2]}
    stub(Stub("oci:/x", index, OCI_INDEX, {**amd[2], **arm[2]}, instances))
    info = inspector.inspect("oci:/x", Options(os="linux", arch="arm64"))
    assert info.digest == sha(index)
    assert info.architecture == "arm64" and info.layers == [sha(b"arm")]
    assert inspector.inspect("oci:/x", Options(arch="amd64")).layers == [sha(b"l1"), sha(b"l2")]
    assert inspector.raw_manifest("oci:/x", Options(arch="arm64")) == index
    assert inspector.config_blob("oci:/x", Options(arch="arm64")) == arm[2][json.loads(arm[0])["config"]["digest"]]
    with pytest.raises(PyruncError, match='no image found in image index for architecture "s390x"'):
        inspector.inspect("oci:/x", Options(arch="s390x"))
    # an instance whose bytes are not its digest
    stub(Stub("oci:/x", index, OCI_INDEX, {**amd[2], **arm[2]}, {sha(amd[0]): arm[:2], sha(arm[0]): arm[:2]}))
    with pytest.raises(PyruncError, match="does not match expected"):
        inspector.inspect("oci:/x", Options(arch="amd64"))


def test_docker_list(stub):
    amd = image(CFG, oci=False)
    lst = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": sha(amd[0]), "size": len(amd[0]),
         "platform": {"os": "linux", "architecture": "riscv64"}}]}).encode()
    stub(Stub("docker://busybox", lst, DOCKER_LIST, amd[2], {sha(amd[0]): amd[:2]}, tags=["1", "latest"]))
    info = inspector.inspect("docker://busybox", Options(arch="riscv64"))
    assert (info.name, info.repo_tags, info.digest) == ("docker.io/library/busybox", ["1", "latest"], sha(lst))
    assert info.as_skopeo()["Name"] == "docker.io/library/busybox"
    assert list(info.as_skopeo())[:3] == ["Name", "Digest", "RepoTags"]
    assert inspector.inspect("docker://busybox", Options(arch="riscv64"), no_tags=True).repo_tags == []


def test_names_per_transport(stub):
    raw, mt, blobs = image(CFG)
    for ref, name in (("docker-archive:/a.tar:busybox:1", "docker.io/library/busybox"),
                      ("docker-archive:/a.tar", ""), ("docker-archive:/a.tar:@0", ""),
                      ("oci:/x:v1", ""), ("oci-archive:/x.tar", "")):
        stub(Stub(ref, raw, mt, blobs, tags=["never"]))
        info = inspector.inspect(ref)
        assert (info.name, info.repo_tags) == (name, [])
        assert ("Name" in info.as_skopeo()) == bool(name)


def test_digest_algorithm(stub):
    raw, mt, blobs = image(CFG, alg="sha512")
    stub(Stub("oci:/x", raw, mt, blobs))
    assert inspector.inspect("oci:/x").digest == sha(raw, "sha512")   # the config digest's algorithm
    assert inspector.inspect("oci:/x", manifest_digest="sha256").digest == sha(raw)
    with pytest.raises(PyruncError, match='digest algorithm "md5" is not available'):
        inspector.inspect("oci:/x", manifest_digest="md5")


def test_library_wrapper(stub):
    raw, mt, blobs = image(CFG)
    stub(Stub("oci:/x", raw, mt, blobs))
    info = pyrunc.image.inspect("oci:/x", arch="amd64", no_tags=True)
    assert isinstance(info, inspector.ImageInfo) and info.labels == {"b": "2", "a": "1"}


def test_errors(stub):
    raw, mt, blobs = image(CFG)
    artifact = json.loads(raw)
    artifact["config"]["mediaType"] = "application/vnd.example+json"
    a = json.dumps(artifact).encode()
    stub(Stub("oci:/x", a, OCI_MANIFEST, blobs))
    with pytest.raises(PyruncError, match='artifact with type "application/vnd.example\\+json"'):
        inspector.inspect("oci:/x")
    with pytest.raises(PyruncError, match="artifact"):
        inspector.oci_config("oci:/x")
    assert inspector.raw_manifest("oci:/x") == a
    bad = dict(blobs)
    bad[json.loads(raw)["config"]["digest"]] = b"{}"
    stub(Stub("oci:/x", raw, mt, bad))
    with pytest.raises(PyruncError, match="config digest .* does not match expected"):
        inspector.inspect("oci:/x")
    raw2, mt2, blobs2 = image({**CFG, "created": "yesterday"})
    stub(Stub("oci:/x", raw2, mt2, blobs2))
    with pytest.raises(PyruncError, match='parsing created "yesterday"'):
        inspector.inspect("oci:/x")


def test_oci_config():
    cfg = {**CFG, "variant": "v8", "os.version": "", "unknown": 1,
           "config": {"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Volumes": {},
                      "Labels": {"z": "1", "a": "2"}, "ArgsEscaped": True, "Healthcheck": {"Test": ["x"]}},
           "history": [{"created": "2024-01-01T00:00:00+00:00", "created_by": "x", "empty_layer": True},
                       {"comment": ""}]}
    out = inspector.to_oci_image(cfg)
    assert list(out) == ["created", "author", "architecture", "os", "variant", "config", "rootfs", "history"]
    assert out["config"] == {"ExposedPorts": {"443/tcp": {}, "80/tcp": {}}, "Cmd": ["sh"],
                             "Labels": {"a": "2", "z": "1"}, "ArgsEscaped": True}
    assert out["history"] == [{"created": "2024-01-01T00:00:00Z", "created_by": "x", "empty_layer": True}, {}]
    assert "config" not in inspector.to_oci_image({"rootfs": {}})
    assert inspector.to_oci_image({"rootfs": {}}) == {"architecture": "", "os": "",
                                                       "rootfs": {"type": "", "diff_ids": None}}


@pytest.mark.parametrize("text,want", [
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
    ("2024-05-01T10:00:00.000000000Z", "2024-05-01T10:00:00Z"),
    ("2024-05-01T10:00:00.123456789123Z", "2024-05-01T10:00:00.123456789Z"),
    ("2024-05-01t10:00:00.10-07:30", "2024-05-01T10:00:00.1-07:30"),
    ("2024-05-01T10:00:00+00:00", "2024-05-01T10:00:00Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
])
def test_go_time(text, want):
    assert gojson.go_time(text) == want


@pytest.mark.parametrize("text", ["2024-02-30T00:00:00Z", "2024-05-01 10:00:00Z", "2024-05-01T10:00:00",
                                  "2024-05-01T25:00:00Z", 12, None])
def test_go_time_refused(text):
    with pytest.raises(PyruncError):
        gojson.go_time(text)


def test_raw_json_helpers():
    data = b' { "a" : [1, 2.50, {"x": "s p<"}] , "b":null,"a":{ "k" : "\\"}, " } , "c": "\xe2\x80\xa8" }'
    members = gojson.raw_members(data)
    assert members == {"a": b'{ "k" : "\\"}, " }', "b": b"null", "c": b'"\xe2\x80\xa8"'}
    assert gojson.compact_raw(b'[1, 2.50, {"x": "s p<&>"}]') == b'[1,2.50,{"x":"s p\\u003c\\u0026\\u003e"}]'
    assert gojson.compact_raw(members["c"]) == b'"\\u2028"'
    with pytest.raises(ValueError):
        gojson.raw_members(b"[1]")
    assert gojson.marshal({"a": "<\ud800>"}) == '{"a":"\\u003c\ufffd\\u003e"}'
    assert gojson.field({"Labels": 1, "labels": 2}, "labels") == 2
    assert gojson.field({"LABELS": 1}, "Labels") == 1


def test_tags_refused(stub, capfd):
    """A registry that denies the tags list: a warning and no tags (skopeo);
    any other failure of the list is an error."""
    class Refused(PyruncError):
        def __init__(self, msg: str, code: str) -> None:
            super().__init__(msg)
            self.error_code = code

    raw, mt, blobs = image(CFG)
    for err, ok in ((Refused("denied: requested access to the resource is denied", "DENIED"), True),
                    (Refused("unknown: 404 page not found", "UNKNOWN"), True),
                    (Refused("unauthorized: authentication required", "UNAUTHORIZED"), False)):
        src = Stub("docker://example.com/a/b:1", raw, mt, blobs)
        src.tags = lambda err=err: (_ for _ in ()).throw(err)
        stub(src)
        if ok:
            assert inspector.inspect("docker://example.com/a/b:1").repo_tags == []
            assert "Registry disallows tag list retrieval; skipping" in capfd.readouterr().err
        else:
            with pytest.raises(PyruncError, match="Error determining repository tags: unauthorized"):
                inspector.inspect("docker://example.com/a/b:1")
