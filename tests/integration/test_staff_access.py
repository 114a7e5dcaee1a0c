"""Staff sign-in, sessions, web hygiene and the role matrix, through the real HTTP app."""

from __future__ import annotations

import datetime as dt
import uuid

import pyotp
import pytest
from aiohttp import DummyCookieJar
from sqlalchemy import func, select
from yarl import URL

from dossier.appointments import ensure_department
from dossier.chat import append_chat_message
from identity.accounts import add_local_account
from identity.models import WebSession
from identity.sessions import SESSION_COOKIE, create_session
from retention.models import AuditEvent
from server.app import create_app

from support import CLERK, book

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
PASSWORD = "correct horse battery staple"
BSN = "999993653"


@pytest.fixture
async def accounts(store, settings, clock):
    secret = settings.secret_key.get_secret_value().encode()
    made = {}
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="publiekszaken", name="Publiekszaken")
        for username, role, department in (
            ("anna", "clerk", "burgerzaken"),
            ("bert", "clerk", "publiekszaken"),
            ("ilse", "information_manager", None),
            ("femke", "privacy_officer", None),
        ):
            creds = await add_local_account(
                session,
                secret_key=secret,
                username=username,
                display_name=username.title(),
                employee_id=f"emp-{username}",
                role=role,
                department=department,
                now=clock.current,
                password=PASSWORD,
            )
            made[username] = pyotp.parse_uri(creds.totp_uri)
    return made


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


def cookie_of(response) -> str:
    return response.cookies[SESSION_COOKIE].value


async def login(client, accounts, clock, username: str, *, code: str | None = None):
    code = code or accounts[username].at(clock.current)
    body = {"username": username, "password": PASSWORD, "code": code}
    return await client.post("/api/staff/login", json=body, headers=SAME_ORIGIN)


async def signed_in(client, accounts, clock, username: str) -> dict[str, str]:
    """Headers of a signed-in staff member (cookie and CSRF token)."""
    response = await login(client, accounts, clock, username)
    assert response.status == 200, await response.text()
    token = (await response.json())["csrf_token"]
    clock.advance(dt.timedelta(seconds=31))  # the next login needs a fresh TOTP step
    return {
        "Cookie": f"{SESSION_COOKIE}={cookie_of(response)}",
        "X-CSRF-Token": token,
        **SAME_ORIGIN,
    }


async def audit_rows(store) -> list[AuditEvent]:
    async with store.sessions() as session:
        return list((await session.execute(select(AuditEvent))).scalars())


async def session_count(store) -> int:
    async with store.sessions() as session:
        return (await session.execute(select(func.count()).select_from(WebSession))).scalar()


async def test_login_sets_a_host_cookie_and_security_headers(client, accounts, clock):
    response = await login(client, accounts, clock, "anna")
    assert response.status == 200
    body = await response.json()
    assert body["role"] == "clerk"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert not cookie["domain"]
    assert len(cookie.value) >= 32
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "max-age" in response.headers["Strict-Transport-Security"]


async def test_error_responses_carry_the_headers_too(client):
    response = await client.get("/nergens")
    assert response.status == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("field", "value"), [("password", "wrong password!!"), ("code", "000000"), ("username", "zoe")]
)
async def test_wrong_credentials_are_refused_alike(client, accounts, clock, store, field, value):
    body = {"username": "anna", "password": PASSWORD, "code": accounts["anna"].at(clock.current)}
    body[field] = value
    response = await client.post("/api/staff/login", json=body, headers=SAME_ORIGIN)
    assert response.status == 401
    assert await response.json() == {
        "code": "login_failed",
        "message": "wrong user name, password or code",
    }
    assert SESSION_COOKIE not in response.cookies
    assert await session_count(store) == 0
    assert [(r.action, r.result) for r in await audit_rows(store)][-1] == ("staff.login", "refused")


async def test_a_totp_code_counts_once(client, accounts, clock):
    code = accounts["anna"].at(clock.current)
    assert (await login(client, accounts, clock, "anna", code=code)).status == 200
    assert (await login(client, accounts, clock, "anna", code=code)).status == 401


async def test_malformed_login_is_422_naming_the_field(client):
    response = await client.post(
        "/api/staff/login", json={"username": "anna", "password": "x"}, headers=SAME_ORIGIN
    )
    assert response.status == 422
    assert "code" in (await response.json())["message"]
    response = await client.post("/api/staff/login", data=b"{not json", headers=SAME_ORIGIN)
    assert response.status == 422


async def test_login_is_rate_limited(client, accounts, clock):
    statuses = []
    for _ in range(7):
        response = await login(client, accounts, clock, "anna", code="123456")
        statuses.append(response.status)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    assert int(response.headers["Retry-After"]) >= 1


async def test_cross_site_post_is_refused(client, accounts, clock, store):
    body = {"username": "anna", "password": PASSWORD, "code": accounts["anna"].at(clock.current)}
    response = await client.post(
        "/api/staff/login", json=body, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status == 403
    assert (await response.json())["code"] == "csrf"
    response = await client.post(
        "/api/staff/login", json=body, headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403
    assert await session_count(store) == 0


async def test_state_change_without_the_csrf_token_is_refused(client, accounts, clock, store):
    headers = await signed_in(client, accounts, clock, "anna")
    del headers["X-CSRF-Token"]
    body = {
        "service_type": "geboorteaangifte",
        "starts_at": "2026-03-03T10:00:00+00:00",
        "minutes": 30,
    }
    response = await client.post("/api/appointments", json=body, headers=headers)
    assert response.status == 403
    headers["X-CSRF-Token"] = "forged"
    response = await client.post("/api/appointments", json=body, headers=headers)
    assert response.status == 403


async def test_login_rotates_the_session(client, accounts, clock, store):
    async with store.sessions() as session, session.begin():
        old_token, old = await create_session(session, now=clock.current, kind="anonymous")
    # A session that exists before login already needs its CSRF token on the login POST.
    headers = {"Cookie": f"{SESSION_COOKIE}={old_token}", **SAME_ORIGIN}
    body = {"username": "anna", "password": PASSWORD, "code": "000000"}
    assert (await client.post("/api/staff/login", json=body, headers=headers)).status == 403
    headers["X-CSRF-Token"] = old.csrf_token
    code = accounts["anna"].at(clock.current)
    body = {"username": "anna", "password": PASSWORD, "code": code}
    response = await client.post("/api/staff/login", json=body, headers=headers)
    assert response.status == 200
    assert cookie_of(response) != old_token
    assert await session_count(store) == 1  # the pre-login session is gone


async def test_idle_timeout(client, accounts, clock):
    headers = await signed_in(client, accounts, clock, "anna")
    assert (await client.get("/api/appointments", headers=headers)).status == 200
    clock.advance(dt.timedelta(minutes=15, seconds=1))
    assert (await client.get("/api/appointments", headers=headers)).status == 401


async def test_absolute_timeout(client, accounts, clock):
    headers = await signed_in(client, accounts, clock, "anna")
    for _ in range(12 * 6):  # active every ten minutes for twelve hours
        clock.advance(dt.timedelta(minutes=10))
        response = await client.get("/api/appointments", headers=headers)
        if response.status != 200:
            break
    assert response.status == 401
    assert clock.current - dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC) >= dt.timedelta(hours=12)


async def test_logout_ends_the_session(client, accounts, clock):
    headers = await signed_in(client, accounts, clock, "anna")
    response = await client.post("/api/staff/logout", headers=headers)
    assert response.status == 200
    assert (await client.get("/api/appointments", headers=headers)).status == 401


async def test_clerk_books_lists_and_cancels_in_own_department(client, accounts, clock, store):
    headers = await signed_in(client, accounts, clock, "anna")
    body = {
        "service_type": "geboorteaangifte",
        "starts_at": (clock.current + dt.timedelta(hours=2)).isoformat(),
        "minutes": 30,
        "bsn": BSN,
    }
    response = await client.post("/api/appointments", json=body, headers=headers)
    assert response.status == 201, await response.text()
    booked = await response.json()
    assert booked["invitation_url"].startswith("http://127.0.0.1:0/i/")
    assert BSN not in await response.text()
    listing = await (await client.get("/api/appointments", headers=headers)).json()
    assert [a["dossier_id"] for a in listing["appointments"]] == [booked["dossier_id"]]
    response = await client.delete(f"/api/appointments/{booked['appointment_id']}", headers=headers)
    assert response.status == 200
    assert (await response.json())["outcome"] == "destroyed_on_cancel"
    for row in await audit_rows(store):
        assert BSN not in f"{row.actor}{row.object_ref}{row.detail}"


async def test_bad_booking_input(client, accounts, clock):
    headers = await signed_in(client, accounts, clock, "anna")
    bad = {"service_type": "geboorteaangifte", "starts_at": "morgen", "minutes": 30}
    response = await client.post("/api/appointments", json=bad, headers=headers)
    assert response.status == 422
    assert "starts_at" in (await response.json())["message"]
    bad = {"service_type": "geboorteaangifte", "starts_at": "2026-03-03T10:00:00+00:00",
           "minutes": 30, "bsn": "123456789"}  # fmt: skip
    response = await client.post("/api/appointments", json=bad, headers=headers)
    assert response.status == 422
    assert (await response.json())["code"] == "invalid_bsn"
    assert BSN not in await response.text()


# --- the role matrix --------------------------------------------------------------------


async def principals(client, accounts, clock, store, booked, other) -> dict[str, dict[str, str]]:
    """Headers for every kind of caller the matrix covers."""
    result: dict[str, dict[str, str]] = {"anonymous": dict(SAME_ORIGIN)}
    for name in ("anna", "bert", "ilse", "femke"):
        result[name] = await signed_in(client, accounts, clock, name)
    async with store.sessions() as session, session.begin():
        for name, kind, appointment in (
            ("resident", "resident", booked.appointment.id),
            ("other_resident", "resident", other.appointment.id),
            ("interpreter", "guest", booked.appointment.id),
        ):
            token, row = await create_session(
                session,
                now=clock.current,
                kind=kind,
                role=kind,
                appointment_id=appointment,
                resident_pseudonym=uuid.uuid4().hex,
            )
            result[name] = {
                "Cookie": f"{SESSION_COOKIE}={token}",
                "X-CSRF-Token": row.csrf_token,
                **SAME_ORIGIN,
            }
    return result


MATRIX = {
    # caller:          list, book, content, resident page, cancel
    "anonymous": (401, 401, 401, 403, 401),
    "resident": (403, 403, 200, 200, 403),
    "other_resident": (403, 403, 403, 403, 403),
    "interpreter": (403, 403, 403, 403, 403),
    "anna": (200, 201, 200, 403, 200),  # clerk of this department
    "bert": (200, 201, 403, 403, 403),  # clerk of another department
    "ilse": (403, 403, 403, 403, 403),  # information manager: never content
    "femke": (403, 403, 403, 403, 403),  # privacy officer: never content
}
API_DENIALS = (0, 1, 2, 4)  # the resident page answers with a page, not an audited API refusal


@pytest.mark.parametrize("caller", sorted(MATRIX))
async def test_role_matrix(client, accounts, clock, store, caller):
    booked = await book(store, clock)
    other = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="geheim")
    headers = (await principals(client, accounts, clock, store, booked, other))[caller]
    expected = MATRIX[caller]
    body = {
        "service_type": "geboorteaangifte",
        "starts_at": (clock.current + dt.timedelta(hours=3)).isoformat(),
        "minutes": 20,
    }
    got = (
        (await client.get("/api/appointments", headers=headers)).status,
        (await client.post("/api/appointments", json=body, headers=headers)).status,
        (content := await client.get(f"/api/dossiers/{booked.dossier.id}", headers=headers)).status,
        (await client.get(f"/afspraak/{booked.appointment.id}", headers=headers)).status,
        (await client.delete(f"/api/appointments/{booked.appointment.id}", headers=headers)).status,
    )
    assert got == expected
    if expected[2] != 200:
        assert "geheim" not in await content.text()
    else:
        assert [m["text"] for m in (await content.json())["chat"]] == ["geheim"]
    denials = [r for r in await audit_rows(store) if r.action == "access.denied"]
    assert len(denials) == sum(1 for i in API_DENIALS if expected[i] in (401, 403))


async def test_interpreter_link_works_once_and_gives_a_guest_session(
    client, accounts, clock, store
):
    booked = await book(store, clock)
    headers = await signed_in(client, accounts, clock, "anna")
    url = f"/api/appointments/{booked.appointment.id}/guest-link"
    response = await client.post(url, headers=headers)
    assert response.status == 201
    link = URL((await response.json())["guest_url"]).path
    first = await client.get(link, allow_redirects=False)
    assert first.status == 303
    assert first.headers["Location"] == f"/tolk/{booked.appointment.id}"
    guest_cookie = {"Cookie": f"{SESSION_COOKIE}={cookie_of(first)}"}
    page = await client.get(first.headers["Location"], headers=guest_cookie)
    assert page.status == 200
    assert "tolk" in await page.text()
    again = await client.get(link, allow_redirects=False)
    assert again.status == 404
    # A guest gets no dossier content.
    denied = await client.get(f"/api/dossiers/{booked.dossier.id}", headers=guest_cookie)
    assert denied.status == 403


async def test_only_the_departments_clerk_invites_an_interpreter(client, accounts, clock, store):
    booked = await book(store, clock)
    url = f"/api/appointments/{booked.appointment.id}/guest-link"
    for name in ("bert", "ilse"):
        headers = await signed_in(client, accounts, clock, name)
        assert (await client.post(url, headers=headers)).status == 403
    assert (await client.post(url, headers=SAME_ORIGIN)).status == 401


async def test_idle_clock_restarts_at_most_once_a_minute(client, accounts, clock, store):
    headers = await signed_in(client, accounts, clock, "anna")  # signed in 31 s ago

    async def last_seen():
        async with store.sessions() as session:
            return (await session.execute(select(WebSession.last_seen_at))).scalar_one()

    signed_in_at = await last_seen()
    assert (await client.get("/api/appointments", headers=headers)).status == 200
    assert await last_seen() == signed_in_at  # no write for a request within the minute
    clock.advance(dt.timedelta(seconds=30))
    assert (await client.get("/api/appointments", headers=headers)).status == 200
    assert await last_seen() == clock.current  # over a minute: the idle clock restarts
