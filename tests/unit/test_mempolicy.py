"""security/mempolicy.py: linux.memoryPolicy parsed as runc 1.5 does
(specconv's names, configs.ToCPUSet's node list, the validator's node counts)."""
from __future__ import annotations

import pytest

from pyrunc.errors import PyruncError
from pyrunc.security import mempolicy as M

BIND, PREFERRED, DEFAULT, LOCAL = 2, 1, 0, 4
STATIC, RELATIVE, BALANCING = 1 << 15, 1 << 14, 1 << 13


@pytest.mark.parametrize("s, want", [
    ("", set()),  # unset
    ("0", {0}), ("1", {1}), ("0-1", {0, 1}), ("0,1", {0, 1}), (",0,1,", {0, 1}),
    ("0-3", {0, 1, 2, 3}), ("4-7", set(range(4, 8))), ("16", {16}),
    ("1, 2, 1-2", {1, 2}), ("    , 1   , 3  ,  5-7,    ", {1, 3, 5, 6, 7}),
    ("127-129, 1", {1, 127, 128, 129}), ("1023", {1023}),
])
def test_node_list(s, want):
    assert M.node_list(s) == want


@pytest.mark.parametrize("s, msg", [  # runc's TestToCPUSet error cases
    ("-", 'strconv.ParseUint: parsing "": invalid syntax'),
    ("1-", 'strconv.ParseUint: parsing "": invalid syntax'),
    ("-3", 'strconv.ParseUint: parsing "": invalid syntax'),
    (",", 'no members found in set ","'),
    (" ", 'no members found in set " "'),
    ("54-53", "invalid range: 54-53"),
    ("1 - 2", 'strconv.ParseUint: parsing "1 ": invalid syntax'),
    ("1024", "values larger than 1023 are not supported"),
    ("0-99999999999", 'strconv.ParseUint: parsing "99999999999": value out of range'),
    ("+1", 'strconv.ParseUint: parsing "+1": invalid syntax'),
])
def test_node_list_errors(s, msg):
    with pytest.raises(PyruncError) as e:
        M.node_list(s)
    assert str(e.value) == msg


@pytest.mark.parametrize("mp, want", [
    ({"mode": "MPOL_DEFAULT"}, (DEFAULT, set())),
    ({"mode": "MPOL_LOCAL", "nodes": ""}, (LOCAL, set())),
    ({"mode": "MPOL_PREFERRED"}, (PREFERRED, set())),  # zero nodes: the kernel's "local"
    ({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}, (PREFERRED | RELATIVE, {0})),
    ({"mode": "MPOL_BIND", "nodes": "0-3,7", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_NUMA_BALANCING"]},
     (BIND | STATIC | BALANCING, {0, 1, 2, 3, 7})),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": None}, (3, {0})),
    ({"mode": "MPOL_PREFERRED_MANY", "nodes": "0"}, (5, {0})),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0"}, (6, {0})),
    # the kernel, not runc, refuses flags a mode does not take
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     (BIND | STATIC | RELATIVE, {0})),
])
def test_parse(mp, want):
    assert M.parse(mp) == want


@pytest.mark.parametrize("mp, msg", [
    ({}, 'invalid memory policy mode ""'),
    ({"mode": "INTERLEAVE", "nodes": "0"}, 'invalid memory policy mode "INTERLEAVE"'),
    ({"mode": 2}, 'invalid memory policy mode "2"'),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]},
     'invalid memory policy flag "badflag"'),
    ({"mode": "MPOL_BIND", "nodes": "x"}, 'invalid memory policy nodes "x": strconv.ParseUint: parsing "x": invalid syntax'),
    ({"mode": "MPOL_DEFAULT", "nodes": "0-7"}, "memory policy mode requires 0 nodes but got 8"),
    ({"mode": "MPOL_LOCAL", "nodes": "3"}, "memory policy mode requires 0 nodes but got 1"),
    ({"mode": "MPOL_BIND"}, "memory policy mode requires at least one node but got 0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": ""}, "memory policy mode requires at least one node but got 0"),
    ({"mode": "MPOL_PREFERRED_MANY"}, "memory policy mode requires at least one node but got 0"),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE"}, "memory policy mode requires at least one node but got 0"),
    ("MPOL_BIND", "invalid config: linux.memoryPolicy has the wrong type"),
    ({"mode": "MPOL_BIND", "nodes": 0}, "invalid config: linux.memoryPolicy.nodes has the wrong type"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": "MPOL_F_STATIC_NODES"},
     "invalid config: linux.memoryPolicy.flags has the wrong type"),
])
def test_parse_errors(mp, msg):
    with pytest.raises(PyruncError) as e:
        M.parse(mp)
    assert str(e.value) == msg


def test_nodemask():
    assert M.nodemask(set()) is None
    m = M.nodemask({0, 3, 1023})
    assert len(m) == 128  # 1024 bits, as Go's unix.CPUSet
    assert m[0] == 0b1001 and m[127] == 0x80 and not any(m[1:127])


def test_config_validate_calls_parse(tmp_path):
    """config.validate: the field is checked at create, {} included."""
    from pyrunc.spec.config import validate
    (tmp_path / "rootfs").mkdir()
    spec = {"root": {"path": "rootfs"}, "process": {"cwd": "/", "args": ["true"]},
            "linux": {"namespaces": [{"type": "mount"}], "memoryPolicy": {}}}
    with pytest.raises(PyruncError, match='invalid memory policy mode ""'):
        validate(spec, str(tmp_path))
    spec["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    validate(spec, str(tmp_path))
