"""The few protobuf (proto2) messages of CRIU's RPC (criu's images/rpc.proto),
encoded and decoded by hand: stdlib only, no generated code.

A message is a plain dict keyed by field name; SCHEMAS gives each message's
fields as name -> (number, kind, repeated). Kinds: "int32", "uint32",
"bool", "enum" (varints), "string", or the name of another message.
Unknown fields are skipped when decoding (a newer CRIU may send more).
"""
from __future__ import annotations

# kind, repeated
_F = tuple[int, str, bool]


def _fields(*spec: tuple) -> dict[str, _F]:
    return {name: (num, kind, len(rest) > 0 and rest[0]) for name, num, kind, *rest in spec}


SCHEMAS: dict[str, dict[str, _F]] = {
    "criu_page_server_info": _fields(("address", 1, "string"), ("port", 2, "int32"), ("pid", 3, "int32"),
                                     ("fd", 4, "int32")),
    "criu_veth_pair": _fields(("if_in", 1, "string"), ("if_out", 2, "string")),
    "ext_mount_map": _fields(("key", 1, "string"), ("val", 2, "string")),
    "join_namespace": _fields(("ns", 1, "string"), ("ns_file", 2, "string"), ("extra_opt", 3, "string")),
    "inherit_fd": _fields(("key", 1, "string"), ("fd", 2, "int32")),
    "cgroup_root": _fields(("ctrl", 1, "string"), ("path", 2, "string")),
    "criu_opts": _fields(
        ("images_dir_fd", 1, "int32"), ("pid", 2, "int32"), ("leave_running", 3, "bool"),
        ("ext_unix_sk", 4, "bool"), ("tcp_established", 5, "bool"), ("evasive_devices", 6, "bool"),
        ("shell_job", 7, "bool"), ("file_locks", 8, "bool"), ("log_level", 9, "int32"),
        ("log_file", 10, "string"), ("ps", 11, "criu_page_server_info"), ("notify_scripts", 12, "bool"),
        ("root", 13, "string"), ("parent_img", 14, "string"), ("track_mem", 15, "bool"),
        ("auto_dedup", 16, "bool"), ("work_dir_fd", 17, "int32"), ("link_remap", 18, "bool"),
        ("veths", 19, "criu_veth_pair", True), ("ext_mnt", 23, "ext_mount_map", True),
        ("manage_cgroups", 24, "bool"), ("cg_root", 25, "cgroup_root", True), ("rst_sibling", 26, "bool"),
        ("inherit_fd", 27, "inherit_fd", True), ("manage_cgroups_mode", 34, "enum"),
        ("external", 37, "string", True), ("empty_ns", 38, "uint32"), ("join_ns", 39, "join_namespace", True),
        ("freeze_cgroup", 44, "string"), ("tcp_skip_in_flight", 46, "bool"), ("lazy_pages", 48, "bool"),
        ("status_fd", 49, "int32"), ("orphan_pts_master", 50, "bool"), ("config_file", 51, "string"),
        ("lsm_profile", 53, "string"), ("lsm_mount_context", 63, "string"),
    ),
    "criu_features": _fields(("mem_track", 1, "bool"), ("lazy_pages", 2, "bool"), ("pidfd_store", 3, "bool")),
    "criu_req": _fields(("type", 1, "enum"), ("opts", 2, "criu_opts"), ("notify_success", 3, "bool"),
                        ("keep_open", 4, "bool"), ("features", 5, "criu_features"), ("pid", 6, "uint32")),
    "criu_dump_resp": _fields(("restored", 1, "bool")),
    "criu_restore_resp": _fields(("pid", 1, "int32")),
    "criu_notify": _fields(("script", 1, "string"), ("pid", 2, "int32")),
    "criu_version": _fields(("major_number", 1, "int32"), ("minor_number", 2, "int32"), ("gitid", 3, "string"),
                            ("sublevel", 4, "int32"), ("extra", 5, "int32"), ("name", 6, "string")),
    "criu_resp": _fields(
        ("type", 1, "enum"), ("success", 2, "bool"), ("dump", 3, "criu_dump_resp"),
        ("restore", 4, "criu_restore_resp"), ("notify", 5, "criu_notify"), ("ps", 6, "criu_page_server_info"),
        ("cr_errno", 7, "int32"), ("features", 8, "criu_features"), ("cr_errmsg", 9, "string"),
        ("version", 10, "criu_version"), ("status", 11, "int32"),
    ),
}

# enum criu_req_type
REQ_TYPES = {"EMPTY": 0, "DUMP": 1, "RESTORE": 2, "CHECK": 3, "PRE_DUMP": 4, "PAGE_SERVER": 5, "NOTIFY": 6,
             "CPUINFO_DUMP": 7, "CPUINFO_CHECK": 8, "FEATURE_CHECK": 9, "VERSION": 10, "WAIT_PID": 11,
             "PAGE_SERVER_CHLD": 12, "SINGLE_PRE_DUMP": 13}
REQ_TYPE_NAMES = {v: k for k, v in REQ_TYPES.items()}
# enum criu_cg_mode
CG_MODES = {"IGNORE": 0, "CG_NONE": 1, "PROPS": 2, "SOFT": 3, "FULL": 4, "STRICT": 5, "DEFAULT": 6}

_VARINT, _LEN = 0, 2


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32s: ten bytes, two's complement (as protobuf)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(msg: str, value: dict) -> bytes:
    """A message dict as protobuf bytes, fields in number order; None is absent."""
    schema = SCHEMAS[msg]
    out = bytearray()
    for name, (num, kind, repeated) in sorted(schema.items(), key=lambda kv: kv[1][0]):
        v = value.get(name)
        if v is None:
            continue
        for item in (v if repeated else [v]):
            if kind in ("int32", "uint32", "enum", "bool"):
                out += _varint(num << 3 | _VARINT) + _varint(int(item))
            else:
                data = item.encode() if kind == "string" else encode(kind, item)
                out += _varint(num << 3 | _LEN) + _varint(len(data)) + data
    unknown = set(value) - set(schema)
    if unknown:
        raise KeyError(f"{msg} has no field {sorted(unknown)[0]}")
    return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def decode(msg: str, buf: bytes) -> dict:
    """Protobuf bytes as a message dict (repeated fields as lists)."""
    by_num = {num: (name, kind, rep) for name, (num, kind, rep) in SCHEMAS[msg].items()}
    out: dict = {}
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == _VARINT:
            raw, i = _read_varint(buf, i)
            data = None
        elif wire == _LEN:
            size, i = _read_varint(buf, i)
            if i + size > len(buf):
                raise ValueError("truncated field")
            data, i = buf[i:i + size], i + size
            raw = 0
        elif wire == 1:  # 64-bit
            i += 8
            continue
        elif wire == 5:  # 32-bit
            i += 4
            continue
        else:
            raise ValueError(f"unsupported wire type {wire}")
        field = by_num.get(num)
        if field is None:
            continue
        name, kind, rep = field
        if kind == "bool":
            v: object = bool(raw)
        elif kind == "int32":
            v = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif kind in ("uint32", "enum"):
            v = raw
        elif data is None:
            raise ValueError(f"{msg}.{name}: wrong wire type")
        elif kind == "string":
            v = data.decode(errors="replace")
        else:
            v = decode(kind, data)
        if rep:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out
