"""Export over HTTP: who may, what may be exported, following the job, the package download."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import uuid
import zipfile

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from dossier.appointments import create_appointment, ensure_department
from dossier.calls import admit, end_call, knock
from dossier.chat import append_chat_message
from dossier.export.verify import verify_package
from dossier.models import TombstoneOutcome
from dossier.shredding import destroy_dossier
from identity.accounts import add_local_account
from identity.sessions import SESSION_COOKIE, create_session
from server.app import create_app
from server.scheduler import prune_packages

from support import CLERK, RESIDENT, book


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    return await aiohttp_client(create_app(settings, clock=clock))


async def session_headers(store, clock, settings, **fields) -> dict[str, str]:
    async with store.sessions() as session, session.begin():
        token, row = await create_session(session, now=clock.current, **fields)
    return {
        "Cookie": f"{SESSION_COOKIE}={token}",
        "Origin": settings.public_origin,
        "X-CSRF-Token": row.csrf_token,
    }


async def clerk_in(store, clock, settings, department: str) -> dict[str, str]:
    """Headers of a signed-in clerk (a real local account) of `department`."""
    async with store.sessions() as session, session.begin():
        made = await add_local_account(
            session, secret_key=settings.secret_key.get_secret_value().encode(),
            username=f"clerk-{uuid.uuid4().hex[:8]}", display_name="Clerk",
            employee_id=f"emp-{uuid.uuid4().hex[:6]}", role="clerk", department=department,
            now=clock.current,
        )  # fmt: skip
    return await session_headers(
        store, clock, settings, kind="staff", role="clerk", staff_id=made.account.id,
        department_id=made.account.department_id,
    )  # fmt: skip


async def clerk_of(store, clock, settings, booked):
    return await clerk_in(store, clock, settings, "burgerzaken")


async def ended(store, clock):
    booked = await book(store, clock)
    await knock(store, actor=RESIDENT, dossier_id=booked.dossier.id)
    await admit(store, actor=CLERK, dossier_id=booked.dossier.id)
    await append_chat_message(store, actor=RESIDENT, dossier_id=booked.dossier.id, text="Hallo")
    await end_call(store, actor=CLERK, dossier_id=booked.dossier.id)
    return booked


async def finished(client, headers, export_id: str) -> dict:
    async with asyncio.timeout(20):
        while True:
            body = await (await client.get(f"/api/exports/{export_id}", headers=headers)).json()
            if body["state"] in ("done", "failed"):
                return body
            await asyncio.sleep(0.05)


async def test_a_package_export_ends_with_a_signed_package_and_a_shredded_dossier(
    client, store, clock, settings
):
    booked = await ended(store, clock)
    headers = await clerk_of(store, clock, settings, booked)
    response = await client.post(
        f"/api/dossiers/{booked.dossier.id}/exports", json={"target": "package"}, headers=headers
    )
    assert response.status == 202
    job = await finished(client, headers, (await response.json())["id"])
    assert job["state"] == "done", job
    package = await client.get(job["download_url"], headers=headers)
    assert package.status == 200
    assert package.headers["Content-Type"] == "application/zip"
    data = await package.read()
    key = load_pem_public_key((await (await client.get("/api/export-key")).text()).encode())
    path = settings.resolved_export_dir / f"check-{booked.dossier.id}.zip"
    path.write_bytes(data)
    verify_package(path, key)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "Hallo" in archive.read("transcript.html").decode()
    gone = await client.get(f"/api/dossiers/{booked.dossier.id}", headers=headers)
    assert gone.status == 410
    again = await client.post(
        f"/api/dossiers/{booked.dossier.id}/exports", json={"target": "package"}, headers=headers
    )
    assert again.status == 410
    assert "was exported (package" in (await again.json())["message"]


async def test_refusals_name_the_reason(client, store, clock, settings):
    booked = await book(store, clock)
    headers = await clerk_of(store, clock, settings, booked)
    url = f"/api/dossiers/{booked.dossier.id}/exports"
    not_ended = await client.post(url, json={"target": "package"}, headers=headers)
    assert not_ended.status == 409
    assert "end the call" in (await not_ended.json())["message"]

    done = await ended(store, clock)
    url = f"/api/dossiers/{done.dossier.id}/exports"
    for body, phrase in (
        ({"target": "zgw", "zaak": "Z-1"}, "not configured"),
        ({"target": "ftp"}, "target"),
        ({"target": "package", "extra": 1}, "extra"),
    ):
        response = await client.post(url, json=body, headers=headers)
        assert response.status == 422, body
        assert phrase in (await response.json())["message"]

    async with store.sessions() as session, session.begin():
        other = await ensure_department(session, code="belastingen", name="Belastingen")
    elsewhere = await clerk_in(store, clock, settings, other.code)
    forbidden = await client.post(url, json={"target": "package"}, headers=elsewhere)
    assert forbidden.status == 403
    resident = await session_headers(
        store, clock, settings, kind="resident", role="resident",
        appointment_id=done.appointment.id, resident_pseudonym="p",
    )  # fmt: skip
    assert (await client.post(url, json={"target": "package"}, headers=resident)).status == 403
    no_csrf = {k: v for k, v in headers.items() if k != "X-CSRF-Token"}
    assert (await client.post(url, json={"target": "package"}, headers=no_csrf)).status == 403

    await destroy_dossier(
        store, actor=CLERK, dossier_id=done.dossier.id,
        outcome=TombstoneOutcome.DESTROYED_BY_OPERATOR,
    )  # fmt: skip
    gone = await client.post(url, json={"target": "package"}, headers=headers)
    assert gone.status == 410


async def test_only_the_department_follows_and_downloads_its_exports(
    client, store, clock, settings
):
    booked = await ended(store, clock)
    headers = await clerk_of(store, clock, settings, booked)
    response = await client.post(
        f"/api/dossiers/{booked.dossier.id}/exports", json={"target": "package"}, headers=headers
    )
    job = await finished(client, headers, (await response.json())["id"])
    async with store.sessions() as session, session.begin():
        other = await ensure_department(session, code="belastingen", name="Belastingen")
    elsewhere = await clerk_in(store, clock, settings, other.code)
    assert (await client.get(f"/api/exports/{job['id']}", headers=elsewhere)).status == 403
    assert (await client.get(job["download_url"], headers=elsewhere)).status == 403
    assert (await client.get(job["download_url"])).status == 401
    assert (await client.get("/api/exports/not-an-id", headers=headers)).status == 404
    page = await client.get(f"/balie/export/{job['id']}", headers=headers)
    assert page.status == 200
    assert "Pakket downloaden" in await page.text()


async def test_another_departments_appointment_cannot_be_exported_by_guessing(
    client, store, clock, settings
):
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="belastingen", name="Belastingen")
    theirs = await create_appointment(
        store, actor=CLERK, department="belastingen", service_type="geboorteaangifte",
        starts_at=clock.current, ends_at=clock.current + dt.timedelta(minutes=30),
    )  # fmt: skip
    mine = await book(store, clock)
    headers = await clerk_of(store, clock, settings, mine)
    response = await client.post(
        f"/api/dossiers/{theirs.dossier.id}/exports", json={"target": "package"}, headers=headers
    )
    assert response.status == 403


async def test_packages_are_removed_after_their_hours(client, settings, clock):
    """A package holds the dossier in the clear: it does not stay longer than it must."""
    folder = settings.resolved_export_dir
    folder.mkdir(parents=True, exist_ok=True)
    old, new = folder / "old.zip", folder / "new.zip"
    old.write_bytes(b"PK")
    new.write_bytes(b"PK")
    now = clock.current.timestamp()
    hours = settings.export_package_hours
    os.utime(old, (now - (hours + 1) * 3600,) * 2)
    os.utime(new, (now - (hours - 1) * 3600,) * 2)
    assert await prune_packages(client.app) == 1
    assert not old.exists()
    assert new.exists()
