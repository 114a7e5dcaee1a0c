"""The policy page /beheer/beleid through the real app: who may see it, proposing (with every
problem named and what was typed kept), approving in one's own role only, rejecting, CSRF."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid

import pytest
from aiohttp import DummyCookieJar
from sqlalchemy import select
from sqlmodel import col

from retention.models import PolicyVersion
from server.app import create_app
from server.appkeys import POLICY

from support import book, staff_visitor

PAGE = "/beheer/beleid"
WHY = "Geboorteaangiften zijn na zes weken altijd geexporteerd; korter bewaren mag."


def changed_policy(settings, *, version: str = "2026-2", birth_days: int = 42) -> str:
    """The example policy as a new version that keeps birth registrations `birth_days` days."""
    text = settings.policy_file.read_text(encoding="utf-8")
    text = text.replace('version = "2026-1"', f'version = "{version}"', 1)
    birth = text.index("[service.geboorteaangifte]")
    return text[:birth] + text[birth:].replace("max_days = 56", f"max_days = {birth_days}", 1)


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    """The real app, started (so the example policy is in force); no cookie jar."""
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


@pytest.fixture
async def people(store, clock, settings):
    return {
        "im": await staff_visitor(store, clock, settings, role="information_manager",
                                  employee_id="emp-im"),
        "po": await staff_visitor(store, clock, settings, role="privacy_officer",
                                  employee_id="emp-po"),
        "clerk": await staff_visitor(store, clock, settings, role="clerk",
                                     department="burgerzaken"),
    }  # fmt: skip


def posting(visitor, settings, **form: str) -> dict[str, object]:
    """What the browser sends when a form on our own page is submitted."""
    return {
        "data": {"csrf_token": visitor.csrf, **form},
        "headers": {"Origin": settings.public_origin, **visitor.cookie},
        "allow_redirects": False,
    }


async def rows(store) -> list[tuple[str, str]]:
    async with store.sessions() as session:
        query = select(col(PolicyVersion.version), col(PolicyVersion.state))
        return sorted((row[0], row[1]) for row in (await session.execute(query)).all())


async def proposal_id(store, version: str) -> str:
    async with store.sessions() as session:
        query = select(col(PolicyVersion.id)).where(col(PolicyVersion.version) == version)
        return str((await session.execute(query)).scalar_one())


async def read(response, status: int) -> str:
    text = await response.text()
    assert response.status == status, text[:2000]
    return text


async def test_only_information_managers_and_privacy_officers_see_it(client, people):
    response = await client.get(PAGE, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/balie/inloggen")
    refused = await read(await client.get(PAGE, headers=people["clerk"].cookie), 403)
    assert "informatiebeheerders en de functionaris gegevensbescherming" in refused
    for who in ("im", "po"):
        page = await read(await client.get(PAGE, headers=people[who].cookie), 200)
        assert "Versie die nu geldt" in page
        assert "<dd>2026-1</dd>" in page
        assert "Er wachten geen voorstellen." in page
        assert '<th scope="row" class="utrecht-table__header-cell">geboorteaangifte</th>' in page


async def test_an_invalid_proposal_shows_every_key_and_keeps_what_was_typed(
    client, people, settings, store
):
    typed = changed_policy(settings).replace("max_days = 28", "max_days = 60")
    typed = typed.replace('archive = "none"', 'archive = "misschien"')
    response = await client.post(
        PAGE, **posting(people["im"], settings, policy_text=typed, justification="te kort")
    )
    page = html.unescape(await read(response, 422))
    assert "Het voorstel is niet opgeslagen. Verbeter deze punten:" in page
    assert "service.uittreksel_brp.max_days: 60 is more than 56" in page
    assert "service.informatie.archive: 'misschien' is not one of" in page
    assert "justification: 7 characters; write at least 20" in page
    assert typed.strip() in page  # the text area holds what was typed, for fixing
    assert ">te kort</textarea>" in page
    assert await rows(store) == [("2026-1", "in_force")]


async def test_a_clerk_cannot_propose_and_a_post_without_csrf_token_is_refused(
    client, people, settings, store
):
    text = changed_policy(settings)
    clerk = await client.post(PAGE, **posting(people["clerk"], settings, policy_text=text,
                                              justification=WHY))  # fmt: skip
    assert clerk.status == 403
    forged = posting(people["im"], settings, policy_text=text, justification=WHY)
    del forged["data"]["csrf_token"]  # type: ignore[attr-defined]
    response = await client.post(PAGE, **forged)
    assert response.status == 403
    assert (await response.json())["code"] == "csrf"
    elsewhere = posting(people["im"], settings, policy_text=text, justification=WHY)
    elsewhere["headers"] = {**elsewhere["headers"], "Origin": "https://evil.example"}  # type: ignore[dict-item]
    assert (await client.post(PAGE, **elsewhere)).status == 403
    assert await rows(store) == [("2026-1", "in_force")]


async def test_four_eyes_through_the_page(client, people, settings, store, clock):
    im, po = people["im"], people["po"]
    response = await client.post(
        PAGE, **posting(im, settings, policy_text=changed_policy(settings), justification=WHY)
    )
    assert (response.status, response.headers["Location"]) == (303, PAGE + "?klaar=proposed")
    ident = await proposal_id(store, "2026-2")

    page = await read(await client.get(PAGE + "?klaar=proposed", headers=im.cookie), 200)
    assert "Het voorstel is opgeslagen." in page
    assert "Voorstel versie 2026-2" in page
    assert WHY in html.unescape(page)
    assert "-max_days = 56\n+max_days = 42" in html.unescape(page)  # the diff
    assert f'action="/beheer/beleid/{ident}/goedkeuren"' in page
    assert '<input type="hidden" name="role" value="information_manager">' in page
    assert "Goedkeuren als informatiebeheerder" in page
    po_page = await read(await client.get(PAGE, headers=po.cookie), 200)
    assert '<input type="hidden" name="role" value="privacy_officer">' in po_page

    approve = f"{PAGE}/{ident}/goedkeuren"
    # The privacy officer cannot approve as the information manager.
    page = await read(
        await client.post(approve, **posting(po, settings, role="information_manager")), 403
    )
    assert "U kunt alleen goedkeuren in uw eigen rol." in page
    assert await rows(store) == [("2026-1", "in_force"), ("2026-2", "proposed")]

    response = await client.post(approve, **posting(im, settings, role="information_manager"))
    assert response.headers["Location"] == PAGE + "?klaar=approved"
    page = await read(
        await client.post(approve, **posting(im, settings, role="information_manager")), 409
    )
    assert "approved by an information manager already" in page
    page = await read(await client.get(PAGE, headers=im.cookie), 200)
    assert f'action="/beheer/beleid/{ident}/goedkeuren"' not in page
    assert "information_manager:emp-im op" in page

    still_old = await book(store, clock)  # one approval: nothing changed yet
    assert still_old.dossier.policy_version == "2026-1"
    assert still_old.dossier.deadline == still_old.appointment.starts_at + dt.timedelta(days=56)

    response = await client.post(approve, **posting(po, settings, role="privacy_officer"))
    assert response.headers["Location"] == PAGE + "?klaar=in_force"
    assert client.app[POLICY].policy.version == "2026-2"  # this process uses it at once
    page = await read(await client.get(PAGE + "?klaar=in_force", headers=po.cookie), 200)
    assert "De nieuwe versie geldt nu voor nieuwe afspraken." in page
    assert "<dd>2026-2</dd>" in page
    assert "Er wachten geen voorstellen." in page
    new = await book(store, clock)
    assert new.dossier.policy_version == "2026-2"
    assert new.dossier.deadline == new.appointment.starts_at + dt.timedelta(days=42)
    assert await rows(store) == [("2026-1", "superseded"), ("2026-2", "in_force")]


async def test_rejecting_needs_a_reason_and_unknown_proposals_are_404(
    client, people, settings, store
):
    text = changed_policy(settings)
    await client.post(PAGE, **posting(people["im"], settings, policy_text=text, justification=WHY))
    ident = await proposal_id(store, "2026-2")
    reject = f"{PAGE}/{ident}/afwijzen"
    page = await read(await client.post(reject, **posting(people["po"], settings, reason=" ")), 422)
    assert "reason: say why the proposal is rejected" in page
    for path in (f"{PAGE}/niet-een-id/afwijzen", f"{PAGE}/{uuid.uuid4()}/goedkeuren"):
        page = await read(
            await client.post(
                path, **posting(people["im"], settings, reason="x", role="information_manager")
            ),
            404,
        )
        assert "Dit voorstel bestaat niet." in page
    response = await client.post(
        reject, **posting(people["po"], settings, reason="Eerst het zaaktype aanpassen.")
    )
    assert response.headers["Location"] == PAGE + "?klaar=rejected"
    assert await rows(store) == [("2026-1", "in_force"), ("2026-2", "rejected")]
    page = await read(
        await client.post(
            f"{PAGE}/{ident}/goedkeuren",
            **posting(people["im"], settings, role="information_manager"),
        ),
        409,
    )
    assert re.search(r"is rejected, not open for a decision", page)
