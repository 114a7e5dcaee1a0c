"""The audit log: append-only, hash-chained, free of personal data.

    entry_hash = SHA-256("balie-audit-v1\\0" || prev_hash || canonical entry)

where the canonical entry is the fields joined by U+001F (unit separator), which no field may
contain: sequence number, UTC time (ISO 8601, microseconds), actor, action, object type, object
reference, result and the detail as canonical JSON. The first event's `prev_hash` is 32 zero
bytes. Appends are serialised so that sequence numbers have no gaps: by a transaction-scoped
advisory lock on PostgreSQL and by `BEGIN IMMEDIATE` (see `dossier.db`) on SQLite.

This module imports nothing from `dossier` but its database plumbing, so every package can
record events from inside its own transactions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from retention.errors import InvalidAuditEvent
from retention.models import AuditEvent, AuditHead

__all__ = [
    "GENESIS_HASH",
    "Actor",
    "ChainReport",
    "EventArgs",
    "EventFields",
    "append_fields",
    "canonical_entry",
    "chain_hash",
    "lock_chain",
    "record_event",
    "sqlite_timestamp",
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


def _timestamp(value: dt.datetime) -> str:
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
    """The exact bytes an event's hash covers."""
    return _SEP.join(
        (str(seq), _timestamp(occurred_at), actor, action, object_type, object_ref, result, detail)
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
        return {
            "seq": seq,
            "occurred_at": self.at,
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_ref": self.object_ref,
            "result": self.result,
            "detail": self.detail,
            "prev_hash": prev,
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


def sqlite_timestamp(value: dt.datetime) -> str:
    """How SQLAlchemy stores a UTC instant in SQLite (the audit fast path writes the same)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _canonical_time_from_sqlite(stored: str) -> str:
    # "2026-03-02 09:00:00.000000" -> "2026-03-02T09:00:00.000000Z", without parsing: any
    # other stored form gives a different canonical entry and so counts as altered.
    return stored[:10] + "T" + stored[11:] + "Z"


def check_rows(
    rows: Iterable[Sequence[Any]],
    *,
    expected_seq: int,
    prev: str,
    timestamp: Callable[[Any], str],
) -> tuple[int, str, int | None, str, str]:
    """Check consecutive rows `(seq, occurred_at, actor, action, object_type, object_ref,
    result, detail, prev_hash, entry_hash)`; returns (next seq, last hash, bad seq, kind,
    reason), kind and reason empty when all is well.

    `timestamp` turns the stored time into its canonical text.
    """
    sha256, fromhex, sep, tag = hashlib.sha256, bytes.fromhex, _SEP, DOMAIN_TAG
    for seq, at, actor, action, otype, oref, result, detail, prev_hash, entry_hash in rows:
        if seq != expected_seq:
            return expected_seq, prev, expected_seq, "deleted", f"event {expected_seq} is missing"
        if prev_hash != prev:
            return seq, prev, seq, "modified", f"event {seq} does not follow event {seq - 1}"
        try:
            canonical = sep.join(
                (str(seq), timestamp(at), actor, action, otype, oref, result, detail)
            ).encode("utf-8")
        except (TypeError, ValueError, AttributeError):  # a NULL or mistyped value
            return seq, prev, seq, "modified", f"event {seq} was altered"
        if sha256(tag + fromhex(prev) + canonical).hexdigest() != entry_hash:
            return seq, prev, seq, "modified", f"event {seq} was altered"
        prev = entry_hash
        expected_seq += 1
    return expected_seq, prev, None, "", ""


_ROWS_SQL = text(
    "SELECT seq, occurred_at, actor, action, object_type, object_ref, result, detail,"
    " prev_hash, entry_hash FROM audit_events WHERE seq >= :first ORDER BY seq LIMIT :n"
)

# The fast path: the database builds every row's canonical entry (exactly as canonical_entry
# does) and hands a whole batch back as one string, so Python only splits and hashes. A batch
# that does not check out this way is walked again row by row (check_rows), which names the
# first bad event; so the fast path decides nothing on its own but "this batch is intact".
_BATCH_SQL = {
    "sqlite": text(
        "SELECT count(*), min(seq), max(seq), group_concat(entry, char(30)),"
        " group_concat(prev_hash || entry_hash, '')"
        " FROM (SELECT seq, prev_hash, entry_hash,"
        " CAST(seq AS TEXT) || char(31)"
        " || substr(occurred_at, 1, 10) || 'T' || substr(occurred_at, 12) || 'Z' || char(31)"
        " || actor || char(31) || action || char(31) || object_type || char(31)"
        " || object_ref || char(31) || result || char(31) || detail AS entry"
        " FROM audit_events WHERE seq >= :first ORDER BY seq LIMIT :n)"
    ),
    "postgresql": text(
        "SELECT count(*), min(seq), max(seq), string_agg(entry, chr(30) ORDER BY seq),"
        " string_agg(prev_hash || entry_hash, '' ORDER BY seq)"
        " FROM (SELECT seq, prev_hash, entry_hash,"
        " seq::text || chr(31)"
        " || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        " || chr(31) || actor || chr(31) || action || chr(31) || object_type || chr(31)"
        " || object_ref || chr(31) || result || chr(31) || detail AS entry"
        " FROM audit_events WHERE seq >= :first ORDER BY seq LIMIT :n) AS batch"
    ),
}


def _batch_intact(
    count: int, first: int, last: int, entries: str | None, links: str | None, *, prev: str
) -> str | None:
    """The hash after a batch that is whole and unaltered, else None."""
    if last - first + 1 != count or entries is None or links is None or len(links) != 128 * count:
        return None
    pieces = entries.encode("utf-8").split(b"\x1e")
    if len(pieces) != count:
        return None
    sha256, tag = hashlib.sha256, DOMAIN_TAG
    # Chain raw digests and turn them into hex once per batch: the per-row work is one hash.
    digest = bytes.fromhex(prev)
    expected = []
    for canonical in pieces:
        expected.append(digest)
        digest = sha256(tag + digest + canonical).digest()
        expected.append(digest)
    return digest.hex() if b"".join(expected).hex() == links else None


async def verify_chain(engine: AsyncEngine, *, batch: int = 5000) -> ChainReport:
    """Walk the whole chain in order and report the first event that breaks it.

    Detects an edited row (hash), a deleted row (gap), a reordered or replaced row (prev hash)
    and a cut-off tail (head points past the last row). Intact batches are checked from one
    aggregated string per batch; a batch with any fault is walked row by row to name it.
    """
    expected, prev = 1, GENESIS_HASH
    async with engine.connect() as conn:
        dialect = conn.dialect.name
        timestamp: Callable[[Any], str] = (
            _canonical_time_from_sqlite if dialect == "sqlite" else _timestamp
        )
        head = (await conn.execute(select(_HEAD.c.seq, _HEAD.c.entry_hash))).first()
        head_seq, head_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
        fast = _BATCH_SQL.get(dialect)
        while True:
            params = {"first": expected, "n": batch}
            if fast is not None:
                count, first, last, entries, links = (await conn.execute(fast, params)).one()
                if count == 0:
                    break
                if first == expected:
                    after = _batch_intact(count, first, last, entries, links, prev=prev)
                    if after is not None:
                        expected, prev = expected + count, after
                        continue
            rows = (await conn.execute(_ROWS_SQL, params)).all()
            if not rows:
                break
            expected, prev, bad, kind, reason = check_rows(
                rows, expected_seq=expected, prev=prev, timestamp=timestamp
            )
            if bad is not None:
                return ChainReport(False, expected - 1, head_seq, head_hash, bad, reason, kind)
    count = expected - 1
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
