"""Staff sign-in through OIDC via the real HTTP routes, against the fake provider."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import DummyCookieJar
from joserfc.jwk import RSAKey
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import col

from identity.models import StaffAccount
from identity.sessions import SESSION_COOKIE
from retention.models import AuditEvent
from server.app import create_app

from oidc_fake import CLIENT_ID, CLIENT_SECRET, REALM, ROLE_MAPPING, Clock, FakeProvider


@pytest.fixture(scope="module")
def keys():
    return {"key-1": RSAKey.generate_key(2048, {"kid": "key-1"})}


@pytest.fixture
async def provider(aiohttp_server, keys, clock):
    fake = FakeProvider(keys=keys, clock=Clock(clock.current))
    server = await aiohttp_server(fake.app())
    fake.issuer = str(server.make_url(REALM))
    return fake


@pytest.fixture
async def client(aiohttp_client, settings, clock, store, provider):
    configured = settings.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": SecretStr(CLIENT_SECRET),
            "oidc_role_claim": "groups",
            "oidc_department_claim": "afdeling",
            "oidc_role_mapping": dict(ROLE_MAPPING),
        }
    )
    provider.redirect_uri = f"{configured.public_origin}/auth/oidc/callback"
    return await aiohttp_client(create_app(configured, clock=clock), cookie_jar=DummyCookieJar())


async def sign_in(client, provider, **claims):
    start = await client.get("/auth/oidc/login", allow_redirects=False)
    assert start.status == 303, await start.text()
    cookie = {"Cookie": f"{SESSION_COOKIE}={start.cookies[SESSION_COOKIE].value}"}
    answer = provider.authorize(
        SimpleNamespace(authorization_url=start.headers["Location"]), **claims
    )
    return cookie, await client.get("/auth/oidc/callback", params=answer, headers=cookie)


async def staff_logins(store) -> list[tuple[str, str]]:
    async with store.sessions() as session:
        query = select(AuditEvent.actor, AuditEvent.result).where(
            col(AuditEvent.action) == "staff.login"
        )
        return [tuple(row) for row in (await session.execute(query)).all()]


async def test_clerk_signs_in_and_works_in_own_department(client, provider, store):
    _, response = await sign_in(client, provider)  # groups: balie-medewerkers, Burgerzaken
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["role"] == "clerk"
    headers = {"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"}
    assert (await client.get("/api/appointments", headers=headers)).status == 200
    async with store.sessions() as session:
        account = (await session.execute(select(StaffAccount))).scalar_one()
    assert account.source == "oidc"
    assert account.employee_id == "m.devries"
    assert await staff_logins(store) == [("clerk:m.devries", "ok")]


async def test_two_roles_are_refused(client, provider, store):
    _, response = await sign_in(client, provider, groups=["balie-medewerkers", "balie-fg"])
    assert response.status == 403
    assert "more than one Balie role" in (await response.json())["message"]
    assert SESSION_COOKIE not in response.cookies
    assert (await staff_logins(store))[-1][1] == "forbidden"


async def test_unknown_department_is_refused(client, provider):
    _, response = await sign_in(client, provider, afdeling="Sportzaken")
    assert response.status == 403
    assert "no known department" in (await response.json())["message"]


async def test_forged_state_is_refused(client, provider, store):
    start = await client.get("/auth/oidc/login", allow_redirects=False)
    cookie = {"Cookie": f"{SESSION_COOKIE}={start.cookies[SESSION_COOKIE].value}"}
    answer = provider.authorize(SimpleNamespace(authorization_url=start.headers["Location"]))
    answer["state"] = "aangepast"
    response = await client.get("/auth/oidc/callback", params=answer, headers=cookie)
    assert response.status == 403
    assert (await response.json())["code"] == "oidc_state_mismatch"
    assert (await staff_logins(store))[-1][1] == "oidc_state_mismatch"


async def test_callback_without_a_login_in_progress(client, store):
    response = await client.get("/auth/oidc/callback", params={"code": "x", "state": "y"})
    assert response.status == 403
    assert await staff_logins(store) == [("anonymous:127.0.0.1", "forbidden")]


async def test_id_token_signed_by_another_key_is_refused(client, provider):
    other = RSAKey.generate_key(2048, {"kid": "key-1"})
    provider.mint = lambda claims: FakeProvider(keys={"key-1": other}, clock=provider.clock).sign(
        claims
    )
    _, response = await sign_in(client, provider)
    assert response.status == 403
    assert (await response.json())["code"] == "oidc_id_token_invalid"


async def test_readiness_checks_the_provider_without_asking_it_every_time(client, provider):
    first = await client.get("/readyz")
    assert (await first.json())["checks"]["identity:oidc"] == "ok"
    asked = provider.jwks_requests
    assert (await client.get("/readyz")).status == first.status
    assert provider.jwks_requests == asked
