"""The schema comes from Alembic migrations, and they agree with the models."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

import dossier.models  # noqa: F401  (registers tables)
import identity.models  # noqa: F401
import retention.models  # noqa: F401
from dossier.db import UTCDateTime, create_engine
from retention.audit import GENESIS_HASH, canonical_entry, chain_hash, verify_chain
from retention.audit_columns import redefined_columns
from retention.models import AuditEvent
from server.migrate import _config, current_revision, head_revision, upgrade_to_head

from support import drop_append_only_guard


async def test_models_and_migrations_agree(engine):
    def diff(connection):
        return compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}),
            SQLModel.metadata,
        )

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == [], f"models differ from migrations: {changes}"


async def test_upgrade_is_idempotent_and_reaches_head(database_url):
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade_to_head(engine)
        await upgrade_to_head(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_back(engine):
    def down(connection):
        config = _config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    async with engine.begin() as conn:
        await conn.run_sync(down)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await upgrade_to_head(engine)
    assert await current_revision(engine) == head_revision()


@pytest.mark.parametrize("table", ["dossiers", "data_keys", "audit_events", "tombstones"])
async def test_tables_exist_after_migration(engine, table):
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert table in tables


# --- 0007: the audit log keeps its canonical entries -------------------------------------

V1_EVENTS = [
    # (time, actor, action, object_type, object_ref, result, detail)
    (
        dt.datetime(2026, 3, 2, 9, 0, 0, 0, tzinfo=dt.UTC),
        "clerk:emp-7",
        "dossier.created",
        "dossier",
        "d-1",
        "ok",
        '{"service":"geboorteaangifte"}',
    ),
    (
        dt.datetime(2026, 3, 2, 9, 0, 1, 999999, tzinfo=dt.UTC),
        "resident:é-ß",
        "chat.appended",
        "dossier",
        "d-1",
        "ok",
        '{"kind":"text","note":"caf\\u00e9"}',
    ),
    (
        dt.datetime(2026, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
        "system:sweeper",
        "dossier.destroyed",
        "dossier",
        "d-2",
        "refused",
        "{}",
    ),
]


async def _migrate(engine, revision: str, *, down: bool = False) -> None:
    def run(connection):
        config = _config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _insert_v1_chain(engine) -> list[str]:
    """Events as revisions up to 0006 stored them (own columns and prev_hash); their hashes."""
    prev, hashes, rows = GENESIS_HASH, [], []
    for seq, (at, actor, action, otype, oref, result, detail) in enumerate(V1_EVENTS, 1):
        canonical = canonical_entry(
            seq=seq,
            occurred_at=at,
            actor=actor,
            action=action,
            object_type=otype,
            object_ref=oref,
            result=result,
            detail=detail,
        )
        entry = chain_hash(prev, canonical)
        rows.append(
            {
                "seq": seq,
                "occurred_at": at,
                "actor": actor,
                "action": action,
                "object_type": otype,
                "object_ref": oref,
                "result": result,
                "detail": detail,
                "prev_hash": prev,
                "entry_hash": entry,
            }
        )
        hashes.append(entry)
        prev = entry
    v1 = sa.table(
        "audit_events",
        *(sa.column(name) for name in rows[0] if name != "occurred_at"),
        sa.column("occurred_at", UTCDateTime()),
    )
    async with engine.begin() as conn:
        await conn.execute(sa.insert(v1), rows)
        await conn.execute(
            sa.text("INSERT INTO audit_head (id, seq, entry_hash) VALUES (1, :seq, :hash)"),
            {"seq": len(rows), "hash": prev},
        )
    return hashes


async def test_0007_keeps_every_event_and_its_hash(database_url):
    engine = create_engine(database_url)
    try:
        await _migrate(engine, "0006")
        hashes = await _insert_v1_chain(engine)
        await upgrade_to_head(engine)

        report = await verify_chain(engine)
        assert report.ok, report
        assert report.count == 3
        async with AsyncSession(engine) as session:
            events = (await session.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars()
            read = [
                (e.occurred_at, e.actor, e.action, e.object_type, e.object_ref, e.result, e.detail)
                for e in events
            ]
            stored = list((await session.execute(select(AuditEvent.entry_hash))).scalars())
        assert read == V1_EVENTS  # every field, the microseconds and the non-ASCII included
        assert sorted(stored) == sorted(hashes)

        # Back to 0006: the old columns, and prev_hash rebuilt from the chain.
        await _migrate(engine, "0006", down=True)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT seq, actor, detail, prev_hash, entry_hash FROM audit_events"
                        " ORDER BY seq"
                    )
                )
            ).all()
        assert [r.prev_hash for r in rows] == [GENESIS_HASH, *hashes[:-1]]
        assert [r.entry_hash for r in rows] == hashes
        assert [(r.actor, r.detail) for r in rows] == [(e[1], e[6]) for e in V1_EVENTS]
        await upgrade_to_head(engine)
        assert (await verify_chain(engine)).ok
    finally:
        await engine.dispose()


async def test_0007_an_event_altered_before_it_is_still_found(database_url):
    engine = create_engine(database_url)
    try:
        await _migrate(engine, "0006")
        await _insert_v1_chain(engine)
        await drop_append_only_guard(engine)
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE audit_events SET result = 'ok' WHERE seq = 3"))
        await upgrade_to_head(engine)
        report = await verify_chain(engine)
        assert not report.ok
        assert report.first_bad_seq == 3
        # and the rebuilt table is append-only again
        async with engine.begin() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 1"))
    finally:
        await engine.dispose()


async def test_derived_fields_cannot_be_written(engine):
    """What a report reads comes from the hashed entry; no statement can set it apart."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("INSERT INTO audit_events (seq, entry, entry_hash) VALUES (1, :e, :h)"),
            {
                "e": "1\x1f2026-03-02T09:00:00.000000Z\x1fa:b\x1fx\x1fy\x1fz\x1fok\x1f{}",
                "h": "0" * 64,
            },
        )
    with pytest.raises(DBAPIError, match=r"generated|cannot"):
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO audit_events (seq, entry, actor, entry_hash)"
                    " VALUES (2, :e, 'forged', :h)"
                ),
                {
                    "e": "2\x1f2026-03-02T09:00:00.000000Z\x1fa:b\x1fx\x1fy\x1fz\x1fok\x1f{}",
                    "h": "0" * 64,
                },
            )


async def test_derived_columns_are_what_the_models_say(engine):
    """Alembic only warns loosely about generated columns (and did not notice a changed
    expression when tried); the migrated table must be exactly what the models say."""
    async with engine.connect() as conn:
        assert await conn.run_sync(redefined_columns) == []
