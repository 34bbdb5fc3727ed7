"""criu/: the protobuf messages of CRIU's RPC (field numbers of criu's
images/rpc.proto), the checkpoint/restore flags as runc 1.5 checks them, and
the requests built from a container's state. No CRIU needed."""
from __future__ import annotations

import os

import pytest

from pyrunc.criu import proto as P
from pyrunc.criu.options import CLONE_NEWNET, cg_mode, empty_ns, from_flags, image_paths, page_server
from pyrunc.errors import PyruncError


# -- protobuf ------------------------------------------------------------------

def test_version_request_bytes():
    # criu_req{type = VERSION (10)}: field 1, varint
    assert P.encode("criu_req", {"type": P.REQ_TYPES["VERSION"]}) == b"\x08\x0a"


def test_decode_criu_3_17_version_answer():
    """The bytes CRIU 3.17.1 answers a VERSION request with (recorded here)."""
    resp = P.decode("criu_resp", b"\x08\n\x10\x01R\x06\x08\x03\x10\x11 \x01")
    assert resp == {"type": 10, "success": True, "version": {"major_number": 3, "minor_number": 17, "sublevel": 1}}


@pytest.mark.parametrize("msg, field, num", [
    ("criu_opts", "images_dir_fd", 1), ("criu_opts", "pid", 2), ("criu_opts", "leave_running", 3),
    ("criu_opts", "log_file", 10), ("criu_opts", "ps", 11), ("criu_opts", "root", 13),
    ("criu_opts", "parent_img", 14), ("criu_opts", "work_dir_fd", 17), ("criu_opts", "veths", 19),
    ("criu_opts", "ext_mnt", 23), ("criu_opts", "cg_root", 25), ("criu_opts", "rst_sibling", 26),
    ("criu_opts", "inherit_fd", 27), ("criu_opts", "manage_cgroups_mode", 34), ("criu_opts", "external", 37),
    ("criu_opts", "empty_ns", 38), ("criu_opts", "join_ns", 39), ("criu_opts", "freeze_cgroup", 44),
    ("criu_opts", "tcp_skip_in_flight", 46), ("criu_opts", "lazy_pages", 48), ("criu_opts", "status_fd", 49),
    ("criu_opts", "orphan_pts_master", 50), ("criu_opts", "config_file", 51), ("criu_opts", "lsm_profile", 53),
    ("criu_opts", "lsm_mount_context", 63), ("criu_req", "notify_success", 3), ("criu_req", "features", 5),
    ("criu_resp", "notify", 5), ("criu_resp", "cr_errno", 7), ("criu_resp", "cr_errmsg", 9),
    ("criu_resp", "version", 10), ("criu_notify", "pid", 2), ("criu_features", "lazy_pages", 2),
])
def test_field_numbers_of_rpc_proto(msg, field, num):
    assert P.SCHEMAS[msg][field][0] == num


def test_round_trip_of_a_dump_request():
    req = {"type": P.REQ_TYPES["DUMP"], "opts": {
        "images_dir_fd": 5, "pid": 4242, "log_level": 4, "log_file": "dump.log", "root": "/b/rootfs",
        "manage_cgroups": True, "manage_cgroups_mode": P.CG_MODES["SOFT"], "leave_running": False,
        "empty_ns": CLONE_NEWNET, "ps": {"address": "10.0.0.1", "port": 27},
        "ext_mnt": [{"key": "/etc/hosts", "val": "/etc/hosts"}, {"key": "/dev/null", "val": "/dev/null"}],
        "external": ["net[4026531840]:extRootNetNS"], "config_file": "/etc/criu/runc.conf",
        "lsm_mount_context": "ctx", "status_fd": -1}}
    data = P.encode("criu_req", req)
    assert P.decode("criu_req", data) == req
    # a negative int32 is ten bytes (two's complement varint), as protobuf writes it
    assert P.encode("criu_opts", {"status_fd": -1}) == b"\x88\x03" + b"\xff" * 9 + b"\x01"  # tag 49 << 3 = 392


def test_fields_in_number_order_and_nesting():
    data = P.encode("criu_req", {"opts": {"root": "/r", "images_dir_fd": 3}, "type": 2})
    # type (1, varint 2), opts (2, length-delimited: images_dir_fd=3, root="/r")
    assert data == b"\x08\x02" + b"\x12\x06" + b"\x08\x03" + b"\x6a\x02/r"


def test_decode_skips_unknown_fields():
    # field 15 varint, field 16 bytes, field 17 fixed64, field 18 fixed32, then type/success
    junk = b"\x78\x01" + b"\x82\x01\x02ab" + b"\x89\x01" + b"\0" * 8 + b"\x95\x01" + b"\0" * 4
    assert P.decode("criu_resp", junk + b"\x08\x06\x10\x01") == {"type": 6, "success": True}


def test_decode_notify_and_failure():
    notify = P.encode("criu_resp", {"type": 6, "success": True, "notify": {"script": "post-restore", "pid": 77}})
    assert P.decode("criu_resp", notify)["notify"] == {"script": "post-restore", "pid": 77}
    fail = P.encode("criu_resp", {"type": 1, "success": False, "cr_errno": 22, "cr_errmsg": "bad"})
    assert P.decode("criu_resp", fail) == {"type": 1, "success": False, "cr_errno": 22, "cr_errmsg": "bad"}


@pytest.mark.parametrize("data", [b"\x08", b"\x12\x05ab", b"\x0b"])
def test_decode_rejects_truncated_or_bad(data):
    with pytest.raises(ValueError):
        P.decode("criu_resp", data)


def test_encode_refuses_unknown_field():
    with pytest.raises(KeyError):
        P.encode("criu_req", {"type": 1, "nope": 1})


# -- flags ------------------------------------------------------------------------

@pytest.mark.parametrize("value, want", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("host:1", ("host", 1)), ("[::1]:27", ("::1", 27)),
])
def test_page_server(value, want):
    assert page_server(value) == want


@pytest.mark.parametrize("value, msg", [
    ("foo", "Use --page-server ADDRESS:PORT to specify page server"),
    (":80", "Use --page-server ADDRESS:PORT to specify page server"),
    ("host:", "Use --page-server ADDRESS:PORT to specify page server"),
    ("a:b:c", "Use --page-server ADDRESS:PORT to specify page server"),
    ("[::1]27", "Use --page-server ADDRESS:PORT to specify page server"),
    ("host:port", "Invalid port number"),
])
def test_page_server_errors(value, msg):
    with pytest.raises(PyruncError) as e:
        page_server(value)
    assert str(e.value) == msg


def test_empty_ns_and_cgroup_modes():
    assert empty_ns([]) == CLONE_NEWNET and empty_ns(["network"]) == CLONE_NEWNET
    with pytest.raises(PyruncError, match='^namespace "pid" is not supported$'):
        empty_ns(["pid"])
    assert [cg_mode(v) for v in ("", "soft", "full", "strict", "ignore")] == [6, 3, 4, 5, 0]
    with pytest.raises(PyruncError, match="^invalid manage-cgroups-mode value$"):
        cg_mode("Soft")


def test_image_paths(tmp_path):
    img = tmp_path / "img"
    assert image_paths(str(img), "") == (str(img), "", True) and img.is_dir()
    assert image_paths(str(img), "")[2] is False  # there already
    (img / "p1").mkdir()
    assert image_paths(str(img), "p1") == (str(img), "p1", False)
    (img / "f").write_text("")
    for parent, msg in (("/abs", "--parent-path must be relative"),
                        ("nope", f"invalid --parent-path: stat {img}/nope: no such file or directory"),
                        ("f", f"invalid --parent-path: {img}/f: not a directory")):
        with pytest.raises(PyruncError) as e:
            image_paths(str(img), parent)
        assert str(e.value) == msg
    # a directory we made for a refused call is not left behind
    with pytest.raises(PyruncError):
        image_paths(str(tmp_path / "new"), "/abs")
    assert not (tmp_path / "new").exists()


def test_default_image_path_is_cwd_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    o = from_flags({"leave-running": True, "empty-ns": ["network"], "manage-cgroups-mode": "full",
                    "page-server": "h:5", "status-fd": 7, "parent-path": "", "work-path": "w"})
    assert o.images_dir == os.path.join(str(tmp_path), "checkpoint") and o.created_images_dir
    assert o.leave_running and not o.pre_dump and o.cg_mode == 4 and o.page_server == ("h", 5)
    assert o.status_fd == 7 and o.work_dir == "w" and o.empty_ns == CLONE_NEWNET


def test_restore_ignores_parent_path(tmp_path):
    o = from_flags({"image-path": str(tmp_path), "parent-path": "/abs"}, restore=True)
    assert o.parent_image == ""


# -- requests -------------------------------------------------------------------------

def _state(tmp_path, **config):
    return {"pid": 4242, "rootfs": str(tmp_path), "freezer": "/sys/fs/cgroup/freezer/c1",
            "config": {"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}, **config}}


def test_dump_request(tmp_path, monkeypatch):
    from pyrunc.criu import checkpoint as K
    monkeypatch.setattr(K, "_unified", lambda: False)
    o = from_flags({"image-path": str(tmp_path / "img"), "tcp-established": True, "parent-path": ""})
    os.makedirs(tmp_path / "img" / "parent")
    o.parent_image = "parent"
    st = _state(tmp_path, mounts=[{"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
                                   "options": ["rbind"]}, {"destination": "/proc", "type": "proc"}],
                annotations={"org.criu.config": ""})
    req = K.build_request(o, st, 5, -1, 31701)
    assert req["type"] == P.REQ_TYPES["DUMP"]
    opts = req["opts"]
    assert opts["pid"] == 4242 and opts["root"] == str(tmp_path) and opts["images_dir_fd"] == 5
    assert opts["tcp_established"] and opts["notify_scripts"] and opts["orphan_pts_master"]
    assert opts["manage_cgroups_mode"] == P.CG_MODES["DEFAULT"] and opts["log_file"] == "dump.log"
    assert opts["parent_img"] == "parent" and opts["track_mem"]
    assert opts["freeze_cgroup"] == "/sys/fs/cgroup/freezer/c1"
    assert "config_file" not in opts  # org.criu.config = "": none
    assert "work_dir_fd" not in opts
    assert {"key": "/etc/hosts", "val": "/etc/hosts"} in opts["ext_mnt"]
    assert {"key": "/dev/null", "val": "/dev/null"} in opts["ext_mnt"]
    P.encode("criu_req", req)  # every field is one of rpc.proto's


def test_pre_dump_and_config_file(tmp_path):
    from pyrunc.criu import checkpoint as K
    o = from_flags({"image-path": str(tmp_path), "pre-dump": True, "page-server": "h:1"})
    req = K.build_request(o, _state(tmp_path), 5, 6, 31701)
    assert req["type"] == P.REQ_TYPES["PRE_DUMP"] and "ext_mnt" not in req["opts"]
    assert req["opts"]["config_file"] == "/etc/criu/runc.conf" and req["opts"]["work_dir_fd"] == 6
    assert req["opts"]["ps"] == {"address": "h", "port": 1}


def test_external_netns_and_old_criu(tmp_path):
    from pyrunc.criu import checkpoint as K
    st = _state(tmp_path)
    st["config"]["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
    o = from_flags({"image-path": str(tmp_path)})
    ino = os.stat("/proc/self/ns/net").st_ino
    assert K.build_request(o, st, 5, -1, 31701)["opts"]["external"] == [f"net[{ino}]:extRootNetNS"]
    with pytest.raises(PyruncError, match="criu lacks support for external pid namespace"):
        K.build_request(o, st, 5, -1, 31400)


def test_restore_mounts_and_namespaces():
    from pyrunc.criu import restore as R
    cfg = {"mounts": [{"destination": "/data", "type": "none", "source": "/srv/data", "options": ["bind"]}],
           "linux": {"maskedPaths": ["/proc/kcore"], "devices": [{"path": "/dev/fuse"}],
                     "namespaces": [{"type": "uts", "path": "/proc/1/ns/uts"}, {"type": "network"}]}}
    m = R.restore_mounts(cfg)
    assert {"key": "/data", "val": "/srv/data"} in m and {"key": "/dev/fuse", "val": "/dev/fuse"} in m
    opts: dict = {}
    R.namespaces(opts, cfg, 31701, [])
    assert opts == {"join_ns": [{"ns": "uts", "ns_file": "/proc/1/ns/uts"}]}
    cfg["linux"]["namespaces"] = [{"type": "cgroup", "path": "/proc/1/ns/cgroup"}]
    with pytest.raises(PyruncError, match="Do not know how to handle namespace"):
        R.namespaces({}, cfg, 31701, [])


def test_first_log_error(tmp_path):
    from pyrunc.criu.swrk import first_log_error
    log = tmp_path / "dump.log"
    log.write_text("(00.01) Version: 3.17.1\n(00.013802) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n"
                   "(00.02) Error (x.c:1): second\n")
    assert first_log_error(str(log)) == "vdso: Unexpected rt vDSO area bounds"
    assert first_log_error(str(tmp_path / "none")) == ""
