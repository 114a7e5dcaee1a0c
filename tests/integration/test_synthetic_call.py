"""A whole call between two synthetic aiortc participants through Balie's signaling."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from dossier.chat import list_chat_messages
from identity.accounts import add_local_account
from identity.sessions import create_session

from support import CLERK, book, serving
from synthetic import SyntheticParticipant


@pytest.fixture
async def served(settings, clock, store):
    async with serving(settings, clock) as urls:
        yield urls


async def test_resident_and_clerk_see_each_other(served, store, clock, settings):
    base, origin = served
    booked = await book(store, clock)
    async with store.sessions() as session, session.begin():
        made = await add_local_account(
            session, secret_key=settings.secret_key.get_secret_value().encode(), username="anna",
            display_name="Anna", employee_id="emp-anna", role="clerk", department="burgerzaken",
            now=clock.current, password="x" * 16,
        )  # fmt: skip
        clerk_token, _ = await create_session(
            session, now=clock.current, kind="staff", role="clerk", staff_id=made.account.id,
            department_id=made.account.department_id,
        )  # fmt: skip
        resident_token, _ = await create_session(
            session, now=clock.current, kind="resident", role="resident",
            appointment_id=booked.appointment.id, resident_pseudonym="p-1",
        )  # fmt: skip
    async with aiohttp.ClientSession() as http:
        common = {"base_url": base, "origin": origin, "dossier_id": str(booked.dossier.id)}
        clerk = SyntheticParticipant(http, session_token=clerk_token, auto_admit=True, **common)
        resident = SyntheticParticipant(http, session_token=resident_token, **common)
        try:
            clerk_hello = await clerk.connect()
            await resident.connect()
            await resident.send({"type": "knock"})
            async with asyncio.timeout(10):
                await resident.admitted.wait()
            await resident.call(clerk_hello["you"])
            seen_by_clerk = await clerk.first_remote_frame()
            seen_by_resident = await resident.first_remote_frame()
            assert (seen_by_clerk.width, seen_by_clerk.height) == (640, 480)
            assert (seen_by_resident.width, seen_by_resident.height) == (640, 480)
            await resident.send({"type": "chat", "text": "Ziet u mij?"})
            assert (await clerk.expect("chat"))["text"] == "Ziet u mij?"
        finally:
            await resident.close()
            await clerk.close()
    stored = await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    assert [m.text for m in stored] == ["Ziet u mij?"]
