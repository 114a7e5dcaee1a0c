"""Shared fixtures: a real database per test (SQLite, or PostgreSQL when
BALIE_TEST_DATABASE_URL is set), the real store over it, and a clock the tests move."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.appointments import BookedAppointment, ensure_department, ensure_service_type
from dossier.db import ManualClock, create_engine
from dossier.store import DossierStore
from server.migrate import upgrade_to_head
from server.resources import make_store
from server.settings import Settings

from support import book

PG_URL = os.environ.get("BALIE_TEST_DATABASE_URL", "")


def pytest_report_header() -> str:
    return f"balie database: {'postgresql' if PG_URL else 'sqlite'}"


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database for this test only."""
    if not PG_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'balie.db'}"
        return
    name = f"balie_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "var",
        database_url=database_url,
        host="127.0.0.1",
        port=0,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.resolved_database_url)
    await upgrade_to_head(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(
    settings: Settings, engine: AsyncEngine, clock: ManualClock
) -> AsyncIterator[DossierStore]:
    store = make_store(settings, engine, clock)
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="burgerzaken", name="Burgerzaken")
        await ensure_service_type(
            session,
            code="geboorteaangifte",
            label="Geboorteaangifte",
            selectielijst="7",
            needs_bsn=True,
        )
        await ensure_service_type(session, code="kort", label="Kort bewaard", retention_days=30)
    yield store
    await store.audit.close()


@pytest.fixture
async def booked(store: DossierStore, clock: ManualClock) -> BookedAppointment:
    return await book(store, clock)


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BALIE_* variable of the developer's shell leaks into Settings()."""
    for key in list(os.environ):
        if key.startswith("BALIE_") and key != "BALIE_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
