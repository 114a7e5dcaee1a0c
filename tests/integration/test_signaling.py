"""Call signaling over real WebSockets: waiting room, admission, relay, chat, refusals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest
from aiohttp import DummyCookieJar, WSMsgType
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import col

from dossier.appointments import ensure_department
from dossier.chat import list_chat_messages
from dossier.models import ChatMessage, Dossier, DossierState
from identity.accounts import add_local_account
from identity.sessions import SESSION_COOKIE, create_session
from retention.models import AuditEvent
from server.app import create_app
from server.signaling.turn import TURN_LIFETIME

from support import CLERK, book


@pytest.fixture
async def call(store, clock, settings):
    """A booked appointment, and session cookies for everyone who might try to join."""
    booked = await book(store, clock)
    other = await book(store, clock)
    secret = settings.secret_key.get_secret_value().encode()
    cookies = {}
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="publiekszaken", name="Publiekszaken")
        staff = {}
        for name, role, department in (
            ("anna", "clerk", "burgerzaken"),
            ("bert", "clerk", "publiekszaken"),
            ("ilse", "information_manager", None),
        ):
            made = await add_local_account(
                session, secret_key=secret, username=name, display_name=name,
                employee_id=f"emp-{name}", role=role, department=department, now=clock.current,
                password="x" * 16,
            )  # fmt: skip
            staff[name] = made.account
        for name in ("anna", "bert", "ilse"):
            token, _ = await create_session(
                session, now=clock.current, kind="staff", role=staff[name].role,
                staff_id=staff[name].id, department_id=staff[name].department_id,
            )  # fmt: skip
            cookies[name] = token
        for name, kind, appointment in (
            ("resident", "resident", booked.appointment.id),
            ("other_resident", "resident", other.appointment.id),
            ("interpreter", "guest", booked.appointment.id),
        ):
            token, _ = await create_session(
                session, now=clock.current, kind=kind, role=kind, appointment_id=appointment,
                resident_pseudonym=f"p-{name}",
            )  # fmt: skip
            cookies[name] = token
    return booked, cookies


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    configured = settings.model_copy(
        update={"turn_urls": ["turn:127.0.0.1:3478"], "turn_secret": SecretStr("turn-geheim")}
    )
    return await aiohttp_client(create_app(configured, clock=clock), cookie_jar=DummyCookieJar())


async def join(client, call, who: str):
    booked, cookies = call
    ws = await client.ws_connect(
        f"/ws/calls/{booked.dossier.id}",
        headers={"Cookie": f"{SESSION_COOKIE}={cookies[who]}", "Origin": "http://127.0.0.1:0"},
    )
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws, hello


async def expect(ws, kind: str, **fields) -> dict:
    """The next message of `kind` (matching `fields`), skipping others; fails after 5 s."""
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message


async def state(store, booked) -> DossierState:
    async with store.sessions() as session:
        return (await session.get(Dossier, booked.dossier.id)).state


async def test_waiting_room_admission_relay_chat_and_end(client, call, store, clock):
    booked, _ = call
    clerk, clerk_hello = await join(client, call, "anna")
    resident, hello = await join(client, call, "resident")
    assert hello["role"] == "resident"
    await expect(clerk, "participant", id=hello["you"], status="joined")
    await resident.send_json({"type": "knock"})
    await expect(clerk, "participant", id=hello["you"], status="waiting")
    assert await state(store, booked) == DossierState.WAITING

    await clerk.send_json({"type": "admit", "participant": hello["you"]})
    admitted = await expect(resident, "admitted")
    assert await state(store, booked) == DossierState.IN_CALL
    # Everyone else hears that the resident is in now (the clerk's waiting list empties).
    await expect(clerk, "participant", id=hello["you"], status="in")
    turn = admitted["ice_servers"][0]
    expiry, participant = turn["username"].split(":")
    assert participant == hello["you"]
    # Valid for two hours from now by the server's (injected) clock.
    assert int(expiry) == int((clock.current + TURN_LIFETIME).timestamp())
    expected = hmac.new(b"turn-geheim", turn["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn["credential"]) == expected

    await resident.send_json({"type": "offer", "to": clerk_hello["you"], "sdp": "v=0 offer"})
    offer = await expect(clerk, "offer")
    assert offer == {
        "type": "offer",
        "sdp": "v=0 offer",
        "from": hello["you"],
        "to": clerk_hello["you"],
    }
    await clerk.send_json({"type": "answer", "to": hello["you"], "sdp": "v=0 answer"})
    assert (await expect(resident, "answer"))["sdp"] == "v=0 answer"
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}
    await clerk.send_json({"type": "ice", "to": hello["you"], "candidate": candidate})
    assert (await expect(resident, "ice"))["candidate"] == candidate

    await resident.send_json({"type": "chat", "text": "Goedemorgen, ik kom voor de aangifte"})
    chat = await expect(clerk, "chat")
    assert (chat["from"], chat["text"]) == ("resident", "Goedemorgen, ik kom voor de aangifte")
    stored = await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    assert [m.text for m in stored] == ["Goedemorgen, ik kom voor de aangifte"]
    async with store.sessions() as session:
        sealed = (await session.execute(select(ChatMessage.sealed))).scalar_one()
    assert b"aangifte" not in sealed

    await clerk.send_json({"type": "end"})
    await expect(resident, "ended")
    assert await state(store, booked) == DossierState.ENDED
    async with store.sessions() as session:
        query = (
            select(AuditEvent.action)
            .where(col(AuditEvent.action).like("call.%"))
            .order_by(col(AuditEvent.seq))
        )
        steps = list((await session.execute(query)).scalars())
    assert steps == ["call.knocked", "call.admitted", "call.ended"]
    await resident.close()
    await clerk.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("niet json", "malformed"),
        ("[1, 2]", "malformed"),
        ('{"type": "explode"}', "unknown_type"),
        ('{"type": "offer", "to": "x"}', "invalid"),
        ('{"type": "chat", "text": ""}', "invalid"),
        ('{"type": "knock", "extra": 1}', "invalid"),
    ],
)
async def test_malformed_messages_get_an_error_and_the_socket_lives_on(client, call, raw, code):
    resident, _ = await join(client, call, "resident")
    await resident.send_str(raw)
    error = await expect(resident, "error")
    assert error["code"] == code
    await resident.send_json({"type": "knock"})  # still works afterwards
    await expect(resident, "participant", status="waiting")
    await resident.close()


async def test_oversized_message_closes_the_socket_with_1009(client, call):
    resident, _ = await join(client, call, "resident")
    await resident.send_str(json.dumps({"type": "chat", "text": "x" * 70_000}))
    closing = await resident.receive(timeout=5)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert resident.close_code == 1009


async def test_nothing_before_admission(client, call, store):
    booked, _ = call
    clerk, clerk_hello = await join(client, call, "anna")
    resident, hello = await join(client, call, "resident")
    await resident.send_json({"type": "offer", "to": clerk_hello["you"], "sdp": "v=0"})
    assert (await expect(resident, "error"))["code"] == "not_admitted"
    await resident.send_json({"type": "chat", "text": "hallo?"})
    assert (await expect(resident, "error"))["code"] == "not_admitted"
    await resident.send_json({"type": "admit", "participant": hello["you"]})
    assert (await expect(resident, "error"))["code"] == "not_allowed"
    await resident.send_json({"type": "end"})
    assert (await expect(resident, "error"))["code"] == "not_allowed"
    assert await state(store, booked) == DossierState.SCHEDULED
    async with store.sessions() as session:
        assert (await session.execute(select(ChatMessage))).first() is None
    await resident.close()
    await clerk.close()


async def test_messages_for_someone_outside_the_call(client, call):
    clerk, _ = await join(client, call, "anna")
    await clerk.send_json({"type": "offer", "to": "0123456789abcdef", "sdp": "v=0"})
    assert (await expect(clerk, "error"))["code"] == "unknown_participant"
    await clerk.send_json({"type": "admit", "participant": "0123456789abcdef"})
    assert (await expect(clerk, "error"))["code"] == "unknown_participant"
    await clerk.close()


async def test_denied_resident_may_knock_again(client, call, store):
    booked, _ = call
    clerk, _ = await join(client, call, "anna")
    resident, hello = await join(client, call, "resident")
    await resident.send_json({"type": "knock"})
    await expect(clerk, "participant", status="waiting")
    await clerk.send_json({"type": "deny", "participant": hello["you"]})
    await expect(resident, "denied")
    assert await state(store, booked) == DossierState.SCHEDULED
    await resident.send_json({"type": "knock"})
    await expect(clerk, "participant", status="waiting")
    assert await state(store, booked) == DossierState.WAITING


@pytest.mark.parametrize(
    ("who", "status"),
    [("other_resident", 403), ("bert", 403), ("ilse", 403), (None, 401)],
)
async def test_outsiders_cannot_join(client, call, store, who, status):
    booked, cookies = call
    headers = {"Origin": "http://127.0.0.1:0"}
    if who:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookies[who]}"
    response = await client.get(f"/ws/calls/{booked.dossier.id}", headers=headers)
    assert response.status == status
    async with store.sessions() as session:
        query = select(AuditEvent.result).where(col(AuditEvent.action) == "access.denied")
        assert list((await session.execute(query)).scalars()) == ["denied"]


async def test_another_origin_is_refused(client, call):
    booked, cookies = call
    response = await client.get(
        f"/ws/calls/{booked.dossier.id}",
        headers={
            "Cookie": f"{SESSION_COOKIE}={cookies['resident']}",
            "Origin": "https://evil.example",
        },
    )
    assert response.status == 403


async def test_interpreter_gets_video_and_chat_only(client, call, store):
    booked, _ = call
    clerk, clerk_hello = await join(client, call, "anna")
    interpreter, hello = await join(client, call, "interpreter")
    assert hello["role"] == "guest"
    await interpreter.send_json({"type": "knock"})
    await expect(clerk, "participant", id=hello["you"], status="waiting")
    await clerk.send_json({"type": "admit", "participant": hello["you"]})
    await expect(interpreter, "admitted")
    assert await state(store, booked) == DossierState.SCHEDULED  # no change to the dossier
    await interpreter.send_json({"type": "offer", "to": clerk_hello["you"], "sdp": "v=0"})
    await expect(clerk, "offer", sdp="v=0")
    await interpreter.send_json({"type": "chat", "text": "Ik vertaal"})
    assert (await expect(clerk, "chat"))["from"] == "guest"
    for forbidden in ({"type": "end"}, {"type": "admit", "participant": clerk_hello["you"]}):
        await interpreter.send_json(forbidden)
        assert (await expect(interpreter, "error"))["code"] == "not_allowed"
    # No document or dossier access over HTTP either.
    response = await client.get(
        f"/api/dossiers/{booked.dossier.id}",
        headers={"Cookie": f"{SESSION_COOKIE}={call[1]['interpreter']}"},
    )
    assert response.status == 403


async def test_resident_whose_connection_drops_comes_back_into_the_call(client, call, store):
    booked, _ = call
    clerk, clerk_hello = await join(client, call, "anna")
    resident, hello = await join(client, call, "resident")
    await resident.send_json({"type": "knock"})
    await expect(clerk, "participant", status="waiting")
    await clerk.send_json({"type": "admit", "participant": hello["you"]})
    await expect(resident, "admitted")
    await resident.send_json({"type": "chat", "text": "voor de onderbreking"})
    await expect(clerk, "chat")
    await resident.close()  # the network drops
    await expect(clerk, "participant", id=hello["you"], status="left")

    again, hello_again = await join(client, call, "resident")
    assert hello_again["you"] == hello["you"]
    assert hello_again["state"] == "in_call"
    await expect(again, "admitted")  # straight back in: no new knock, no new admission
    # The clerk's page learns the resident is back in the call, so it expects an ICE restart.
    await expect(clerk, "participant", id=hello["you"], status="in")
    await again.send_json({"type": "offer", "to": clerk_hello["you"], "sdp": "v=0 restart"})
    await expect(clerk, "offer", sdp="v=0 restart")
    stored = await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    assert [m.text for m in stored] == ["voor de onderbreking"]
    await again.close()
    await clerk.close()


async def test_socket_rate_limit(client, call):
    resident, _ = await join(client, call, "resident")
    for _ in range(80):
        await resident.send_json({"type": "knock"})
    codes = []
    async with asyncio.timeout(5):
        while len(codes) < 80:
            message = await resident.receive_json()
            if message["type"] == "error":
                codes.append(message["code"])
            elif message["type"] == "participant":
                codes.append("ok")
    assert codes.count("rate_limited") >= 10
    await resident.close()
