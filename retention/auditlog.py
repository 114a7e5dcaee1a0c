"""The audit log as an application resource: events that stand alone, each its own transaction.

An event that belongs to a change is written with `record_event` inside the change's own
transaction. Reads of dossier content, refused and failed attempts and operator checks stand
alone; they go through `AuditLog.append`, which on SQLite writes with a plain `sqlite3`
connection in one dedicated thread: one hop from the event loop per event instead of the dozen
that an async SQLAlchemy transaction over aiosqlite takes, and no other work waits behind it.
On PostgreSQL it is an ordinary short transaction (with the chain's advisory lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Unpack

from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.db import apply_sqlite_pragmas, make_sessionmaker
from retention.audit import (
    ChainReport,
    EventArgs,
    EventFields,
    append_fields,
    verify_chain,
)

__all__ = ["AuditLog"]

_INSERT = "INSERT INTO audit_events (seq, entry, entry_hash) VALUES (:seq, :entry, :entry_hash)"
_HEAD = "SELECT seq, entry_hash FROM audit_head WHERE id = 1"
_SET_HEAD = (
    "INSERT INTO audit_head (id, seq, entry_hash) VALUES (1, :seq, :entry_hash)"
    " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash"
)


class AuditLog:
    """Appends stand-alone events and verifies the chain. Close it when the app stops."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = make_sessionmaker(engine)
        self._sqlite_path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def append(self, **event: Unpack[EventArgs]) -> int:
        """Append one event in a transaction of its own; returns its sequence number.

        Raises InvalidAuditEvent for a bad field (nothing is written then).
        """
        fields = EventFields.build(**event)
        if self._sqlite_path is None:
            async with self._sessions() as session, session.begin():
                return await append_fields(session, fields)
        if self._executor is None:
            # One thread owns the connection: sqlite3 objects stay in the thread that made them.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="balie-audit")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._append_sqlite, fields)

    def _append_sqlite(self, fields: EventFields) -> int:
        if self._connection is None:
            assert self._sqlite_path is not None
            self._connection = sqlite3.connect(self._sqlite_path, isolation_level=None)
            apply_sqlite_pragmas(self._connection)
        conn = self._connection
        conn.execute("BEGIN IMMEDIATE")  # the same serialisation as every Balie transaction
        try:
            head = conn.execute(_HEAD).fetchone()
            row = fields.chained(None if head is None else (head[0], head[1]))
            conn.execute(_INSERT, row)
            conn.execute(_SET_HEAD, row)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row["seq"])

    async def verify(self) -> ChainReport:
        """Walk the chain; see `verify_chain`."""
        return await verify_chain(self._engine)

    async def close(self) -> None:
        """Close the SQLite connection and its thread (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        connection = self._connection
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
            self._connection = None
        executor.shutdown(wait=True)
