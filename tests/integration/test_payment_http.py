"""Payments through the HTTP layer, as the clerk's page, the resident's browser and a payment
provider's servers reach them.

    POST /api/dossiers/{dossier}/payments   the clerk asks (a fee of the policy, or an amount)
    GET  /api/dossiers/{dossier}/payments   the clerk and the resident read the list
    POST /api/payments/webhook/{provider}   the provider says "look at payment <id>"
    GET  /demo-betaling/{checkout}          the demo provider's checkout page
    POST /demo-betaling/{checkout}          pay / fail / cancel, then the demo's own webhook
    GET  /betaling/klaar                    where the resident lands afterwards

The service functions are tested in test_payments.py; here every test goes through the real
app and looks at what a browser, a provider or the database notices: status codes, JSON
codes and messages, the HTML, the notices on the call's WebSockets, the payment rows and the
audit log. The end-to-end demo flow runs the app on a real loopback port, so that the demo
checkout's webhook (a real HTTP POST to Balie's public address) arrives; Mollie is the fake
from tests/fake_mollie.py, also on loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, DummyCookieJar
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import col

from dossier.appointments import BookedAppointment, ensure_department, ensure_service_type
from dossier.calls import admit, end_call, knock
from dossier.export.signing import load_export_key
from dossier.models import DemoCheckout, Payment, PaymentEvent, TombstoneOutcome
from dossier.shredding import destroy_dossier
from identity.accounts import add_local_account
from identity.sessions import create_session
from retention.models import AuditEvent
from server.app import create_app
from server.appkeys import SETTINGS
from server.scheduler import reconcile_job
from server.settings import Settings

from fake_mollie import API_KEY, FakeMollie
from support import CLERK, RESIDENT, Visitor, book, page_config, serving

SERVICE = "uittreksel_brp"  # the policy's fee `uittreksel`: "Uittreksel BRP", 1500 cents
FEE = {"fee_code": "uittreksel"}
OTHER_AMOUNT = {"amount_cents": 2350, "description": "Spoedlevering"}
EVIL = "https://evil.example"
UNKNOWN_CHECKOUT = "tr_demo_" + "0" * 20
PAYMENT_KEYS = {
    "id",
    "amount_cents",
    "description",
    "fee_code",
    "status",
    "checkout_url",
    "created_at",
    "paid_at",
}


# --- people and the call ---------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A dossier of service uittreksel_brp in a call, and everyone who might touch it.

    anna: clerk of its department (burgerzaken); bert: clerk of publiekszaken; ilse:
    information manager; resident and interpreter: of this appointment."""

    booked: BookedAppointment
    anna: Visitor
    bert: Visitor
    ilse: Visitor
    resident: Visitor
    interpreter: Visitor

    @property
    def dossier(self) -> uuid.UUID:
        return self.booked.dossier.id

    @property
    def path(self) -> str:
        return f"/api/dossiers/{self.booked.dossier.id}/payments"


async def appointment_session(store, clock, kind: str, booked: BookedAppointment) -> Visitor:
    async with store.sessions() as session, session.begin():
        token, row = await create_session(
            session, now=clock.current, kind=kind, role=kind,
            appointment_id=booked.appointment.id, resident_pseudonym=f"p-{uuid.uuid4().hex}",
        )  # fmt: skip
    return Visitor(token, row.csrf_token)


async def in_call(store, clock, service: str = SERVICE) -> BookedAppointment:
    """A booked appointment whose resident has knocked and been let in."""
    booked = await book(store, clock, service=service)
    await knock(store, actor=RESIDENT, dossier_id=booked.dossier.id)
    await admit(store, actor=CLERK, dossier_id=booked.dossier.id)
    return booked


@pytest.fixture
async def call(store, settings, clock) -> Call:
    secret = settings.secret_key.get_secret_value().encode()
    staff: dict[str, Visitor] = {}
    async with store.sessions() as session, session.begin():
        # The policy's service type for BRP extracts, which has a fee; the store fixture
        # only made geboorteaangifte (no fees) and kort (not in the policy at all).
        await ensure_service_type(
            session, code=SERVICE, label="Uittreksel BRP aanvragen", level_of_assurance="midden",
            retention_days=28, archive_mode="export_optional", selectielijst="5.1.2",
        )  # fmt: skip
        await ensure_department(session, code="publiekszaken", name="Publiekszaken")
        for username, role, department in (
            ("anna", "clerk", "burgerzaken"),
            ("bert", "clerk", "publiekszaken"),
            ("ilse", "information_manager", None),
        ):
            creds = await add_local_account(
                session, secret_key=secret, username=username, display_name=username.title(),
                employee_id=f"emp-{username}", role=role, department=department,
                now=clock.current, password="x" * 16,
            )  # fmt: skip
            token, row = await create_session(
                session, now=clock.current, kind="staff", role=role,
                staff_id=creds.account.id, department_id=creds.account.department_id,
            )  # fmt: skip
            staff[username] = Visitor(token, row.csrf_token)
    booked = await in_call(store, clock)
    return Call(
        booked=booked,
        resident=await appointment_session(store, clock, "resident", booked),
        interpreter=await appointment_session(store, clock, "guest", booked),
        **staff,
    )


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    """The real app (demo payments: the default in test); no cookie jar, so every request
    says exactly which session it carries."""
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


def posting(visitor: Visitor | None, origin: str, *, token: bool = True) -> dict[str, str]:
    """The headers the call page's script sends with a state-changing request."""
    headers = {"Origin": origin}
    if visitor is not None:
        headers.update(visitor.cookie)
        if token:
            headers["X-CSRF-Token"] = visitor.csrf
    return headers


async def ask(client, call: Call, body: Any, who: Visitor | None = None) -> ClientResponse:
    """The clerk (or `who`) asks for a payment, as the call page does."""
    return await client.post(
        call.path, json=body, headers=posting(who or call.anna, _origin(client))
    )


def _origin(client) -> str:
    """The public origin the app under test believes it has (what its own pages send)."""
    return client.server.app[SETTINGS].public_origin


async def listed(client, call: Call, who: Visitor | None = None) -> list[dict[str, Any]]:
    response = await client.get(call.path, headers=(who or call.anna).cookie)
    body = await response.json()
    assert response.status == 200, body
    payments: list[dict[str, Any]] = body["payments"]
    return payments


async def webhook(client, provider: str, form: dict[str, str]) -> ClientResponse:
    """What a provider's server sends: a form, no cookie, no Origin, no CSRF token."""
    return await client.post(f"/api/payments/webhook/{provider}", data=form)


# --- the database ----------------------------------------------------------------------------


async def payment_rows(store) -> list[Payment]:
    async with store.sessions() as session:
        query = select(Payment).order_by(col(Payment.created_at), col(Payment.id))
        return list((await session.execute(query)).scalars())


async def snapshot(store) -> list[tuple[Any, ...]]:
    """Everything about the payments that a status change would touch."""
    async with store.sessions() as session:
        events = (await session.execute(select(func.count()).select_from(PaymentEvent))).scalar()
    return [
        (p.id, p.status, p.updated_at, p.paid_at, p.provider_payment_id, events)
        for p in await payment_rows(store)
    ]


async def audit(store, action: str) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        return list((await session.execute(query.order_by(col(AuditEvent.seq)))).scalars())


async def changes_to(store, status: str) -> int:
    """How many times the audit log says a payment moved to `status`."""
    return sum(
        1
        for event in await audit(store, "payment.status_changed")
        if json.loads(event.detail)["to"] == status
    )


# --- pages -----------------------------------------------------------------------------------


class Checkout(HTMLParser):
    """The demo checkout page: its form's action and the buttons in it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.actions: list[str] = []
        self.buttons: list[tuple[str | None, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.actions.append(str(found.get("action")))
        elif tag == "button":
            self.buttons.append((found.get("name"), found.get("value")))


async def html_of(response: ClientResponse, status: int) -> str:
    html = await response.text()
    assert response.status == status, html[:500]
    assert response.content_type == "text/html"
    return html


def checkout_parts(html: str) -> Checkout:
    parts = Checkout()
    parts.feed(html)
    return parts


# --- 1. asking for a payment -----------------------------------------------------------------


async def test_clerk_asks_for_the_fee_of_the_service_by_its_code(client, call, store, settings):
    response = await ask(client, call, FEE)

    body = await response.json()
    assert response.status == 201, body
    assert set(body) == PAYMENT_KEYS  # never the idempotency key, nor the provider's URLs
    assert (body["amount_cents"], body["description"], body["fee_code"], body["status"]) == (
        1500,
        "Uittreksel BRP",
        "uittreksel",
        "open",
    )
    assert body["paid_at"] is None
    origin = settings.public_origin
    assert re.fullmatch(
        rf"{re.escape(origin)}/demo-betaling/tr_demo_[0-9a-f]{{20}}", body["checkout_url"]
    )
    [row] = await payment_rows(store)
    assert str(row.id) == body["id"]
    assert (row.provider, row.status, row.requested_by_role) == ("demo", "open", "clerk")
    # The provider sends the resident back to Balie and calls Balie's own webhook.
    assert row.redirect_url == f"{origin}/betaling/klaar"
    assert row.webhook_url == f"{origin}/api/payments/webhook/demo"
    [requested] = await audit(store, "payment.requested")
    assert requested.actor == "clerk:emp-anna"
    assert json.loads(requested.detail)["amount_cents"] == 1500

    assert await listed(client, call) == [body]


async def test_clerk_asks_for_another_amount_with_a_description(client, call, store):
    response = await ask(client, call, OTHER_AMOUNT)

    body = await response.json()
    assert response.status == 201, body
    assert (body["amount_cents"], body["description"], body["fee_code"], body["status"]) == (
        2350,
        "Spoedlevering",
        None,
        "open",
    )
    async with store.sessions() as session:
        [checkout] = (await session.execute(select(DemoCheckout))).scalars()
    assert (checkout.amount_cents, checkout.description) == (2350, "Spoedlevering")
    assert body["checkout_url"].endswith(f"/demo-betaling/{checkout.id}")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"fee_code": "uittreksel", "amount_cents": 1500}, "either fee_code, or amount_cents"),
        ({}, "either fee_code, or amount_cents"),
        ({"description": "Leges"}, "either fee_code, or amount_cents"),
        ({"amount_cents": 1500}, "an amount needs a description"),
        ({"amount_cents": 0, "description": "Leges"}, "amount_cents"),
        ({"amount_cents": -100, "description": "Leges"}, "amount_cents"),
        ({"amount_cents": 1_000_001, "description": "Leges"}, "amount_cents"),
        ({"amount_cents": 12.5, "description": "Leges"}, "amount_cents"),
        ({"amount_cents": "vijftien", "description": "Leges"}, "amount_cents"),
        ({"amount_cents": "1500", "description": "Leges"}, "amount_cents"),
        ({"fee_code": "uittreksel", "description": "Iets anders"}, "description in the policy"),
        ({"amount_cents": 1500, "description": ""}, "description"),
        ({"amount_cents": 1500, "description": "x" * 256}, "description"),
        ({"amount_cents": 1500, "description": "   "}, "description"),
        ({"amount_cents": 1500, "description": "Leges\nextra"}, "description"),
        ({"fee_code": ""}, "fee_code"),
        ({"fee_code": "paspoort"}, "'paspoort'"),
        ({"fee_code": "uittreksel", "bsn": "999993653"}, "bsn"),
        ({"amount_cents": 1500, "description": "Leges", "status": "paid"}, "status"),
        ([FEE], "body"),
        ("uittreksel", "body"),
        (None, "body is not JSON"),  # aiohttp sends no body at all for json=None
    ],
    ids=[
        "fee-and-amount",
        "neither",
        "description-only",
        "amount-without-description",
        "amount-zero",
        "amount-negative",
        "amount-too-high",
        "amount-fraction",
        "amount-text",
        "amount-numeric-text",
        "fee-with-description",
        "description-empty",
        "description-too-long",
        "description-blank",
        "description-control",
        "fee-code-empty",
        "unknown-fee",
        "extra-key",
        "extra-status",
        "a-list",
        "a-string",
        "no-body",
    ],
)
async def test_a_wrong_body_is_422_naming_the_problem(client, call, store, body, named):
    response = await ask(client, call, body)

    answer = await response.json()
    assert response.status == 422, answer
    assert named in answer["message"], answer
    assert await payment_rows(store) == []
    assert await audit(store, "payment.requested") == []


async def test_an_unknown_fee_names_the_fee_and_the_fees_there_are(client, call, store, clock):
    response = await ask(client, call, {"fee_code": "paspoort"})

    assert response.status == 422
    assert await response.json() == {
        "code": "unknown_fee",
        "message": "service uittreksel_brp has no fee 'paspoort'; its fees: uittreksel",
    }
    # A service without fees (a birth registration is free) has no fee of any code.
    free = await in_call(store, clock, service="geboorteaangifte")
    response = await client.post(
        f"/api/dossiers/{free.dossier.id}/payments",
        json=FEE,
        headers=posting(call.anna, _origin(client)),
    )
    answer = await response.json()
    assert (response.status, answer["code"]) == (422, "unknown_fee")
    assert "its fees: none" in answer["message"]
    # A service type the policy does not know has no fees at all; another amount still works.
    unlisted = await in_call(store, clock, service="kort")
    path = f"/api/dossiers/{unlisted.dossier.id}/payments"
    response = await client.post(path, json=FEE, headers=posting(call.anna, _origin(client)))
    answer = await response.json()
    assert (response.status, answer["code"]) == (422, "unknown_service")
    assert "'kort'" in answer["message"]
    assert await payment_rows(store) == []
    response = await client.post(
        path, json=OTHER_AMOUNT, headers=posting(call.anna, _origin(client))
    )
    assert response.status == 201


async def test_amount_true_is_not_one_cent(client, call, store):
    """JSON `true` is not an amount. The service refuses a bool amount (InvalidInput, see
    test_payments.py); the HTTP layer must not turn it into 1 cent on the way there."""
    response = await ask(client, call, {"amount_cents": True, "description": "Leges"})

    answer = await response.json()
    assert response.status == 422, answer
    assert "amount_cents" in answer["message"]
    assert await payment_rows(store) == []


async def test_a_body_that_is_not_json_is_422(client, call, store):
    for raw, kind in ((b"fee_code=uittreksel", "application/json"), (b"\xff\xfe{", "text/plain")):
        response = await client.post(
            call.path,
            data=raw,
            headers={**posting(call.anna, _origin(client)), "Content-Type": kind},
        )
        answer = await response.json()
        assert response.status == 422, answer
        assert answer["message"] == "body is not JSON"
    assert await payment_rows(store) == []


async def test_payments_only_in_a_call_or_after_it(client, call, store, clock):
    scheduled = await book(store, clock, service=SERVICE)
    path = f"/api/dossiers/{scheduled.dossier.id}/payments"
    headers = posting(call.anna, _origin(client))

    response = await client.post(path, json=FEE, headers=headers)
    answer = await response.json()
    assert (response.status, answer["code"]) == (409, "invalid_state"), answer
    assert "scheduled" in answer["message"]
    await knock(store, actor=RESIDENT, dossier_id=scheduled.dossier.id)
    response = await client.post(path, json=OTHER_AMOUNT, headers=headers)
    assert (response.status, (await response.json())["code"]) == (409, "invalid_state")
    assert await payment_rows(store) == []

    # After the call the clerk may still finish the paperwork.
    await end_call(store, actor=CLERK, dossier_id=call.dossier)
    response = await ask(client, call, FEE)
    assert response.status == 201, await response.text()
    assert [row.dossier_id for row in await payment_rows(store)] == [call.dossier]


async def test_unknown_and_malformed_dossier_ids(client, call, store):
    headers = posting(call.anna, _origin(client))
    unknown = await client.post(f"/api/dossiers/{uuid.uuid4()}/payments", json=FEE, headers=headers)
    assert (unknown.status, (await unknown.json())["code"]) == (404, "dossier_not_found")
    malformed = await client.post("/api/dossiers/niet-een-id/payments", json=FEE, headers=headers)
    assert malformed.status == 404
    assert await payment_rows(store) == []


# --- 2. who may ask, who may read ------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "role"),
    [
        ("resident", "resident"),
        ("interpreter", "guest"),
        ("ilse", "information_manager"),
        ("bert", "clerk"),
    ],
)
async def test_only_the_clerk_of_the_department_may_ask(client, call, store, who, role):
    visitor: Visitor = getattr(call, who)

    response = await ask(client, call, FEE, who=visitor)

    answer = await response.json()
    assert (response.status, answer["code"]) == (403, "forbidden"), answer
    assert await payment_rows(store) == []
    [denial] = await audit(store, "access.denied")
    assert denial.actor.startswith(f"{role}:")
    assert (denial.object_ref, denial.result) == (str(call.dossier), "denied")
    assert json.loads(denial.detail)["action"] == "request_payment"


async def test_the_resident_may_read_the_list(client, call, store, clock):
    asked = await (await ask(client, call, FEE)).json()

    assert await listed(client, call, call.resident) == [asked]
    # Another resident's session reads nothing of this dossier.
    stranger = await appointment_session(store, clock, "resident", await in_call(store, clock))
    response = await client.get(call.path, headers=stranger.cookie)
    assert response.status == 403


@pytest.mark.parametrize(
    ("who", "role"), [("interpreter", "guest"), ("ilse", "information_manager"), ("bert", "clerk")]
)
async def test_others_may_not_read_the_list(client, call, store, who, role):
    await ask(client, call, FEE)

    response = await client.get(call.path, headers=getattr(call, who).cookie)

    answer = await response.json()
    assert (response.status, answer["code"]) == (403, "forbidden")
    assert "payments" not in answer
    [denial] = await audit(store, "access.denied")
    assert denial.actor.startswith(f"{role}:")
    assert json.loads(denial.detail)["action"] == "read_content"


async def test_without_a_session_it_is_401(client, call, store):
    await ask(client, call, FEE)

    response = await client.get(call.path)
    assert (response.status, (await response.json())["code"]) == (401, "not_authenticated")
    response = await client.post(call.path, json=FEE, headers={"Origin": _origin(client)})
    assert (response.status, (await response.json())["code"]) == (401, "not_authenticated")
    assert len(await payment_rows(store)) == 1
    assert [d.actor.split(":")[0] for d in await audit(store, "access.denied")] == [
        "anonymous",
        "anonymous",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        lambda call, origin: posting(call.anna, origin, token=False),
        lambda call, origin: {**posting(call.anna, origin), "X-CSRF-Token": "vervalst"},
        lambda call, origin: {**posting(call.resident, origin), "X-CSRF-Token": call.anna.csrf},
        lambda call, origin: posting(call.anna, EVIL),
        lambda call, origin: {k: v for k, v in posting(call.anna, origin).items() if k != "Origin"},
        lambda call, origin: {**posting(call.anna, origin), "Sec-Fetch-Site": "cross-site"},
    ],
    ids=[
        "no-token",
        "wrong-token",
        "other-sessions-token",
        "evil-origin",
        "no-origin",
        "cross-site",
    ],
)
async def test_a_forged_request_is_refused_before_anything_happens(client, call, store, headers):
    response = await client.post(call.path, json=FEE, headers=headers(call, _origin(client)))

    answer = await response.json()
    assert (response.status, answer["code"]) == (403, "csrf"), answer
    assert await payment_rows(store) == []
    async with store.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(DemoCheckout))).scalar() == 0


# --- 3. the demo checkout, end to end over a real loopback server ----------------------------


@dataclass
class Live:
    """The app on a real port, and an HTTP client that sends exactly the headers it is given."""

    base: str
    origin: str
    http: aiohttp.ClientSession

    async def join(
        self, call: Call, visitor: Visitor
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        ws = await self.http.ws_connect(
            f"{self.base}/ws/calls/{call.dossier}",
            headers={**visitor.cookie, "Origin": self.origin},
        )
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello", hello
        return ws, hello


@pytest.fixture
async def live(settings, clock, store) -> AsyncIterator[Live]:
    async with (
        serving(settings, clock) as (base, origin),
        aiohttp.ClientSession(cookie_jar=DummyCookieJar()) as http,
    ):
        yield Live(base, origin, http)


async def until(ws, kind: str, **fields: Any) -> list[dict[str, Any]]:
    """Every message up to and including the next one of `kind` matching `fields`."""
    seen = []
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive_json()
            seen.append(message)
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return seen


def payment_notices(messages: list[dict[str, Any]]) -> list[str]:
    return [m["status"] for m in messages if m["type"] == "payment"]


async def everyone_in_the_call(live: Live, call: Call):
    """The clerk, the resident (in at once: the dossier is in the call) and the interpreter,
    whom the clerk lets in, so that only the role keeps payment notices from them."""
    clerk, _ = await live.join(call, call.anna)
    resident, hello = await live.join(call, call.resident)
    assert hello["state"] == "in_call"
    await until(resident, "admitted")
    interpreter, guest = await live.join(call, call.interpreter)
    await until(clerk, "participant", id=guest["you"], status="joined")
    await clerk.send_json({"type": "admit", "participant": guest["you"]})
    await until(interpreter, "admitted")
    return clerk, resident, interpreter


async def marker(clerk, text: str) -> None:
    """A chat line from the clerk: everything published before it has been delivered to a
    socket once that socket sees it (one hub, one queue per socket, in order)."""
    await clerk.send_json({"type": "chat", "text": text})


@pytest.mark.parametrize(
    ("outcome", "status_text"),
    [("paid", "betaald"), ("failed", "mislukt"), ("canceled", "geannuleerd")],
)
async def test_demo_checkout_end_to_end(live, call, store, outcome, status_text):
    clerk, resident, interpreter = await everyone_in_the_call(live, call)
    api = f"{live.base}{call.path}"

    async with live.http.post(api, json=FEE, headers=posting(call.anna, live.origin)) as response:
        asked = await response.json()
        assert response.status == 201, asked
    checkout_url = asked["checkout_url"]
    checkout_id = checkout_url.rsplit("/", 1)[1]
    assert checkout_url == f"{live.origin}/demo-betaling/{checkout_id}"
    seen = await until(resident, "payment", id=asked["id"])
    assert seen[-1] == {"type": "payment", **asked}

    # The resident opens the checkout URL the notice carried.
    async with live.http.get(checkout_url, headers=call.resident.cookie) as response:
        html = await html_of(response, 200)
    assert "€ 15,00" in html
    assert "Uittreksel BRP" in html
    assert "nog niet betaald" in html
    parts = checkout_parts(html)
    assert parts.actions == [f"/demo-betaling/{checkout_id}"]
    assert parts.buttons == [("outcome", "paid"), ("outcome", "failed"), ("outcome", "canceled")]

    # The button: a form post from the page itself (token-exempt, origin-checked).
    async with live.http.post(
        checkout_url,
        data={"outcome": outcome},
        headers={**call.resident.cookie, "Origin": live.origin},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
        assert response.headers["Location"] == f"{live.origin}/betaling/klaar"
    # The demo's webhook reached Balie before the redirect: the status is there already.
    [payment] = await listed_live(live, call, call.resident)
    assert (payment["id"], payment["status"], payment["checkout_url"]) == (
        asked["id"],
        outcome,
        None,
    )
    assert (payment["paid_at"] is not None) == (outcome == "paid")
    notice = (await until(resident, "payment", status=outcome))[-1]
    assert notice == {"type": "payment", **payment}
    await until(clerk, "payment", status=outcome)
    await marker(clerk, "na de betaling")
    seen = await until(interpreter, "chat", text="na de betaling")
    assert payment_notices(seen) == []  # the interpreter never hears of payments
    [webhook_change] = [
        json.loads(e.detail)
        for e in await audit(store, "payment.status_changed")
        if json.loads(e.detail)["source"] == "webhook"
    ]
    assert (webhook_change["from"], webhook_change["to"]) == ("open", outcome)

    # Where the resident lands.
    async with live.http.get(f"{live.base}/betaling/klaar") as response:
        assert "U bent terug van de betaalpagina" in await html_of(response, 200)
    # The page now says how it ended, without buttons.
    async with live.http.get(checkout_url) as response:
        html = await html_of(response, 200)
    assert status_text in html
    assert checkout_parts(html).buttons == []

    # Pressing a button again (another tab, the back button) changes nothing.
    again = "canceled" if outcome == "paid" else "paid"
    async with live.http.post(
        checkout_url,
        data={"outcome": again},
        headers={"Origin": live.origin},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
    assert [p["status"] for p in await listed_live(live, call, call.anna)] == [outcome]
    assert await changes_to(store, again) == 0
    assert await changes_to(store, outcome) == 1
    [repeat] = await audit(store, "payment.update_ignored")  # the demo's webhook came again
    assert repeat.result == "repeated"
    await marker(clerk, "nog een keer")
    seen = await until(resident, "chat", text="nog een keer")
    assert payment_notices(seen) == []  # an unchanged payment is not announced again
    for ws in (clerk, resident, interpreter):
        await ws.close()


async def listed_live(live: Live, call: Call, who: Visitor) -> list[dict[str, Any]]:
    async with live.http.get(f"{live.base}{call.path}", headers=who.cookie) as response:
        body = await response.json()
        assert response.status == 200, body
    payments: list[dict[str, Any]] = body["payments"]
    return payments


async def test_demo_checkout_of_an_unknown_id(client):
    for checkout in (UNKNOWN_CHECKOUT, "tr_demo_xyz", "niets"):
        response = await client.get(f"/demo-betaling/{checkout}")
        assert "Betaling niet gevonden" in await html_of(response, 404)
        response = await client.post(
            f"/demo-betaling/{checkout}",
            data={"outcome": "paid"},
            headers={"Origin": _origin(client)},
            allow_redirects=False,
        )
        answer = await response.json()
        assert (response.status, answer["code"]) == (404, "demo_checkout_not_found"), answer


@pytest.mark.parametrize(
    ("form", "headers", "status"),
    [
        ({"outcome": "bogus"}, "own", 422),
        ({"outcome": "open"}, "own", 422),
        ({}, "own", 422),
        ({"outcome": "paid"}, {"Origin": EVIL}, 403),
        ({"outcome": "paid"}, {"Sec-Fetch-Site": "cross-site"}, 403),
        ({"outcome": "paid"}, {}, 403),
    ],
    ids=["bogus", "open", "no-outcome", "evil-origin", "cross-site", "no-origin"],
)
async def test_demo_checkout_refuses_a_wrong_or_cross_site_post(
    client, call, store, form, headers, status
):
    asked = await (await ask(client, call, FEE)).json()
    before = await snapshot(store)
    sent = {"Origin": _origin(client)} if headers == "own" else headers

    response = await client.post(
        asked["checkout_url"].removeprefix(_origin(client)),
        data=form,
        headers={**call.resident.cookie, **sent},
        allow_redirects=False,
    )

    assert response.status == status, await response.text()
    assert await snapshot(store) == before
    async with store.sessions() as session:
        [checkout] = (await session.execute(select(DemoCheckout))).scalars()
    assert (checkout.status, checkout.decided_at) == ("open", None)


# --- 4. the webhook --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged", [UNKNOWN_CHECKOUT, "tr_unknown123", "../../etc/passwd", "x" * 64]
)
async def test_a_webhook_for_an_unknown_payment_is_200_and_changes_nothing(
    client, call, store, forged
):
    await ask(client, call, FEE)
    before = await snapshot(store)

    response = await webhook(client, "demo", {"id": forged})

    assert (response.status, await response.text()) == (200, "ok")
    assert await snapshot(store) == before
    [event] = await audit(store, "payment.update_unknown")
    assert (event.object_type, event.object_ref, event.result) == (
        "payment_provider",
        "demo",
        "unknown_payment",
    )
    detail = json.loads(event.detail)
    assert detail["source"] == "webhook"
    # An id that cannot be a provider's is not even quoted in the log.
    expected = "(malformed)" if "/" in forged else forged
    assert detail["provider_payment"] == expected


async def test_a_webhook_for_an_unknown_provider_is_404(client, call, store):
    await ask(client, call, FEE)
    before = await snapshot(store)
    [row] = await payment_rows(store)

    response = await webhook(client, "nope", {"id": str(row.provider_payment_id)})

    answer = await response.json()
    assert (response.status, answer["code"]) == (404, "unknown_payment_provider"), answer
    assert await snapshot(store) == before


@pytest.mark.parametrize(
    "form",
    [{}, {"id": ""}, {"id": "x" * 65}, {"payment": "tr_x"}],
    ids=["none", "empty", "too-long", "other-name"],
)
async def test_a_webhook_without_an_id_is_422(client, call, store, form):
    await ask(client, call, FEE)
    before = await snapshot(store)

    response = await webhook(client, "demo", form)

    answer = await response.json()
    assert response.status == 422, answer
    assert "'id'" in answer["message"]
    assert await snapshot(store) == before
    assert await audit(store, "payment.update_unknown") == []


async def test_a_forged_webhook_for_a_real_payment_believes_nothing(client, call, store):
    """The body claims it is paid; the demo provider says it is still open: open it stays."""
    asked = await (await ask(client, call, FEE)).json()
    [row] = await payment_rows(store)
    assert row.provider_payment_id is not None

    response = await webhook(
        client,
        "demo",
        {"id": row.provider_payment_id, "status": "paid", "amount": "0.01", "paid_at": "nu"},
    )

    assert (response.status, await response.text()) == (200, "ok")
    [payment] = await listed(client, call)
    assert (payment["status"], payment["paid_at"], payment["checkout_url"]) == (
        "open",
        None,
        asked["checkout_url"],
    )
    assert await changes_to(store, "paid") == 0
    [ignored] = await audit(store, "payment.update_ignored")
    assert ignored.result == "repeated"  # the provider said "open" again, nothing more


async def test_duplicate_webhooks_after_paid_are_harmless(client, call, store, clock):
    asked = await (await ask(client, call, FEE)).json()
    checkout = asked["checkout_url"].removeprefix(_origin(client))
    # The resident pays. With the test client the public origin (port 0) is unreachable,
    # so the demo's own webhook is lost, as a real provider's can be: nothing changes yet.
    response = await client.post(
        checkout,
        data={"outcome": "paid"},
        headers={"Origin": _origin(client)},
        allow_redirects=False,
    )
    assert response.status == 303
    assert [p["status"] for p in await listed(client, call)] == ["open"]
    [row] = await payment_rows(store)

    answers = []
    for _ in range(3):
        clock.advance(dt.timedelta(seconds=1))
        response = await webhook(client, "demo", {"id": str(row.provider_payment_id)})
        answers.append((response.status, await response.text()))
    concurrent = await asyncio.gather(
        *(webhook(client, "demo", {"id": str(row.provider_payment_id)}) for _ in range(3))
    )

    assert answers == [(200, "ok")] * 3
    assert [r.status for r in concurrent] == [200] * 3
    [payment] = await listed(client, call, call.resident)
    assert payment["status"] == "paid"
    assert payment["paid_at"] == (clock.current - dt.timedelta(seconds=2)).isoformat()
    assert await changes_to(store, "paid") == 1
    assert [e.result for e in await audit(store, "payment.update_ignored")] == ["repeated"] * 5


async def test_a_lost_demo_webhook_is_finished_by_the_reconcile_job(client, call, store):
    """The resident paid but the demo's webhook never arrived (the public origin, port 0, is
    unreachable from the test client): the scheduled job asks the provider and tells the call."""
    resident = await client.ws_connect(
        f"/ws/calls/{call.dossier}", headers={**call.resident.cookie, "Origin": _origin(client)}
    )
    assert (await resident.receive_json(timeout=5))["type"] == "hello"
    asked = await (await ask(client, call, FEE)).json()
    await until(resident, "payment", id=asked["id"], status="open")
    response = await client.post(
        asked["checkout_url"].removeprefix(_origin(client)),
        data={"outcome": "paid"},
        headers={"Origin": _origin(client)},
        allow_redirects=False,
    )
    assert response.status == 303
    assert [p["status"] for p in await listed(client, call)] == ["open"]

    assert await reconcile_job(client.server.app) == 1

    [payment] = await listed(client, call, call.resident)
    assert payment["status"] == "paid"
    notice = (await until(resident, "payment", id=asked["id"], status="paid"))[-1]
    assert notice == {"type": "payment", **payment}
    [change] = [
        json.loads(e.detail)
        for e in await audit(store, "payment.status_changed")
        if json.loads(e.detail)["to"] == "paid"
    ]
    assert change["source"] == "reconcile"
    assert await reconcile_job(client.server.app) == 0  # paid is final: left alone
    await resident.close()


async def test_the_webhook_needs_no_csrf_and_no_origin(client, call, store):
    """A provider's server has no session and sends no Origin: the webhook still answers,
    even with headers that would make any other POST a cross-site request."""
    await ask(client, call, FEE)
    [row] = await payment_rows(store)
    for headers in ({}, {"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}, call.anna.cookie):
        response = await client.post(
            "/api/payments/webhook/demo",
            data={"id": str(row.provider_payment_id)},
            headers=headers,
        )
        assert (response.status, await response.text()) == (200, "ok"), headers


# --- 5. Mollie through HTTP ------------------------------------------------------------------


@pytest.fixture
async def mollie() -> AsyncIterator[FakeMollie]:
    async with FakeMollie() as fake:
        yield fake


@pytest.fixture
async def mollie_client(aiohttp_client, settings, clock, store, mollie):
    configured = settings.model_copy(
        update={
            "payment_provider": "mollie",
            "mollie_api_key": SecretStr(API_KEY),
            "mollie_base_url": mollie.base_url,
        }
    )
    return await aiohttp_client(create_app(configured, clock=clock), cookie_jar=DummyCookieJar())


async def test_mollie_request_then_webhook_makes_it_paid(mollie_client, mollie, call, store):
    client = mollie_client
    response = await ask(client, call, FEE)

    asked = await response.json()
    assert response.status == 201, asked
    assert mollie.created == 1
    [mollie_id] = mollie.payment_ids()
    assert asked["checkout_url"] == f"{mollie.origin}/checkout/{mollie_id}"
    at_mollie = mollie.payments[mollie_id]
    assert at_mollie["amount"] == {"currency": "EUR", "value": "15.00"}
    assert at_mollie["description"] == "Uittreksel BRP"
    assert at_mollie["webhookUrl"] == f"{_origin(client)}/api/payments/webhook/mollie"
    assert at_mollie["redirectUrl"] == f"{_origin(client)}/betaling/klaar"
    assert at_mollie["metadata"] == {"reference": asked["id"]}
    [row] = await payment_rows(store)
    assert (row.provider, row.provider_payment_id) == ("mollie", mollie_id)

    # A webhook before anything happened at Mollie: asked, still open.
    response = await webhook(client, "mollie", {"id": mollie_id, "status": "paid"})
    assert response.status == 200
    assert [p["status"] for p in await listed(client, call)] == ["open"]

    mollie.set_status(mollie_id, "paid")
    [(hook_url, hook_id)] = mollie.webhook_calls
    response = await client.post(hook_url.removeprefix(_origin(client)), data={"id": hook_id})

    assert (response.status, await response.text()) == (200, "ok")
    [payment] = await listed(client, call, call.resident)
    assert (payment["status"], payment["checkout_url"]) == ("paid", None)
    assert mollie.created == 1
    assert mollie.requests[-1][:2] == ("GET", f"/v2/payments/{mollie_id}")
    # The demo provider is there too (test environment), but a Mollie id means nothing to it.
    response = await webhook(client, "demo", {"id": mollie_id})
    assert response.status == 200
    assert len(await audit(store, "payment.update_unknown")) == 1


async def test_mollie_down_at_request_then_the_reconcile_job_finishes_it(
    mollie_client, mollie, call, store, clock
):
    client = mollie_client
    mollie.fail_next(1, status=503)

    response = await ask(client, call, FEE)

    answer = await response.json()
    assert (response.status, answer["code"]) == (503, "provider_unavailable"), answer
    assert "Mollie answered HTTP 503" in answer["message"]
    assert API_KEY not in answer["message"]
    assert mollie.created == 0
    [row] = await payment_rows(store)
    assert (row.status, row.provider_payment_id, row.checkout_url) == ("created", None, None)
    [payment] = await listed(client, call)
    assert (payment["status"], payment["checkout_url"]) == ("created", None)
    [failure] = await audit(store, "payment.create_failed")
    assert failure.result == "provider_unavailable"

    app = client.server.app
    assert await reconcile_job(app) == 0  # too young: the request might still be waiting
    assert mollie.created == 0
    clock.advance(dt.timedelta(minutes=3))
    assert await reconcile_job(app) == 1

    assert mollie.created == 1
    posts = [key for method, path, key in mollie.requests if method == "POST"]
    assert posts == [row.idempotency_key, row.idempotency_key]  # the same key both times
    [payment] = await listed(client, call, call.resident)
    [mollie_id] = mollie.payment_ids()
    assert (payment["id"], payment["status"]) == (str(row.id), "open")
    assert payment["checkout_url"] == f"{mollie.origin}/checkout/{mollie_id}"
    assert await reconcile_job(app) == 0  # nothing changed at Mollie: nothing to do
    assert mollie.created == 1


async def test_mollie_refusing_the_payment_is_502_and_fails_it(mollie_client, mollie, call, store):
    client = mollie_client
    mollie.fail_next(1, status=422)

    response = await ask(client, call, FEE)

    answer = await response.json()
    assert (response.status, answer["code"]) == (502, "provider_rejected"), answer
    assert "Mollie refused the request" in answer["message"]
    assert mollie.created == 0
    [payment] = await listed(client, call)
    assert (payment["status"], payment["checkout_url"]) == ("failed", None)
    assert await reconcile_job(client.server.app) == 0  # final: never created again
    assert mollie.created == 0


async def test_mollie_down_at_webhook_is_503_so_that_mollie_retries(
    mollie_client, mollie, call, store
):
    client = mollie_client
    await ask(client, call, FEE)
    [mollie_id] = mollie.payment_ids()
    mollie.set_status(mollie_id, "paid")
    mollie.fail_next(1, status=502)

    response = await webhook(client, "mollie", {"id": mollie_id})

    assert (response.status, (await response.json())["code"]) == (503, "provider_unavailable")
    assert [p["status"] for p in await listed(client, call)] == ["open"]
    response = await webhook(client, "mollie", {"id": mollie_id})  # Mollie tries again
    assert response.status == 200
    assert [p["status"] for p in await listed(client, call)] == ["paid"]


# --- 6. the call pages carry the payments ----------------------------------------------------


async def test_the_call_pages_of_resident_and_clerk_list_the_payments(client, call, store, clock):
    first = await (await ask(client, call, FEE)).json()
    clock.advance(dt.timedelta(seconds=1))  # oldest first: the list has an order to keep
    second = await (await ask(client, call, OTHER_AMOUNT)).json()
    [row] = [p for p in await payment_rows(store) if str(p.id) == first["id"]]
    await client.post(
        first["checkout_url"].removeprefix(_origin(client)),
        data={"outcome": "paid"},
        headers={"Origin": _origin(client)},
        allow_redirects=False,
    )
    assert (await webhook(client, "demo", {"id": str(row.provider_payment_id)})).status == 200
    expected = await listed(client, call)
    assert [(p["id"], p["status"]) for p in expected] == [
        (first["id"], "paid"),
        (second["id"], "open"),
    ]

    for path, visitor, role in (
        (f"/afspraak/{call.booked.appointment.id}", call.resident, "resident"),
        (f"/balie/gesprek/{call.dossier}", call.anna, "clerk"),
    ):
        html = await html_of(await client.get(path, headers=visitor.cookie), 200)
        config = page_config(html)
        assert config["role"] == role
        assert config["payments"] == expected, path
    # Only the clerk's page offers the fees of the service.
    clerk = await html_of(
        await client.get(f"/balie/gesprek/{call.dossier}", headers=call.anna.cookie), 200
    )
    assert '<option value="uittreksel">Uittreksel BRP (€ 15,00)</option>' in clerk


async def test_the_interpreters_page_has_no_payments(client, call, store):
    await ask(client, call, FEE)
    listed_before = len(await audit(store, "payment.listed"))

    response = await client.get(
        f"/tolk/{call.booked.appointment.id}", headers=call.interpreter.cookie
    )

    html = await html_of(response, 200)
    config = page_config(html)
    assert config["role"] == "guest"
    assert config["payments"] == []
    [payment] = await payment_rows(store)
    assert str(payment.id) not in html
    assert "€ 15,00" not in html
    assert "demo-betaling" not in html
    assert len(await audit(store, "payment.listed")) == listed_before  # nothing was read


# --- 7. which provider -----------------------------------------------------------------------


async def test_the_demo_is_the_default_outside_production(client, call, settings):
    assert settings.payment_provider is None
    assert settings.resolved_payment_provider == "demo"

    asked = await (await ask(client, call, OTHER_AMOUNT)).json()

    assert "/demo-betaling/tr_demo_" in asked["checkout_url"]


async def test_production_without_a_provider_takes_no_payments(
    aiohttp_client, settings, clock, store, call
):
    production = Settings(
        environment="production",
        data_dir=settings.data_dir,
        database_url=settings.database_url,  # the same database: the same call and sessions
        host="127.0.0.1",
        port=0,
        pseudonym_key=SecretStr(secrets.token_hex(32)),
        secret_key=SecretStr(secrets.token_hex(32)),
    )
    assert production.resolved_payment_provider is None
    # Production mints no keys: the operator's `balie keys create-export-key` comes first
    # (the dossier keys are there already: the test environment made them on demand).
    load_export_key(production.resolved_key_dir, create=True)
    client = await aiohttp_client(create_app(production, clock=clock), cookie_jar=DummyCookieJar())

    response = await ask(client, call, FEE)

    answer = await response.json()
    assert response.status == 503, answer
    assert answer["message"] == "this installation takes no payments"
    assert await payment_rows(store) == []
    assert await listed(client, call) == []
    # No demo provider in production: its webhook is not there either.
    response = await webhook(client, "demo", {"id": UNKNOWN_CHECKOUT})
    assert (response.status, (await response.json())["code"]) == (404, "unknown_payment_provider")


# --- 8. a destroyed dossier ------------------------------------------------------------------


async def test_after_destruction_the_payments_are_gone(client, call, store):
    asked = await (await ask(client, call, FEE)).json()
    [row] = await payment_rows(store)

    await destroy_dossier(
        store, actor=CLERK, dossier_id=call.dossier, outcome=TombstoneOutcome.DESTROYED_BY_OPERATOR
    )

    response = await client.get(call.path, headers=call.anna.cookie)
    answer = await response.json()
    assert (response.status, answer["code"]) == (410, "dossier_destroyed"), answer
    # The resident's session went with the appointment: signed out, nothing to read.
    response = await client.get(call.path, headers=call.resident.cookie)
    assert (response.status, (await response.json())["code"]) == (401, "not_authenticated")
    response = await ask(client, call, FEE)
    assert (response.status, (await response.json())["code"]) == (410, "dossier_destroyed")
    assert await payment_rows(store) == []
    # A late webhook, or the resident's old checkout tab, finds nothing.
    response = await webhook(client, "demo", {"id": str(row.provider_payment_id)})
    assert response.status == 200
    assert len(await audit(store, "payment.update_unknown")) == 1
    checkout = asked["checkout_url"].removeprefix(_origin(client))
    assert "Betaling niet gevonden" in await html_of(await client.get(checkout), 404)
