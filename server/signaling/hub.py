"""How signaling messages reach the sockets of one call, wherever those sockets live.

`MemoryHub` serves one process (SQLite, the embedded default). `PostgresHub` carries the
same envelopes between processes over PostgreSQL `LISTEN/NOTIFY`, so the resident and the
clerk may be connected to different Balie processes behind one balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

__all__ = ["Envelope", "MemoryHub", "SignalingHub"]

log = logging.getLogger(__name__)

Envelope = dict[str, Any]  # {"from": participant, "to": participant | None, "message": {...}}
QUEUE_DEPTH = 256


class SignalingHub(Protocol):
    """Publish to a call; subscribe to a call's envelopes."""

    async def publish(self, call: str, envelope: Envelope) -> None:
        """Deliver `envelope` to every subscriber of `call` (in every process)."""
        ...

    def subscribe(
        self, call: str
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Envelope]]:
        """A queue that receives the call's envelopes while the context is open."""
        ...

    async def close(self) -> None:
        """Stop delivering (idempotent)."""
        ...


class MemoryHub:
    """All sockets in this process; a subscriber that cannot keep up loses old envelopes
    rather than holding everyone else up."""

    def __init__(self) -> None:
        self._queues: defaultdict[str, set[asyncio.Queue[Envelope]]] = defaultdict(set)

    async def publish(self, call: str, envelope: Envelope) -> None:
        self.deliver(call, envelope)

    def deliver(self, call: str, envelope: Envelope) -> None:
        """Hand `envelope` to this process's subscribers of `call`."""
        for queue in list(self._queues.get(call, ())):
            if queue.full():
                queue.get_nowait()  # drop the oldest: signaling is soft state, the peer retries
                log.warning("signaling subscriber of a call is too slow; dropped a message")
            queue.put_nowait(envelope)

    @contextlib.asynccontextmanager
    async def subscribe(self, call: str) -> AsyncIterator[asyncio.Queue[Envelope]]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=QUEUE_DEPTH)
        self._queues[call].add(queue)
        try:
            yield queue
        finally:
            self._queues[call].discard(queue)
            if not self._queues[call]:
                del self._queues[call]

    async def close(self) -> None:
        self._queues.clear()


def encode(call: str, envelope: Envelope) -> str:
    """The NOTIFY payload for an envelope."""
    return json.dumps({"call": call, "envelope": envelope}, separators=(",", ":"))
