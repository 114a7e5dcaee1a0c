"""The hold and notice pages through the real HTTP app: the clerk's request form (reached from the
console), the information manager's /beheer/bewaring and /beheer/meldingen, and the warnings on
the clerk's console at T-14, T-7 and T-1 days.

Each test looks at what a user notices (status, words on the page, where a redirect goes) and at
what the database then holds: a refused request stores nothing.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

import pytest
from aiohttp import DummyCookieJar
from sqlalchemy import func, select
from sqlmodel import col

from dossier.appointments import cancel_appointment, ensure_department
from retention.audit import Actor
from retention.holds import approve_hold, request_hold
from retention.models import AuditEvent, Hold, RetentionNotice
from retention.notices import issue_notices
from server.app import create_app
from server.hold_routes import notices_job

from support import CLERK, book, staff_visitor

REASON = "Klacht ingediend, zaaknummer Z-2026-0099."
SECOND = dt.timedelta(seconds=1)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="publiekszaken", name="Publiekszaken")
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


async def visitor(store, clock, settings, role: str, department: str | None = None, ref=None):
    return await staff_visitor(
        store, clock, settings, role=role, department=department, employee_id=ref
    )


def headers(settings, who) -> dict[str, str]:
    return {**who.cookie, "Origin": settings.public_origin}


def text_of(body: str) -> str:
    """The page's words, tags dropped, entities resolved, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def assert_clean(body: str) -> None:
    """Strict CSP: no inline script or style on any page."""
    assert "<script>" not in body
    assert 'style="' not in body
    assert "onclick" not in body


async def holds(store) -> list[Hold]:
    async with store.sessions() as session:
        return list((await session.execute(select(Hold))).scalars())


async def events(store, action: str) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        return list((await session.execute(query.order_by(col(AuditEvent.seq)))).scalars())


def form(ground="complaint", reason=REASON, ends="2026-09-30", csrf: str | None = None):
    data = {"ground": ground, "reason": reason, "ends": ends}
    if csrf is not None:
        data["csrf_token"] = csrf
    return data


# --- the clerk's request ----------------------------------------------------------------------


async def test_clerk_requests_a_hold_from_the_console(client, store, clock, settings):
    booked = await book(store, clock)
    clerk = await visitor(store, clock, settings, "clerk", "burgerzaken", "emp-clerk")
    console = await client.get("/balie", headers=clerk.cookie)
    assert console.status == 200
    link = f"/balie/bewaring/{booked.dossier.id}"
    assert f'href="{link}"' in await console.text()

    page = await client.get(link, headers=clerk.cookie)
    body = await page.text()
    assert page.status == 200
    assert_clean(body)
    assert "Langer bewaren aanvragen" in text_of(body)
    assert f'name="csrf_token" value="{clerk.csrf}"' in body
    assert page.headers["Cache-Control"] == "no-store"

    posted = await client.post(
        link, data=form(csrf=clerk.csrf), headers=headers(settings, clerk), allow_redirects=False
    )
    assert posted.status == 303
    assert posted.headers["Location"] == f"{link}?aangevraagd=1"
    [hold] = await holds(store)
    assert (hold.state, hold.ground, hold.reason) == ("requested", "complaint", REASON)
    assert hold.requested_by == "clerk:emp-clerk"
    # The end date is the last day the dossier is kept: until midnight after it, Dutch time.
    assert hold.ends_at == dt.datetime(2026, 9, 30, 22, 0, tzinfo=dt.UTC)
    [event] = await events(store, "hold.requested")
    assert event.object_ref == str(booked.dossier.id)
    assert "Z-2026" not in event.detail

    after = text_of(await (await client.get(f"{link}?aangevraagd=1", headers=clerk.cookie)).text())
    assert "Uw aanvraag is opgeslagen" in after
    assert "Aangevraagd" in after
    assert "30-09-2026" in after
    # An open request: no second form.
    assert "Er loopt al een aanvraag" in after


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (form(reason=""), "De toelichting klopt niet"),
        (form(reason="te kort"), "De toelichting klopt niet"),
        (form(reason="Klacht, BSN 999993653 genoemd"), "De toelichting klopt niet"),
        (form(ends="2026-03-01"), "De einddatum klopt niet"),
        (form(ends="2026-03-02"), "De einddatum klopt niet"),  # today: the form asks for later
        (form(ends="2029-01-01"), "De einddatum klopt niet"),
        (form(ends="30-09-2026"), "De einddatum klopt niet"),
        (form(ends=""), "De einddatum klopt niet"),
        (form(ground="lawsuit"), "Kies een reden uit de lijst"),
        (form(ground=""), "Kies een reden uit de lijst"),
    ],
)
async def test_bad_input_is_refused_with_a_message(client, store, clock, settings, data, message):
    booked = await book(store, clock)
    clerk = await visitor(store, clock, settings, "clerk", "burgerzaken")
    response = await client.post(
        f"/balie/bewaring/{booked.dossier.id}",
        data={**data, "csrf_token": clerk.csrf},
        headers=headers(settings, clerk),
    )
    body = await response.text()
    assert response.status == 422
    assert message in text_of(body)
    assert 'role="alert"' in body
    assert await holds(store) == []
    assert await events(store, "hold.requested") == []


async def test_the_form_keeps_what_was_typed_escaped(client, store, clock, settings):
    booked = await book(store, clock)
    clerk = await visitor(store, clock, settings, "clerk", "burgerzaken")
    typed = "<script>alert(1)</script>"
    response = await client.post(
        f"/balie/bewaring/{booked.dossier.id}",
        data=form(reason=typed, ends="2020-01-01", csrf=clerk.csrf),
        headers=headers(settings, clerk),
    )
    body = await response.text()
    assert response.status == 422  # the date in the past
    assert typed not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert await holds(store) == []


async def test_unknown_gone_and_malformed_dossiers(client, store, clock, settings):
    clerk = await visitor(store, clock, settings, "clerk", "burgerzaken")
    unknown = await client.post(
        f"/balie/bewaring/{uuid.uuid4()}",
        data=form(csrf=clerk.csrf),
        headers=headers(settings, clerk),
    )
    assert unknown.status == 404
    assert "Dit bestaat niet" in text_of(await unknown.text())
    malformed = await client.get("/balie/bewaring/not-an-id", headers=clerk.cookie)
    assert malformed.status == 404

    cancelled = await book(store, clock)
    await cancel_appointment(store, actor=CLERK, appointment_id=cancelled.appointment.id)
    gone = await client.post(
        f"/balie/bewaring/{cancelled.dossier.id}",
        data=form(csrf=clerk.csrf),
        headers=headers(settings, clerk),
    )
    assert gone.status == 410
    assert "Dit dossier is er niet meer" in text_of(await gone.text())
    assert await holds(store) == []


async def test_missing_or_wrong_csrf_and_foreign_origin_are_refused(client, store, clock, settings):
    booked = await book(store, clock)
    clerk = await visitor(store, clock, settings, "clerk", "burgerzaken")
    path = f"/balie/bewaring/{booked.dossier.id}"
    missing = await client.post(path, data=form(), headers=headers(settings, clerk))
    assert missing.status == 403
    assert "CSRF" in (await missing.json())["message"]
    wrong = await client.post(path, data=form(csrf="x" * 43), headers=headers(settings, clerk))
    assert wrong.status == 403
    foreign = await client.post(
        path, data=form(csrf=clerk.csrf), headers={**clerk.cookie, "Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    assert await holds(store) == []


async def test_other_department_and_strangers_are_refused(client, store, clock, settings):
    booked = await book(store, clock)
    path = f"/balie/bewaring/{booked.dossier.id}"
    other = await visitor(store, clock, settings, "clerk", "publiekszaken", "emp-other")
    seen = await client.get(path, headers=other.cookie)
    assert seen.status == 403
    assert "eigen afdeling" in text_of(await seen.text())
    posted = await client.post(path, data=form(csrf=other.csrf), headers=headers(settings, other))
    assert posted.status == 403
    privacy = await visitor(store, clock, settings, "privacy_officer")
    assert (await client.get(path, headers=privacy.cookie)).status == 403
    anonymous = await client.get(path, allow_redirects=False)
    assert anonymous.status == 303
    assert anonymous.headers["Location"] == "/balie/inloggen"
    assert await holds(store) == []
    denied = await events(store, "access.denied")
    assert {e.actor for e in denied} >= {"clerk:emp-other"}
    assert all(e.object_ref == str(booked.dossier.id) for e in denied)


# --- the information manager's decision -------------------------------------------------------


async def test_information_manager_approves_and_releases(client, store, clock, settings):
    booked = await book(store, clock)
    hold = await request_hold(
        store,
        dossier_id=booked.dossier.id,
        ground="woo",
        reason=REASON,
        ends_at=clock.current + days(90),
        actor=CLERK,
    )
    im = await visitor(store, clock, settings, "information_manager", ref="emp-im")
    privacy = await visitor(store, clock, settings, "privacy_officer", ref="emp-fg")
    clerk = await visitor(store, clock, settings, "clerk", "burgerzaken")

    page = await client.get("/beheer/bewaring", headers=im.cookie)
    body = await page.text()
    assert page.status == 200
    assert_clean(body)
    assert f'action="/beheer/bewaring/{hold.id}/goedkeuren"' in body
    assert REASON in text_of(body)
    assert str(booked.dossier.id) in body

    # The privacy officer sees the same list, without forms, and may not decide.
    seen = await client.get("/beheer/bewaring", headers=privacy.cookie)
    assert seen.status == 200
    assert "goedkeuren" not in await seen.text()
    refused = await client.post(
        f"/beheer/bewaring/{hold.id}/goedkeuren",
        data={"csrf_token": privacy.csrf},
        headers=headers(settings, privacy),
    )
    assert refused.status == 403
    assert "alleen een informatiebeheerder beslist" in text_of(await refused.text())
    # A clerk does not come here at all.
    assert (await client.get("/beheer/bewaring", headers=clerk.cookie)).status == 403
    assert (
        await client.post(
            f"/beheer/bewaring/{hold.id}/goedkeuren",
            data={"csrf_token": clerk.csrf},
            headers=headers(settings, clerk),
        )
    ).status == 403
    assert [h.state for h in await holds(store)] == ["requested"]

    approved = await client.post(
        f"/beheer/bewaring/{hold.id}/goedkeuren",
        data={"csrf_token": im.csrf, "note": "Woo loopt"},
        headers=headers(settings, im),
        allow_redirects=False,
    )
    assert approved.status == 303
    assert approved.headers["Location"] == "/beheer/bewaring?gedaan=approved"
    [row] = await holds(store)
    assert (row.state, row.decided_by, row.decision_note) == (
        "active",
        "information_manager:emp-im",
        "Woo loopt",
    )
    shown = text_of(
        await (await client.get(approved.headers["Location"], headers=im.cookie)).text()
    )
    assert "De aanvraag is goedgekeurd" in shown
    assert "Van kracht" in shown

    again = await client.post(
        f"/beheer/bewaring/{hold.id}/goedkeuren",
        data={"csrf_token": im.csrf},
        headers=headers(settings, im),
    )
    assert again.status == 409
    released = await client.post(
        f"/beheer/bewaring/{hold.id}/beeindigen",
        data={"csrf_token": im.csrf},
        headers=headers(settings, im),
        allow_redirects=False,
    )
    assert released.status == 303
    [row] = await holds(store)
    assert row.state == "released"
    actions = [e.action for e in await events(store, "hold.approved")] + [
        e.action for e in await events(store, "hold.released")
    ]
    assert actions == ["hold.approved", "hold.released"]


async def test_four_eyes_over_http(client, store, clock, settings):
    booked = await book(store, clock)
    anna = await visitor(store, clock, settings, "information_manager", ref="emp-anna")
    bob = await visitor(store, clock, settings, "information_manager", ref="emp-bob")
    # An information manager may ask for any department's dossier ...
    asked = await client.post(
        f"/balie/bewaring/{booked.dossier.id}",
        data=form(ground="court", csrf=anna.csrf),
        headers=headers(settings, anna),
        allow_redirects=False,
    )
    assert asked.status == 303
    [hold] = await holds(store)
    # ... but not decide on her own request: no form for her, and a refusal if she tries.
    page = await client.get("/beheer/bewaring", headers=anna.cookie)
    assert "Uw eigen aanvraag" in text_of(await page.text())
    assert f"/beheer/bewaring/{hold.id}/goedkeuren" not in await page.text()
    own = await client.post(
        f"/beheer/bewaring/{hold.id}/goedkeuren",
        data={"csrf_token": anna.csrf},
        headers=headers(settings, anna),
    )
    assert own.status == 403
    assert "nooit over de eigen aanvraag" in text_of(await own.text())
    assert [h.state for h in await holds(store)] == ["requested"]
    assert await events(store, "hold.approved") == []

    rejected = await client.post(
        f"/beheer/bewaring/{hold.id}/afwijzen",
        data={"csrf_token": bob.csrf, "note": "geen zaak bekend"},
        headers=headers(settings, bob),
        allow_redirects=False,
    )
    assert rejected.status == 303
    assert [h.state for h in await holds(store)] == ["rejected"]
    [event] = await events(store, "hold.rejected")
    assert event.actor == "information_manager:emp-bob"


async def test_decisions_on_unknown_holds(client, store, clock, settings):
    im = await visitor(store, clock, settings, "information_manager")
    for path in (f"/beheer/bewaring/{uuid.uuid4()}/goedkeuren", "/beheer/bewaring/x/afwijzen"):
        response = await client.post(
            path, data={"csrf_token": im.csrf}, headers=headers(settings, im)
        )
        assert response.status == 404
        assert "Dit bestaat niet" in text_of(await response.text())


# --- notices ----------------------------------------------------------------------------------


async def test_escalations_page_and_acknowledgement(client, store, clock, settings):
    booked = await book(store, clock)
    await issue_notices(store, now=booked.dossier.deadline - days(7))
    im = await visitor(store, clock, settings, "information_manager", ref="emp-im")
    privacy = await visitor(store, clock, settings, "privacy_officer")
    page = await client.get("/beheer/meldingen", headers=im.cookie)
    body = await page.text()
    assert page.status == 200
    assert_clean(body)
    words = text_of(body)
    assert "Escalaties" in words
    assert "Escalatie" in words
    assert "Nog 7 dagen" in words
    assert "27-04-2026 12:00" in words  # the deadline, Dutch time
    async with store.sessions() as session:
        query = select(RetentionNotice).where(col(RetentionNotice.kind) == "escalation")
        escalation = (await session.execute(query)).scalar_one()
    assert f"/beheer/meldingen/{escalation.id}/gezien" in body

    seen_by_fg = await client.get("/beheer/meldingen", headers=privacy.cookie)
    assert "/gezien" not in await seen_by_fg.text()
    refused = await client.post(
        f"/beheer/meldingen/{escalation.id}/gezien",
        data={"csrf_token": privacy.csrf},
        headers=headers(settings, privacy),
    )
    assert refused.status == 403
    unknown = await client.post(
        f"/beheer/meldingen/{uuid.uuid4()}/gezien",
        data={"csrf_token": im.csrf},
        headers=headers(settings, im),
    )
    assert unknown.status == 404

    done = await client.post(
        f"/beheer/meldingen/{escalation.id}/gezien",
        data={"csrf_token": im.csrf},
        headers=headers(settings, im),
        allow_redirects=False,
    )
    assert done.status == 303
    async with store.sessions() as session:
        row = await session.get_one(RetentionNotice, escalation.id)
    assert row.acknowledged_by == "information_manager:emp-im"
    after = text_of(await (await client.get(done.headers["Location"], headers=im.cookie)).text())
    assert "Gezien door information_manager:emp-im" in after


async def test_console_shows_warnings_at_14_7_and_1_days(client, store, clock, settings):
    booked = await book(store, clock)
    deadline = booked.dossier.deadline
    shown_deadline = "27-04-2026 om 12:00"

    async def console_at(moment: dt.datetime) -> str:
        clock.current = moment
        await notices_job(client.app)
        clerk = await visitor(store, clock, settings, "clerk", "burgerzaken")  # a fresh session
        response = await client.get("/balie", headers=clerk.cookie)
        assert response.status == 200
        return await response.text()

    quiet = await console_at(deadline - days(14) - SECOND)
    assert "bewaarwaarschuwingen" not in quiet
    for threshold, words in ((14, "Nog 14 dagen"), (7, "Nog 7 dagen"), (1, "Nog 1 dag")):
        before = text_of(await console_at(deadline - days(threshold) - SECOND))
        assert words not in before
        body = await console_at(deadline - days(threshold))
        assert_clean(body)
        text = text_of(body)
        assert "Dossiers die binnenkort worden vernietigd" in text
        assert words in text
        assert shown_deadline in text
        assert f'href="/balie/bewaring/{booked.dossier.id}"' in body
        assert text.count("Geboorteaangifte") >= 1

    # Another department's clerk sees none of it.
    other = await visitor(store, clock, settings, "clerk", "publiekszaken")
    assert (
        "bewaarwaarschuwingen"
        not in await (await client.get("/balie", headers=other.cookie)).text()
    )

    # Once the dossier is on an active hold the warning leaves the console.
    hold = await request_hold(
        store,
        dossier_id=booked.dossier.id,
        ground="court",
        reason=REASON,
        ends_at=clock.current + days(60),
        actor=CLERK,
    )
    await approve_hold(store, hold_id=hold.id, actor=Actor("information_manager", "emp-im"))
    assert "bewaarwaarschuwingen" not in await console_at(clock.current)
    async with store.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(RetentionNotice))).scalar()
    assert total == 4  # three warnings and one escalation, each once
