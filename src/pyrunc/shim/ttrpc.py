"""ttrpc, containerd's RPC for shims: framing, a server and a client.

ttrpc is gRPC's message model without HTTP/2. Each message on the stream
socket is a 10-byte header -- payload length (uint32, big-endian), stream id
(uint32, big-endian; a client numbers its calls 1, 3, 5, ...), type (1
request, 2 response), flags -- then the payload, at most 4 MiB. A request
payload is a Request message (service, method, the method's encoded request,
timeout, metadata); the response carries a google.rpc.Status and the
method's encoded reply. Calls on one connection are independent: the server
answers each in its own thread, since the Task service's Wait blocks until a
process exits. Behaviour follows containerd/ttrpc v1.1 (containerd 1.6):
an unknown service or method is UNIMPLEMENTED "service X" / "method X", an
oversized message is discarded and answered RESOURCE_EXHAUSTED, a message of
another type is ignored, an even stream id is INVALID_ARGUMENT; a frame cut
short closes the connection.
"""
from __future__ import annotations

import os
import selectors
import socket
import struct
import threading

TYPE_CHECKING = False  # typing: 4 ms of the server's start, before the first Create
if TYPE_CHECKING:
    from typing import Callable, Mapping

from pyrunc.shim.protobuf import Any, DecodeError, Field, Message


def spawn(fn, *args) -> None:
    """Run fn(*args) in a new daemon thread, without threading.Thread's
    start(), which waits until the thread has run: on a busy machine that
    is a scheduler's slice (milliseconds) per call on containerd's path."""
    import _thread
    _thread.start_new_thread(fn, args)

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size  # 10
MAX_MESSAGE = 4 << 20
REQUEST, RESPONSE = 1, 2

# google.rpc.Code values used here (and by containerd's errdefs.ToGRPC)
OK, CANCELED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS = range(7)
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNIMPLEMENTED, UNAVAILABLE = 8, 9, 12, 14

if TYPE_CHECKING:
    Handler = Callable[[bytes], bytes]


# -- messages (ttrpc's request.proto; google/rpc/status.proto) ---------------------

class KeyValue(Message):
    NAME = "ttrpc.KeyValue"
    FIELDS = (Field(1, "key", "string"), Field(2, "value", "string"))


class Request(Message):
    NAME = "ttrpc.Request"
    FIELDS = (Field(1, "service", "string"), Field(2, "method", "string"), Field(3, "payload", "bytes"),
              Field(4, "timeout_nano", "int64"), Field(5, "metadata", KeyValue, repeated=True))


class Status(Message):
    NAME = "google.rpc.Status"
    FIELDS = (Field(1, "code", "int32"), Field(2, "message", "string"), Field(3, "details", Any, repeated=True))


class Response(Message):
    NAME = "ttrpc.Response"
    FIELDS = (Field(1, "status", Status), Field(2, "payload", "bytes"))


# -- errors -----------------------------------------------------------------------

class RPCError(Exception):
    """A call's failure as a status: a handler raises it (or a subclass) to
    answer with that code; the client raises it for a non-OK reply. The
    codes are those containerd's errdefs map its errors to."""

    code = UNKNOWN

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidArgument(RPCError):
    code = INVALID_ARGUMENT


class NotFound(RPCError):
    code = NOT_FOUND


class AlreadyExists(RPCError):
    code = ALREADY_EXISTS


class FailedPrecondition(RPCError):
    code = FAILED_PRECONDITION


class Unimplemented(RPCError):
    code = UNIMPLEMENTED


class Unavailable(RPCError):
    code = UNAVAILABLE


class ConnectionClosed(RPCError):
    """The connection ended before the reply came (ttrpc's ErrClosed)."""
    code = UNAVAILABLE


class ProtocolError(Exception):
    """The peer sent something that is not ttrpc framing."""


def status_of(exc: BaseException) -> Status:
    """The status a handler's exception is answered with: an RPCError's
    own, any other error as UNKNOWN with the first line of its text."""
    if isinstance(exc, RPCError):
        return Status(code=exc.code, message=exc.message)
    text = str(exc).strip().splitlines()
    return Status(code=UNKNOWN, message=text[0] if text else "internal error")


# -- framing ------------------------------------------------------------------------

def _read_exact(rfile, n: int) -> bytes:
    data = rfile.read(n)
    if data is None or len(data) != n:
        raise ProtocolError("connection closed in the middle of a message")
    return data


def read_frame(rfile) -> tuple[int, int, int, bytes | None] | None:
    """The next message of a buffered binary reader: (stream id, type,
    flags, payload), payload None if it was over MAX_MESSAGE (then read and
    dropped); None at a clean end of stream; ProtocolError if cut short."""
    head = rfile.read(HEADER_SIZE)
    if not head:
        return None
    if len(head) != HEADER_SIZE:
        raise ProtocolError("connection closed in the middle of a message header")
    length, stream_id, mtype, flags = HEADER.unpack(head)
    if length > MAX_MESSAGE:
        left = length
        while left:
            chunk = rfile.read(min(left, 1 << 16))
            if not chunk:
                raise ProtocolError("connection closed in the middle of a message")
            left -= len(chunk)
        return stream_id, mtype, flags, None
    return stream_id, mtype, flags, _read_exact(rfile, length)


def frame(stream_id: int, mtype: int, payload: bytes, flags: int = 0) -> bytes:
    return HEADER.pack(len(payload), stream_id, mtype, flags) + payload


def _oversized(n: int) -> Status:
    return Status(code=RESOURCE_EXHAUSTED,
                  message=f"message length {n} exceed maximum message size of {MAX_MESSAGE}")


# -- server --------------------------------------------------------------------------

class Server:
    """Serves registered services on a listening unix socket (serve()) or on
    single connected sockets (serve_connection()), one thread per
    connection and one per call in flight."""

    def __init__(self) -> None:
        self._services: dict[str, Mapping[str, Handler]] = {}
        self._lock = threading.Condition()
        self._in_flight = 0
        self._conns: set[socket.socket] = set()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closing = False

    def register(self, service: str, methods: Mapping[str, Handler]) -> None:
        self._services[service] = methods

    # -- dispatch ---------------------------------------------------------------

    def dispatch(self, service: str, method: str, payload: bytes) -> Response:
        """One call's response: the handler's reply, or the status of its
        error."""
        methods = self._services.get(service)
        if methods is None:
            return Response(status=Status(code=UNIMPLEMENTED, message=f"service {service}"))
        handler = methods.get(method)
        if handler is None:
            return Response(status=Status(code=UNIMPLEMENTED, message=f"method {method}"))
        try:
            reply = handler(payload)
        except DecodeError as e:
            return Response(status=Status(code=INVALID_ARGUMENT, message=f"unmarshal request: {e}"))
        except Exception as e:  # every failure becomes the call's status
            return Response(status=status_of(e))
        return Response(status=Status(code=OK), payload=reply)

    # -- connections --------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        """Accept and serve connections until shutdown() (the listener is
        left open: the caller owns it)."""
        listener.setblocking(False)
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing:
                for key, _ in sel.select():
                    if key.fileobj == self._wake_r:
                        continue
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue
                    conn.setblocking(True)
                    spawn(self.serve_connection, conn)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop accepting, wait up to `timeout` for calls in flight to be
        answered (a Shutdown call's own reply among them), then close every
        connection. Safe from any thread, handlers included (the caller's own
        call is not waited for)."""
        with self._lock:
            self._closing = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        own = getattr(_current, "in_call", False)
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight <= (1 if own else 0), timeout)
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_idle(self, timeout: float) -> bool:
        """True once no call is in flight (within `timeout` seconds)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    def serve_connection(self, conn: socket.socket) -> None:
        """Read requests from one connection until it ends or breaks."""
        with self._lock:
            if self._closing:
                conn.close()
                return
            self._conns.add(conn)
        wlock = threading.Lock()

        def send(stream_id: int, resp: Response) -> None:
            data = resp.encode()
            if len(data) > MAX_MESSAGE:
                data = Response(status=_oversized(len(data))).encode()
            try:
                with wlock:
                    conn.sendall(frame(stream_id, RESPONSE, data))
            except OSError:
                pass  # the client went away; its call is abandoned

        rfile = conn.makefile("rb")
        try:
            while True:
                try:
                    msg = read_frame(rfile)
                except (ProtocolError, OSError):
                    return
                if msg is None:
                    return
                stream_id, mtype, _flags, payload = msg
                if mtype != REQUEST:
                    continue  # ignored, as ttrpc does, for compatibility with later types
                if stream_id % 2 != 1:
                    send(stream_id, Response(status=Status(
                        code=INVALID_ARGUMENT, message="StreamID must be odd for client initiated streams")))
                    continue
                if payload is None:
                    send(stream_id, Response(status=_oversized(MAX_MESSAGE + 1)))
                    continue
                with self._lock:
                    self._in_flight += 1
                spawn(self._call, stream_id, payload, send)
        finally:
            with self._lock:
                self._conns.discard(conn)
            rfile.close()
            conn.close()

    def _call(self, stream_id: int, payload: bytes, send: Callable[[int, Response], None]) -> None:
        _current.in_call = True
        try:
            try:
                req = Request.decode(payload)
            except DecodeError as e:
                resp = Response(status=Status(code=INVALID_ARGUMENT, message=f"unmarshal request error: {e}"))
            else:
                resp = self.dispatch(req.service, req.method, req.payload)
            send(stream_id, resp)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


_current = threading.local()


# -- client --------------------------------------------------------------------------

class Client:
    """Calls methods of a ttrpc server over one connection; thread-safe,
    calls from several threads run concurrently."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._rfile = sock.makefile("rb")
        self._lock = threading.Lock()
        self._next_id = 1
        self._waiting: dict[int, list] = {}  # stream id -> [Event, Response | None]
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> "Client":
        """Connect to "unix:///path", a path, or "@abstract"."""
        path = address[len("unix://"):] if address.startswith("unix://") else address
        if path.startswith("@"):
            path = "\0" + path[1:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(None)
        return cls(sock)

    def call(self, service: str, method: str, request: bytes | Message, timeout: float | None = None,
             metadata: Mapping[str, str] | None = None) -> bytes:
        """The method's encoded reply; RPCError (with the server's code and
        message) for a non-OK status, ConnectionClosed if the connection
        ends first, TimeoutError after `timeout` seconds."""
        payload = request.encode() if isinstance(request, Message) else request
        req = Request(service=service, method=method, payload=payload,
                      timeout_nano=int(timeout * 1e9) if timeout else 0,
                      metadata=[KeyValue(key=k, value=v) for k, v in (metadata or {}).items()])
        data = req.encode()
        if len(data) > MAX_MESSAGE:
            raise RPCError(_oversized(len(data)).message, RESOURCE_EXHAUSTED)
        slot: list = [threading.Event(), None]
        with self._lock:
            if self._closed:
                raise ConnectionClosed("ttrpc: closed")
            stream_id = self._next_id
            self._next_id += 2
            self._waiting[stream_id] = slot
            try:
                self._sock.sendall(frame(stream_id, REQUEST, data))
            except OSError:
                del self._waiting[stream_id]
                raise ConnectionClosed("ttrpc: closed") from None
        if not slot[0].wait(timeout):
            with self._lock:
                self._waiting.pop(stream_id, None)
            raise TimeoutError(f"{service}/{method}: no reply within {timeout}s")
        resp = slot[1]
        if resp is None:
            raise ConnectionClosed("ttrpc: closed")
        status = resp.status or Status()
        if status.code != OK:
            raise RPCError(status.message, status.code)
        return resp.payload

    def _read_loop(self) -> None:
        try:
            while True:
                msg = read_frame(self._rfile)
                if msg is None:
                    break
                stream_id, mtype, _flags, payload = msg
                if mtype != RESPONSE:
                    continue
                resp = (Response(status=_oversized(MAX_MESSAGE + 1)) if payload is None
                        else Response.decode(payload))
                with self._lock:
                    slot = self._waiting.pop(stream_id, None)
                if slot is not None:
                    slot[1] = resp
                    slot[0].set()
        except (ProtocolError, DecodeError, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._closed = True
                pending = list(self._waiting.values())
                self._waiting.clear()
            for slot in pending:
                slot[0].set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(5)
        self._rfile.close()
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
