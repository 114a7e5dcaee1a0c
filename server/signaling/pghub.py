"""Signaling between Balie processes over PostgreSQL LISTEN/NOTIFY.

Every process listens on one channel; an envelope published anywhere is delivered to the
subscribers of its call in every process (its own included, through the same path, so there
is one order for everyone). A NOTIFY payload is limited to 8000 bytes and an SDP offer can be
larger, so bigger envelopes travel in numbered parts and are put together on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from server.signaling.hub import DirectSend, Envelope, MemoryHub, encode

__all__ = ["CHANNEL", "PostgresHub"]

log = logging.getLogger(__name__)

CHANNEL = "balie_signaling"
PART_BYTES = 7000  # below PostgreSQL's 8000-byte NOTIFY limit, with room for the wrapper
PARTS_TTL = 30.0  # seconds an incomplete message may wait for its other parts


class PostgresHub:
    """A hub whose publish is a NOTIFY and whose delivery is this process's LISTEN."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._local = MemoryHub()
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncpg.Connection | None = None
        self._send_lock = asyncio.Lock()
        self._parts: dict[str, tuple[float, list[str | None]]] = {}

    async def start(self) -> None:
        """Open the listening and the sending connection."""
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(CHANNEL, self._on_notify)
        self._sender = await asyncpg.connect(self._dsn)

    async def close(self) -> None:
        for connection in (self._listener, self._sender):
            if connection is not None and not connection.is_closed():
                await connection.close()
        self._listener = self._sender = None
        await self._local.close()

    async def publish(self, call: str, envelope: Envelope) -> None:
        payload = encode(call, envelope)
        pieces = [payload]
        if len(payload.encode("utf-8")) > PART_BYTES:
            message_id = uuid.uuid4().hex
            chunks = [
                payload[i : i + PART_BYTES // 4] for i in range(0, len(payload), PART_BYTES // 4)
            ]
            pieces = [
                json.dumps({"part": message_id, "i": i, "n": len(chunks), "data": chunk})
                for i, chunk in enumerate(chunks)
            ]
        if self._sender is None:
            raise RuntimeError("the signaling hub is not started")
        # One connection, one lock: parts of a message go out in order, unmixed with others.
        async with self._send_lock:
            for piece in pieces:
                await self._sender.execute("SELECT pg_notify($1, $2)", CHANNEL, piece)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, call: str, participant: str, *, direct: DirectSend | None = None
    ) -> AsyncIterator[asyncio.Queue[Envelope]]:
        # Envelopes arrive from the LISTEN callback, outside any task: always queued.
        async with self._local.subscribe(call, participant) as queue:
            yield queue

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            if "part" in data:
                whole = self._assemble(data)
                if whole is None:
                    return
                data = json.loads(whole)
            self._local.deliver(data["call"], data["envelope"])
        except (ValueError, KeyError, TypeError) as exc:
            # Only Balie writes on this channel; a bad payload is a bug, not a reason to stop.
            log.error("dropped an unreadable signaling notification: %s", exc)

    def _assemble(self, part: dict[str, Any]) -> str | None:
        now = time.monotonic()
        for stale in [k for k, (t, _) in self._parts.items() if now - t > PARTS_TTL]:
            del self._parts[stale]
        key, index, total = str(part["part"]), int(part["i"]), int(part["n"])
        _, pieces = self._parts.setdefault(key, (now, [None] * total))
        pieces[index] = str(part["data"])
        if any(piece is None for piece in pieces):
            return None
        del self._parts[key]
        return "".join(piece for piece in pieces if piece is not None)
