"""One participant's WebSocket in a call: who they are, what they may send, what they see.

    GET /ws/calls/{dossier_id}   (session cookie; Origin must be our own)

The resident knocks and waits; a clerk of the department admits or denies; offers, answers and
ICE candidates are relayed only between admitted participants of the same call; chat goes
into the dossier, encrypted, and to everyone in the call. An interpreter (guest) gets video
and chat, nothing else. Every step of the call is a dossier state change with an audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from dossier.calls import admit, deny, end_call, knock
from dossier.chat import append_chat_message
from dossier.db import wall_clock
from dossier.errors import DossierError
from dossier.models import Dossier, DossierState
from dossier.queries import dossier_owner
from identity.sessions import Principal
from server.appkeys import CLOCK, DOSSIER_STORE, SETTINGS
from server.middlewares import error_response
from server.ratelimit import RateLimiter
from server.security import principal_of
from server.signaling import protocol as p
from server.signaling.hub import DirectSend, Envelope, SignalingHub, encoded
from server.signaling.turn import ice_servers

__all__ = ["HUB", "OPEN_SOCKETS", "call_socket", "close_open_sockets", "notify_call"]

log = logging.getLogger(__name__)

HUB = web.AppKey("signaling_hub", SignalingHub)
# The open call sockets of this process, so that a shutdown can tell each page to reconnect
# (to another process, or to this one once restarted) instead of leaving it hanging.
OPEN_SOCKETS = web.AppKey("open_call_sockets", weakref.WeakSet[web.WebSocketResponse])
# Each socket may send a burst of 60 messages, then 20 a second (ICE trickles in bursts).
SOCKET_RATE = {"per_minute": 1200.0, "burst": 60}
_STAFF_ONLY = (p.Admit, p.Deny, p.End)
# Notices about dossier content: only for admitted residents and clerks, never the interpreter.
_CONTENT_NOTICES = frozenset({"document", "payment"})
_SERVER = "server"


@dataclass
class Participant:
    """This socket's view of the call."""

    id: str
    role: str  # resident, clerk, guest
    principal: Principal
    dossier_id: uuid.UUID
    admitted: bool
    peers: dict[str, str] = field(default_factory=dict)  # participant id -> role
    delivering: bool = False  # _deliver holds an envelope it has not finished sending


def _role(principal: Principal | None, department: uuid.UUID, appointment: uuid.UUID) -> str | None:
    if principal is None:
        return None
    if principal.kind == "staff" and principal.role == "clerk":
        return "clerk" if principal.department_id == department else None
    if principal.kind in ("resident", "guest") and principal.appointment_id == appointment:
        return principal.kind
    return None


async def call_socket(request: web.Request) -> web.StreamResponse:
    """Upgrade to the call's WebSocket after the origin and the caller are checked."""
    settings = request.app[SETTINGS]
    if request.headers.get("Origin") != settings.public_origin:
        return error_response(403, "origin", "WebSocket from another origin refused")
    try:
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
    except ValueError:
        return error_response(404, "dossier_not_found", "not a dossier id")
    store = request.app[DOSSIER_STORE]
    principal = principal_of(request)
    async with store.sessions() as session:
        try:
            department, appointment = await dossier_owner(session, dossier_id)
        except DossierError as exc:
            return error_response(
                404 if exc.code == "dossier_not_found" else 410, exc.code, str(exc)
            )
        now = await request.app[CLOCK].now(session)
        state = (await session.get_one(Dossier, dossier_id)).state
    role = _role(principal, department, appointment)
    if role is None or principal is None:
        await store.audit.append(
            at=now, actor=principal.actor if principal else f"anonymous:{request.remote}",
            action="access.denied", object_type="dossier", object_ref=str(dossier_id),
            result="denied", detail={"action": "join_call"},
        )  # fmt: skip
        return error_response(401 if principal is None else 403, "forbidden", "not in this call")
    socket = web.WebSocketResponse(max_msg_size=p.MAX_MESSAGE_BYTES, heartbeat=20)
    await socket.prepare(request)
    request.app[OPEN_SOCKETS].add(socket)
    me = Participant(
        id=principal.session_hash[:16],
        role=role,
        principal=principal,
        dossier_id=dossier_id,
        # Clerks are in from the start; a resident who reconnects during a call is back in.
        admitted=role == "clerk" or (role == "resident" and state == DossierState.IN_CALL),
    )
    hub = request.app[HUB]
    call = str(dossier_id)
    async with hub.subscribe(call, me.id, direct=_direct(request, socket, me)) as inbox:
        pump = asyncio.create_task(_deliver(request, socket, me, inbox))
        try:
            await socket.send_json({"type": "hello", "you": me.id, "role": role, "state": state})
            if me.admitted:
                await _send_admitted(request, socket, me)
            await _announce(hub, call, me, "in" if me.admitted else "joined")
            await _receive(request, socket, me, hub, call)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await _announce(hub, call, me, "left")
    return socket


async def notify_call(hub: SignalingHub, dossier_id: uuid.UUID, message: dict[str, Any]) -> None:
    """Tell everyone in the call about something that happened outside it (a document stored,
    a payment's status), in whichever process their socket lives."""
    await hub.publish(str(dossier_id), {"from": _SERVER, "to": None, "message": message})


async def close_open_sockets(app: web.Application) -> None:
    """On shutdown: close every call socket with 1001 (going away); the pages reconnect."""
    open_sockets: weakref.WeakSet[web.WebSocketResponse] = app[OPEN_SOCKETS]
    sockets = list(open_sockets)
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting") for ws in sockets),
        return_exceptions=True,
    )


async def _announce(hub: SignalingHub, call: str, me: Participant, status: str) -> None:
    await hub.publish(
        call,
        {"from": me.id, "to": None, "message": {"type": "participant", "id": me.id,
                                                  "role": me.role, "status": status}},
    )  # fmt: skip


async def _send_admitted(
    request: web.Request, socket: web.WebSocketResponse, me: Participant
) -> None:
    settings = request.app[SETTINGS]
    servers = ice_servers(
        stun_urls=settings.stun_urls,
        turn_urls=settings.turn_urls,
        turn_secret=settings.turn_secret.get_secret_value().encode(),
        participant=me.id,
        now=wall_clock(request.app[CLOCK])(),
    )
    await socket.send_json({"type": "admitted", "ice_servers": servers})


_RELAYED = frozenset({"offer", "answer", "ice"})
# Past this much unsent output a socket is slow: its envelopes wait in its queue (which drops
# the oldest when full) instead of holding up the sender.
_SLOW_SOCKET_BYTES = 64 * 1024


def _direct(request: web.Request, socket: web.WebSocketResponse, me: Participant) -> DirectSend:
    """Send relayed offers, answers and candidates at once, in the sender's task, when that
    cannot overtake anything queued; everything else goes through `_deliver`."""

    async def send(envelope: Envelope) -> bool:
        if envelope["message"]["type"] not in _RELAYED or me.delivering:
            return False
        if not me.admitted:
            return True  # nothing reaches a participant still in the waiting room
        transport = request.transport
        if transport is None or transport.get_write_buffer_size() > _SLOW_SOCKET_BYTES:
            return False
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing: the peer retries
            await socket.send_str(encoded(envelope))
        return True

    return send


async def _deliver(
    request: web.Request,
    socket: web.WebSocketResponse,
    me: Participant,
    inbox: asyncio.Queue[Envelope],
) -> None:
    """Envelopes of the call that concern this participant, onto its socket."""
    while True:
        me.delivering = False
        envelope = await inbox.get()
        me.delivering = True
        sender, target, message = envelope["from"], envelope.get("to"), envelope["message"]
        if sender == me.id or (target is not None and target != me.id):
            continue
        kind = message["type"]
        if kind == "participant":
            if message["status"] == "left":
                me.peers.pop(sender, None)
            else:
                new = sender not in me.peers
                me.peers[sender] = message["role"]
                if new and target is None:
                    # Tell the newcomer (once: a broadcast, not a reply) that we are here too.
                    await request.app[HUB].publish(
                        str(me.dossier_id),
                        {"from": me.id, "to": sender, "message": {
                            "type": "participant", "id": me.id, "role": me.role,
                            "status": "in" if me.admitted else "waiting"}},
                    )  # fmt: skip
        elif kind == "admitted":
            me.admitted = True
            await _send_admitted(request, socket, me)
            # Everyone in the call learns that this participant is in now: their pages
            # take it out of the waiting list and expect its offer.
            await _announce(request.app[HUB], str(me.dossier_id), me, "in")
            continue
        elif kind in ("offer", "answer", "ice") and not me.admitted:
            continue  # nothing reaches a participant still in the waiting room
        elif kind in _CONTENT_NOTICES and (me.role == "guest" or not me.admitted):
            continue
        await socket.send_str(encoded(envelope))


async def _receive(
    request: web.Request,
    socket: web.WebSocketResponse,
    me: Participant,
    hub: SignalingHub,
    call: str,
) -> None:
    limiter = RateLimiter(**SOCKET_RATE)  # type: ignore[arg-type]
    async for frame in socket:
        if frame.type == WSMsgType.BINARY:
            await _error(socket, "malformed", "signaling messages are text")
        if frame.type != WSMsgType.TEXT:
            continue
        if limiter.check("socket") is not None:
            await _error(socket, "rate_limited", "too many messages; slow down")
            continue
        try:
            message = p.parse(frame.data)
            if isinstance(message, p.Leave):
                await socket.close(code=WSCloseCode.OK, message=b"left")
                return
            await _handle(request, socket, me, hub, call, message, frame.data)
        except p.ProtocolError as exc:
            await _error(socket, exc.code, str(exc))
        except DossierError as exc:
            await _error(socket, exc.code, str(exc))
            if exc.code == "dossier_destroyed":
                await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"dossier destroyed")
                return


async def _error(socket: web.WebSocketResponse, code: str, message: str) -> None:
    await socket.send_json({"type": "error", "code": code, "message": message})


async def _handle(
    request: web.Request,
    socket: web.WebSocketResponse,
    me: Participant,
    hub: SignalingHub,
    call: str,
    message: Any,
    raw: str,
) -> None:
    store = request.app[DOSSIER_STORE]
    actor = me.principal.actor
    if isinstance(message, _STAFF_ONLY) and me.role != "clerk":
        raise p.ProtocolError("not_allowed", f"only the clerk may {message.type}")
    if isinstance(message, p.Knock):
        if me.role == "clerk":
            raise p.ProtocolError("not_allowed", "the clerk does not knock")
        if me.role == "resident":
            dossier = await knock(store, actor=actor, dossier_id=me.dossier_id)
            if dossier.state == DossierState.IN_CALL and not me.admitted:
                me.admitted = True  # back after a dropped connection
                await _send_admitted(request, socket, me)
        status = "in" if me.admitted else "waiting"
        update = {"type": "participant", "id": me.id, "role": me.role, "status": status}
        await socket.send_json(update)  # the knocker sees that the knock arrived
        await hub.publish(call, {"from": me.id, "to": None, "message": update})
    elif isinstance(message, (p.Admit, p.Deny)):
        target_role = me.peers.get(message.participant)
        if target_role is None:
            raise p.ProtocolError("unknown_participant", "no such participant in this call")
        if target_role == "resident":
            step = admit if isinstance(message, p.Admit) else deny
            await step(store, actor=actor, dossier_id=me.dossier_id)
        kind = "admitted" if isinstance(message, p.Admit) else "denied"
        await hub.publish(call, {"from": me.id, "to": message.participant,
                                 "message": {"type": kind}})  # fmt: skip
    elif isinstance(message, (p.Offer, p.Answer, p.Ice)):
        if not me.admitted:
            raise p.ProtocolError("not_admitted", "wait until the clerk lets you in")
        if message.to not in me.peers:
            raise p.ProtocolError("unknown_participant", "no such participant in this call")
        relayed: dict[str, Any] = {"type": message.type, "to": message.to, "from": me.id}
        if isinstance(message, p.Ice):
            relayed["candidate"] = message.candidate
        else:
            relayed["sdp"] = message.sdp
        # `text` is what the addressee's socket gets; `message` travels between processes.
        text = p.relayed_text(raw, me.id)
        await hub.publish(call, {"from": me.id, "to": message.to, "message": relayed, "text": text})
    elif isinstance(message, p.Chat):
        if not me.admitted:
            raise p.ProtocolError("not_admitted", "chat opens when the call begins")
        entry = await append_chat_message(
            store, actor=actor, dossier_id=me.dossier_id, text=message.text
        )
        chat = {
            "type": "chat",
            "from": me.role,
            "text": entry.text,
            "sent_at": entry.sent_at.isoformat(),
        }
        await socket.send_json(chat)
        await hub.publish(call, {"from": me.id, "to": None, "message": chat})
    elif isinstance(message, p.End):
        await end_call(store, actor=actor, dossier_id=me.dossier_id)
        ended = {"type": "ended"}
        await socket.send_json(ended)
        await hub.publish(call, {"from": me.id, "to": None, "message": ended})
