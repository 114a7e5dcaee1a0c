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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

__all__ = ["DirectSend", "Envelope", "MemoryHub", "SignalingHub", "encoded"]

log = logging.getLogger(__name__)

Envelope = dict[str, Any]  # {"from": participant, "to": participant | None, "message": {...}}
# A subscriber's shortcut: send the envelope now and return True, or return False to have it
# queued (when sending now could overtake queued envelopes or wait on a slow socket).
DirectSend = Callable[[Envelope], Awaitable[bool]]
QUEUE_DEPTH = 256


class SignalingHub(Protocol):
    """Publish to a call; subscribe to a call's envelopes."""

    async def publish(self, call: str, envelope: Envelope) -> None:
        """Deliver `envelope` to every subscriber of `call` (in every process)."""
        ...

    def subscribe(
        self, call: str, participant: str, *, direct: DirectSend | None = None
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Envelope]]:
        """A queue that receives the call's envelopes for `participant` (those addressed to
        it, and those to everyone but sent by someone else) while the context is open.
        A hub may offer an envelope to `direct` first; what it takes is not queued."""
        ...

    async def close(self) -> None:
        """Stop delivering (idempotent)."""
        ...


class MemoryHub:
    """All sockets in this process; a subscriber that cannot keep up loses old envelopes
    rather than holding everyone else up."""

    def __init__(self) -> None:
        # call -> [(participant, queue, direct)]: a participant may have two sockets for a
        # moment (a reconnect overtaking the old socket's close).
        self._queues: defaultdict[str, list[_Subscriber]] = defaultdict(list)

    async def publish(self, call: str, envelope: Envelope) -> None:
        """Deliver in the publisher's own task where a subscriber can take it at once: a
        relayed candidate then costs one write, not a queue and a task switch as well."""
        for _, queue, direct in _concerned(self._queues.get(call, ()), envelope):
            if direct is not None and queue.empty() and await direct(envelope):
                continue
            _put(queue, envelope)

    def deliver(self, call: str, envelope: Envelope) -> None:
        """Queue `envelope` for this process's subscribers of `call` it concerns."""
        for _, queue, _ in _concerned(self._queues.get(call, ()), envelope):
            _put(queue, envelope)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, call: str, participant: str, *, direct: DirectSend | None = None
    ) -> AsyncIterator[asyncio.Queue[Envelope]]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=QUEUE_DEPTH)
        entry = (participant, queue, direct)
        self._queues[call].append(entry)
        try:
            yield queue
        finally:
            self._queues[call].remove(entry)
            if not self._queues[call]:
                del self._queues[call]

    async def close(self) -> None:
        self._queues.clear()


_Subscriber = tuple[str, asyncio.Queue[Envelope], DirectSend | None]


def _concerned(subscribers: Iterable[_Subscriber], envelope: Envelope) -> list[_Subscriber]:
    """Only the addressee gets a relayed offer, answer or candidate, and nobody gets back
    what they sent: every needless wake-up of a socket's task costs the relay."""
    target, sender = envelope.get("to"), envelope.get("from")
    return [
        entry
        for entry in subscribers
        if entry[0] != sender and (target is None or entry[0] == target)
    ]


def _put(queue: asyncio.Queue[Envelope], envelope: Envelope) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest: signaling is soft state, the peer retries
        log.warning("signaling subscriber of a call is too slow; dropped a message")
    queue.put_nowait(envelope)


def encode(call: str, envelope: Envelope) -> str:
    """The NOTIFY payload for an envelope."""
    sent = {key: value for key, value in envelope.items() if key != "text"}  # a local cache
    return json.dumps({"call": call, "envelope": sent}, separators=(",", ":"))


def encoded(envelope: Envelope) -> str:
    """The envelope's message as JSON text, encoded once for all the sockets it goes to."""
    text: str | None = envelope.get("text")
    if text is None:
        text = json.dumps(envelope["message"], separators=(",", ":"), ensure_ascii=False)
        envelope["text"] = text
    return text
