"""A dossier's retention from end to end, through the services each part offers: warnings
and the escalation before the deadline, a hold asked for by the clerk and approved by an
information manager, the sweeper respecting it, the hold ending by itself, and then the
destruction, its batch and the chain that proves it all."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import col

from dossier.models import Tombstone, TombstoneOutcome
from retention.audit import Actor, verify_chain
from retention.holds import approve_hold, expire_holds, request_hold
from retention.models import AuditEvent, RetentionNotice
from retention.notices import issue_notices
from retention.sweeper import sweep

from support import CLERK, book, engine_of

MANAGER = Actor("information_manager", "emp-ilse")
SWEEPER = Actor.system("sweeper")
SECOND = dt.timedelta(seconds=1)


async def notice_kinds(store, dossier_id) -> list[str]:
    async with store.sessions() as session:
        query = select(col(RetentionNotice.kind)).where(
            col(RetentionNotice.dossier_id) == dossier_id
        )
        return sorted((await session.execute(query)).scalars())


async def test_warned_held_released_by_time_then_destroyed(store, clock):
    booked = await book(store, clock)  # a birth registration: export required
    dossier_id, deadline = booked.dossier.id, booked.dossier.deadline

    clock.current = deadline - dt.timedelta(days=7)
    await issue_notices(store, now=clock.current)
    assert await notice_kinds(store, dossier_id) == ["escalation", "warning_7"]

    # The clerk asks to keep it for a complaint; until an information manager approves,
    # the request changes nothing.
    hold = await request_hold(
        store, dossier_id=dossier_id, ground="complaint",
        reason="Klacht over de behandeling, nummer K-2026-17.",
        ends_at=deadline + dt.timedelta(days=30), actor=CLERK,
    )  # fmt: skip
    hold = await approve_hold(store, hold_id=hold.id, actor=MANAGER)
    assert hold.state == "active"

    clock.current = deadline + SECOND
    report = await sweep(store, actor=SWEEPER, batch_size=10)
    assert [item.dossier_id for item in report.items] == []
    async with store.sessions() as session:
        assert await session.get(Tombstone, dossier_id) is None

    # The hold ends by itself; the next run destroys the dossier.
    clock.current = hold.ends_at + SECOND
    assert [h.id for h in await expire_holds(store, now=clock.current)] == [hold.id]
    report = await sweep(store, actor=SWEEPER, batch_size=10)
    assert [item.dossier_id for item in report.items] == [dossier_id]
    async with store.sessions() as session:
        tombstone = await session.get(Tombstone, dossier_id)
        actions = list(
            (
                await session.execute(
                    select(col(AuditEvent.action))
                    .where(col(AuditEvent.object_ref) == str(dossier_id))
                    .order_by(col(AuditEvent.seq))
                )
            ).scalars()
        )
    assert tombstone is not None
    assert tombstone.outcome == TombstoneOutcome.DESTROYED_AT_DEADLINE
    assert tombstone.destruction_batch is not None
    assert tombstone.archive_mode == "export_required"  # the Archiefwet check needs it
    for action in ("hold.requested", "hold.approved", "hold.expired", "dossier.destroyed"):
        assert action in actions, action
    assert actions.count("dossier.destroyed") == 1
    assert (await verify_chain(engine_of(store))).ok
