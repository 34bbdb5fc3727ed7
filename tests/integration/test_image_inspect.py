"""`pyrunc image inspect` against `skopeo inspect` on the same images:
docker-archive: (written by skopeo and `docker save`-style), oci: (an image
and a multi-platform index) and oci-archive:. The JSON must be skopeo's byte
for byte (the installed skopeo predates LayersData, which is checked against
the manifest instead); --raw and --config --raw the same bytes; --config the
same OCI config."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from oci_layout import OCI_INDEX, LayoutBuilder, docker_save_tar, entry, host_arch, layer_tar

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")

SRC = Path(__file__).resolve().parents[2] / "src" / "pyrunc" / "image" / "transports"
OTHER_ARCH = "arm64" if host_arch() != "arm64" else "amd64"
CONFIG = {"Env": ["PATH=/usr/bin:/bin", "TRICKY=<a&b>"], "Labels": {"z.last": "1", "a.first": "x"},
          "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/w"}
EXTRA = {"created": "2024-05-01T10:00:00.120+02:00", "docker_version": "24.0.7", "author": "tests",
         "history": [{"created": "2024-05-01T10:00:00Z", "created_by": "RUN x"}]}
L1 = layer_tar([entry("etc", "dir", mode=0o755), entry("etc/hello", data=b"hi\n")])
L2 = layer_tar([entry("bin", "dir"), entry("bin/x", data=b"x" * 5000)])


def skopeo(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *map(str, args)], capture_output=True, timeout=120)


def _rewrite_config(b: LayoutBuilder, desc: dict, extra: dict) -> dict:
    """The manifest `desc` with its config given more top-level fields."""
    def load(d: dict) -> dict:
        return json.loads((b.path / "blobs" / "sha256" / d["digest"][7:]).read_bytes())
    m = load(desc)
    m["config"] = b.blob(json.dumps({**load(m["config"]), **extra}).encode(), m["config"]["mediaType"])
    return b.blob(json.dumps(m).encode(), desc["mediaType"])


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    """Image references by name, all made once for the module."""
    d = tmp_path_factory.mktemp("images")
    b = LayoutBuilder(d / "layout")
    full = _rewrite_config(b, b.image([L1, L2], CONFIG, gzip_layers=True), EXTRA)
    bare = b.image([L2], None)
    other = _rewrite_config(b, b.image([L1], {"Env": []}, arch=OTHER_ARCH), {"variant": "v8"})
    b.tag(full, "full")
    b.tag(bare, "bare")
    index = b.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**other, "platform": {"os": "linux", "architecture": OTHER_ARCH, "variant": "v8"}},
        {**full, "platform": {"os": "linux", "architecture": host_arch()}}]}).encode(), OCI_INDEX)
    b.tag(index, "multi")
    refs = {}
    for tag in ("full", "bare"):
        for dest, name in ((f"docker-archive:{d}/{tag}.tar:example.com/app:{tag}", f"da-{tag}"),
                           (f"docker-archive:{d}/{tag}-untagged.tar", f"da-{tag}-untagged"),
                           (f"oci-archive:{d}/{tag}.oci.tar", f"ociarchive-{tag}")):
            r = skopeo("copy", "-q", f"oci:{b.path}:{tag}", dest)
            assert r.returncode == 0, r.stderr
            refs[name] = dest
        refs[f"oci-{tag}"] = f"oci:{b.path}:{tag}"
    refs["oci-multi"] = f"oci:{b.path}:multi"
    refs["da-full-index"] = refs["da-full"].rsplit(":", 2)[0] + ":@0"
    save = docker_save_tar(d / "save.tar", [
        {"layers": [L1, L2, L1], "config": CONFIG, "tags": ["busybox:latest", "busybox:1"], "extra": EXTRA},
        {"layers": [L2], "tags": ["other:latest"]}], style="oci", gzip_layers=True)
    legacy = docker_save_tar(d / "legacy.tar", [{"layers": [L1, L1], "tags": ["busybox:latest"]}],
                             dup_symlink=True)
    refs.update({"save-1": f"docker-archive:{save}:busybox:1", "save-other": f"docker-archive:{save}:@1",
                 "legacy": f"docker-archive:{legacy}"})
    return refs


def _needs(ref: str) -> None:
    t = ref.split(":", 1)[0]
    mod = {"oci": "oci.py", "oci-archive": "ociarchive.py"}.get(t)
    if mod and not (SRC / mod).exists():
        pytest.skip(f"the {t}: transport is not in this tree yet")


def _inspect(rt, *args) -> str:
    res = rt.run("image", "inspect", *args)
    assert res.rc == 0, res
    return res.stdout


def _without_layers_data(text: str) -> str:
    return re.sub(r'\n    "LayersData": \[\n.*?\n    \],', "", text, flags=re.S)


NAMES = ["da-full", "da-full-untagged", "da-full-index", "da-bare", "da-bare-untagged", "save-1",
         "save-other", "legacy", "oci-full", "oci-bare", "oci-multi", "ociarchive-full", "ociarchive-bare"]


@pytest.mark.parametrize("name", NAMES)
def test_inspect_as_skopeo(rt, images, name):
    ref = images[name]
    _needs(ref)
    theirs = skopeo("inspect", ref)
    assert theirs.returncode == 0, theirs.stderr
    mine = _inspect(rt, ref)
    assert _without_layers_data(mine) == theirs.stdout.decode()
    # LayersData: the (platform's) manifest's layer descriptors.
    raw_cfg_manifest = skopeo("inspect", "--raw", ref).stdout
    m = json.loads(raw_cfg_manifest)
    if "manifests" in m:
        inst = next(x for x in m["manifests"] if x["platform"]["architecture"] == host_arch())
        m = json.loads((Path(ref.split(":")[1]) / "blobs" / "sha256" / inst["digest"][7:]).read_bytes())
    assert json.loads(mine)["LayersData"] == [
        {"MIMEType": l["mediaType"], "Digest": l["digest"], "Size": l["size"], "Annotations": l.get("annotations")}
        for l in m["layers"]]


@pytest.mark.parametrize("name", NAMES)
def test_raw_and_config_as_skopeo(rt, images, name):
    ref = images[name]
    _needs(ref)
    for flags in (["--raw"], ["--config", "--raw"]):
        theirs = skopeo("inspect", *flags, ref)
        assert theirs.returncode == 0, theirs.stderr
        assert _raw(rt, *flags, ref) == theirs.stdout, flags
    mine_cfg = json.loads(_inspect(rt, "--config", ref))
    theirs_cfg = json.loads(skopeo("inspect", "--config", ref).stdout)
    if theirs_cfg.get("config") == {}:   # skopeo 1.9's image-spec printed an empty config
        del theirs_cfg["config"]
    assert mine_cfg == theirs_cfg


def _raw(rt, *args) -> bytes:
    """The runtime's stdout as bytes (Result.stdout is text)."""
    p = subprocess.run(rt.argv(("image", "inspect", *args)), capture_output=True, timeout=60,
                       cwd=rt.cwd, env=rt._env(None))
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_override_platform(rt, images):
    ref = images["oci-multi"]
    _needs(ref)
    for arch in (OTHER_ARCH, host_arch()):
        theirs = skopeo("--override-arch", arch, "--override-variant", "v8", "inspect", ref)
        assert theirs.returncode == 0, theirs.stderr
        mine = _inspect(rt, "--override-arch", arch, "--override-variant", "v8", ref)
        assert _without_layers_data(mine) == theirs.stdout.decode()
        assert json.loads(mine)["Architecture"] == arch


def test_errors(rt, images, tmp_path):
    archive = images["da-full"].rsplit(":", 2)[0]
    for ref, msg in ((f"docker-archive:{tmp_path}/missing.tar", "no such file or directory"),
                     (f"{archive}:example.com/app:nope", 'Tag .*example.com/app:nope.* not found'),
                     (f"{archive}:@5", r"Invalid source index @5, only 1 manifest items available"),
                     (f"{archive}:Bad", "repository name must be lowercase"),
                     ("nope:thing", 'unknown transport .*nope'),
                     ("thing", "expected colon-separated transport:reference")):
        rt.run("image", "inspect", ref).expect_fail(rc=1, match=msg, one_line=True)
        assert skopeo("inspect", ref).returncode != 0
    rt.run("image", "inspect").expect_fail(rc=1, match="requires exactly 1 argument")
    rt.run("image", "inspect", "--manifest-digest", "md5", images["da-full"]).expect_fail(
        rc=1, match="not available", one_line=True)
    assert list(tmp_path.iterdir()) == [tmp_path / "state"]


def test_docker_registry_as_skopeo(rt, images, tmp_path):
    """docker://: Name and RepoTags (the repository's tags) too, against a
    local registry (tests/registry_server.py)."""
    _needs("docker://x")
    if not (SRC / "docker.py").exists():
        pytest.skip("the docker:// transport is not in this tree yet")
    try:
        import registry_server
    except ImportError:
        pytest.skip("tests/registry_server.py is not in this tree yet")
    why = registry_server.available()
    if why:
        pytest.skip(why)
    with registry_server.RegistryServer(tmp_path / "reg") as reg:
        for tag in ("1", "latest"):
            r = skopeo("copy", "-q", "--dest-tls-verify=false", images["oci-full"], f"docker://{reg.host}/lib/app:{tag}")
            assert r.returncode == 0, r.stderr
        r = skopeo("copy", "-q", "--dest-tls-verify=false", images["da-bare"], f"docker://{reg.host}/lib/da:x")
        assert r.returncode == 0, r.stderr
        for ref in (f"docker://{reg.host}/lib/app:1", f"docker://{reg.host}/lib/da:x"):
            for flags in ([], ["-n"]):
                theirs = skopeo("inspect", "--tls-verify=false", *flags, ref)
                assert theirs.returncode == 0, theirs.stderr
                mine = _inspect(rt, "--tls-verify=false", *flags, ref)
                assert _without_layers_data(mine) == theirs.stdout.decode()
            assert sorted(json.loads(_inspect(rt, "--tls-verify=false", ref))["RepoTags"]) in (["1", "latest"], ["x"])
            for flags in (["--raw"], ["--config", "--raw"]):
                theirs = skopeo("inspect", "--tls-verify=false", *flags, ref)
                assert _raw(rt, "--tls-verify=false", *flags, ref) == theirs.stdout
        rt.run("image", "inspect", "--tls-verify=false", f"docker://{reg.host}/lib/nope:1").expect_fail(
            rc=1, match="manifest unknown", one_line=True)
