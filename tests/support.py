"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.appointments import BookedAppointment, create_appointment
from dossier.db import ManualClock
from dossier.store import DossierStore
from identity.accounts import add_local_account
from identity.invitations import create_invitation
from identity.sessions import SESSION_COOKIE, create_session
from retention.audit import ENTRY_FIELDS, Actor, canonical_time
from server.app import LINGERING_SECONDS, create_app
from server.settings import Settings

CLERK = Actor("clerk", "emp-1001")
BSN = "999993653"  # a test BSN that passes the eleven-test
RESIDENT = Actor("resident", "pseudo-" + "a" * 16)


async def book(
    store: DossierStore,
    clock: ManualClock,
    *,
    service: str = "geboorteaangifte",
    starts_at: dt.datetime | None = None,
    resident_pseudonym: str | None = None,
) -> BookedAppointment:
    """Book an appointment (by default an hour from the clock's now)."""
    starts = starts_at or clock.current + dt.timedelta(hours=1)
    return await create_appointment(
        store,
        actor=CLERK,
        department="burgerzaken",
        service_type=service,
        starts_at=starts,
        ends_at=starts + dt.timedelta(minutes=30),
        resident_pseudonym=resident_pseudonym,
    )


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`data` as an async byte stream, the way an upload arrives."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in stream])


def engine_of(store: DossierStore) -> AsyncEngine:
    """The engine behind the store's sessions."""
    engine = store.sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    return engine


async def drop_append_only_guard(engine: AsyncEngine) -> None:
    """Drop the triggers that keep the audit tables append-only (migration 0006), as an
    attacker with the database owner's rights does before tampering with them."""
    async with engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        for table in ("audit_events", "audit_checkpoints"):
            for verb in ("update", "delete", "truncate") if postgres else ("update", "delete"):
                on = f" ON {table}" if postgres else ""
                await conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}{on}"))


async def rewrite_event(engine: AsyncEngine, seq: int, **changes: Any) -> None:
    """Change audit event `seq` as a database owner can: drop the append-only guard and
    rewrite its entry (every field lives there; the columns are derived from it). A change
    of `entry_hash` is written as given; `occurred_at` may be an aware datetime."""
    await drop_append_only_guard(engine)
    async with engine.begin() as conn:
        query = text("SELECT entry FROM audit_events WHERE seq = :seq")
        parts = (await conn.execute(query, {"seq": seq})).scalar_one().split("\x1f")
        values = {"seq": seq, "entry_hash": changes.pop("entry_hash", None)}
        for name, value in changes.items():
            text_value = canonical_time(value) if isinstance(value, dt.datetime) else str(value)
            parts[ENTRY_FIELDS.index(name)] = text_value
        values["entry"] = "\x1f".join(parts)
        await conn.execute(
            text(
                "UPDATE audit_events SET entry = :entry,"
                " entry_hash = coalesce(:entry_hash, entry_hash) WHERE seq = :seq"
            ),
            values,
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def serving(settings: Settings, clock: ManualClock) -> AsyncIterator[tuple[str, str]]:
    """The real app on a free loopback port: (base URL, public origin it believes it has)."""
    port = free_port()
    configured = settings.model_copy(update={"port": port})
    runner = web.AppRunner(create_app(configured, clock=clock), lingering_time=LINGERING_SECONDS)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", configured.public_origin
    finally:
        await runner.cleanup()


async def invitation(store: DossierStore, clock: ManualClock) -> tuple[str, BookedAppointment]:
    """A booked appointment and a live resident invitation token for it."""
    booked = await book(store, clock)
    async with store.sessions() as session, session.begin():
        token = await create_invitation(
            session,
            appointment_id=booked.appointment.id,
            kind="resident",
            appointment_ends_at=booked.appointment.ends_at,
            now=clock.current,
        )
    return token, booked


@dataclass(frozen=True)
class Visitor:
    """Someone with a session: the cookie their browser sends and their CSRF token."""

    token: str
    csrf: str

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.token}"}


async def staff_visitor(
    store: DossierStore,
    clock: ManualClock,
    settings: Settings,
    *,
    role: str,
    department: str | None = None,
    employee_id: str | None = None,
) -> Visitor:
    """A signed-in staff member with a real local account: a clerk (give `department`), an
    information_manager or a privacy_officer. Their audit actor is `<role>:<employee_id>`."""
    suffix = secrets.token_hex(4)
    async with store.sessions() as session, session.begin():
        made = await add_local_account(
            session,
            secret_key=settings.secret_key.get_secret_value().encode(),
            username=f"{role}-{suffix}",
            display_name=role,
            employee_id=employee_id or f"emp-{suffix}",
            role=role,
            department=department,
            now=clock.current,
        )
        token, row = await create_session(
            session,
            now=clock.current,
            kind="staff",
            role=role,
            staff_id=made.account.id,
            department_id=made.account.department_id,
        )
    return Visitor(token, row.csrf_token)


class _ConfigFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id") == "balie-config" and values.get("data-config") is not None:
            self.found.append(str(values["data-config"]))


def page_config(html: str) -> dict[str, Any]:
    """The call page's configuration as its script reads it (`dataset.config`, JSON)."""
    finder = _ConfigFinder()
    finder.feed(html)
    assert len(finder.found) == 1, f"{len(finder.found)} balie-config elements"
    config: dict[str, Any] = json.loads(finder.found[0])
    return config
