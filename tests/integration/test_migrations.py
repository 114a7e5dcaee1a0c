"""The schema comes from Alembic migrations, and they agree with the models."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import dossier.models  # noqa: F401  (registers tables)
import identity.models  # noqa: F401
import retention.models  # noqa: F401
from dossier.db import create_engine
from server.migrate import _config, current_revision, head_revision, upgrade_to_head


async def test_models_and_migrations_agree(engine):
    def diff(connection):
        return compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}),
            SQLModel.metadata,
        )

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == [], f"models differ from migrations: {changes}"


async def test_upgrade_is_idempotent_and_reaches_head(database_url):
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade_to_head(engine)
        await upgrade_to_head(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_back(engine):
    def down(connection):
        config = _config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    async with engine.begin() as conn:
        await conn.run_sync(down)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await upgrade_to_head(engine)
    assert await current_revision(engine) == head_revision()


@pytest.mark.parametrize("table", ["dossiers", "data_keys", "audit_events", "tombstones"])
async def test_tables_exist_after_migration(engine, table):
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert table in tables
