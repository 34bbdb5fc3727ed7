"""shim/ttrpc.py (and the Task service table of shim/service.py): a server
and a client over a unix socket: framing byte for byte, concurrent calls,
4 MiB limits, bad frames, unknown methods, errors as gRPC statuses."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc as T
from pyrunc.shim.service import TaskService


@pytest.fixture
def served(tmp_path):
    """(server, address, release): a server on a unix socket with test
    methods; `release` unblocks calls of Test/Block."""
    release = threading.Event()
    calls: list[str] = []

    def block(payload: bytes) -> bytes:
        calls.append("block")
        release.wait(10)
        return b"released"

    def fail(payload: bytes) -> bytes:
        kind = payload.decode()
        raise {"notfound": T.NotFound("container c: not found"),
               "exists": T.AlreadyExists("id c is already in use"),
               "precondition": T.FailedPrecondition("container c is not running"),
               "other": ValueError("first line\nsecond line")}[kind]

    server = T.Server()
    server.register("test.Test", {"Echo": lambda p: p, "Block": block, "Fail": fail,
                                  "Big": lambda p: b"x" * int(p.decode())})
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    t = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    t.start()
    yield server, "unix://" + path, release
    release.set()
    server.shutdown(timeout=1)
    t.join(5)
    assert not t.is_alive()
    listener.close()
    server.close()


def raw_conn(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(address[len("unix://"):])
    return s


def read_response(s: socket.socket) -> tuple[int, int, T.Response]:
    rfile = s.makefile("rb")
    stream_id, mtype, _, payload = T.read_frame(rfile)
    return stream_id, mtype, T.Response.decode(payload)


def test_frame_header_bytes():
    assert T.frame(1, T.REQUEST, b"abcde") == bytes.fromhex("00000005 00000001 01 00") + b"abcde"
    assert T.frame(0x01020304, T.RESPONSE, b"", flags=7) == bytes.fromhex("00000000 01020304 02 07")
    req = T.Request(service="s", method="m", payload=b"p", timeout_nano=5,
                    metadata=[T.KeyValue(key="k", value="v")])
    assert req.encode() == bytes.fromhex("0a0173 12016d 1a0170 2005 2a06 0a016b 120176")


def test_call_and_reply(served):
    _, address, _ = served
    with T.Client.connect(address) as c:
        assert c.call("test.Test", "Echo", b"hello") == b"hello"
        assert c.call("test.Test", "Echo", b"") == b""


def test_wire_of_a_reply(served):
    _, address, _ = served
    s = raw_conn(address)
    s.sendall(T.frame(1, T.REQUEST, T.Request(service="test.Test", method="Echo", payload=b"hi").encode()))
    stream_id, mtype, resp = read_response(s)
    assert (stream_id, mtype, resp.status.code, resp.payload) == (1, T.RESPONSE, T.OK, b"hi")
    s.close()


def test_unknown_service_and_method_are_unimplemented(served):
    _, address, _ = served
    with T.Client.connect(address) as c:
        with pytest.raises(T.RPCError) as ei:
            c.call("test.Nope", "Echo", b"")
        assert (ei.value.code, str(ei.value)) == (12, "service test.Nope")
        with pytest.raises(T.RPCError) as ei:
            c.call("test.Test", "Nope", b"")
        assert (ei.value.code, str(ei.value)) == (12, "method Nope")


@pytest.mark.parametrize("kind, code, text", [
    ("notfound", 5, "container c: not found"),
    ("exists", 6, "id c is already in use"),
    ("precondition", 9, "container c is not running"),
    ("other", 2, "first line"),
])
def test_handler_errors_become_statuses(served, kind, code, text):
    _, address, _ = served
    with T.Client.connect(address) as c:
        with pytest.raises(T.RPCError) as ei:
            c.call("test.Test", "Fail", kind.encode())
        assert (ei.value.code, str(ei.value)) == (code, text)
        assert c.call("test.Test", "Echo", b"still up") == b"still up"


def test_calls_are_concurrent(served):
    """A blocked call (as Wait) does not hold up the others on the same
    connection, and each reply reaches its own caller."""
    _, address, release = served
    with T.Client.connect(address) as c:
        blocked: list[bytes] = []
        t = threading.Thread(target=lambda: blocked.append(c.call("test.Test", "Block", b"")))
        t.start()
        results: dict[int, bytes] = {}

        def echo(i: int) -> None:
            results[i] = c.call("test.Test", "Echo", str(i).encode() * (i + 1))

        workers = [threading.Thread(target=echo, args=(i,)) for i in range(20)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
        assert results == {i: str(i).encode() * (i + 1) for i in range(20)}
        assert t.is_alive() and not blocked
        release.set()
        t.join(5)
        assert blocked == [b"released"]


def test_big_messages(served):
    _, address, _ = served
    with T.Client.connect(address) as c:
        big = os.urandom(4 * 1024 * 1024 - 64)
        assert c.call("test.Test", "Echo", big) == big
        with pytest.raises(T.RPCError) as ei:           # the client will not send more than 4 MiB
            c.call("test.Test", "Echo", big + b"x" * 100)
        assert ei.value.code == T.RESOURCE_EXHAUSTED
        with pytest.raises(T.RPCError) as ei:           # nor will the server
            c.call("test.Test", "Big", str(5 << 20).encode())
        assert ei.value.code == T.RESOURCE_EXHAUSTED and "exceed maximum message size of 4194304" in str(ei.value)
        assert c.call("test.Test", "Echo", b"after") == b"after"


def test_oversized_frame_is_discarded_and_answered(served):
    _, address, _ = served
    s = raw_conn(address)
    n = (4 << 20) + 1
    s.sendall(T.HEADER.pack(n, 3, T.REQUEST, 0) + b"\0" * n)
    stream_id, _, resp = read_response(s)
    assert (stream_id, resp.status.code) == (3, T.RESOURCE_EXHAUSTED)
    s.sendall(T.frame(5, T.REQUEST, T.Request(service="test.Test", method="Echo", payload=b"ok").encode()))
    assert read_response(s)[2].payload == b"ok"     # the stream is still in step
    s.close()


def test_bad_requests_are_answered_not_fatal(served):
    _, address, _ = served
    s = raw_conn(address)
    rfile = s.makefile("rb")
    s.sendall(T.frame(1, T.REQUEST, b"\x0f\x00"))                    # not a Request
    sid, _, _, payload = T.read_frame(rfile)
    resp = T.Response.decode(payload)
    assert (sid, resp.status.code) == (1, T.INVALID_ARGUMENT) and "unmarshal request error" in resp.status.message
    s.sendall(T.frame(2, T.REQUEST, T.Request(service="test.Test", method="Echo").encode()))   # even id
    sid, _, _, payload = T.read_frame(rfile)
    assert (sid, T.Response.decode(payload).status.code) == (2, T.INVALID_ARGUMENT)
    s.sendall(T.frame(3, 9, b"whatever"))                            # a type of a later protocol: ignored
    s.sendall(T.frame(5, T.REQUEST, T.Request(service="test.Test", method="Echo", payload=b"x").encode()))
    sid, _, _, payload = T.read_frame(rfile)
    assert (sid, T.Response.decode(payload).payload) == (5, b"x")
    s.close()


@pytest.mark.parametrize("junk", [b"\x00\x00", T.HEADER.pack(100, 1, T.REQUEST, 0) + b"short"])
def test_cut_frames_close_the_connection_cleanly(served, junk):
    server, address, _ = served
    s = raw_conn(address)
    s.sendall(junk)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b""                      # the server closed its end, saying nothing
    s.close()
    with T.Client.connect(address) as c:           # and serves on
        assert c.call("test.Test", "Echo", b"y") == b"y"
    deadline = time.monotonic() + 5
    while server._conns and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server._conns


def test_pending_call_fails_when_connection_ends(served):
    server, address, _ = served
    c = T.Client.connect(address)
    t0 = time.monotonic()
    threading.Timer(0.2, lambda: [conn.shutdown(socket.SHUT_RDWR) for conn in list(server._conns)]).start()
    with pytest.raises(T.ConnectionClosed):
        c.call("test.Test", "Block", b"")
    assert time.monotonic() - t0 < 5
    with pytest.raises(T.ConnectionClosed):
        c.call("test.Test", "Echo", b"")
    c.close()


def test_client_timeout(served):
    _, address, _ = served
    with T.Client.connect(address) as c:
        with pytest.raises(TimeoutError):
            c.call("test.Test", "Block", b"", timeout=0.2)


def test_shutdown_answers_calls_in_flight(served):
    server, address, release = served
    with T.Client.connect(address) as c:
        got: list[bytes] = []
        t = threading.Thread(target=lambda: got.append(c.call("test.Test", "Block", b"")))
        t.start()
        time.sleep(0.1)
        threading.Timer(0.2, release.set).start()
        server.shutdown(timeout=5)
        t.join(5)
        assert got == [b"released"]


# -- the Task service table ------------------------------------------------------------

def test_task_service_over_ttrpc(tmp_path):
    stopped = threading.Event()
    service = TaskService(on_shutdown=stopped.set)
    server = T.Server()
    server.register(m.TASK_SERVICE, service.handlers())
    a, b = socket.socketpair()
    threading.Thread(target=server.serve_connection, args=(a,), daemon=True).start()
    c = T.Client(b)
    reply = m.ConnectResponse.decode(c.call(m.TASK_SERVICE, "Connect", m.ConnectRequest(id="c1")))
    assert reply.shim_pid == os.getpid() and reply.task_pid == 0
    for method in set(m.TASK_METHODS) - {"Connect", "Shutdown", "Create"}:
        with pytest.raises(T.RPCError) as ei:                         # no such task
            c.call(m.TASK_SERVICE, method, m.StateRequest(id="nope"))
        assert (ei.value.code, str(ei.value)) == (T.NOT_FOUND, "container nope not found"), method
    with pytest.raises(T.RPCError) as ei:
        c.call(m.TASK_SERVICE, "Connect", b"\x0a\x05ab")             # a cut request
    assert ei.value.code == T.INVALID_ARGUMENT
    service.tasks["c1"] = object()                                    # a shim with a task stays up
    assert c.call(m.TASK_SERVICE, "Shutdown", m.ShutdownRequest(id="c1", now=True)) == b""
    assert not stopped.is_set()
    service.tasks.clear()
    c.call(m.TASK_SERVICE, "Shutdown", m.ShutdownRequest(id="c1"))
    assert stopped.is_set()
    c.close()


def test_a_restore_with_a_terminal_is_refused_before_anything(tmp_path):
    """Create with a checkpoint and a terminal: Unimplemented, nothing mounted or made."""
    service = TaskService(on_shutdown=lambda: None)
    req = m.CreateTaskRequest(id="c1", bundle=str(tmp_path), terminal=True, checkpoint=str(tmp_path / "ck"),
                              rootfs=[m.Mount(type="bind", source="/nonexistent", options=["rbind"])])
    with pytest.raises(T.Unimplemented, match="restore from a checkpoint with a terminal is not supported"):
        service.Create(req)
    assert service.tasks == {} and os.listdir(tmp_path) == []


# -- events to containerd -----------------------------------------------------------------

def test_publisher_forwards_events_and_reconnects(tmp_path):
    from pyrunc.shim.events import Publisher
    got: list[m.ForwardRequest] = []

    def forward(payload: bytes) -> bytes:
        got.append(m.ForwardRequest.decode(payload))
        return m.Empty().encode()

    path = str(tmp_path / "containerd.sock.ttrpc")

    def listen() -> tuple[T.Server, socket.socket, threading.Thread]:
        server = T.Server()
        server.register(m.EVENTS_SERVICE, {"Forward": forward})
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(4)
        t = threading.Thread(target=server.serve, args=(listener,), daemon=True)
        t.start()
        return server, listener, t

    def stop(server: T.Server, listener: socket.socket, t: threading.Thread) -> None:
        server.shutdown(timeout=1)
        t.join(5)
        listener.close()
        server.close()
        os.unlink(path)

    first = listen()
    pub = Publisher(path, "k8s.io")
    pub.publish(m.TaskExit(container_id="c1", id="c1", pid=42, exit_status=3))
    env = got[0].envelope
    assert (env.namespace, env.topic, env.event.type_url) == ("k8s.io", "/tasks/exit", "containerd.events.TaskExit")
    assert env.event.unpack(m.TYPES) == m.TaskExit(container_id="c1", id="c1", pid=42, exit_status=3)
    assert abs(env.timestamp.seconds - time.time()) < 60
    stop(*first)                                  # containerd restarts
    second = listen()
    pub.publish(m.TaskOOM(container_id="c1"))
    assert got[1].envelope.topic == "/tasks/oom"
    pub.close()
    stop(*second)
