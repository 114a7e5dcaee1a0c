"""The resident's way in through the real HTTP endpoints and the DigiD test IdP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import logging
import re
from urllib.parse import quote

import pytest
from aiohttp import DummyCookieJar
from sqlalchemy import func, select, update
from sqlmodel import col
from yarl import URL

from dossier.appointments import ensure_service_type
from dossier.models import ResidentIdentity, TombstoneOutcome
from dossier.residents import read_resident_bsn
from dossier.shredding import destroy_dossier
from identity.digid import LevelOfAssurance
from identity.invitations import create_invitation
from identity.models import SamlRequest, WebSession
from identity.pseudonym import bsn_pseudonym
from identity.sessions import SESSION_COOKIE, token_hash
from retention.audit import Actor
from retention.models import AuditEvent
from server.app import create_app
from server.digid_routes import DIGID

from digid_helpers import xsw_evil_sibling_first, xsw_original_in_extensions
from support import book

BSN = "999993653"
OTHER_BSN = "111222333"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
async def app(settings, clock, store):
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(aiohttp_client, app):
    return await aiohttp_client(app, cookie_jar=DummyCookieJar())


async def invite(store, clock, *, service="geboorteaangifte", pseudonym=None) -> tuple[str, object]:
    booked = await book(store, clock, service=service, resident_pseudonym=pseudonym)
    async with store.sessions() as session, session.begin():
        token = await create_invitation(
            session,
            appointment_id=booked.appointment.id,
            kind="resident",
            appointment_ends_at=booked.appointment.ends_at,
            now=clock.current,
        )
    return token, booked


def local(location: str) -> URL:
    """The path and query of a redirect, exactly as encoded (signatures cover the raw query)."""
    return URL(URL(location).raw_path_qs, encoded=True)


def principal_hash(headers: dict[str, str]) -> str:
    return token_hash(headers["Cookie"].split("=", 1)[1])


def acs_url(artifact: str) -> URL:
    return URL(f"/digid/acs?SAMLart={quote(artifact, safe='')}", encoded=True)


async def start_login(client, token: str) -> tuple[dict[str, str], str]:
    """Open the invitation: cookie headers of the pending session and the hidden request."""
    response = await client.get(f"/i/{token}", allow_redirects=False)
    assert response.status == 303, await response.text()
    headers = {"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"}
    page = await client.get(local(response.headers["Location"]), headers=headers)
    assert page.status == 200, await page.text()
    hidden = re.search(r'name="saml_request" value="([^"]*)"', await page.text())
    assert hidden is not None
    return headers, html.unescape(hidden.group(1))


async def idp_answer(client, headers, saml_request, *, bsn=BSN, loa="substantieel", action="login"):
    form = {"saml_request": saml_request, "bsn": bsn, "loa": loa, "action": action}
    response = await client.post(
        "/test-idp/sso", data=form, headers={**headers, **SAME_ORIGIN}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return local(response.headers["Location"])


async def login(client, token, **answer):
    headers, saml_request = await start_login(client, token)
    acs = await idp_answer(client, headers, saml_request, **answer)
    return headers, await client.get(acs, headers=headers, allow_redirects=False)


async def resident_sessions(store) -> int:
    async with store.sessions() as session:
        query = (
            select(func.count()).select_from(WebSession).where(col(WebSession.kind) == "resident")
        )
        return (await session.execute(query)).scalar()


async def logins(store) -> list[str]:
    async with store.sessions() as session:
        query = select(AuditEvent.result).where(col(AuditEvent.action) == "digid.login")
        return list((await session.execute(query)).scalars())


@pytest.mark.parametrize("level", ["basis", "midden", "substantieel", "hoog"])
async def test_resident_logs_in_and_lands_on_their_appointment(client, store, clock, level):
    async with store.sessions() as session, session.begin():
        await ensure_service_type(
            session, code=f"dienst-{level}", label=f"Dienst {level}", level_of_assurance=level
        )
    token, booked = await invite(store, clock, service=f"dienst-{level}")
    _, response = await login(client, token, loa=level)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/afspraak/{booked.appointment.id}"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["secure"]
    assert cookie["httponly"]
    page = await client.get(
        response.headers["Location"], headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}"}
    )
    assert page.status == 200, await page.text()
    assert f"Dienst {level}" in await page.text()
    assert await logins(store) == ["ok"]
    assert await resident_sessions(store) == 1


async def test_substantieel_service_refuses_a_midden_login(client, store, clock):
    token, _ = await invite(store, clock)  # geboorteaangifte: substantieel
    _, response = await login(client, token, loa="midden")
    assert response.status == 403
    text = await response.text()
    assert "DigiD substantieel" in text
    assert SESSION_COOKIE not in response.cookies
    assert await resident_sessions(store) == 0
    assert await logins(store) == ["loa_too_low"]


async def test_cancelled_login(client, store, clock):
    token, _ = await invite(store, clock)
    _, response = await login(client, token, action="cancel")
    assert response.status == 401
    assert "afgebroken" in await response.text()
    assert await resident_sessions(store) == 0
    assert await logins(store) == ["cancelled"]


async def test_appointment_for_someone_else(client, store, clock, settings):
    key = settings.pseudonym_key.get_secret_value().encode()
    token, _ = await invite(store, clock, pseudonym=bsn_pseudonym(key, OTHER_BSN))
    _, response = await login(client, token)
    assert response.status == 403
    assert "iemand anders" in await response.text()
    assert await resident_sessions(store) == 0
    assert await logins(store) == ["other_person"]


async def test_appointment_for_this_resident(client, store, clock, settings):
    key = settings.pseudonym_key.get_secret_value().encode()
    token, _ = await invite(store, clock, pseudonym=bsn_pseudonym(key, BSN))
    _, response = await login(client, token)
    assert response.status == 303


async def test_an_artifact_works_once(client, store, clock):
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    acs = await idp_answer(client, headers, saml_request)
    assert (await client.get(acs, headers=headers, allow_redirects=False)).status == 303
    again = await client.get(acs, headers=headers, allow_redirects=False)
    assert again.status == 400
    assert await resident_sessions(store) == 1


async def test_a_replayed_assertion_is_refused(client, app, store, clock):
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    idp = app[DIGID].test_idp
    acs = await idp_answer(client, headers, saml_request)
    artifact = URL(acs).query["SAMLart"]
    xml = idp.take_response(artifact)  # what the IdP would have handed over, kept by an attacker
    first = idp.issue_artifact(xml)
    response = await client.get(acs_url(first), headers=headers, allow_redirects=False)
    assert response.status == 303
    # The same assertion again, through a fresh pending login so that only the replay differs.
    headers2, _ = await start_login(client, token)
    second = idp.issue_artifact(xml)
    response = await client.get(acs_url(second), headers=headers2, allow_redirects=False)
    assert response.status == 400
    assert await resident_sessions(store) == 1
    # Its request was used up by the first login, so the InResponseTo check stops it.
    assert (await logins(store))[-1] == "digid_unknown_request"


async def test_the_replay_store_stops_an_assertion_even_if_its_request_were_open(
    client, app, store, clock
):
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    idp = app[DIGID].test_idp
    acs = await idp_answer(client, headers, saml_request)
    xml = idp.take_response(URL(acs).query["SAMLart"])
    first = await client.get(
        acs_url(idp.issue_artifact(xml)), headers=headers, allow_redirects=False
    )
    assert first.status == 303
    # Defence in depth: reopen the request (as a bug elsewhere might) and replay the assertion.
    async with store.sessions() as session, session.begin():
        await session.execute(update(SamlRequest).values(consumed_at=None))
        pending = await session.get(WebSession, principal_hash(headers))
    headers2, _ = await start_login(client, token)
    async with store.sessions() as session, session.begin():
        await session.execute(update(SamlRequest).values(session_hash=principal_hash(headers2)))
    response = await client.get(acs_url(idp.issue_artifact(xml)), headers=headers2)
    assert response.status == 400
    assert (await logins(store))[-1] == "replayed"
    assert await resident_sessions(store) == 1
    assert pending is None  # the first login replaced its pending session


async def test_expired_assertion_is_refused(client, store, clock):
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    acs = await idp_answer(client, headers, saml_request)
    clock.advance(dt.timedelta(minutes=10))
    response = await client.get(acs, headers=headers, allow_redirects=False)
    assert response.status == 400
    assert await resident_sessions(store) == 0


async def test_tampered_assertion_is_refused(client, app, store, clock):
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    idp = app[DIGID].test_idp
    acs = await idp_answer(client, headers, saml_request)
    xml = idp.take_response(URL(acs).query["SAMLart"])
    forged = idp.issue_artifact(xml.replace(f"s00000000:{BSN}", f"s00000000:{OTHER_BSN}"))
    response = await client.get(acs_url(forged), headers=headers, allow_redirects=False)
    assert response.status == 400
    assert await resident_sessions(store) == 0
    assert (await logins(store)) == ["digid_signature_invalid"]


async def test_acs_without_a_pending_login(client, store):
    response = await client.get("/digid/acs?SAMLart=AAQAAA", allow_redirects=False)
    assert response.status == 400
    assert await logins(store) == ["no_pending_login"]


async def test_unknown_invitation(client):
    response = await client.get("/i/nietbestaand")
    assert response.status == 404
    assert "niet (meer) geldig" in await response.text()


async def test_appointment_page_needs_the_right_resident(client, store, clock):
    token, booked = await invite(store, clock)
    _, other = await invite(store, clock)
    _, response = await login(client, token)
    cookie = {"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"}
    assert (await client.get(f"/afspraak/{other.appointment.id}", headers=cookie)).status == 403
    assert (await client.get(f"/afspraak/{booked.appointment.id}")).status == 403


async def test_no_bsn_in_responses_logs_or_audit(client, store, clock, caplog):
    caplog.set_level(logging.DEBUG)
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    acs = await idp_answer(client, headers, saml_request)
    response = await client.get(acs, headers=headers, allow_redirects=False)
    page = await client.get(
        response.headers["Location"],
        headers={"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"},
    )
    assert BSN not in await page.text()
    assert BSN not in str(response.headers)
    async with store.sessions() as session:
        for row in (await session.execute(select(AuditEvent))).scalars():
            assert BSN not in f"{row.actor}{row.object_ref}{row.detail}"
        for row in (await session.execute(select(WebSession))).scalars():
            assert BSN not in f"{row.resident_pseudonym}{row.pending}"
    assert caplog.records  # the scan saw the log lines of the whole login
    assert BSN not in caplog.text


async def forged_login(client, app, store, clock, forge):
    """A pending login answered by a response that `forge` builds from the honest content."""
    token, _ = await invite(store, clock)
    headers, saml_request = await start_login(client, token)
    idp = app[DIGID].test_idp
    incoming = idp.parse_authn_request(saml_request)
    content = idp.response_content(incoming, bsn=BSN, loa=LevelOfAssurance.SUBSTANTIEEL)
    artifact = idp.issue_artifact(forge(idp, content))
    return await client.get(acs_url(artifact), headers=headers, allow_redirects=False)


@pytest.mark.parametrize(
    ("forge", "code"),
    [
        pytest.param(
            lambda idp, c: idp.render(c, sign_assertion=False, sign_response=False),
            "digid_signature_missing",
            id="unsigned",
        ),
        pytest.param(
            lambda idp, c: xsw_evil_sibling_first(idp.render(c), OTHER_BSN),
            None,
            id="signature-wrapping",
        ),
        pytest.param(
            lambda idp, c: xsw_original_in_extensions(idp.render(c), OTHER_BSN),
            None,
            id="signature-wrapping-extensions",
        ),
        pytest.param(
            lambda idp, c: idp.render(dataclasses.replace(c, audience="https://ander.example")),
            "digid_wrong_audience",
            id="wrong-audience",
        ),
        pytest.param(
            lambda idp, c: idp.render(dataclasses.replace(c, in_response_to="_nooit-gevraagd")),
            "digid_unknown_request",
            id="unknown-in-response-to",
        ),
    ],
)
async def test_forged_responses_are_refused(client, app, store, clock, forge, code):
    response = await forged_login(client, app, store, clock, forge)
    assert response.status == 400
    assert SESSION_COOKIE not in response.cookies
    assert await resident_sessions(store) == 0
    results = await logins(store)
    assert len(results) == 1
    assert results[0] != "ok"
    if code is not None:
        assert results[0] == code


async def test_bsn_is_sealed_in_the_dossier_only_where_the_service_needs_it(client, store, clock):
    token, booked = await invite(store, clock)  # geboorteaangifte needs the BSN
    _, response = await login(client, token)
    assert response.status == 303
    clerk = Actor("clerk", "emp-1")
    bsn, level, _ = await read_resident_bsn(store, actor=clerk, dossier_id=booked.dossier.id)
    assert (bsn, level) == (BSN, "substantieel")
    async with store.sessions() as session:
        row = await session.get(ResidentIdentity, booked.dossier.id)
    assert BSN.encode() not in row.sealed_bsn
    # Destroying the dossier takes the BSN with it.
    await destroy_dossier(
        store, actor=clerk, dossier_id=booked.dossier.id, outcome=TombstoneOutcome.EXPORTED
    )
    async with store.sessions() as session:
        assert await session.get(ResidentIdentity, booked.dossier.id) is None

    async with store.sessions() as session, session.begin():
        await ensure_service_type(session, code="vraag", label="Vraag", level_of_assurance="basis")
    token, other = await invite(store, clock, service="vraag")
    _, response = await login(client, token, loa="basis")
    assert response.status == 303
    assert await read_resident_bsn(store, actor=clerk, dossier_id=other.dossier.id) is None
