"""Signaling across processes: two hubs on one PostgreSQL, and two real Balie servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import urllib.request

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from dossier.models import Dossier, DossierState
from identity.accounts import add_local_account
from identity.sessions import SESSION_COOKIE, create_session
from server.signaling.pghub import PostgresHub

from support import book, free_port

PG_URL = os.environ.get("BALIE_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="LISTEN/NOTIFY needs PostgreSQL")
PUBLIC = "https://balie.test"


def dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_two_hubs_carry_small_and_large_envelopes(database_url):
    one, two = PostgresHub(dsn(database_url)), PostgresHub(dsn(database_url))
    await one.start()
    await two.start()
    try:
        async with (
            two.subscribe("call-1", "b") as inbox,
            two.subscribe("call-1", "c") as bystander,
            two.subscribe("call-2", "b") as elsewhere,
        ):
            small = {"from": "a", "to": "b", "message": {"type": "ice", "candidate": None}}
            # An offer far over NOTIFY's 8000 bytes, with characters JSON must escape.
            sdp = "v=0\r\n" + ('a=candidate:é "q" \\ ' * 2000)
            large = {"from": "a", "to": "b", "message": {"type": "offer", "sdp": sdp}}
            await one.publish("call-1", small)
            await one.publish("call-1", large)
            async with asyncio.timeout(5):
                assert await inbox.get() == small
                assert await inbox.get() == large
            assert elsewhere.empty()
            assert bystander.empty()  # addressed to b: c's socket is not even woken
    finally:
        await one.close()
        await two.close()


def start_server(settings, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    env.update(
        BALIE_ENVIRONMENT="test",
        BALIE_DATA_DIR=str(settings.data_dir),
        BALIE_DATABASE_URL=settings.resolved_database_url,
        BALIE_PUBLIC_URL=PUBLIC,  # both behind one balancer: the same public origin
    )
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server on port {port} did not become ready")


async def expect(ws, kind: str, **fields) -> dict:
    async with asyncio.timeout(10):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message


async def test_resident_and_clerk_on_different_processes(settings, store, clock):
    # The servers run on the database clock, so their sessions must be fresh by that clock,
    # and the dossier too: one booked on the test clock's date is months past its deadline
    # by the real one, and the servers' start-up sweep would destroy it (410 on joining).
    real_now = dt.datetime.now(dt.UTC)
    clock.current = real_now
    booked = await book(store, clock)
    secret = settings.secret_key.get_secret_value().encode()
    async with store.sessions() as session, session.begin():
        clerk = (
            await add_local_account(
                session,
                secret_key=secret,
                username="anna",
                display_name="Anna",
                employee_id="emp-anna",
                role="clerk",
                department="burgerzaken",
                now=clock.current,
                password="x" * 16,
            )
        ).account
        clerk_token, _ = await create_session(
            session, now=real_now, kind="staff", role="clerk", staff_id=clerk.id,
            department_id=clerk.department_id,
        )  # fmt: skip
        resident_token, _ = await create_session(
            session, now=real_now, kind="resident", role="resident",
            appointment_id=booked.appointment.id, resident_pseudonym="p-resident",
        )  # fmt: skip
    ports = [free_port(), free_port()]
    servers = [start_server(settings, port) for port in ports]
    try:
        for port in ports:
            await asyncio.to_thread(wait_ready, port)
        async with aiohttp.ClientSession() as http:

            async def join(port: int, token: str):
                ws = await http.ws_connect(
                    f"http://127.0.0.1:{port}/ws/calls/{booked.dossier.id}",
                    headers={"Cookie": f"{SESSION_COOKIE}={token}", "Origin": PUBLIC},
                )
                return ws, await ws.receive_json()

            clerk_ws, clerk_hello = await join(ports[1], clerk_token)
            resident_ws, hello = await join(ports[0], resident_token)
            await expect(clerk_ws, "participant", id=hello["you"], status="joined")
            await resident_ws.send_json({"type": "knock"})
            await expect(clerk_ws, "participant", id=hello["you"], status="waiting")
            await clerk_ws.send_json({"type": "admit", "participant": hello["you"]})
            await expect(resident_ws, "admitted")
            await resident_ws.send_json(
                {"type": "offer", "to": clerk_hello["you"], "sdp": "v=0\r\n" + "a=x\r\n" * 3000}
            )
            offer = await expect(clerk_ws, "offer")
            assert offer["from"] == hello["you"]
            assert len(offer["sdp"]) > 8000
            await resident_ws.send_json({"type": "chat", "text": "over twee processen"})
            assert (await expect(clerk_ws, "chat"))["text"] == "over twee processen"
            await resident_ws.close()
            await clerk_ws.close()
        async with store.sessions() as session:
            assert (await session.get(Dossier, booked.dossier.id)).state == DossierState.IN_CALL
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=20)
