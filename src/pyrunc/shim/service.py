"""The containerd.task.v2.Task service as this shim serves it.

Connect and Shutdown are the process model's and are answered here; the task
methods (Create, Start, Wait, ...) are to be written on pyrunc's container
library and until then answer UNIMPLEMENTED ("<Method>: not implemented",
the text containerd's errdefs give ErrNotImplemented), which containerd
reports to its client as it is.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

from pyrunc.shim import messages as m
from pyrunc.shim.protobuf import Empty, Message
from pyrunc.shim.ttrpc import Handler, Unimplemented


class TaskService:
    """The shim's state: the tasks it runs (none yet) and the hook that ends
    the process once Shutdown finds nothing left to serve."""

    def __init__(self, on_shutdown: Callable[[], None]) -> None:
        self.tasks: dict[str, object] = {}
        self._lock = threading.Lock()
        self._on_shutdown = on_shutdown

    def Connect(self, req: m.ConnectRequest) -> m.ConnectResponse:
        # containerd's runc shim gives its own pid and the task's (0 if none)
        return m.ConnectResponse(shim_pid=os.getpid(), task_pid=0)

    def Shutdown(self, req: m.ShutdownRequest) -> Empty:
        # as runc's shim: a shim that still serves tasks stays, `now` or not
        with self._lock:
            if self.tasks:
                return Empty()
        self._on_shutdown()
        return Empty()

    def handlers(self) -> dict[str, Handler]:
        """Method name -> bytes handler, for ttrpc.Server.register."""
        table: dict[str, Handler] = {}
        for name, (req_cls, _resp_cls) in m.TASK_METHODS.items():
            impl = getattr(self, name, None)
            table[name] = _wrap(req_cls, impl) if impl is not None else _unimplemented(name)
        return table


def _wrap(req_cls: type[Message], impl: Callable[[Message], Message]) -> Handler:
    def handler(payload: bytes) -> bytes:
        return impl(req_cls.decode(payload)).encode()
    return handler


def _unimplemented(name: str) -> Handler:
    def handler(payload: bytes) -> bytes:
        raise Unimplemented(f"{name}: not implemented")
    return handler
