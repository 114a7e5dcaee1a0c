"""Are the audit log's readable columns still derived from the hashed entries?

The chain covers each event's `entry` only; reports read the columns the database generates
from it (`retention.models.FromEntry`). A database owner can redefine such a column (on
PostgreSQL `ALTER COLUMN ... DROP EXPRESSION`, on SQLite a rebuilt table) and then write into
it whatever should be shown, which a walk of the chain would never notice. So verification
also compares the table's definition with the models, and where a column is no longer what
they say, looks for the first event whose column differs from its entry.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import Column, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from retention.audit import ENTRY_FIELDS, canonical_time
from retention.models import AuditEvent

__all__ = ["column_faults", "normalised_expression", "redefined_columns"]

_SCAN_BATCH = 5000


def _derived() -> list[Column[Any]]:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    return [c for c in table.columns if c.computed is not None]


def normalised_expression(sql: str) -> str:
    """An SQL expression without what databases add or drop when they hand it back:
    PostgreSQL's casts, whitespace, parentheses and quotes."""
    return re.sub(r"::(double precision|[a-z]+)|[\s()'\"]", "", sql).lower()


def _check_definitions(connection: Connection) -> tuple[list[str], list[str]]:
    """(derived columns whose definition is not the models', those of them that are gone)."""
    dialect = connection.dialect
    reflected = {
        c["name"]: c.get("computed") for c in inspect(connection).get_columns("audit_events")
    }
    redefined = []
    for column in _derived():
        computed = reflected.get(column.name)
        assert column.computed is not None
        expected = str(column.computed.sqltext.compile(dialect=dialect))
        if (
            not computed
            or normalised_expression(computed["sqltext"]) != normalised_expression(expected)
            or bool(computed.get("persisted")) != (dialect.name == "postgresql")
        ):
            redefined.append(column.name)
    return redefined, [name for name in redefined if name not in reflected]


def redefined_columns(connection: Connection) -> list[str]:
    """The derived columns whose definition is not the models' (or that are gone)."""
    return _check_definitions(connection)[0]


def _canonical(value: Any) -> str:
    return canonical_time(value) if isinstance(value, dt.datetime) else str(value)


async def column_faults(session: AsyncSession) -> list[tuple[int, str]]:
    """(sequence number, what is wrong) for redefined columns; empty when all is as built."""
    connection = await session.connection()
    redefined, missing = await connection.run_sync(_check_definitions)
    if not redefined:
        return []
    names = ", ".join(redefined)
    if missing:
        return [(1, f"the audit log's column(s) {', '.join(missing)} are gone")]
    columns = [getattr(AuditEvent, name) for name in redefined]
    first = 1
    while True:
        query = (
            select(col(AuditEvent.seq), col(AuditEvent.entry), *columns)
            .where(col(AuditEvent.seq) >= first)
            .order_by(col(AuditEvent.seq))
            .limit(_SCAN_BATCH)
        )
        rows = (await session.execute(query)).all()
        if not rows:
            break
        for seq, entry, *values in rows:
            fields = str(entry).split("\x1f")
            for name, value in zip(redefined, values, strict=True):
                index = ENTRY_FIELDS.index(name)
                if index >= len(fields) or _canonical(value) != fields[index]:
                    return [
                        (
                            seq,
                            f"event {seq}: its {name} is not what its hashed entry says; the"
                            " column was redefined so that it could be written",
                        )
                    ]
        first = rows[-1][0] + 1
    return [
        (
            1,
            f"the audit log's column(s) {names} are no longer derived from the hashed entries"
            " (no event differs yet)",
        )
    ]
