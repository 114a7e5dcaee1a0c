"""The sweeper: at the deadline and not a second earlier; holds, exports and cancels follow
their own rules; dry runs change nothing; the start-up run catches up after downtime."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text, update
from sqlmodel import col

from dossier.appointments import cancel_appointment
from dossier.chat import append_chat_message, list_chat_messages
from dossier.db import ManualClock
from dossier.documents import store_document
from dossier.errors import DossierDestroyed
from dossier.models import (
    DataKey,
    Document,
    Dossier,
    DossierState,
    Tombstone,
    TombstoneOutcome,
)
from dossier.shredding import destroy_dossier
from retention.audit import Actor, verify_chain
from retention.models import AuditEvent, DestructionBatch, Hold
from retention.sweeper import sweep
from server.app import create_app
from server.cli import main

from support import CLERK, RESIDENT, book, chunks, engine_of

SWEEPER = Actor.system("test-sweep")
SECOND = dt.timedelta(seconds=1)


async def run_sweep(store, **options):
    return await sweep(store, actor=SWEEPER, batch_size=options.pop("batch_size", 10), **options)


async def events(store, action: str, ref: str | None = None) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        if ref is not None:
            query = query.where(col(AuditEvent.object_ref) == ref)
        return list((await session.execute(query.order_by(col(AuditEvent.seq)))).scalars())


async def tombstone(store, dossier_id: uuid.UUID) -> Tombstone | None:
    async with store.sessions() as session:
        return await session.get(Tombstone, dossier_id)


async def dossier_row(store, dossier_id: uuid.UUID) -> Dossier | None:
    async with store.sessions() as session:
        return await session.get(Dossier, dossier_id)


def blob_files(store) -> list:
    return [p for p in store.blobs.root.rglob("*") if p.is_file()]


async def hold(store, booked, *, ends_at: dt.datetime, state: str = "active") -> None:
    async with store.sessions() as session, session.begin():
        session.add(
            Hold(
                dossier_id=booked.dossier.id,
                department_id=booked.appointment.department_id,
                service_type="geboorteaangifte",
                ground="complaint",
                reason="bezwaar tegen besluit",
                ends_at=ends_at,
                state=state,
                requested_by="clerk:emp-1001",
                requested_at=booked.dossier.created_at,
            )
        )


async def test_destroyed_at_the_deadline_and_not_a_second_earlier(store, clock):
    # Booked three weeks ahead: the deadline counts from the start, not from the booking.
    start = clock.current + dt.timedelta(weeks=3)
    booked = await book(store, clock, starts_at=start)
    dossier_id = booked.dossier.id
    deadline = booked.dossier.deadline
    assert deadline == start + dt.timedelta(days=56)
    await append_chat_message(store, actor=CLERK, dossier_id=dossier_id, text="Welkom")
    await store_document(
        store, actor=RESIDENT, dossier_id=dossier_id, name="akte.pdf",
        media_type="application/pdf", content=chunks(b"%PDF-1.7 " + b"z" * 5000),
    )  # fmt: skip
    assert len(blob_files(store)) == 1

    # 56 days after the booking the call is only five weeks old: nothing happens.
    clock.current = booked.dossier.created_at + dt.timedelta(days=56)
    assert (await run_sweep(store)).items == []
    clock.current = deadline - SECOND
    report = await run_sweep(store)
    assert report.items == []
    assert report.batch_id is None
    assert [m.text for m in await list_chat_messages(
        store, actor=CLERK, dossier_id=dossier_id)] == ["Welkom"]  # fmt: skip
    assert len(blob_files(store)) == 1

    clock.current = deadline
    report = await run_sweep(store)
    assert [(i.dossier_id, i.result, i.outcome) for i in report.items] == [
        (dossier_id, "destroyed", TombstoneOutcome.DESTROYED_AT_DEADLINE)
    ]
    stone = await tombstone(store, dossier_id)
    assert stone.outcome == TombstoneOutcome.DESTROYED_AT_DEADLINE
    assert stone.destruction_batch == report.batch_id
    assert stone.removed_at == deadline
    assert stone.removed_by == str(SWEEPER)
    assert re.fullmatch(r"\d{8}T\d{4}Z-[0-9a-f]{6}", report.batch_id)
    async with store.sessions() as session:
        assert await session.get(DataKey, dossier_id) is None
        assert await session.get(Dossier, dossier_id) is None
        count = select(func.count()).select_from(Document)
        assert (await session.execute(count)).scalar() == 0
        batch = await session.get(DestructionBatch, report.batch_id)
    assert blob_files(store) == []
    with pytest.raises(DossierDestroyed, match="was destroyed"):
        await list_chat_messages(store, actor=CLERK, dossier_id=dossier_id)

    assert (batch.started_at, batch.finished_at, batch.dossiers) == (deadline, deadline, 1)
    assert (batch.actor, batch.policy_version) == (str(SWEEPER), "builtin-1")
    assert len(await events(store, "dossier.destroyed", str(dossier_id))) == 1
    [sweep_event] = await events(store, "retention.sweep", report.batch_id)
    assert (sweep_event.object_type, sweep_event.actor) == ("batch", str(SWEEPER))
    assert '"dossiers":1' in sweep_event.detail
    assert (await verify_chain(engine_of(store))).ok

    # The next run finds nothing and leaves no trace.
    before = len(await events(store, "retention.sweep"))
    assert (await run_sweep(store)).summary() == "nothing due: no dossier was destroyed"
    assert len(await events(store, "retention.sweep")) == before


async def test_a_hold_keeps_a_dossier_until_it_ends(store, clock):
    held, requested, lapsed = [await book(store, clock) for _ in range(3)]
    deadline = held.dossier.deadline
    await hold(store, held, ends_at=deadline + dt.timedelta(days=10))
    # Not yet approved, or approved but already over: neither stops the sweeper.
    await hold(store, requested, ends_at=deadline + dt.timedelta(days=10), state="requested")
    await hold(store, lapsed, ends_at=deadline - dt.timedelta(days=1))

    clock.current = deadline + dt.timedelta(days=1)
    report = await run_sweep(store)
    assert {i.dossier_id for i in report.items} == {requested.dossier.id, lapsed.dossier.id}
    assert await tombstone(store, held.dossier.id) is None
    assert await list_chat_messages(store, actor=CLERK, dossier_id=held.dossier.id) == []

    clock.current = deadline + dt.timedelta(days=10) - SECOND
    assert (await run_sweep(store)).items == []
    clock.current = deadline + dt.timedelta(days=10)  # the hold has ended
    report = await run_sweep(store)
    assert [i.dossier_id for i in report.items] == [held.dossier.id]
    assert (await tombstone(store, held.dossier.id)).outcome == "destroyed_at_deadline"


async def test_exported_and_cancelled_dossiers_are_not_touched_again(store, clock):
    exported, cancelled = await book(store, clock), await book(store, clock)
    await destroy_dossier(
        store, actor=CLERK, dossier_id=exported.dossier.id,
        outcome=TombstoneOutcome.EXPORTED, export_reference="package:test",
    )  # fmt: skip
    await cancel_appointment(store, actor=CLERK, appointment_id=cancelled.appointment.id)

    clock.current = exported.dossier.deadline + dt.timedelta(days=30)
    report = await run_sweep(store)
    assert report.items == []
    assert report.batch_id is None
    stone = await tombstone(store, exported.dossier.id)
    assert (stone.outcome, stone.export_reference) == ("exported", "package:test")
    stone = await tombstone(store, cancelled.dossier.id)
    assert (stone.outcome, stone.destruction_batch) == ("destroyed_on_cancel", None)
    for booked in (exported, cancelled):
        assert len(await events(store, "dossier.destroyed", str(booked.dossier.id))) == 1
    async with store.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(DestructionBatch))
                ).scalar() == 0  # fmt: skip


async def test_interrupted_cancels_and_destructions_are_finished(store, clock):
    """A cancel whose destruction never ran, and a destruction cut off after its mark, are
    finished by the next run, before their deadline, with their own outcome. An export cut
    off after its mark is left to the export until its deadline."""
    cancelled, operator, exporting = [await book(store, clock) for _ in range(3)]
    async with store.sessions() as session, session.begin():
        for booked, state, reason in (
            (cancelled, DossierState.CANCELLED, None),
            (operator, DossierState.DESTROYING, "destroyed_by_operator"),
            (exporting, DossierState.DESTROYING, "exported"),
        ):
            await session.execute(
                update(Dossier).where(col(Dossier.id) == booked.dossier.id)
                .values(state=state, destroy_reason=reason)
            )  # fmt: skip

    report = await run_sweep(store)
    assert {(i.dossier_id, i.outcome) for i in report.items} == {
        (cancelled.dossier.id, TombstoneOutcome.DESTROYED_ON_CANCEL),
        (operator.dossier.id, TombstoneOutcome.DESTROYED_BY_OPERATOR),
    }
    assert (await tombstone(store, cancelled.dossier.id)).outcome == "destroyed_on_cancel"
    assert (await tombstone(store, operator.dossier.id)).outcome == "destroyed_by_operator"
    assert await tombstone(store, exporting.dossier.id) is None

    clock.current = exporting.dossier.deadline
    report = await run_sweep(store)
    assert [(i.dossier_id, i.result) for i in report.items] == [(exporting.dossier.id, "destroyed")]
    assert (await tombstone(store, exporting.dossier.id)).outcome == "exported"


async def test_dry_run_lists_and_changes_nothing(store, clock):
    due = [await book(store, clock) for _ in range(3)]
    later = await book(store, clock, starts_at=clock.current + dt.timedelta(days=5))
    clock.current = due[0].dossier.deadline + SECOND
    async with store.sessions() as session:
        seq_before = (await session.execute(select(func.max(AuditEvent.seq)))).scalar()

    report = await run_sweep(store, dry_run=True)
    assert {i.dossier_id for i in report.items} == {b.dossier.id for b in due}
    assert {i.result for i in report.items} == {"would_destroy"}
    assert report.summary() == "dry run: 3 dossier(s) would be destroyed; nothing was changed"
    assert report.batch_id is None
    async with store.sessions() as session:
        assert (await session.execute(select(func.max(AuditEvent.seq)))).scalar() == seq_before
        states = (await session.execute(select(Dossier.state))).scalars().all()
        assert sorted(states) == ["scheduled"] * 4
        assert (await session.execute(select(func.count()).select_from(Tombstone))).scalar() == 0
        batches = select(func.count()).select_from(DestructionBatch)
        assert (await session.execute(batches)).scalar() == 0
    assert await dossier_row(store, later.dossier.id) is not None


async def test_batches_of_the_given_size_until_nothing_is_due(store, clock):
    due = [await book(store, clock) for _ in range(5)]
    async with store.sessions() as session, session.begin():
        # One dossier under another policy version: the batch says "mixed".
        await session.execute(
            update(Dossier).where(col(Dossier.id) == due[0].dossier.id)
            .values(policy_version="2026-2")
        )  # fmt: skip
    clock.current = due[-1].dossier.deadline
    report = await run_sweep(store, batch_size=2)
    assert report.destroyed == 5
    assert report.summary() == f"batch {report.batch_id}: 5 dossier(s) destroyed, 0 failed"
    async with store.sessions() as session:
        [batch] = (await session.execute(select(DestructionBatch))).scalars().all()
        stones = (await session.execute(select(Tombstone))).scalars().all()
    assert (batch.dossiers, batch.policy_version) == (5, "mixed")
    assert {s.destruction_batch for s in stones} == {batch.id}
    assert len(await events(store, "retention.sweep")) == 1
    assert len(await events(store, "dossier.destroyed")) == 5


async def test_a_dossier_that_fails_is_reported_and_the_rest_go_on(store, clock, monkeypatch):
    broken, fine = await book(store, clock), await book(store, clock)
    await store_document(
        store, actor=RESIDENT, dossier_id=broken.dossier.id, name="scan.pdf",
        media_type="application/pdf", content=chunks(b"%PDF-1.7 " + b"x" * 3000),
    )  # fmt: skip

    async def disk_gone(blob_ref: str) -> None:
        raise OSError("blob storage unreachable")

    real_delete = store.blobs.delete
    monkeypatch.setattr(store.blobs, "delete", disk_gone)
    clock.current = fine.dossier.deadline
    report = await run_sweep(store, batch_size=1)
    results = {i.dossier_id: (i.result, i.error) for i in report.items}
    assert results == {broken.dossier.id: ("failed", "OSError"), fine.dossier.id: ("destroyed", "")}
    assert report.summary().endswith(": 1 dossier(s) destroyed, 1 failed")
    # Its key is gone already; the rest waits for the next run.
    assert (await dossier_row(store, broken.dossier.id)).state == DossierState.DESTROYING
    assert len(blob_files(store)) == 1

    monkeypatch.setattr(store.blobs, "delete", real_delete)
    report = await run_sweep(store)
    assert [(i.dossier_id, i.result) for i in report.items] == [(broken.dossier.id, "destroyed")]
    assert blob_files(store) == []
    assert len(await events(store, "dossier.destroyed", str(broken.dossier.id))) == 1


async def test_bad_batch_size_is_refused(store, clock):
    await book(store, clock)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        await sweep(store, actor=SWEEPER, batch_size=0)


@pytest.mark.skipif(
    not __import__("os").environ.get("BALIE_TEST_DATABASE_URL"),
    reason="the advisory lock is PostgreSQL's",
)
async def test_a_second_sweeper_on_postgresql_steps_aside(store, clock):
    booked = await book(store, clock)
    clock.current = booked.dossier.deadline
    async with engine_of(store).connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": 0x42A11E_5EE9})
        report = await run_sweep(store)
        assert report.busy
        assert report.summary() == "another process is sweeping right now; this run did nothing"
        assert await dossier_row(store, booked.dossier.id) is not None
        await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": 0x42A11E_5EE9})
    assert (await run_sweep(store)).destroyed == 1


async def test_start_up_run_destroys_what_became_due_while_stopped(
    aiohttp_client, settings, store, clock
):
    booked = await book(store, clock)
    kept = await book(store, clock, starts_at=clock.current + dt.timedelta(days=10))
    # The server was down across the deadline; it comes back a day later.
    later = ManualClock(booked.dossier.deadline + dt.timedelta(days=1))
    client = await aiohttp_client(create_app(settings, clock=later))
    assert (await client.get("/readyz")).status == 200
    async with asyncio.timeout(30):
        while (stone := await tombstone(store, booked.dossier.id)) is None:
            await asyncio.sleep(0.05)
    assert stone.outcome == TombstoneOutcome.DESTROYED_AT_DEADLINE
    assert stone.removed_by == "system:retention-sweep"
    assert stone.removed_at == later.current
    assert await dossier_row(store, kept.dossier.id) is not None


@pytest.fixture
def env(settings, isolated_env):
    return {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(settings.data_dir),
        "BALIE_DATABASE_URL": settings.resolved_database_url,
    }


def cli(env, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--operator", "beheerder", *args], env=env)
    assert result.exit_code == code, result.output
    return result.output


async def test_cli_sweep_prints_what_it_does(env, store, clock):
    # The CLI runs on the database clock (today): these deadlines lie months back.
    hour = dt.timedelta(hours=1)
    due = [await book(store, clock, starts_at=clock.current + n * hour) for n in (1, 2)]
    future = await book(store, clock, starts_at=dt.datetime(2099, 1, 5, 9, tzinfo=dt.UTC))

    out = await asyncio.to_thread(cli, env, "retention", "sweep", "--dry-run")
    lines = out.splitlines()
    assert len(lines) == 3
    for booked, line in zip(due, lines, strict=False):
        deadline = f"{booked.dossier.deadline:%Y-%m-%d %H:%M:%S} UTC"
        assert line == (f"{booked.dossier.id}  geboorteaangifte  deadline {deadline}  "
                        "would be destroyed (destroyed_at_deadline)")  # fmt: skip
    assert lines[-1] == "dry run: 2 dossier(s) would be destroyed; nothing was changed"
    assert all([await dossier_row(store, b.dossier.id) for b in due])

    out = await asyncio.to_thread(cli, env, "retention", "sweep", "--batch", "1")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == [str(b.dossier.id) for b in due]
    assert all(line.endswith("  destroyed (destroyed_at_deadline)") for line in lines[:2])
    assert re.fullmatch(r"batch \S+: 2 dossier\(s\) destroyed, 0 failed", lines[2])
    assert str(future.dossier.id) not in out
    for booked in due:
        stone = await tombstone(store, booked.dossier.id)
        assert stone.removed_by == "operator:beheerder"
    assert await dossier_row(store, future.dossier.id) is not None

    out = await asyncio.to_thread(cli, env, "retention", "sweep")
    assert out == "nothing due: no dossier was destroyed\n"
    out = await asyncio.to_thread(cli, env, "retention", "sweep", "--batch", "0", code=2)
    assert "Invalid value for '--batch': 0 is not in the range 1<=x<=10000" in out
