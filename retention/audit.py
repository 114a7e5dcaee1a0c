"""The audit log: append-only, hash-chained, free of personal data.

    entry_hash = SHA-256("balie-audit-v1\\0" || prev_hash || canonical entry)

where `prev_hash` is the previous event's entry hash (32 zero bytes before the first) and the
canonical entry is the fields joined by U+001F (unit separator), which no field may contain:
sequence number, UTC time (ISO 8601, microseconds), actor, action, object type, object
reference, result and the detail as canonical JSON. The entry is stored as it was hashed (the
`entry` column); the database derives the other columns from it (`retention.models`), so what
is read is what the chain covers, and verifying reads and hashes one column. Appends are
serialised so that sequence numbers have no gaps: by a transaction-scoped advisory lock on
PostgreSQL and by `BEGIN IMMEDIATE` (see `dossier.db`) on SQLite.

This module imports nothing from `dossier` but its database plumbing, so every package can
record events from inside its own transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import queue
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dossier.db import SQLITE_BUSY_TIMEOUT_MS
from retention.errors import InvalidAuditEvent
from retention.models import AuditEvent, AuditHead

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_HASH",
    "Actor",
    "ChainReport",
    "EventArgs",
    "EventFields",
    "append_fields",
    "canonical_entry",
    "canonical_time",
    "chain_hash",
    "lock_chain",
    "record_event",
    "verify_chain",
]

DOMAIN_TAG = b"balie-audit-v1\0"
GENESIS_HASH = "0" * 64
_SEP = "\x1f"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Any constant works as long as every process uses the same one: it names "the audit log".
_PG_LOCK_KEY = 0x42A11E_A0D17


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, as a pseudonymous reference: `role:ref`.

    Residents appear by pseudonym, staff by employee id, machines by job name; never by BSN.
    """

    role: str
    ref: str

    def __str__(self) -> str:
        return f"{self.role}:{self.ref}"

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls("system", job)

    @classmethod
    def operator(cls, name: str) -> Actor:
        return cls("operator", name)


# The canonical entry's fields, in order (U+001F between them).
ENTRY_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "action",
    "object_type",
    "object_ref",
    "result",
    "detail",
)


def canonical_time(value: dt.datetime) -> str:
    """An instant as the canonical entry writes it: UTC, microseconds, always 27 characters."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_entry(
    *,
    seq: int,
    occurred_at: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    object_ref: str,
    result: str,
    detail: str,
) -> bytes:
    """The exact bytes an event's hash covers (stored, as text, in the event's `entry`)."""
    return _SEP.join(
        (
            str(seq),
            canonical_time(occurred_at),
            actor,
            action,
            object_type,
            object_ref,
            result,
            detail,
        )
    ).encode("utf-8")


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """The entry hash of an event with `canonical` bytes following `prev_hash`."""
    return hashlib.sha256(DOMAIN_TAG + bytes.fromhex(prev_hash) + canonical).hexdigest()


def _field(name: str, value: str, limit: int) -> str:
    if not value or len(value) > limit or _CONTROL.search(value):
        raise InvalidAuditEvent(
            f"audit field {name} must be 1 to {limit} printable characters, got {value!r}"
        )
    return value


class _RequiredEventArgs(TypedDict):
    at: dt.datetime
    actor: Actor | str
    action: str
    object_type: str
    object_ref: str


class EventArgs(_RequiredEventArgs, total=False):
    """What a caller says about an event (`record_event`, `AuditLog.append`)."""

    result: str  # "ok" unless given
    detail: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class EventFields:
    """The caller-supplied part of an event, validated; sequence and hashes come on append."""

    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_ref: str
    result: str
    detail: str

    @classmethod
    def build(
        cls,
        *,
        at: dt.datetime,
        actor: Actor | str,
        action: str,
        object_type: str,
        object_ref: str,
        result: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> EventFields:
        """Validate the fields; raises InvalidAuditEvent naming the offending one."""
        if at.tzinfo is None:
            raise InvalidAuditEvent("audit field at must be an aware datetime")
        return cls(
            at=at.astimezone(dt.UTC),
            actor=_field("actor", str(actor), 160),
            action=_field("action", action, 64),
            object_type=_field("object_type", object_type, 32),
            object_ref=_field("object_ref", object_ref, 64),
            result=_field("result", result, 32),
            detail=json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":")),
        )

    def chained(self, head: tuple[int, str] | None) -> dict[str, Any]:
        """The full row that follows `head` (seq, hash) in the chain, or starts it."""
        seq, prev = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
        canonical = canonical_entry(
            seq=seq,
            occurred_at=self.at,
            actor=self.actor,
            action=self.action,
            object_type=self.object_type,
            object_ref=self.object_ref,
            result=self.result,
            detail=self.detail,
        )
        # The database derives every other column from the entry (retention.models).
        return {
            "seq": seq,
            "entry": canonical.decode("utf-8"),
            "entry_hash": chain_hash(prev, canonical),
        }


_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]


async def lock_chain(session: AsyncSession) -> None:
    """Hold the chain's append lock until the caller's transaction ends.

    On PostgreSQL a transaction-scoped advisory lock (taking it twice is harmless); on SQLite
    the transaction's own `BEGIN IMMEDIATE` already serialises every writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


async def append_fields(session: AsyncSession, fields: EventFields) -> int:
    """Append validated fields inside the caller's transaction; returns the sequence number."""
    await lock_chain(session)
    head = (
        await session.execute(select(_HEAD.c.seq, _HEAD.c.entry_hash).where(_HEAD.c.id == 1))
    ).first()
    row = fields.chained(None if head is None else (head[0], head[1]))
    await session.execute(insert(_EVENTS), row)
    new_head = {"seq": row["seq"], "entry_hash": row["entry_hash"]}
    if head is None:
        await session.execute(insert(_HEAD), {"id": 1, **new_head})
    else:
        await session.execute(update(_HEAD).where(_HEAD.c.id == 1), new_head)
    return int(row["seq"])


async def record_event(session: AsyncSession, **event: Unpack[EventArgs]) -> int:
    """Append one event inside the caller's transaction; it commits or rolls back with it.

    Use this for an event that belongs to a change (the change and its record stand or fall
    together); `AuditLog.append` is for events that stand alone. Callers pass pseudonymous
    references only. Raises InvalidAuditEvent for an empty, too long or control-character
    field. Returns the event's sequence number.
    """
    return await append_fields(session, EventFields.build(**event))


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Outcome of walking the chain: `ok`, how many events, and the first bad one.

    `kind` says what happened there: modified, deleted, inserted or truncated.
    """

    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str = ""
    kind: str = ""


def check_rows(
    rows: Iterable[Sequence[Any]], *, expected_seq: int, prev: str
) -> tuple[int, str, int | None, str, str]:
    """Check consecutive rows `(seq, entry, entry_hash)`, entry and hash as stored bytes;
    returns (next seq, last hash, bad seq, kind, reason), kind and reason empty when all is
    well."""
    sha256, fromhex, tag = hashlib.sha256, bytes.fromhex, DOMAIN_TAG
    for seq, entry, entry_hash in rows:
        if seq != expected_seq:
            return expected_seq, prev, expected_seq, "deleted", f"event {expected_seq} is missing"
        if not isinstance(entry, bytes) or not isinstance(entry_hash, bytes):  # NULL
            return seq, prev, seq, "modified", f"event {seq} was altered"
        if sha256(tag + fromhex(prev) + entry).hexdigest().encode() != entry_hash:
            # Without its own hash being wrong, an event fails when the one before it was
            # rewritten and re-hashed: its hash covers the previous one.
            after = f" or does not follow event {seq - 1}" if seq > 1 else ""
            return seq, prev, seq, "modified", f"event {seq} was altered{after}"
        prev = entry_hash.decode("ascii")
        expected_seq += 1
    return expected_seq, prev, None, "", ""


def _batch_intact(
    count: int,
    last: int | None,
    entries: bytes | None,
    hashes: bytes | None,
    *,
    first: int,
    prev: str,
) -> str | None:
    """The hash after a batch that starts at `first` and is whole and unaltered, else None.

    `entries` are the batch's entries joined by U+001E (which no entry contains), `hashes`
    their entry hashes concatenated. Rows come from `seq >= first`, so `count` rows ending at
    `first + count - 1` are every sequence number in between.
    """
    if not count or last != first + count - 1 or entries is None or hashes is None:
        return None
    pieces = entries.split(b"\x1e")
    if len(pieces) != count or len(hashes) != 64 * count:
        return None
    sha256, tag = hashlib.sha256, DOMAIN_TAG
    # Chain raw digests and turn them into hex once per batch: the per-row work is one hash.
    digest = bytes.fromhex(prev)
    computed = []
    for canonical in pieces:
        digest = sha256(tag + digest + canonical).digest()
        computed.append(digest)
    return hashes[-64:].decode() if b"".join(computed).hex().encode() == hashes else None


def _report(count: int, prev: str, head: tuple[int, str] | None) -> ChainReport:
    """The verdict once every row has been walked: does the head agree with the chain?"""
    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    if count < head_seq:
        reason = f"the log ends at event {count} but its head records event {head_seq}"
        return ChainReport(False, count, head_seq, head_hash, count + 1, reason, "truncated")
    if count > head_seq:
        reason = f"event {head_seq + 1} was appended behind the head's back"
        return ChainReport(False, count, head_seq, head_hash, head_seq + 1, reason, "inserted")
    if prev != head_hash:
        reason = f"event {count} does not match the head's hash"
        return ChainReport(False, count, head_seq, head_hash, count, reason, "modified")
    return ChainReport(True, count, head_seq, head_hash)


def _broken(
    expected: int, bad: int, reason: str, kind: str, head: tuple[int, str] | None
) -> ChainReport:
    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    return ChainReport(False, expected - 1, head_seq, head_hash, bad, reason, kind)


_HEAD_SQL = "SELECT seq, entry_hash FROM audit_head WHERE id = 1"
# Entries and hashes are read as the bytes stored: text that is not UTF-8 is a finding, not
# an error of the verifier.
_ROWS_SQL = {
    "sqlite": "SELECT seq, CAST(entry AS BLOB), CAST(entry_hash AS BLOB) FROM audit_events"
    " WHERE seq >= :first ORDER BY seq LIMIT :n",
    "postgresql": "SELECT seq, convert_to(entry, 'UTF8'), convert_to(entry_hash, 'UTF8')"
    " FROM audit_events WHERE seq >= :first ORDER BY seq LIMIT :n",
}
# The fast path: one row per batch, its entries and hashes aggregated by the database, so that
# Python only splits and hashes. A batch that does not check out this way is walked again row
# by row (check_rows), which names the first bad event; so the fast path decides nothing on
# its own but "this batch is intact".
_BATCH_SQL = {
    "sqlite": (
        "SELECT count(*), max(seq), CAST(group_concat(entry, char(30)) AS BLOB),"
        " CAST(group_concat(entry_hash, '') AS BLOB) FROM (SELECT seq, entry, entry_hash"
        " FROM audit_events WHERE seq >= :first AND seq < :first + :n ORDER BY seq)"
    ),
    "postgresql": (
        "SELECT count(*), max(seq), convert_to(string_agg(entry, chr(30) ORDER BY seq), 'UTF8'),"
        " convert_to(string_agg(entry_hash, '' ORDER BY seq), 'UTF8') FROM audit_events"
        " WHERE seq >= :first AND seq < :first + :n"
    ),
}
# Verification reads the whole log once; mapping the file saves a copy of every page.
_SQLITE_MMAP_BYTES = 1 << 28


class _SqliteSnapshot:
    """A read transaction on the SQLite file, fed ahead by a thread of its own.

    SQLite aggregates the next batch (the GIL is released while it steps) while the caller
    hashes this one: on two cores reading and hashing overlap instead of taking turns.
    """

    def __init__(self, path: str, batch: int) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        self._conn.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
        self._conn.execute("BEGIN")  # one snapshot for the rows and the head (WAL)
        self.head: tuple[int, str] | None = self._conn.execute(_HEAD_SQL).fetchone()
        self._batch = batch
        self._ahead: queue.Queue[tuple[int, int, Any, Any, Any] | BaseException] = queue.Queue(
            maxsize=2
        )
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def batches(self, first: int) -> Iterator[tuple[int, int, Any, Any, Any]]:
        """(first seq, count, last seq, entries, hashes) per batch from `first` on."""
        self._reader = threading.Thread(
            target=self._read_ahead, args=(first,), name="balie-audit-verify", daemon=True
        )
        self._reader.start()
        while True:
            item = self._ahead.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if not item[1]:
                return

    def _read_ahead(self, first: int) -> None:
        sql = _BATCH_SQL["sqlite"].replace(":first", "?1").replace(":n", "?2")
        try:
            while not self._stop.is_set():
                count, last, entries, hashes = self._conn.execute(
                    sql, (first, self._batch)
                ).fetchone()
                self._ahead.put((first, count, last, entries, hashes))
                if not count:
                    return
                first += count
        except BaseException as error:  # handed to the caller, who raises it
            self._ahead.put(error)

    def rows(self, first: int) -> list[tuple[Any, ...]]:
        self._halt()
        sql = _ROWS_SQL["sqlite"].replace(":first", "?").replace(":n", "?")
        return self._conn.execute(sql, (first, self._batch)).fetchall()

    def _halt(self) -> None:
        if self._reader is not None:
            self._stop.set()
            while self._reader.is_alive():  # drain, so a blocked put() can finish
                with contextlib.suppress(queue.Empty):
                    self._ahead.get(timeout=0.05)
            self._reader = None

    def close(self) -> None:
        self._halt()
        self._conn.close()


def _verify_sqlite(path: str, batch: int) -> ChainReport:
    snapshot = _SqliteSnapshot(path, batch)
    try:
        expected, prev = 1, GENESIS_HASH
        for first, count, last, entries, hashes in snapshot.batches(expected):
            if not count:
                return _report(expected - 1, prev, snapshot.head)
            after = _batch_intact(count, last, entries, hashes, first=first, prev=prev)
            if after is None:
                break
            expected, prev = expected + count, after
        # A batch failed the fast check: walk rows from there, in the same snapshot.
        while rows := snapshot.rows(expected):
            expected, prev, bad, kind, reason = check_rows(rows, expected_seq=expected, prev=prev)
            if bad is not None:
                return _broken(expected, bad, reason, kind, snapshot.head)
        return _report(expected - 1, prev, snapshot.head)
    finally:
        snapshot.close()


async def verify_chain(engine: AsyncEngine, *, batch: int = 2000) -> ChainReport:
    """Walk the whole chain in order and report the first event that breaks it.

    Detects an edited entry or hash, a deleted row (gap), a reordered or replaced row (its hash
    covers the one before) and a cut-off tail (head points past the last row). Intact batches
    are checked from one aggregated row per batch; a batch with any fault is walked row by row
    to name it. On SQLite the walk runs in a thread, off the event loop.
    """
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if path and path != ":memory:":
        return await asyncio.to_thread(_verify_sqlite, path, batch)
    expected, prev = 1, GENESIS_HASH
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for the rows and the head
            await conn.execution_options(isolation_level="REPEATABLE READ")
        head_row = (await conn.execute(text(_HEAD_SQL))).first()
        head = (head_row[0], head_row[1]) if head_row else None
        fast, rows_sql = _BATCH_SQL[conn.dialect.name], _ROWS_SQL[conn.dialect.name]
        while True:
            params = {"first": expected, "n": batch}
            count, last, entries, hashes = (await conn.execute(text(fast), params)).one()
            if not count:
                return _report(expected - 1, prev, head)
            after = _batch_intact(count, last, entries, hashes, first=expected, prev=prev)
            if after is None:
                break
            expected, prev = expected + count, after
        while rows := (await conn.execute(text(rows_sql), {"first": expected, "n": batch})).all():
            expected, prev, bad, kind, reason = check_rows(rows, expected_seq=expected, prev=prev)
            if bad is not None:
                return _broken(expected, bad, reason, kind, head)
    return _report(expected - 1, prev, head)
