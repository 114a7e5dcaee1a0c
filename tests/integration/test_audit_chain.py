"""The audit log: appends chain, and any edit, deletion or truncation is found at its place."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, text
from sqlmodel import col

from retention.audit import Actor, record_event, verify_chain
from retention.errors import InvalidAuditEvent
from retention.models import AuditEvent, AuditHead
from server.cli import main

from support import drop_append_only_guard, engine_of, rewrite_event

ACTOR = Actor("clerk", "emp-7")


async def append(store, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        async with store.sessions() as session, session.begin():
            await record_event(
                session,
                at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
                actor=ACTOR,
                action="test.event",
                object_type="dossier",
                object_ref=f"ref-{i}",
                detail={"i": i, "note": "geen persoonsgegevens"},
            )


async def tamper(store, statement) -> None:
    """Change the log the way a database owner can: drop the append-only guard, then write."""
    await drop_append_only_guard(engine_of(store))
    async with store.sessions() as session, session.begin():
        await session.execute(statement)


@pytest.fixture
async def chain(store):
    await append(store, 10)
    return store


async def test_intact_chain_verifies(chain):
    report = await verify_chain(engine_of(chain))
    assert report.ok
    assert report.count == report.head_seq == 10


async def test_empty_log_verifies(engine):
    report = await verify_chain(engine)
    assert report.ok
    assert report.count == 0


async def test_edited_field_is_found_at_its_sequence_number(chain):
    await rewrite_event(engine_of(chain), 4, action="x")
    report = await verify_chain(engine_of(chain))
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "altered" in report.reason


async def test_edited_time_is_found(chain):
    moved = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    await rewrite_event(engine_of(chain), 7, occurred_at=moved)
    assert (await verify_chain(engine_of(chain))).first_bad_seq == 7


async def test_truncated_field_value_is_found(chain):
    await rewrite_event(engine_of(chain), 2, detail='{"i":2}')
    assert (await verify_chain(engine_of(chain))).first_bad_seq == 2


async def test_rehashed_edit_is_still_found_by_the_next_event(chain):
    # An editor who recomputes the edited row's own hash breaks the link to the next one.
    async with chain.sessions() as session:
        row = await session.get(AuditEvent, 5)
        before = await session.get(AuditEvent, 4)
    from retention.audit import canonical_entry, chain_hash

    forged = chain_hash(
        before.entry_hash,
        canonical_entry(
            seq=5,
            occurred_at=row.occurred_at,
            actor=row.actor,
            action="forged",
            object_type=row.object_type,
            object_ref=row.object_ref,
            result=row.result,
            detail=row.detail,
        ),
    )
    await rewrite_event(engine_of(chain), 5, action="forged", entry_hash=forged)
    report = await verify_chain(engine_of(chain))
    assert report.first_bad_seq == 6
    assert "does not follow event 5" in report.reason


async def test_deleted_row_is_found(chain):
    await tamper(chain, delete(AuditEvent).where(col(AuditEvent.seq) == 3))
    report = await verify_chain(engine_of(chain))
    assert report.first_bad_seq == 3
    assert "missing" in report.reason


async def test_truncated_tail_is_found(chain):
    await tamper(chain, delete(AuditEvent).where(col(AuditEvent.seq) > 8))
    report = await verify_chain(engine_of(chain))
    assert not report.ok
    assert report.first_bad_seq == 9
    assert report.count == 8


async def test_appended_forgery_is_found(chain):
    async with chain.sessions() as session, session.begin():
        session.add(
            AuditEvent(
                seq=11,
                entry="11\x1f2026-03-03T00:00:00.000000Z\x1fclerk:emp-7\x1ftest.event"
                "\x1fdossier\x1fref-x\x1fok\x1f{}",
                entry_hash="0" * 64,
            )
        )
    assert (await verify_chain(engine_of(chain))).first_bad_seq == 11


async def test_verify_walks_many_batches(store):
    await append(store, 25)
    await rewrite_event(engine_of(store), 23, result="no")
    report = await verify_chain(engine_of(store), batch=4)
    assert report.first_bad_seq == 23


async def test_concurrent_appends_leave_no_gaps(store):
    await asyncio.gather(*(append(store, 5, start=100 * n) for n in range(6)))
    report = await verify_chain(engine_of(store))
    assert report.ok
    assert report.count == 30
    async with store.sessions() as session:
        head = await session.get(AuditHead, 1)
    assert head is not None
    assert head.seq == 30


@pytest.mark.parametrize(
    ("field", "value"),
    [("action", ""), ("object_ref", "a\nb"), ("actor", "x" * 161), ("result", "o\x1fk")],
)
async def test_malformed_events_are_refused(store, field, value):
    fields = {"actor": ACTOR, "action": "a", "object_type": "t", "object_ref": "r", "result": "ok"}
    fields[field] = value
    async with store.sessions() as session:
        with pytest.raises(InvalidAuditEvent, match=field):
            await record_event(session, at=dt.datetime.now(dt.UTC), **fields)
    assert (await verify_chain(engine_of(store))).count == 0


def cli_env(settings) -> dict[str, str]:
    return {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(settings.data_dir),
        "BALIE_DATABASE_URL": settings.resolved_database_url,
    }


async def test_cli_verify_reports_ok_and_the_first_bad_sequence(chain, settings, isolated_env):
    runner = CliRunner()
    ok = await asyncio.to_thread(runner.invoke, main, ["audit", "verify"], env=cli_env(settings))
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK: 10 events")

    await tamper(chain, delete(AuditEvent).where(col(AuditEvent.seq) == 6))
    bad = await asyncio.to_thread(runner.invoke, main, ["audit", "verify"], env=cli_env(settings))
    assert bad.exit_code == 1
    assert "BROKEN at sequence number 6" in bad.output


async def test_events_hold_no_bsn(store, clock):
    from support import book

    booked = await book(store, clock, resident_pseudonym="f" * 64)
    assert booked.appointment.resident_pseudonym == "f" * 64
    async with store.sessions() as session:
        rows = (await session.execute(select(AuditEvent))).scalars().all()
    assert rows
    for row in rows:
        assert "f" * 64 not in row.detail


async def test_stand_alone_and_in_transaction_appends_share_one_chain(store):
    at = dt.datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=dt.UTC)
    first = await store.audit.append(
        at=at, actor=ACTOR, action="document.read", object_type="dossier", object_ref="d1"
    )
    await append(store, 2)
    third = await store.audit.append(
        at=at,
        actor=ACTOR,
        action="chat.read",
        object_type="dossier",
        object_ref="d1",
        detail={"messages": 3},
    )
    assert (first, third) == (1, 4)
    report = await verify_chain(engine_of(store))
    assert report.ok
    assert report.count == 4
    async with store.sessions() as session:
        row = await session.get(AuditEvent, 1)
    assert row is not None
    assert row.occurred_at == at  # the fast path stores time exactly as the ORM reads it


async def test_concurrent_stand_alone_and_in_transaction_appends(store):
    async def alone(n: int) -> None:
        for i in range(5):
            await store.audit.append(
                at=dt.datetime.now(dt.UTC),
                actor=ACTOR,
                action="x",
                object_type="t",
                object_ref=f"{n}-{i}",
            )

    await asyncio.gather(alone(1), alone(2), append(store, 5), append(store, 5, start=50))
    report = await verify_chain(engine_of(store))
    assert report.ok
    assert report.count == 20


async def test_stand_alone_append_refuses_bad_fields_and_writes_nothing(store):
    with pytest.raises(InvalidAuditEvent, match="object_ref"):
        await store.audit.append(
            at=dt.datetime.now(dt.UTC), actor=ACTOR, action="x", object_type="t", object_ref=""
        )
    with pytest.raises(InvalidAuditEvent, match="aware"):
        await store.audit.append(
            at=dt.datetime(2026, 1, 1), actor=ACTOR, action="x", object_type="t", object_ref="r"
        )
    assert (await verify_chain(engine_of(store))).count == 0


async def test_stand_alone_append_serialises_with_a_writer(store):
    """While another transaction holds the write lock, the append waits and then follows it."""
    async with store.sessions() as session, session.begin():
        await record_event(
            session,
            at=dt.datetime.now(dt.UTC),
            actor=ACTOR,
            action="slow",
            object_type="t",
            object_ref="r",
        )
        waiting = asyncio.ensure_future(
            store.audit.append(
                at=dt.datetime.now(dt.UTC),
                actor=ACTOR,
                action="after",
                object_type="t",
                object_ref="r",
            )
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
    assert await waiting == 2
    assert (await verify_chain(engine_of(store))).ok


async def test_intact_chain_is_verified_by_the_fast_path_alone(chain, monkeypatch):
    """The aggregated check must agree with the row-by-row one on an intact chain; if the
    database built a canonical entry differently, every batch would fall back to rows."""
    import retention.audit as audit

    def no_row_walk(*args, **kwargs):
        raise AssertionError("an intact batch fell back to the row-by-row walk")

    monkeypatch.setattr(audit, "check_rows", no_row_walk)
    report = await verify_chain(engine_of(chain), batch=3)
    assert report.ok
    assert report.count == 10


async def test_edited_hash_is_found(chain):
    await rewrite_event(engine_of(chain), 8, entry_hash="a" * 64)
    report = await verify_chain(engine_of(chain))
    assert report.first_bad_seq == 8
    assert "event 8 was altered" in report.reason


async def test_fields_are_read_from_the_hashed_entry(chain):
    """A report reads the derived columns; they are the entry's own fields, nothing else."""
    await rewrite_event(engine_of(chain), 3, actor="clerk:emp-99", object_ref="elsewhere")
    async with chain.sessions() as session:
        row = await session.get(AuditEvent, 3)
    assert (row.actor, row.object_ref, row.action) == ("clerk:emp-99", "elsewhere", "test.event")
    assert row.occurred_at == dt.datetime(2026, 3, 2, 9, 0, 2, tzinfo=dt.UTC)
    assert (await verify_chain(engine_of(chain))).first_bad_seq == 3


async def test_null_or_separator_smuggled_into_a_field_is_found(chain):
    await rewrite_event(engine_of(chain), 5, actor="clerk:emp-7\x1etest")
    assert (await verify_chain(engine_of(chain))).first_bad_seq == 5


async def test_an_entry_that_is_not_text_is_found(chain):
    await drop_append_only_guard(engine_of(chain))
    async with engine_of(chain).begin() as conn:
        if conn.dialect.name == "postgresql":
            pytest.skip("PostgreSQL keeps a text column text")
        await conn.execute(
            text("UPDATE audit_events SET entry = CAST(entry AS BLOB) || x'ff' WHERE seq = 6")
        )
    report = await verify_chain(engine_of(chain))
    assert (report.first_bad_seq, report.kind) == (6, "modified")


async def test_verification_sees_one_snapshot_while_events_are_appended(store):
    """Rows and head are read in one snapshot: appends during a long walk are not mistaken for
    events slipped in behind the head's back."""
    await append(store, 200)

    async def keep_appending() -> None:
        for i in range(40):
            await store.audit.append(
                at=dt.datetime.now(dt.UTC),
                actor=ACTOR,
                action="during.verify",
                object_type="t",
                object_ref=f"r-{i}",
            )

    writer = asyncio.ensure_future(keep_appending())
    reports = []
    while not writer.done():
        reports.append(await verify_chain(engine_of(store), batch=7))
    await writer
    reports.append(await verify_chain(engine_of(store), batch=7))
    assert len(reports) >= 2
    assert all(r.ok for r in reports), [r for r in reports if not r.ok]
    assert reports[-1].count == 240
