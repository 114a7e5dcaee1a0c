"""Invitation links: random, hashed at rest, bound to one appointment, expiring."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from identity.errors import InvitationInvalid
from identity.invitations import GRACE_AFTER_END, create_invitation, redeem_invitation
from identity.models import Invitation

from support import book


async def invite(store, clock, booked, kind="resident") -> str:
    async with store.sessions() as session, session.begin():
        return await create_invitation(
            session,
            appointment_id=booked.appointment.id,
            kind=kind,
            appointment_ends_at=booked.appointment.ends_at,
            now=clock.current,
        )


async def redeem(store, clock, token):
    async with store.sessions() as session, session.begin():
        return await redeem_invitation(session, token=token, now=clock.current)


async def test_resident_link_works_until_after_the_appointment(store, clock, booked):
    token = await invite(store, clock, booked)
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert (await redeem(store, clock, token)).appointment_id == booked.appointment.id
    assert (await redeem(store, clock, token)).appointment_id == booked.appointment.id
    clock.current = booked.appointment.ends_at + GRACE_AFTER_END
    with pytest.raises(InvitationInvalid, match="not valid"):
        await redeem(store, clock, token)


async def test_only_a_hash_is_stored(store, clock, booked):
    token = await invite(store, clock, booked)
    async with store.sessions() as session:
        hashes = (await session.execute(select(Invitation.token_hash))).scalars().all()
    assert token not in hashes
    assert len(hashes) == 1


async def test_guest_link_works_once(store, clock, booked):
    token = await invite(store, clock, booked, kind="guest")
    await redeem(store, clock, token)
    with pytest.raises(InvitationInvalid):
        await redeem(store, clock, token)


@pytest.mark.parametrize("token", ["", "x" * 101, "nietbestaand"])
async def test_unknown_links_are_refused(store, clock, booked, token):
    await invite(store, clock, booked)
    with pytest.raises(InvitationInvalid):
        await redeem(store, clock, token)


async def test_links_go_with_a_destroyed_appointment(store, clock):
    from dossier.appointments import cancel_appointment

    from support import CLERK

    booked = await book(store, clock)
    token = await invite(store, clock, booked)
    await cancel_appointment(store, actor=CLERK, appointment_id=booked.appointment.id)
    with pytest.raises(InvitationInvalid):
        await redeem(store, clock, token)
