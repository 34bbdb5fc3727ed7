"""`pyrunc image unpack` (src/pyrunc/image): OCI layouts built here with
tarfile, unpacked, and the rootfs and config.json checked; hostile layers
must stay inside the rootfs (a sentinel outside is watched)."""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from oci_layout import user_xattrs_supported, OCI_INDEX, LayoutBuilder, entry, host_arch, layer_tar
from pyrunc.image.bundle import parse_image, unpack
from pyrunc.cli.main import main
from pyrunc.errors import PyruncError
from pyrunc.image.imageconfig import exec_user

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="owners and device nodes need root")


@pytest.fixture
def area(tmp_path: Path):
    """A layout builder, the bundle path, and a sentinel outside both."""
    (tmp_path / "sentinel").write_text("untouched")
    (tmp_path / "outside").mkdir()
    return LayoutBuilder(tmp_path / "layout"), tmp_path / "bundle", tmp_path


def outside_state(tmp: Path) -> dict:
    """Everything outside the bundle and layout, to compare before/after."""
    out = {}
    for p in sorted(tmp.rglob("*")):
        rel = p.relative_to(tmp)
        if rel.parts[0] in ("bundle", "layout"):
            continue
        st = p.lstat()
        out[str(rel)] = (st.st_mode, st.st_size, st.st_nlink, p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


def build(area, layers, config=None, **kw):
    b, bundle, _ = area
    b.tag(b.image([layer_tar(l) for l in layers], config, **kw))
    return str(b.path), str(bundle)


# --- the entry types and their metadata ------------------------------------

@root_only
def test_entry_types_and_metadata(area):
    long = "d/" + "x" * 150 + "/" + "y" * 120  # PAX long name
    lay, bundle = build(area, [[
        entry("etc", "dir", mode=0o755, mtime=1000),
        entry("etc/data", data=b"hello", mode=0o640, uid=12, gid=34, mtime=2000),
        entry("bin/su", data=b"#!", mode=0o4755, mtime=3000),
        entry("bin/sg", data=b"#!", mode=0o2711),
        entry("tmp", "dir", mode=0o1777),
        entry("etc/link", "symlink", link="data", uid=5, gid=6),
        entry("etc/hard", "hardlink", link="etc/data"),
        entry("dev/null2", "char", mode=0o666, dev=(1, 3)),
        entry("dev/loopx", "block", mode=0o600, dev=(7, 200)),
        entry("run/fifo", "fifo", mode=0o620),
        entry(long, data=b"long"),
    ]], gzip_layers=True)
    unpack(lay, bundle)
    r = Path(bundle) / "rootfs"
    st = (r / "etc/data").lstat()
    assert (r / "etc/data").read_bytes() == b"hello"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o640, 12, 34, 2000)
    assert stat.S_IMODE((r / "bin/su").lstat().st_mode) == 0o4755
    assert stat.S_IMODE((r / "bin/sg").lstat().st_mode) == 0o2711
    assert stat.S_IMODE((r / "tmp").lstat().st_mode) == 0o1777
    assert (r / "etc").lstat().st_mtime == 1000  # set after its children arrived
    assert os.readlink(r / "etc/link") == "data"
    assert ((r / "etc/link").lstat().st_uid, (r / "etc/link").lstat().st_gid) == (5, 6)
    assert (r / "etc/hard").lstat().st_ino == st.st_ino
    c = (r / "dev/null2").lstat()
    assert stat.S_ISCHR(c.st_mode) and (os.major(c.st_rdev), os.minor(c.st_rdev)) == (1, 3)
    assert stat.S_IMODE(c.st_mode) == 0o666
    b = (r / "dev/loopx").lstat()
    assert stat.S_ISBLK(b.st_mode) and (os.major(b.st_rdev), os.minor(b.st_rdev)) == (7, 200)
    f = (r / "run/fifo").lstat()
    assert stat.S_ISFIFO(f.st_mode) and stat.S_IMODE(f.st_mode) == 0o620
    assert (r / long).read_bytes() == b"long"


@root_only
def test_xattrs_from_pax(area):
    _, _, tmp = area
    if not user_xattrs_supported(tmp):
        pytest.skip(f"{tmp}: no user.* xattrs on this filesystem")
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service+ep
    lay, bundle = build(area, [[
        entry("bin/ping", data=b"x", mode=0o755, xattrs={"user.note": b"hi", "security.capability": cap}),
    ]])
    unpack(lay, bundle)
    p = Path(bundle) / "rootfs/bin/ping"
    assert os.getxattr(p, "user.note") == b"hi"
    assert os.getxattr(p, "security.capability") == cap


def test_whiteouts_and_opaque_dirs_across_layers(area):
    lay, bundle = build(area, [
        [entry("a/keep", data=b"1"), entry("a/gone", data=b"2"), entry("a/sub/deep", data=b"3"),
         entry("o/old1", data=b"x"), entry("o/olddir/f", data=b"y")],
        [entry("a/.wh.gone"), entry("a/.wh.sub"), entry("a/.wh.never-existed"),
         entry("o", "dir", mode=0o755), entry("o/.wh..wh..opq"), entry("o/new", data=b"n")],
        [entry("a/gone", data=b"back")],
    ])
    unpack(lay, bundle)
    r = Path(bundle) / "rootfs"
    assert sorted(os.listdir(r / "a")) == ["gone", "keep"]
    assert (r / "a/gone").read_bytes() == b"back"
    assert sorted(os.listdir(r / "o")) == ["new"]
    assert not any(n.startswith(".wh.") for _, d, f in os.walk(r) for n in d + f)


def test_opaque_keeps_entries_of_its_own_layer(area):
    lay, bundle = build(area, [
        [entry("o/old", data=b"x")],
        [entry("o/new", data=b"n"), entry("o/.wh..wh..opq")],
    ])
    unpack(lay, bundle)
    assert os.listdir(Path(bundle) / "rootfs/o") == ["new"]


def test_hard_link_to_lower_layer_and_replacement(area):
    lay, bundle = build(area, [
        [entry("usr/bin/prog", data=b"v1", mode=0o755), entry("x", "dir")],
        [entry("usr/bin/alias", "hardlink", link="usr/bin/prog"), entry("x", data=b"now a file")],
    ])
    unpack(lay, bundle)
    r = Path(bundle) / "rootfs"
    assert (r / "usr/bin/alias").lstat().st_ino == (r / "usr/bin/prog").lstat().st_ino
    assert (r / "x").read_bytes() == b"now a file"


# --- hostile layers --------------------------------------------------------

HOSTILE = {
    "dotdot": [entry("../../sentinel", data=b"pwned"), entry("../outside/new", data=b"pwned")],
    "absolute": [entry("/sentinel-abs", data=b"pwned")],
    "symlink-then-file": [entry("evil", "symlink", link="../.."), entry("evil/sentinel", data=b"pwned"),
                          entry("evil2", "symlink", link="/"), entry("evil2/outside/x", data=b"pwned")],
    "absolute-symlink-dir": [entry("esc", "symlink", link="TMP/outside"), entry("esc/f", data=b"pwned")],
    "hardlink-out": [entry("ln", "hardlink", link="../../sentinel")],
    "hardlink-via-symlink": [entry("e", "symlink", link="TMP"), entry("ln", "hardlink", link="e/sentinel")],
    "whiteout-out": [entry("../.wh.sentinel"), entry("e", "symlink", link="TMP"), entry("e/.wh.sentinel"),
                     entry("e/.wh.outside")],
    "opaque-out": [entry("e", "symlink", link="TMP"), entry("e/.wh..wh..opq")],
    "hardlink-to-dir": [entry("d", "dir"), entry("ln", "hardlink", link="d")],
    "file-as-parent": [entry("f", data=b""), entry("f/g", data=b"x")],
    "symlink-loop": [entry("a", "symlink", link="b"), entry("b", "symlink", link="a"), entry("a/x", data=b"")],
    "symlink-replaced-dir": [entry("d", "symlink", link="TMP/outside"), entry("d", "dir"),
                             entry("d/f", data=b"in")],
    "locked-dir-then-symlink": [entry("l", "dir", mode=0), entry("l/f", data=b""), entry("l", "symlink", link="TMP"),
                                entry("l/sentinel", data=b"pwned")],
    "dir-fd-cache-symlink-swap": [entry("c", "dir"), entry("c/d", "dir"), entry("c/d/f", data=b""),
                                  entry("c", "symlink", link="TMP"), entry("c/d/g", data=b"pwned"),
                                  entry("c/outside/h", data=b"pwned")],
}


@pytest.mark.parametrize("rootless", [False, True], ids=["", "rootless"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_stay_inside(area, case, rootless):
    _, bundle, tmp = area
    entries = []
    for ti, data in HOSTILE[case]:
        ti.name = ti.name.replace("TMP", str(tmp))
        ti.linkname = ti.linkname.replace("TMP", str(tmp))
        entries.append((ti, data))
    lay, bundle = build(area, [entries])
    before = outside_state(tmp)
    try:
        unpack(lay, bundle, rootless=rootless)
    except PyruncError as e:
        assert "\n" not in str(e)
        assert not os.path.exists(bundle)  # a failed unpack removes the bundle it made
    assert outside_state(tmp) == before
    assert (tmp / "sentinel").read_text() == "untouched"


# --- digests, refs, platforms -------------------------------------------------

def test_digest_mismatch_fails_and_leaves_nothing(area):
    b, bundle, tmp = area
    lay, bundle = build(area, [[entry("f", data=b"good")]])
    index = json.loads((b.path / "index.json").read_text())
    man = json.loads((b.path / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    layer = b.path / "blobs/sha256" / man["layers"][0]["digest"][7:]
    data = layer.read_bytes()
    layer.write_bytes(data.replace(b"good", b"evil"))
    with pytest.raises(PyruncError, match="does not match its digest") as e:
        unpack(lay, bundle)
    assert "\n" not in str(e.value)
    assert not os.path.exists(bundle)


def test_truncated_blob_fails(area):
    b, bundle, _ = area
    lay, bundle = build(area, [[entry("f", data=b"good")]])
    cfg = json.loads((b.path / "index.json").read_text())["manifests"][0]["digest"][7:]
    p = b.path / "blobs/sha256" / cfg
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(PyruncError, match="size"):
        unpack(lay, bundle)


def test_ref_selection_and_missing_ref(area):
    b, bundle, tmp = area
    b.tag(b.image([layer_tar([entry("which", data=b"one")])]), "v1")
    b.tag(b.image([layer_tar([entry("which", data=b"two")])]), "latest")
    unpack(str(b.path), str(bundle))  # default ref: latest, as umoci
    assert (bundle / "rootfs/which").read_bytes() == b"two"
    unpack(f"{b.path}:v1", str(tmp / "b2"))
    assert (tmp / "b2/rootfs/which").read_bytes() == b"one"
    with pytest.raises(PyruncError, match="image reference not found"):
        unpack(f"{b.path}:nope", str(tmp / "b3"))
    assert not (tmp / "b3").exists()


def test_platform_selection_from_nested_index(area):
    b, bundle, _ = area
    other = "s390x" if host_arch() != "s390x" else "riscv64"
    mine = b.image([layer_tar([entry("arch", data=b"host")])])
    theirs = b.image([layer_tar([entry("arch", data=b"other")])], arch=other)
    inner = b.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**theirs, "platform": {"os": "linux", "architecture": other}},
        {**mine, "platform": {"os": "linux", "architecture": host_arch()}},
    ]}).encode(), OCI_INDEX)
    outer = b.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [inner]}).encode(), OCI_INDEX)
    b.tag(outer)
    unpack(str(b.path), str(bundle))
    assert (bundle / "rootfs/arch").read_bytes() == b"host"


def test_no_manifest_for_platform(area):
    b, bundle, _ = area
    theirs = b.image([layer_tar([entry("a", data=b"")])], arch="mips64le")
    b.tag(b.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**theirs, "platform": {"os": "windows", "architecture": host_arch()}}]}).encode(), OCI_INDEX))
    with pytest.raises(PyruncError, match="no image found in image index"):
        unpack(str(b.path), str(bundle))


def test_zstd_layer_without_module(area, monkeypatch):
    import sys
    zstandard = pytest.importorskip("zstandard")
    raw = layer_tar([entry("f")])
    lay, bundle = _custom_layer(area, zstandard.ZstdCompressor().compress(raw), raw,
                                "application/vnd.oci.image.layer.v1.tar+zstd")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails as if not installed
    with pytest.raises(PyruncError, match="'zstandard' is not installed"):
        unpack(lay, str(bundle))
    assert not bundle.exists()


@pytest.mark.parametrize("arg, want", [
    ("/img/lay", ("/img/lay", "latest")),
    ("/img/lay:v1.0", ("/img/lay", "v1.0")),
    ("lay:a/b", ("lay", "a/b")),
    ("/a:b/my lay", ("/a:b/my lay", "latest")),  # what follows the last ":" is no ref name
    ("/a:b/lay", ("/a", "b/lay")),  # it is one: umoci splits there too
    ("lay:", ("lay:", "latest")),
])
def test_parse_image(arg, want):
    assert parse_image(arg) == want


def test_cli_errors_are_one_line(area, capfd):
    _, bundle, tmp = area
    assert main(["image", "unpack", "--image", str(tmp / "missing"), str(bundle)]) == 1
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "not an OCI image layout" in err and "Traceback" not in err
    bundle.mkdir()
    (bundle / "x").write_text("")
    lay, _ = build(area, [[entry("f")]])
    assert main(["image", "unpack", "--image", lay, str(bundle)]) == 1
    assert "not an empty directory" in capfd.readouterr().err
    assert os.listdir(bundle) == ["x"]
    assert main(["image", "unpack", "--help"]) == 0
    assert "--image DIR[:REF] BUNDLE" in capfd.readouterr().out
    assert main(["image", "--help"]) == 0
    assert "unpack" in capfd.readouterr().out


# --- image config -> config.json --------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1001:Bob:/home/bob:/bin/sh\n"
GROUP = "root:x:0:\nbobs:x:1001:\nwheel:x:10:bob,alice\nstaff:x:50:bob\n"


@pytest.mark.parametrize("spec, want", [
    ("", (0, 0, [], "/root")),
    ("bob", (1000, 1001, [10, 50], "/home/bob")),
    ("1000", (1000, 1001, [10, 50], "/home/bob")),
    ("bob:staff", (1000, 50, [], "/home/bob")),
    ("bob:10", (1000, 10, [], "/home/bob")),
    ("1234", (1234, 0, [], "")),
    ("1234:5678", (1234, 5678, [], "")),
    ("root", (0, 0, [], "/root")),
])
def test_exec_user_forms(spec, want):
    u = exec_user(spec, PASSWD, GROUP)
    assert (u["uid"], u["gid"], u["sgids"], u["home"]) == want


@pytest.mark.parametrize("spec", ["nobody", "bob:nogroup"])
def test_exec_user_unknown_names(spec):
    with pytest.raises(PyruncError, match="cannot parse user spec"):
        exec_user(spec, PASSWD, GROUP)


def test_exec_user_without_files():
    assert exec_user("55:66", None, None)["uid"] == 55
    with pytest.raises(PyruncError):
        exec_user("bob", None, None)


def test_config_json_mapping(area):
    lay, bundle = build(area, [[entry("etc/passwd", data=PASSWD.encode()), entry("etc/group", data=GROUP.encode())]], {
        "User": "bob", "Entrypoint": ["/bin/ep", "-x"], "Cmd": ["arg"], "WorkingDir": "/srv",
        "Env": ["PATH=/custom", "FOO=bar=baz"], "Labels": {"com.example.l": "v"}, "StopSignal": "SIGINT",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
    })
    unpack(lay, bundle)
    spec = json.loads((Path(bundle) / "config.json").read_text())
    p = spec["process"]
    assert p["args"] == ["/bin/ep", "-x", "arg"]
    assert p["cwd"] == "/srv"
    assert p["terminal"] is True
    assert p["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [10, 50]}
    assert p["env"] == ["PATH=/custom", "TERM=xterm", "FOO=bar=baz", "HOME=/home/bob"]
    assert spec["root"] == {"path": "rootfs"}
    a = spec["annotations"]
    assert a["com.example.l"] == "v"
    assert a["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert a["org.opencontainers.image.exposedPorts"] == "53/udp,80/tcp"
    assert a["org.opencontainers.image.architecture"] == host_arch()
    assert {"destination": "/data", "type": "tmpfs", "source": "none",
            "options": ["rw", "nosuid", "nodev", "noexec", "relatime"]} in spec["mounts"]


def test_config_without_entrypoint_keeps_default_args(area):
    lay, bundle = build(area, [[entry("f")]], {})
    unpack(lay, bundle)
    spec = json.loads((Path(bundle) / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["process"]["cwd"] == "/"
    assert spec["process"]["user"] == {"uid": 0, "gid": 0}


def test_user_resolved_inside_rootfs(area):
    """/etc/passwd as a symlink to an absolute path is read inside the rootfs."""
    lay, bundle = build(area, [[entry("real/passwd", data=b"app:x:77:88::/app:/bin/sh\n"),
                                entry("etc/passwd", "symlink", link="/real/passwd")]], {"User": "app"})
    unpack(lay, bundle)
    assert json.loads((Path(bundle) / "config.json").read_text())["process"]["user"] == {"uid": 77, "gid": 88}


def test_runtime_commands_do_not_import_image_tools():
    import subprocess
    import sys
    code = ("import sys\nimport pyrunc.cli.main, pyrunc.cli.run, pyrunc.cli.create, pyrunc.cli.start, "
            "pyrunc.cli.exec, pyrunc.cli.state\n"
            "print(sorted(m for m in sys.modules if m.startswith('pyrunc.image')))")
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": src}).stdout
    assert out.strip() == "[]"


def test_rootfs_mode_ignores_umask(area):
    lay, bundle = build(area, [[entry("deep/er/file", data=b"")]])
    old = os.umask(0o077)
    try:
        unpack(lay, bundle)
    finally:
        os.umask(old)
    r = Path(bundle) / "rootfs"
    assert stat.S_IMODE(r.stat().st_mode) == 0o755
    assert stat.S_IMODE((r / "deep/er").stat().st_mode) == 0o755


@root_only
def test_id_maps_shift_owners_and_add_a_user_namespace(area):
    lay, bundle = build(area, [[entry("etc/f", data=b"", uid=1000, gid=50), entry("root", "dir", mode=0o700)]])
    unpack(lay, bundle, [(0, 100000, 65536)], [(0, 200000, 65536)])
    r = Path(bundle) / "rootfs"
    st = (r / "etc/f").lstat()
    assert (st.st_uid, st.st_gid) == (101000, 200050)
    assert ((r / "root").lstat().st_uid, (r / "root").lstat().st_gid) == (100000, 200000)
    assert (r.lstat().st_uid, r.lstat().st_gid) == (100000, 200000)
    linux = json.loads((Path(bundle) / "config.json").read_text())["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]
    assert [n for n in linux["namespaces"] if n["type"] == "user"] == [{"type": "user"}]


@root_only
def test_unmapped_owner_fails_cleanly(area):
    lay, bundle = build(area, [[entry("f", data=b"", uid=70000)]])
    with pytest.raises(PyruncError, match="container uid 70000 cannot be mapped"):
        unpack(lay, bundle, [(0, 100000, 65536)], [])
    assert not os.path.exists(bundle)


@pytest.mark.parametrize("bad", ["0:100000", "a:b:c", "0:1:0", "-1:0:5", "0:0:4294967296"])
def test_bad_id_map_flag(area, capfd, bad):
    _, bundle, _ = area
    lay, _ = build(area, [[entry("f")]])
    assert main(["image", "unpack", "--uid-map", bad, "--image", lay, str(bundle)]) == 1
    err = capfd.readouterr().err
    assert "invalid --uid-map" in err and err.count("\n") == 1
    assert not bundle.exists()


# --- umoci.json, --rootless, a full disk ----------------------------------------

def test_umoci_json_as_umoci_writes_it(area):
    lay, bundle = build(area, [[entry("f")]])
    b, _, _ = area
    unpack(lay, bundle, [(0, 100000, 65536)], [(0, 200000, 65536)])
    desc = json.loads((b.path / "index.json").read_text())["manifests"][0]
    text = (Path(bundle) / "umoci.json").read_text()
    assert text.endswith("}\n") and ", " not in text  # Go's compact encoding
    meta = json.loads(text)
    assert meta == {"umoci_version": "2", "from_descriptor_path": {"descriptor_walk": [desc]},
                    "map_options": {"uid_mappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                                    "gid_mappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
                                    "rootless": False},
                    "whiteout_mode": 0}


def test_umoci_json_walks_through_indexes(area):
    b, bundle, _ = area
    mine = b.image([layer_tar([entry("f")])])
    inner = b.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**mine, "platform": {"os": "linux", "architecture": host_arch()}}]}).encode(), OCI_INDEX)
    b.tag(inner)
    unpack(str(b.path), str(bundle))
    walk = json.loads((bundle / "umoci.json").read_text())["from_descriptor_path"]["descriptor_walk"]
    assert [d["digest"] for d in walk] == [inner["digest"], mine["digest"]]
    assert walk[1]["platform"] == {"os": "linux", "architecture": host_arch()}


@pytest.mark.parametrize("uid, gid, want", [
    (0, 0, None),
    (0, 8, "08ffffffff0f1008"),  # as umoci 0.4.7 wrote it for Debian's /var/mail
    (1000, 0, "08e80710ffffffff0f"),
    (65534, 65534, "08feff0310feff03"),
])
def test_rootlesscontainers_payload(uid, gid, want):
    from pyrunc.image.layers import rootless_payload
    got = rootless_payload(uid, gid)
    assert (got.hex() if got is not None else None) == want


def test_rootless_unpack_records_owners_and_fakes_devices(area):
    _, _, tmp = area
    if not user_xattrs_supported(tmp):
        pytest.skip(f"{tmp}: no user.* xattrs on this filesystem")
    lay, bundle = build(area, [[
        entry("etc/owned", data=b"x", uid=1000, gid=50, mode=0o4755),
        entry("etc/root", data=b"y"),
        entry("etc/lnk", "symlink", link="owned", uid=7, gid=7),
        entry("dev/null2", "char", mode=0o666, dev=(1, 3), uid=3),
        entry("run/fifo", "fifo", mode=0o620),
        entry("ro", "dir", mode=0o555), entry("ro/f", data=b"", uid=1),
        entry("shut", "dir", mode=0o000), entry("shut/f", data=b""),
        entry("mark", data=b"", xattrs={"user.rootlesscontainers": b"\x08\x05"}),
    ]], {"User": "0:0"})
    unpack(lay, bundle, rootless=True)
    r = Path(bundle) / "rootfs"
    me = (os.geteuid(), os.getegid())
    for p in ("etc/owned", "etc/root", "dev/null2", "run/fifo", "ro/f"):
        st = (r / p).lstat()
        assert (st.st_uid, st.st_gid) == me, p
    assert os.getxattr(r / "etc/owned", "user.rootlesscontainers") == bytes.fromhex("08e80710 32".replace(" ", ""))
    assert stat.S_IMODE((r / "etc/owned").lstat().st_mode) == 0o4755
    assert "user.rootlesscontainers" not in os.listxattr(r / "etc/root")
    assert "user.rootlesscontainers" not in os.listxattr(r / "mark")  # the layer's own is dropped
    n = (r / "dev/null2").lstat()
    assert stat.S_ISREG(n.st_mode) and n.st_size == 0 and stat.S_IMODE(n.st_mode) == 0o666
    assert stat.S_ISFIFO((r / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((r / "ro").lstat().st_mode) == 0o555
    assert stat.S_IMODE((r / "shut").lstat().st_mode) == 0o000
    cfg = json.loads((Path(bundle) / "config.json").read_text())
    linux = cfg["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": me[0], "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": me[1], "size": 1}]
    assert [n["type"] for n in linux["namespaces"]][-1] == "user"
    assert "network" not in [n["type"] for n in linux["namespaces"]] and "resources" not in linux
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert mounts["/sys"] == {"destination": "/sys", "type": "bind", "source": "/sys",
                              "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    assert "/sys/fs/cgroup" not in mounts and "/etc/resolv.conf" in mounts
    assert not any(o.startswith(("uid=", "gid=")) for m in cfg["mounts"] for o in m.get("options", []))
    meta = json.loads((Path(bundle) / "umoci.json").read_text())["map_options"]
    assert meta["rootless"] is True and meta["uid_mappings"][0]["hostID"] == me[0]


@root_only
def test_full_disk_is_one_line_and_leaves_nothing(area, capfd):
    import subprocess
    _, _, tmp = area
    small = tmp / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs")
    try:
        lay, _ = build(area, [[entry("a", data=b"x" * 1000), entry("big", data=os.urandom(3 << 20))]],
                       gzip_layers=True)
        assert main(["image", "unpack", "--image", lay, str(small / "bundle")]) == 1
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err, err
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)])


def _custom_layer(area, blob: bytes, raw: bytes, media_type: str):
    """An image of one layer given as its blob (compressed as the test wants)."""
    b, bundle, _ = area
    ldesc = b.blob(blob, media_type)
    cfg = {"architecture": host_arch(), "os": "linux", "config": {},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    cdesc = b.blob(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json")
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": cdesc, "layers": [ldesc]}
    b.tag(b.blob(json.dumps(man).encode(), man["mediaType"]))
    return str(b.path), bundle


def test_zstd_layer(area):
    zstandard = pytest.importorskip("zstandard")
    raw = layer_tar([entry("z/big", data=os.urandom(1 << 21)), entry("z/small", data=b"zz")])
    lay, bundle = _custom_layer(area, zstandard.ZstdCompressor().compress(raw), raw,
                                "application/vnd.oci.image.layer.v1.tar+zstd")
    unpack(lay, str(bundle))
    assert (bundle / "rootfs/z/small").read_bytes() == b"zz"
    assert (bundle / "rootfs/z/big").stat().st_size == 1 << 21


@pytest.mark.parametrize("compress,media_type", [
    ("none", "application/vnd.docker.image.rootfs.diff.tar.gzip"),  # docker-archive copied as it is
    ("gzip", "application/vnd.oci.image.layer.v1.tar"),
    ("gzip", "application/vnd.oci.image.layer.v1.tar+zstd"),
])
def test_compression_is_taken_from_the_bytes(area, compress, media_type):
    import gzip
    raw = layer_tar([entry("c/f", data=b"sniffed")])
    lay, bundle = _custom_layer(area, gzip.compress(raw) if compress == "gzip" else raw, raw, media_type)
    unpack(lay, str(bundle))
    assert (bundle / "rootfs/c/f").read_bytes() == b"sniffed"


def test_gzip_members_and_padding(area):
    import gzip
    raw = layer_tar([entry("m/a", data=b"first" * 1000), entry("m/b", data=b"second")])
    blob = gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]) + b"\0" * 1000
    lay, bundle = _custom_layer(area, blob, raw, "application/vnd.oci.image.layer.v1.tar+gzip")
    unpack(lay, str(bundle))
    assert (bundle / "rootfs/m/b").read_bytes() == b"second"


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_broken_gzip_is_one_line_and_leaves_nothing(area, damage):
    import gzip
    raw = layer_tar([entry("f", data=os.urandom(100000))])
    blob = gzip.compress(raw)
    blob = blob[:len(blob) // 2] if damage == "truncated" else blob[:20] + bytes(50) + blob[70:]
    lay, bundle = _custom_layer(area, blob, raw, "application/vnd.oci.image.layer.v1.tar+gzip")
    with pytest.raises(PyruncError) as e:
        unpack(lay, str(bundle))
    assert "\n" not in str(e.value) and str(e.value).startswith("layer sha256:")
    assert not bundle.exists()


@root_only
def test_xattrs_the_file_system_lacks_are_skipped(area):
    """As umoci: ENOTSUP on setxattr is not an error (ramfs has no xattrs)."""
    import subprocess
    _, _, tmp = area
    rf = tmp / "ramfs"
    rf.mkdir()
    if subprocess.run(["mount", "-t", "ramfs", "ramfs", str(rf)]).returncode != 0:
        pytest.skip("cannot mount a ramfs")
    try:
        lay, _ = build(area, [[entry("f", data=b"x", xattrs={"user.note": b"hi"}), entry("d", "dir")]])
        unpack(lay, str(rf / "bundle"))
        assert (rf / "bundle/rootfs/f").read_bytes() == b"x"
        rf_b = rf / "b2"
        unpack(lay, str(rf_b), rootless=True)  # user.rootlesscontainers cannot be set either
        assert (rf_b / "rootfs/f").read_bytes() == b"x"
    finally:
        subprocess.run(["umount", str(rf)])


@pytest.mark.parametrize("text", ["sha256:" + "a" * 64 + "\n", "sha256:" + "A" * 64, "sha256:" + "a" * 63])
def test_digest_parse_refuses_near_misses(text):
    from pyrunc.image.digest import parse
    with pytest.raises(PyruncError, match="invalid digest"):
        parse(text)
