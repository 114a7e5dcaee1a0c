"""Holds through the service functions, on a real database: the life cycle from request to
expiry by the clock, four eyes, refusals that store nothing, and the audit trail of each step.

What a user would notice: the hold's state, whether the sweeper leaves the dossier alone, the
audit events an information manager reads, and that a refused request leaves no trace but its
error.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from dossier.appointments import cancel_appointment
from dossier.errors import DossierDestroyed, DossierNotFound
from dossier.models import Dossier
from retention.audit import Actor
from retention.holds import (
    HoldDecisionRefused,
    HoldNotFound,
    HoldStateConflict,
    InvalidHold,
    approve_hold,
    expire_holds,
    reject_hold,
    release_hold,
    request_hold,
)
from retention.models import AuditEvent, Hold
from retention.sweeper import sweep

from support import BSN, CLERK, book

IM_ANNA = Actor("information_manager", "emp-anna")
IM_BOB = Actor("information_manager", "emp-bob")
PRIVACY = Actor("privacy_officer", "emp-fg")
REASON = "Bezwaarschrift ontvangen, zaaknummer Z-2026-0042."
SWEEPER = Actor.system("retention-sweep")


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


async def hold_events(store, dossier_id: uuid.UUID) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = (
            select(AuditEvent)
            .where(col(AuditEvent.object_ref) == str(dossier_id))
            .where(col(AuditEvent.action).like("hold.%"))
            .order_by(col(AuditEvent.seq))
        )
        return list((await session.execute(query)).scalars())


async def hold_count(store) -> int:
    async with store.sessions() as session:
        return (await session.execute(select(func.count()).select_from(Hold))).scalar_one()


async def dossier_exists(store, dossier_id: uuid.UUID) -> bool:
    async with store.sessions() as session:
        return await session.get(Dossier, dossier_id) is not None


async def test_hold_life_cycle_request_approve_expire(store, clock):
    booked = await book(store, clock)
    dossier_id = booked.dossier.id
    ends = clock.current + days(60)
    hold = await request_hold(store, dossier_id=dossier_id, ground="objection", reason=REASON,
                              ends_at=ends, actor=CLERK)  # fmt: skip
    assert hold.state == "requested"
    assert hold.requested_by == "clerk:emp-1001"

    clock.advance(dt.timedelta(hours=2))
    approved = await approve_hold(store, hold_id=hold.id, actor=IM_ANNA, note="akkoord")
    assert approved.state == "active"
    assert approved.decided_by == "information_manager:emp-anna"

    # Past the dossier's own deadline (day 56) the sweeper leaves it: the hold runs to day 60.
    clock.advance(booked.dossier.deadline - clock.current + dt.timedelta(hours=1))
    assert await expire_holds(store) == []
    await sweep(store, actor=SWEEPER, batch_size=10)
    assert await dossier_exists(store, dossier_id)

    # One second before its end the hold stands; at its end it expires by itself.
    clock.advance(ends - clock.current - dt.timedelta(seconds=1))
    assert await expire_holds(store) == []
    clock.advance(dt.timedelta(seconds=1))
    expired = await expire_holds(store)
    assert [h.id for h in expired] == [hold.id]
    async with store.sessions() as session:
        row = await session.get_one(Hold, hold.id)
    assert row.state == "expired"
    assert row.ended_by == "system:expire-holds"

    # ... and the next sweep destroys the dossier.
    await sweep(store, actor=SWEEPER, batch_size=10)
    assert not await dossier_exists(store, dossier_id)

    events = await hold_events(store, dossier_id)
    assert [(e.action, e.actor) for e in events] == [
        ("hold.requested", "clerk:emp-1001"),
        ("hold.approved", "information_manager:emp-anna"),
        ("hold.expired", "system:expire-holds"),
    ]
    for event in events:
        assert event.object_type == "dossier"
        detail = json.loads(event.detail)
        assert detail == {"hold": str(hold.id), "ground": "objection", "ends_at": ends.isoformat()}
        assert "Z-2026" not in event.detail  # the reason text stays out of the audit log


async def test_four_eyes_the_requester_may_not_decide(store, clock):
    booked = await book(store, clock)
    hold = await request_hold(store, dossier_id=booked.dossier.id, ground="woo", reason=REASON,
                              ends_at=clock.current + days(30), actor=IM_ANNA)  # fmt: skip
    for decide in (approve_hold, reject_hold):
        with pytest.raises(HoldDecisionRefused, match="requested by you"):
            await decide(store, hold_id=hold.id, actor=IM_ANNA)
    # Nor may a clerk or the privacy officer decide, however the call is made.
    for actor in (CLERK, PRIVACY):
        with pytest.raises(HoldDecisionRefused, match="only an information manager"):
            await approve_hold(store, hold_id=hold.id, actor=actor)
    async with store.sessions() as session:
        assert (await session.get_one(Hold, hold.id)).state == "requested"
    assert [e.action for e in await hold_events(store, booked.dossier.id)] == ["hold.requested"]

    approved = await approve_hold(store, hold_id=hold.id, actor=IM_BOB)
    assert approved.state == "active"


async def test_reject_and_release(store, clock):
    first, second = await book(store, clock), await book(store, clock)
    rejected = await request_hold(
        store, dossier_id=first.dossier.id, ground="complaint", reason=REASON,
        ends_at=clock.current + days(70), actor=CLERK,
    )  # fmt: skip
    assert (
        await reject_hold(store, hold_id=rejected.id, actor=IM_BOB, note="geen grond")
    ).state == "rejected"
    with pytest.raises(HoldStateConflict, match="rejected, not requested"):
        await approve_hold(store, hold_id=rejected.id, actor=IM_ANNA)
    # A rejected hold is not open: a new request is possible.
    again = await request_hold(store, dossier_id=first.dossier.id, ground="court", reason=REASON,
                               ends_at=clock.current + days(70), actor=CLERK)  # fmt: skip
    assert again.state == "requested"

    held = await request_hold(store, dossier_id=second.dossier.id, ground="court", reason=REASON,
                              ends_at=clock.current + days(300), actor=CLERK)  # fmt: skip
    await approve_hold(store, hold_id=held.id, actor=IM_ANNA)
    with pytest.raises(HoldDecisionRefused):
        await release_hold(store, hold_id=held.id, actor=CLERK)
    released = await release_hold(store, hold_id=held.id, actor=IM_BOB)
    assert released.state == "released"
    assert released.ended_by == "information_manager:emp-bob"
    with pytest.raises(HoldStateConflict, match="released, not active"):
        await release_hold(store, hold_id=held.id, actor=IM_BOB)
    with pytest.raises(HoldNotFound):
        await release_hold(store, hold_id=uuid.uuid4(), actor=IM_BOB)

    # Released early: the dossier's own deadline applies again.
    clock.advance(second.dossier.deadline - clock.current + dt.timedelta(seconds=1))
    await sweep(store, actor=SWEEPER, batch_size=10)
    assert not await dossier_exists(store, second.dossier.id)
    actions = [e.action for e in await hold_events(store, second.dossier.id)]
    assert actions == ["hold.requested", "hold.approved", "hold.released"]


@pytest.mark.parametrize(
    ("ground", "reason", "ends_in", "problem"),
    [
        ("complaint", "", days(30), "reason must be 10 to 500 characters, it has 0"),
        ("complaint", "   kort   ", days(30), "it has 4"),
        ("complaint", "x" * 501, days(30), "it has 501"),
        ("complaint", f"Klacht van burger met BSN {BSN}", days(30), "personal data"),
        ("complaint", "Mail jan@example.nl over de klacht", days(30), "personal data"),
        ("complaint", "Regel een\x00stuk", days(30), "plain text"),
        ("complaint", REASON, -days(1), "not in the future"),
        ("complaint", REASON, dt.timedelta(0), "not in the future"),
        ("complaint", REASON, days(732), "more than two years"),
        ("lawsuit", REASON, days(30), "ground 'lawsuit' is not one of"),
        ("", REASON, days(30), "ground '' is not one of"),
    ],
)
async def test_bad_requests_are_refused_and_store_nothing(
    store, clock, ground, reason, ends_in, problem
):
    booked = await book(store, clock)
    with pytest.raises(InvalidHold, match=problem):
        await request_hold(store, dossier_id=booked.dossier.id, ground=ground, reason=reason,
                           ends_at=clock.current + ends_in, actor=CLERK)  # fmt: skip
    assert await hold_count(store) == 0
    assert await hold_events(store, booked.dossier.id) == []


async def test_a_naive_end_date_is_refused(store, clock):
    booked = await book(store, clock)
    with pytest.raises(InvalidHold, match="time zone"):
        await request_hold(store, dossier_id=booked.dossier.id, ground="other", reason=REASON,
                           ends_at=dt.datetime(2026, 6, 1), actor=CLERK)  # fmt: skip
    assert await hold_count(store) == 0


async def test_unknown_gone_and_doubly_held_dossiers_are_refused(store, clock):
    with pytest.raises(DossierNotFound):
        await request_hold(store, dossier_id=uuid.uuid4(), ground="other", reason=REASON,
                           ends_at=clock.current + days(10), actor=CLERK)  # fmt: skip
    cancelled = await book(store, clock)
    await cancel_appointment(store, actor=CLERK, appointment_id=cancelled.appointment.id)
    with pytest.raises(DossierDestroyed):
        await request_hold(store, dossier_id=cancelled.dossier.id, ground="other", reason=REASON,
                           ends_at=clock.current + days(10), actor=CLERK)  # fmt: skip
    assert await hold_count(store) == 0

    booked = await book(store, clock)
    first = await request_hold(store, dossier_id=booked.dossier.id, ground="other", reason=REASON,
                               ends_at=clock.current + days(10), actor=CLERK)  # fmt: skip
    with pytest.raises(HoldStateConflict, match="already has an open hold"):
        await request_hold(store, dossier_id=booked.dossier.id, ground="woo", reason=REASON,
                           ends_at=clock.current + days(20), actor=IM_ANNA)  # fmt: skip
    await approve_hold(store, hold_id=first.id, actor=IM_ANNA)
    with pytest.raises(HoldStateConflict, match="already has an open hold"):
        await request_hold(store, dossier_id=booked.dossier.id, ground="woo", reason=REASON,
                           ends_at=clock.current + days(20), actor=IM_ANNA)  # fmt: skip
    assert await hold_count(store) == 1


async def test_a_request_whose_end_passed_cannot_be_approved_and_expires(store, clock):
    booked = await book(store, clock)
    hold = await request_hold(store, dossier_id=booked.dossier.id, ground="other", reason=REASON,
                              ends_at=clock.current + days(3), actor=CLERK)  # fmt: skip
    clock.advance(days(3))
    with pytest.raises(HoldStateConflict, match="ended on"):
        await approve_hold(store, hold_id=hold.id, actor=IM_ANNA)
    assert [h.id for h in await expire_holds(store)] == [hold.id]
    assert await expire_holds(store) == []  # once
    actions = [e.action for e in await hold_events(store, booked.dossier.id)]
    assert actions == ["hold.requested", "hold.expired"]
