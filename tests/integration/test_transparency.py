"""What the resident's page tells them about their conversation: what is kept, why, and the
date it is deleted, in Dutch and in English, from the policy the dossier was made under."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

import pytest
from aiohttp import DummyCookieJar

from identity.sessions import create_session
from retention.audit import Actor
from retention.policy_versions import approve_policy, propose_policy
from server.app import create_app

from support import Visitor, book

SECTION = re.compile(r'<section id="bewaren".*?</section>', re.S)


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    """The real app, started: the example policy is in force and its service types exist."""
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


async def resident(store, clock, booked) -> Visitor:
    """The resident of `booked`, signed in with DigiD."""
    async with store.sessions() as session, session.begin():
        token, row = await create_session(
            session, now=clock.current, kind="resident", role="resident",
            appointment_id=booked.appointment.id, resident_pseudonym=f"p-{uuid.uuid4().hex}",
        )  # fmt: skip
    return Visitor(token, row.csrf_token)


async def section(client, booked, visitor: Visitor, lang: str = "") -> str:
    query = f"?lang={lang}" if lang else ""
    response = await client.get(f"/afspraak/{booked.appointment.id}{query}", headers=visitor.cookie)
    page = await response.text()
    assert response.status == 200, page[:1000]
    found = SECTION.search(page)
    assert found is not None, "no transparency section on the resident's page"
    return " ".join(html.unescape(found.group(0)).split())


async def test_a_birth_registration_says_what_is_kept_why_and_until_when(client, store, clock):
    booked = await book(store, clock)  # starts 2026-03-02 10:00 UTC; kept 56 days
    assert booked.dossier.deadline == dt.datetime(2026, 4, 27, 10, 0, tzinfo=dt.UTC)
    visitor = await resident(store, clock, booked)

    dutch = await section(client, booked, visitor)
    assert "Wat bewaren we over dit gesprek?" in dutch
    assert "de berichten in de chat" in dutch
    assert "de documenten die u of de medewerker stuurt" in dutch
    assert "de betalingen" in dutch
    assert "uw burgerservicenummer (BSN), omdat de gemeente dat nodig heeft" in dutch
    assert "We gebruiken deze gegevens alleen om u te helpen met: Geboorteaangifte." in dutch
    assert "Burgerlijk Wetboek Boek 1 art. 19e" in dutch  # the policy's legal basis
    assert "AVG betekent Algemene verordening gegevensbescherming" in dutch
    assert "De gemeente moet een verslag van dit gesprek bewaren in haar archief" in dutch
    assert "In het archief blijft het 1 jaar en 6 maanden." in dutch
    assert 'Op <time datetime="2026-04-27">27 april 2026</time> wissen we alles' in dutch
    assert "eerder naar het archief? Dan wissen we het hier meteen daarna." in dutch

    english = await section(client, booked, visitor, "en")
    assert "What do we keep about this conversation?" in english
    assert "your citizen service number (BSN), because the municipality needs it" in english
    assert "the GDPR, the General Data Protection Regulation" in english
    assert "It stays in the archive for 1 year and 6 months." in english
    assert 'On <time datetime="2026-04-27">27 April 2026</time> we delete everything' in english


async def test_a_service_without_bsn_says_so_and_uses_its_own_deadline(client, store, clock):
    booked = await book(store, clock, service="uittreksel_brp")  # 28 days, no BSN
    visitor = await resident(store, clock, booked)
    dutch = await section(client, booked, visitor)
    assert "Uw burgerservicenummer (BSN) bewaren we niet bij dit gesprek." in dutch
    assert "burgerservicenummer (BSN), omdat" not in dutch
    assert "Als het nodig is, stuurt de medewerker het gesprek naar het archief" in dutch
    assert "In het archief blijft het 20 jaar." in dutch
    assert '<time datetime="2026-03-30">30 maart 2026</time>' in dutch

    question = await book(store, clock, service="informatie")  # 14 days, no archive
    visitor = await resident(store, clock, question)
    english = await section(client, question, visitor, "en")
    assert "The municipality does not have to keep this conversation in its archive." in english
    assert "to the archive earlier" not in english
    assert '<time datetime="2026-03-16">16 March 2026</time>' in english


async def test_a_new_policy_leaves_an_existing_conversation_as_it_was(
    client, store, clock, settings
):
    before = await book(store, clock)
    text = settings.policy_file.read_text(encoding="utf-8").replace(
        'version = "2026-1"', 'version = "2026-2"', 1
    )
    text = text.replace("max_days = 56", "max_days = 42", 1)  # geboorteaangifte comes first
    text = text.replace("Burgerlijk Wetboek Boek 1 art. 19e", "BW 1:19e", 1)
    async with store.sessions() as session, session.begin():
        row = await propose_policy(
            session, policy_text=text, justification="Korter bewaren: altijd snel geexporteerd.",
            actor=Actor.operator("beheer"), now=clock.current,
        )  # fmt: skip
        for actor in (Actor("information_manager", "emp-1"), Actor("privacy_officer", "emp-2")):
            await approve_policy(
                session, proposal_id=row.id, actor=actor, role=actor.role, now=clock.current
            )
    after = await book(store, clock)

    old = await section(client, before, await resident(store, clock, before))
    assert '<time datetime="2026-04-27">27 april 2026</time>' in old
    assert "Burgerlijk Wetboek Boek 1 art. 19e" in old  # the rules it was made under
    new = await section(client, after, await resident(store, clock, after))
    assert '<time datetime="2026-04-13">13 april 2026</time>' in new
    assert "BW 1:19e" in new


async def test_the_interpreter_and_clerk_pages_have_no_such_section(client, store, clock):
    booked = await book(store, clock)
    async with store.sessions() as session, session.begin():
        token, row = await create_session(
            session, now=clock.current, kind="guest", role="guest",
            appointment_id=booked.appointment.id,
        )  # fmt: skip
    response = await client.get(
        f"/tolk/{booked.appointment.id}", headers=Visitor(token, row.csrf_token).cookie
    )
    assert response.status == 200
    assert 'id="bewaren"' not in await response.text()
