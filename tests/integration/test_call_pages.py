"""The call pages through the real HTTP app: the staff sign-in form, the clerk's list of today's
appointments, the call page of the clerk, the resident and the interpreter, and the static files
those pages load.

Every test looks at what a user (or the database) notices: the status, the words on the page,
where a redirect goes, which cookie is set, which rows exist. Every HTML page read here is also
checked for the Content-Security-Policy and for scripts that run only from /static.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pyotp
import pytest
from aiohttp import ClientResponse, DummyCookieJar
from sqlalchemy import func, select
from sqlmodel import col

from dossier.appointments import BookedAppointment, create_appointment, ensure_department
from dossier.calls import admit, end_call, knock
from dossier.chat import append_chat_message
from identity.accounts import add_local_account
from identity.models import StaffAccount, WebSession
from identity.sessions import SESSION_COOKIE, create_session
from retention.models import AuditEvent
from server.app import create_app
from server.pages import LANGUAGE_COOKIE

from support import CLERK, RESIDENT, Visitor, book, page_config

PASSWORD = "correct horse battery staple"
EVIL = "https://evil.example"
CALL_SECTIONS = ("stap-apparaten", "stap-wachtkamer", "stap-gesprek", "chat-log")
CLERK_ONLY = ("wachtenden", "tolklink-maken", "beeindigen")


# --- accounts and sessions ------------------------------------------------------------------


@dataclass(frozen=True)
class Staff:
    """A local account: what its owner types into the sign-in form."""

    account: StaffAccount
    totp: pyotp.TOTP


@pytest.fixture
async def staff(store, settings, clock) -> dict[str, Staff]:
    """anna: clerk of burgerzaken; bert: clerk of publiekszaken; ilse: information manager."""
    secret = settings.secret_key.get_secret_value().encode()
    made = {}
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="publiekszaken", name="Publiekszaken")
        for username, role, department in (
            ("anna", "clerk", "burgerzaken"),
            ("bert", "clerk", "publiekszaken"),
            ("ilse", "information_manager", None),
        ):
            creds = await add_local_account(
                session, secret_key=secret, username=username, display_name=username.title(),
                employee_id=f"emp-{username}", role=role, department=department,
                now=clock.current, password=PASSWORD,
            )  # fmt: skip
            made[username] = Staff(creds.account, pyotp.parse_uri(creds.totp_uri))
    return made


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    """The real app; no cookie jar, so every request says exactly which session it carries."""
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


@pytest.fixture
def same_origin(settings) -> dict[str, str]:
    """What a browser sends along with a form posted from one of our own pages."""
    return {"Origin": settings.public_origin}


async def staff_session(store, clock, member: Staff) -> Visitor:
    """A signed-in staff member, as the sign-in form would have left them."""
    async with store.sessions() as session, session.begin():
        token, row = await create_session(
            session, now=clock.current, kind="staff", role=member.account.role,
            staff_id=member.account.id, department_id=member.account.department_id,
        )  # fmt: skip
    return Visitor(token, row.csrf_token)


async def appointment_session(store, clock, kind: str, booked: BookedAppointment) -> Visitor:
    """A resident (after DigiD) or an interpreter (after the one-time link) of `booked`."""
    async with store.sessions() as session, session.begin():
        token, row = await create_session(
            session, now=clock.current, kind=kind, role=kind,
            appointment_id=booked.appointment.id, resident_pseudonym=f"p-{uuid.uuid4().hex}",
        )  # fmt: skip
    return Visitor(token, row.csrf_token)


def wrong_code(member: Staff, at: dt.datetime) -> str:
    """Six digits that are not the code of `at`, nor of the steps either side of it."""
    valid = {member.totp.at(at + dt.timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(1, 10)) if c not in valid)


async def sign_in(client, headers, username: str, password: str, code: str) -> ClientResponse:
    """Post the sign-in form the way the browser does."""
    form = {"username": username, "password": password, "code": code}
    return await client.post("/balie/inloggen", data=form, headers=headers, allow_redirects=False)


async def session_rows(store) -> list[WebSession]:
    async with store.sessions() as session:
        return list((await session.execute(select(WebSession))).scalars())


async def denials(store) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "access.denied")
        return list((await session.execute(query.order_by(col(AuditEvent.seq)))).scalars())


async def count_audit(store, action: str) -> int:
    async with store.sessions() as session:
        query = select(func.count()).where(col(AuditEvent.action) == action)
        return (await session.execute(query)).scalar_one()


# --- reading pages ---------------------------------------------------------------------------


class PageParts(HTMLParser):
    """What a page is made of, for the assertions: element ids, script tags, the rows of the
    appointments table (cell texts and links) and hidden form fields."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.rows: list[dict[str, Any]] = []
        self.hidden: dict[str, str] = {}
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "script":
            self.scripts.append(found)
        elif tag == "tr" and found.get("data-dossier"):
            self.rows.append({"dossier": found["data-dossier"], "cells": [], "links": []})
        elif tag == "td" and self.rows:
            self._cell = []
        elif tag == "a" and self._cell is not None:
            self.rows[-1]["links"].append(found.get("href"))
        elif tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.hidden[str(found["name"])] = str(found.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


async def read_page(response: ClientResponse, status: int) -> tuple[str, PageParts]:
    """The HTML of a page with `status`, after checking the web hygiene every page needs:
    a CSP without inline script, and no <script> that is not a file."""
    html = await response.text()
    assert response.status == status, html[:500]
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    parts = PageParts()
    parts.feed(html)
    for script in parts.scripts:
        assert script.get("src"), script
    return html, parts


def history_texts(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["from"], m["text"]) for m in config["history"]]


# --- the sign-in form ------------------------------------------------------------------------


async def test_console_and_call_page_send_a_stranger_to_the_sign_in_form(client, booked):
    for path in ("/balie", f"/balie/gesprek/{booked.dossier.id}"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/balie/inloggen"


async def test_sign_in_form_in_dutch_and_in_english(client):
    response = await client.get("/balie/inloggen")
    html, parts = await read_page(response, 200)
    assert '<html lang="nl"' in html
    for label in ("Gebruikersnaam", "Wachtwoord", "Code uit uw authenticator-app"):
        assert label in html
    assert {"username", "password", "code"} <= set(parts.ids)
    assert LANGUAGE_COOKIE not in response.cookies  # nothing chosen, nothing remembered

    response = await client.get("/balie/inloggen?lang=en")
    html, _ = await read_page(response, 200)
    assert '<html lang="en"' in html
    for label in ("User name", "Password", "Code from your authenticator app"):
        assert label in html
    assert "Gebruikersnaam" not in html
    assert response.cookies[LANGUAGE_COOKIE].value == "en"
    # The choice is remembered: the next page, without ?lang=, is English too.
    again = await client.get("/balie/inloggen", headers={"Cookie": f"{LANGUAGE_COOKIE}=en"})
    assert "User name" in (await read_page(again, 200))[0]


async def test_wrong_code_is_refused_and_starts_no_session(
    client, staff, clock, store, same_origin
):
    anna = staff["anna"]
    response = await sign_in(client, same_origin, "anna", PASSWORD, wrong_code(anna, clock.current))
    html, _ = await read_page(response, 401)
    assert "Gebruikersnaam, wachtwoord of code klopt niet." in html
    assert 'value="anna"' in html  # the name stays filled in, the password does not
    assert PASSWORD not in html
    assert SESSION_COOKIE not in response.cookies
    assert await session_rows(store) == []


@pytest.mark.parametrize(
    ("password", "code"),
    [("", "123456"), (PASSWORD, "123"), (PASSWORD, "")],
    ids=["empty-password", "three-digit-code", "no-code"],
)
async def test_malformed_sign_in_is_422_with_the_same_message(
    client, staff, store, same_origin, password, code
):
    response = await sign_in(client, same_origin, "anna", password, code)
    html, _ = await read_page(response, 422)
    assert "Gebruikersnaam, wachtwoord of code klopt niet." in html
    assert SESSION_COOKIE not in response.cookies
    assert await session_rows(store) == []


async def test_sign_in_with_the_right_code_shows_todays_appointments(
    client, staff, clock, store, same_origin
):
    today = await book(store, clock)  # 10:00 UTC, 11:00 in Amsterdam
    late = await book(store, clock, starts_at=clock.current.replace(hour=22, minute=30))
    tomorrow = await book(store, clock, starts_at=clock.current.replace(hour=23, minute=30))
    elsewhere = await create_appointment(
        store, actor=CLERK, department="publiekszaken", service_type="geboorteaangifte",
        starts_at=clock.current + dt.timedelta(hours=2),
        ends_at=clock.current + dt.timedelta(hours=2, minutes=30),
    )  # fmt: skip
    anna = staff["anna"]
    response = await sign_in(client, same_origin, "anna", PASSWORD, anna.totp.at(clock.current))
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/balie"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["path"] == "/"
    [row] = await session_rows(store)
    assert (row.kind, row.role, row.staff_id) == ("staff", "clerk", anna.account.id)

    console = await client.get("/balie", headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}"})
    html, parts = await read_page(console, 200)
    assert "Afspraken van vandaag" in html
    # Today in Amsterdam: 11:00 and 23:30 local; 23:30 UTC is already tomorrow there.
    assert [r["dossier"] for r in parts.rows] == [str(today.dossier.id), str(late.dossier.id)]
    assert str(tomorrow.dossier.id) not in html
    assert str(elsewhere.dossier.id) not in html
    first = parts.rows[0]
    assert first["cells"][:3] == ["11:00", "geboorteaangifte", "Gepland"]
    assert first["links"] == [
        f"/balie/gesprek/{today.dossier.id}",
        f"/balie/bewaring/{today.dossier.id}",  # ask to keep it past its deadline
    ]
    assert parts.rows[1]["cells"][0] == "23:30"
    assert parts.hidden["csrf_token"] == row.csrf_token  # the sign-out form can post


async def test_an_ended_appointment_links_to_its_export_not_to_the_call(
    client, staff, clock, store
):
    booked = await book(store, clock)
    await end_call(store, actor=CLERK, dossier_id=booked.dossier.id)
    anna = await staff_session(store, clock, staff["anna"])
    _, parts = await read_page(await client.get("/balie", headers=anna.cookie), 200)
    [row] = parts.rows
    assert row["cells"][2] == "Afgelopen"
    assert row["links"] == [
        f"/balie/bewaring/{booked.dossier.id}",
        f"/balie/export/nieuw/{booked.dossier.id}",
    ]


async def test_signed_in_staff_skip_the_sign_in_form(client, staff, clock, store):
    anna = await staff_session(store, clock, staff["anna"])
    response = await client.get("/balie/inloggen", headers=anna.cookie, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/balie"


@pytest.mark.parametrize(
    "headers",
    [{"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {}],
    ids=["evil-origin", "cross-site", "same-site", "no-origin"],
)
async def test_cross_site_sign_in_is_refused(client, staff, clock, store, headers):
    anna = staff["anna"]
    response = await sign_in(client, headers, "anna", PASSWORD, anna.totp.at(clock.current))
    assert response.status == 403
    assert SESSION_COOKIE not in response.cookies
    assert await session_rows(store) == []


async def test_repeated_wrong_attempts_are_rate_limited(client, staff, clock, store, same_origin):
    anna = staff["anna"]
    bad = wrong_code(anna, clock.current)
    statuses = []
    for _ in range(8):
        response = await sign_in(client, same_origin, "anna", PASSWORD, bad)
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    html, _ = await read_page(response, 429)
    assert "Te vaak geprobeerd" in html
    # While limited, even the right code gets no session.
    response = await sign_in(client, same_origin, "anna", PASSWORD, anna.totp.at(clock.current))
    assert "Te vaak geprobeerd" in (await read_page(response, 429))[0]
    assert await session_rows(store) == []


# --- signing out -----------------------------------------------------------------------------


async def test_sign_out_needs_the_csrf_token(client, staff, clock, store, same_origin):
    anna = await staff_session(store, clock, staff["anna"])
    _, console = await read_page(await client.get("/balie", headers=anna.cookie), 200)
    token = console.hidden["csrf_token"]

    for form in ({}, {"csrf_token": "forged"}):
        response = await client.post(
            "/balie/uitloggen", data=form, headers={**anna.cookie, **same_origin},
            allow_redirects=False,
        )  # fmt: skip
        assert response.status == 403
        assert SESSION_COOKIE not in response.cookies
        assert (await client.get("/balie", headers=anna.cookie)).status == 200

    response = await client.post(
        "/balie/uitloggen", data={"csrf_token": token}, headers={**anna.cookie, **same_origin},
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    assert response.headers["Location"] == "/balie/inloggen"
    assert response.cookies[SESSION_COOKIE].value == ""  # the browser drops the cookie
    assert await session_rows(store) == []
    after = await client.get("/balie", headers=anna.cookie, allow_redirects=False)
    assert after.status == 303
    assert after.headers["Location"] == "/balie/inloggen"


# --- the console and the call page as a clerk -----------------------------------------------


async def test_information_manager_is_sent_from_the_console_to_the_oversight_pages(
    client, staff, clock, store
):
    # They have no appointments; their pages (retention metadata, never content) are /beheer.
    ilse = await staff_session(store, clock, staff["ilse"])
    response = await client.get("/balie", headers=ilse.cookie, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/beheer"
    assert await denials(store) == []


async def test_clerk_call_page_has_the_call_and_the_history(client, staff, clock, store):
    booked = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="Welkom")
    await append_chat_message(store, actor=RESIDENT, dossier_id=booked.dossier.id, text="Dank u")
    anna = await staff_session(store, clock, staff["anna"])
    reads_before = await count_audit(store, "chat.read")

    response = await client.get(f"/balie/gesprek/{booked.dossier.id}", headers=anna.cookie)
    html, parts = await read_page(response, 200)
    assert "Geboorteaangifte" in html
    assert "02-03-2026 om 11:00" in html  # the start, in Amsterdam time
    for section in (*CALL_SECTIONS, *CLERK_ONLY):
        assert section in parts.ids, section
    assert {"src": "/static/js/call.js", "type": "module"} in parts.scripts
    config = page_config(html)
    assert config["role"] == "clerk"
    assert config["dossier"] == str(booked.dossier.id)
    assert config["appointment"] == str(booked.appointment.id)
    assert config["csrf"] == anna.csrf
    assert history_texts(config) == [("clerk", "Welkom"), ("resident", "Dank u")]
    assert config["texts"]["admit"] == "Binnenlaten"
    assert await count_audit(store, "chat.read") == reads_before + 1  # showing it is a read


@pytest.mark.parametrize("who", ["bert", "ilse"])
@pytest.mark.parametrize("which", ["theirs", "unknown", "not-a-uuid"])
async def test_call_page_refuses_a_dossier_that_is_not_the_clerks(
    client, staff, clock, store, who, which
):
    booked = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="geheim")
    visitor = await staff_session(store, clock, staff[who])
    target = {"theirs": str(booked.dossier.id), "unknown": str(uuid.uuid4())}.get(which, which)
    response = await client.get(f"/balie/gesprek/{target}", headers=visitor.cookie)
    html, parts = await read_page(response, 403)
    assert "Geen toegang" in html
    assert "geheim" not in html
    assert "balie-config" not in parts.ids
    assert await count_audit(store, "chat.read") == 0


async def test_clerk_of_the_department_cannot_open_an_unknown_dossier(client, staff, clock, store):
    anna = await staff_session(store, clock, staff["anna"])
    unknown = str(uuid.uuid4())
    for target in (unknown, "not-a-uuid"):
        response = await client.get(f"/balie/gesprek/{target}", headers=anna.cookie)
        assert "Geen toegang" in (await read_page(response, 403))[0]
    assert unknown in [d.object_ref for d in await denials(store)]


async def _ended_at_once(store, dossier_id: uuid.UUID) -> None:
    await end_call(store, actor=CLERK, dossier_id=dossier_id)


async def _ended_after_the_call(store, dossier_id: uuid.UUID) -> None:
    await knock(store, actor=RESIDENT, dossier_id=dossier_id)
    await admit(store, actor=CLERK, dossier_id=dossier_id)
    await end_call(store, actor=CLERK, dossier_id=dossier_id)


@pytest.mark.parametrize("ending", [_ended_at_once, _ended_after_the_call], ids=["at-once", "call"])
async def test_an_ended_call_says_so_to_clerk_and_resident(client, staff, clock, store, ending):
    booked = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="Tot ziens")
    await ending(store, booked.dossier.id)
    anna = await staff_session(store, clock, staff["anna"])
    resident = await appointment_session(store, clock, "resident", booked)
    for path, visitor in (
        (f"/balie/gesprek/{booked.dossier.id}", anna),
        (f"/afspraak/{booked.appointment.id}", resident),
    ):
        html, parts = await read_page(await client.get(path, headers=visitor.cookie), 410)
        assert "Het gesprek is afgelopen" in html
        assert "Tot ziens" not in html
        assert "balie-config" not in parts.ids


# --- the resident's and the interpreter's pages ----------------------------------------------


async def test_resident_page_has_the_call_without_the_clerks_controls(client, clock, store):
    booked = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="Welkom")
    resident = await appointment_session(store, clock, "resident", booked)

    response = await client.get(f"/afspraak/{booked.appointment.id}", headers=resident.cookie)
    html, parts = await read_page(response, 200)
    assert "Uw afspraak" in html
    assert "Geboorteaangifte" in html
    for section in (*CALL_SECTIONS, "verlaten"):
        assert section in parts.ids, section
    for control in CLERK_ONLY:
        assert control not in parts.ids, control
    config = page_config(html)
    assert config["role"] == "resident"
    assert config["dossier"] == str(booked.dossier.id)
    assert config["appointment"] == str(booked.appointment.id)
    assert config["csrf"] == resident.csrf
    assert history_texts(config) == [("clerk", "Welkom")]


async def test_resident_page_in_english(client, clock, store):
    booked = await book(store, clock)
    resident = await appointment_session(store, clock, "resident", booked)
    response = await client.get(
        f"/afspraak/{booked.appointment.id}?lang=en", headers=resident.cookie
    )
    html, _ = await read_page(response, 200)
    assert "Your appointment" in html
    assert page_config(html)["texts"]["admitted"] == "You are in. The conversation starts."
    assert response.cookies[LANGUAGE_COOKIE].value == "en"


@pytest.mark.parametrize("who", ["other-resident", "guest", "clerk", "nobody"])
async def test_resident_page_refuses_anyone_else(client, staff, clock, store, who):
    booked = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="geheim")
    if who == "other-resident":
        headers = (
            await appointment_session(store, clock, "resident", await book(store, clock))
        ).cookie
    elif who == "guest":
        headers = (await appointment_session(store, clock, "guest", booked)).cookie
    elif who == "clerk":
        headers = (await staff_session(store, clock, staff["anna"])).cookie
    else:
        headers = {}
    response = await client.get(f"/afspraak/{booked.appointment.id}", headers=headers)
    html, parts = await read_page(response, 403)
    assert "Geen toegang" in html
    assert "geheim" not in html
    assert "balie-config" not in parts.ids


@pytest.mark.parametrize(
    "texts",
    [
        ("</script><script>alert(1)</script>",),
        ("</SCRIPT ><script>alert(1)</script>",),
        ("<!-- <script> -->",),
        ("<!--<script>",),
        ("<!--", "<script>"),  # the same, spread over two messages
    ],
    ids=["end-tag", "end-tag-upper", "closed-comment", "comment-script", "two-messages"],
)
async def test_chat_text_stays_inside_the_config_block(client, staff, clock, store, texts):
    """Chat is what a resident or interpreter types: whatever it is, the page that shows it
    must keep it inside the configuration attribute, and add no element to the page."""
    booked = await book(store, clock)
    for text in texts:
        await append_chat_message(store, actor=RESIDENT, dossier_id=booked.dossier.id, text=text)
    resident = await appointment_session(store, clock, "resident", booked)
    anna = await staff_session(store, clock, staff["anna"])
    for path, visitor in (
        (f"/afspraak/{booked.appointment.id}", resident),
        (f"/balie/gesprek/{booked.dossier.id}", anna),
    ):
        html, parts = await read_page(await client.get(path, headers=visitor.cookie), 200)
        assert "</script><script>alert(1)" not in html.lower()
        assert "<!--" not in html
        assert history_texts(page_config(html)) == [("resident", t) for t in texts], path
        # The page goes on after the configuration: its sections are elements.
        assert "stap-gesprek" in parts.ids, path


async def test_interpreter_page_has_the_call_and_no_dossier_content(client, clock, store):
    booked = await book(store, clock)
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="geheim")
    guest = await appointment_session(store, clock, "guest", booked)

    response = await client.get(f"/tolk/{booked.appointment.id}", headers=guest.cookie)
    html, parts = await read_page(response, 200)
    assert "Gesprek als tolk" in html
    for section in CALL_SECTIONS:
        assert section in parts.ids, section
    for control in CLERK_ONLY:
        assert control not in parts.ids, control
    config = page_config(html)
    assert config["role"] == "guest"
    assert config["appointment"] == str(booked.appointment.id)
    assert config["history"] == []
    assert "geheim" not in html
    assert await count_audit(store, "chat.read") == 0  # nothing of the dossier was read


@pytest.mark.parametrize("who", ["resident", "other-guest", "nobody"])
async def test_interpreter_page_refuses_anyone_else(client, clock, store, who):
    booked = await book(store, clock)
    if who == "resident":
        headers = (await appointment_session(store, clock, "resident", booked)).cookie
    elif who == "other-guest":
        headers = (
            await appointment_session(store, clock, "guest", await book(store, clock))
        ).cookie
    else:
        headers = {}
    response = await client.get(f"/tolk/{booked.appointment.id}", headers=headers)
    html, parts = await read_page(response, 403)
    assert "Geen toegang" in html
    assert "balie-config" not in parts.ids


# --- static files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/static/js/call.js", "javascript"),
        ("/static/js/console.js", "javascript"),
        ("/static/balie.css", "text/css"),
        ("/static/nlds/components.css", "text/css"),
    ],
)
async def test_static_files_are_served_with_the_security_headers(client, path, kind):
    response = await client.get(path)
    body = await response.read()
    assert response.status == 200
    assert kind in response.content_type
    assert len(body) > 100
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def raw_get(client, path: str) -> tuple[int, bytes]:
    """GET `path` byte for byte (an HTTP client would resolve its dot segments first)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    request = f"GET {path} HTTP/1.1\r\nHost: {client.host}\r\nConnection: close\r\n\r\n"
    writer.write(request.encode("ascii"))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_encoded_dots_inside_the_static_directory_resolve(client):
    # The control for the test below: %2e%2e is decoded and followed while it stays inside.
    status, body = await raw_get(client, "/static/js/%2e%2e/balie.css")
    assert status == 200
    assert b"NL Design System" in body


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server/app.py",
        "/static/%2e%2e/server/app.py",
        "/static/../../server/app.py",
        "/static/%2e%2e/%2e%2e/server/app.py",
        "/static/%2E%2E/%2E%2E/pyproject.toml",
        "/static/js/..%2f..%2f..%2fserver/app.py",
        "/static/../templates/base.html",
        "/static/%2e%2e/templates/base.html",
    ],
)
async def test_static_files_stay_inside_their_directory(client, path):
    status, body = await raw_get(client, path)
    assert status in (403, 404)
    for secret in (b"create_app", b"[tool.ruff]", b"<!doctype html>"):
        assert secret not in body


async def test_a_missing_static_file_is_404(client):
    response = await client.get("/static/js/nope.js")
    assert response.status == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
