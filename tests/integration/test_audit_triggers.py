"""The audit tables are append-only in the database itself: UPDATE and DELETE (and TRUNCATE on
PostgreSQL) are refused with the database's own error, while appending keeps working."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from retention.audit import Actor, record_event, verify_chain
from retention.models import AuditCheckpoint, AuditEvent, AuditHead
from server.audit_routes import checkpoint_now

from support import engine_of

ACTOR = Actor("clerk", "emp-7")


async def append(store, count: int) -> None:
    for i in range(count):
        async with store.sessions() as session, session.begin():
            await record_event(
                session,
                at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
                actor=ACTOR,
                action="test.event",
                object_type="dossier",
                object_ref=f"ref-{i}",
            )


@pytest.fixture
async def signed(store, settings):
    """Five events and a checkpoint over them (event 6)."""
    await append(store, 5)
    made = await checkpoint_now(store, settings, actor=Actor.system("test"), force=True)
    assert made is not None
    assert made.seq == 6
    return store


async def snapshot(store) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]], int]:
    async with store.sessions() as session:
        events = (
            await session.execute(
                select(AuditEvent.seq, AuditEvent.action, AuditEvent.entry_hash).order_by(
                    col(AuditEvent.seq)
                )
            )
        ).all()
        checkpoints = (
            await session.execute(select(AuditCheckpoint.seq, AuditCheckpoint.signature))
        ).all()
        head = await session.scalar(select(AuditHead.seq))
    return [tuple(e) for e in events], [tuple(c) for c in checkpoints], int(head or 0)


STATEMENTS = [
    pytest.param(
        "audit_events",
        "update",
        update(AuditEvent).where(col(AuditEvent.seq) == 3).values(entry="changed"),
        id="update one event",
    ),
    pytest.param(
        "audit_events",
        "delete",
        delete(AuditEvent).where(col(AuditEvent.seq) == 5),
        id="delete one event",
    ),
    pytest.param("audit_events", "delete", delete(AuditEvent), id="delete every event"),
    pytest.param(
        "audit_checkpoints",
        "update",
        update(AuditCheckpoint).values(entry_hash="0" * 64),
        id="update a checkpoint",
    ),
    pytest.param("audit_checkpoints", "delete", delete(AuditCheckpoint), id="delete checkpoints"),
]


@pytest.mark.parametrize(("table", "verb", "statement"), STATEMENTS)
async def test_update_and_delete_are_refused_by_the_database(signed, table, verb, statement):
    before = await snapshot(signed)
    with pytest.raises(DBAPIError, match=f"{table} is append-only: {verb} refused"):
        async with signed.sessions() as session, session.begin():
            await session.execute(statement)
    assert await snapshot(signed) == before
    assert (await verify_chain(engine_of(signed))).ok


async def test_raw_sql_is_refused_as_well(signed):
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine_of(signed).begin() as conn:
            await conn.execute(text("UPDATE audit_events SET entry = 'no' WHERE seq = 1"))
    async with signed.sessions() as session:
        assert await session.scalar(select(AuditEvent.result).where(AuditEvent.seq == 1)) == "ok"


@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints"])
async def test_truncate_is_refused_on_postgresql(signed, table):
    engine = engine_of(signed)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (a DELETE without WHERE is refused above)")
    before = await snapshot(signed)
    with pytest.raises(DBAPIError, match=f"{table} is append-only: truncate refused"):
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {table}"))
    assert await snapshot(signed) == before


async def test_the_application_keeps_appending_and_signing(signed, settings):
    """Appends insert events and move audit_head (a table the triggers leave alone), in a
    transaction and stand-alone; checkpoints insert rows. None of it is refused."""
    await append(signed, 2)
    seq = await signed.audit.append(
        at=dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
        actor=ACTOR,
        action="document.read",
        object_type="dossier",
        object_ref="d1",
    )
    assert seq == 9
    made = await checkpoint_now(signed, settings, actor=Actor.system("test"), force=True)
    assert made is not None
    assert made.seq == 10
    events, checkpoints, head = await snapshot(signed)
    assert [e[0] for e in events] == list(range(1, 11))
    assert [c[0] for c in checkpoints] == [6, 10]
    assert head == 10
    report = await verify_chain(engine_of(signed))
    assert report.ok
    assert report.count == 10


async def test_the_triggers_are_installed_on_both_tables(engine):
    if engine.dialect.name == "postgresql":
        query = text(
            "SELECT count(*) FROM information_schema.triggers"
            " WHERE trigger_name LIKE '%\\_no\\_%' ESCAPE '\\'"
            " AND event_object_table IN ('audit_events', 'audit_checkpoints')"
        )
        # information_schema lists row triggers; the TRUNCATE ones are statement triggers.
        names = text(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit%no%' AND NOT tgisinternal"
        )
        async with engine.connect() as conn:
            assert await conn.scalar(query) == 4
            assert await conn.scalar(names) == 6
        return
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(func.count())
            .select_from(text("sqlite_master"))
            .where(text("type = 'trigger' AND name LIKE 'audit%no%'"))
        )
    assert found == 4
