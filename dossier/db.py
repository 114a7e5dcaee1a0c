"""Database plumbing shared by every package: engines, column types and the clock.

This module is a leaf: it imports no other Balie module, so that `dossier`, `identity` and
`retention` can all build on it without import cycles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import event, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = [
    "NO_TRANSACTION",
    "READ_ONLY",
    "Clock",
    "DatabaseClock",
    "ManualClock",
    "UTCDateTime",
    "apply_sqlite_pragmas",
    "create_engine",
    "make_sessionmaker",
    "read_session",
    "transaction",
    "utc",
    "wall_clock",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000


def utc(value: dt.datetime) -> dt.datetime:
    """Return `value` as an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An instant in UTC, stored as `timestamptz` on PostgreSQL and naive UTC text on SQLite.

    Always returns aware UTC datetimes, so that arithmetic and comparisons behave the same on
    both databases (SQLite would otherwise hand back naive values).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else utc(value)


def apply_sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """WAL, full durability, foreign keys, busy timeout, secure delete; no driver BEGIN."""
    # aiosqlite would otherwise emit its own deferred BEGIN; we emit BEGIN IMMEDIATE ourselves
    # (see _sqlite_begin), so the driver must stay out of transaction control.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Deleted content (a wrapped data key above all) is overwritten with zeros, not just
    # unlinked from the b-tree: crypto-shredding must not leave the key in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


# Execution option for the rare statement that must run outside any transaction on SQLite
# (a WAL checkpoint): `session.connection(execution_options={NO_TRANSACTION: True})`.
NO_TRANSACTION = "balie_sqlite_no_transaction"
# Execution option for a transaction that only reads: a deferred BEGIN takes no write lock, so
# readers never wait for writers (WAL gives them a consistent snapshot). See read_session.
READ_ONLY = "balie_sqlite_read_only"


def _sqlite_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get(NO_TRANSACTION):
        return
    if options.get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
        return
    # Nearly every transaction in Balie writes (every read of dossier content is an audit
    # event). A deferred transaction that later upgrades to a write lock fails at once with
    # SQLITE_BUSY instead of waiting, so every transaction takes the write lock up front and
    # waits for it under busy_timeout. Readers outside transactions are unaffected (WAL).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine for `url` (SQLite via aiosqlite or PostgreSQL via asyncpg)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", apply_sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions never expire loaded objects on commit: async code must not lazy-load."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session with one transaction: committed on success, rolled back on error."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def read_session(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose one transaction only reads (no write lock on SQLite)."""
    async with sessions() as session:
        await session.connection(execution_options={READ_ONLY: True})  # begins the transaction
        yield session
        # Commit, not rollback: a rollback would expire the objects just read. On an error the
        # session's close rolls back.
        await session.commit()


class Clock(Protocol):
    """Where "now" comes from. Production asks the database; tests move a manual clock."""

    async def now(self, session: AsyncSession) -> dt.datetime:
        """The current instant, aware UTC."""
        ...


class DatabaseClock:
    """The database server's clock, so that several Balie processes agree on deadlines."""

    async def now(self, session: AsyncSession) -> dt.datetime:
        bind = session.get_bind()
        if bind.dialect.name == "sqlite":
            # CURRENT_TIMESTAMP has whole seconds only; strftime('%f') gives milliseconds.
            raw = (
                await session.execute(select(func.strftime("%Y-%m-%d %H:%M:%f", "now")))
            ).scalar_one()
            return dt.datetime.fromisoformat(str(raw)).replace(tzinfo=dt.UTC)
        value = (await session.execute(select(func.now()))).scalar_one()
        return utc(value)


class ManualClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.current = utc(start or dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))

    async def now(self, session: AsyncSession) -> dt.datetime:
        return self.current

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        self.current += delta


def wall_clock(clock: Clock) -> Callable[[], dt.datetime]:
    """A synchronous "now" for libraries that cannot await (SAML, OIDC): the test clock when
    a test moves one, the system clock otherwise."""
    if isinstance(clock, ManualClock):
        return lambda: clock.current
    return lambda: dt.datetime.now(dt.UTC)
