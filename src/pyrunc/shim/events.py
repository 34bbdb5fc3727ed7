"""Task events from the shim to containerd.

A v2 shim publishes its events (TaskCreate, TaskExit, ...) by calling
containerd.services.events.ttrpc.v1.Events/Forward on containerd's ttrpc
socket, whose address containerd gives the shim in TTRPC_ADDRESS. The
connection is made on the first event and made again once if it broke
(containerd restarted); an event that still cannot be sent raises the
call's error for the caller (the service's queue sends it again later).
"""
from __future__ import annotations

import threading

from pyrunc.shim import messages as m
from pyrunc.shim.protobuf import Any, Message, Timestamp
from pyrunc.shim.ttrpc import Client, ConnectionClosed


class Publisher:
    def __init__(self, ttrpc_address: str, namespace: str) -> None:
        self.address = ttrpc_address
        self.namespace = namespace
        self._client: Client | None = None
        self._lock = threading.Lock()

    def publish(self, event: Message, timeout: float = 10.0) -> None:
        """Forward `event` (one of messages.TASK_EVENTS) under its topic."""
        topic: str = event.TOPIC
        req = m.ForwardRequest(envelope=m.Envelope(timestamp=Timestamp.now(), namespace=self.namespace,
                                                   topic=topic, event=Any.pack(event)))
        for attempt in (1, 2):
            client = self._connect()
            try:
                client.call(m.EVENTS_SERVICE, "Forward", req, timeout=timeout)
                return
            except (ConnectionClosed, OSError):
                with self._lock:
                    if self._client is client:
                        self._client = None
                client.close()
                if attempt == 2:
                    raise

    def _connect(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = Client.connect(self.address)
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
