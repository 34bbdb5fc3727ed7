"""shim/main.py's Go-style flag parsing and shim/process.py's socket address
(containerd 1.6's shim.SocketAddress) and grouping key."""
from __future__ import annotations

import hashlib
import json

import pytest

from pyrunc.shim import main as M
from pyrunc.shim import process as P


@pytest.mark.parametrize("argv, flags, rest", [
    (["-namespace", "k8s.io", "-id", "c1", "start"], {"namespace": "k8s.io", "id": "c1"}, ["start"]),
    (["--namespace=k8s.io", "--id=c1", "-debug", "delete"], {"namespace": "k8s.io", "id": "c1", "debug": True},
     ["delete"]),
    (["-debug=true", "-address", "-x"], {"debug": True, "address": "-x"}, []),    # a value may start with -
    (["-debug", "-debug=0"], {}, []),
    (["-id", "c1", "--", "-start"], {"id": "c1"}, ["-start"]),
    (["start", "-id", "c1"], {}, ["start", "-id", "c1"]),                        # flags end at the action
    (["-v"], {"v": True}, []),
    (["-"], {}, ["-"]),
])
def test_parse_flags(argv, flags, rest):
    values, args = M.parse_flags(argv)
    assert {k: v for k, v in values.items() if v != M.FLAGS[k]} == flags
    assert args == rest
    assert values["publish-binary"] == "containerd"                            # Go's default


@pytest.mark.parametrize("argv, text", [
    (["-nope"], "flag provided but not defined: -nope"),
    (["-id"], "flag needs an argument: -id"),
    (["-debug=yes"], 'invalid boolean value "yes" for -debug: parse error'),
    (["---id", "x"], "bad flag syntax: ---id"),
    (["-=x"], "bad flag syntax: -=x"),
])
def test_parse_flags_errors(argv, text):
    with pytest.raises(M.UsageError) as ei:
        M.parse_flags(argv)
    assert str(ei.value) == text


def test_socket_address_is_containerds():
    want = hashlib.sha256(b"/run/containerd/containerd.sock/k8s.io/sb1").hexdigest()
    assert P.socket_address("/run/containerd/containerd.sock", "k8s.io", "sb1") == \
        f"unix:///run/containerd/s/{want}"
    # Go's filepath.Join cleans the joined path
    assert P.socket_address("/run//containerd/./containerd.sock/", "k8s.io", "sb1") == \
        P.socket_address("/run/containerd/containerd.sock", "k8s.io", "sb1")
    assert P._go_join("", "ns", "id") == "ns/id"
    assert P._go_join("/a/../b", "ns", "") == "/b/ns"


def test_grouping_key(tmp_path):
    def key(annotations):
        (tmp_path / "config.json").write_text(json.dumps({"annotations": annotations}))
        return P.grouping_key(str(tmp_path), "c1")

    assert key({}) == "c1"
    assert key({"io.kubernetes.cri.sandbox-id": "sb"}) == "sb"
    assert key({"io.kubernetes.cri.sandbox-id": "sb", "io.containerd.pyrunc.v1.group": "g"}) == "g"
    assert key({"io.kubernetes.cri.sandbox-id": ""}) == "c1"
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(P.ShimError) as ei:
        P.grouping_key(str(tmp_path), "c1")
    assert str(ei.value) == f"{tmp_path}/config.json: invalid JSON"


@pytest.mark.parametrize("ns", [1_765_000_000_123_456_789, 1_765_000_000_000_000_000, 0])
def test_delete_response_is_the_messages_encoding(ns):
    """`delete` encodes its reply by hand (no message classes imported):
    byte for byte what DeleteResponse.encode() gives, and it decodes back."""
    from pyrunc.shim import messages as m
    from pyrunc.shim.deleted import delete_response
    want = m.DeleteResponse(exit_status=137, exited_at=m.Timestamp.from_ns(ns)).encode()
    assert delete_response(137, ns) == want
    got = m.DeleteResponse.decode(delete_response(137, ns))
    assert (got.exit_status, got.exited_at.to_ns(), got.pid) == (137, ns, 0)
