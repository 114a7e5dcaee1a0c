"""What every `balie` command shares: settings, resources opened and closed around one piece
of work, domain errors turned into messages, and the operator named in the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier import errors as dossier_errors
from dossier.db import DatabaseClock
from dossier.store import DossierStore
from identity import errors as identity_errors
from retention import errors as retention_errors
from retention.audit import Actor
from server.migrate import upgrade_to_head
from server.resources import make_store, open_engine
from server.settings import Settings

__all__ = ["Resources", "load_settings", "operator_of", "run"]

T = TypeVar("T")
_DOMAIN_ERRORS = (
    dossier_errors.DossierError,
    identity_errors.IdentityError,
    retention_errors.RetentionError,
)


def load_settings() -> Settings:
    """The settings from the environment; a bad value is a message, not a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    store: DossierStore


def run(
    work: Callable[[Resources], Coroutine[Any, Any, T]],
    *,
    migrate: bool = True,
    settings: Settings | None = None,
) -> T:
    """Open engine and store, run `work`, close everything; domain errors become messages."""

    async def runner() -> T:
        nonlocal settings
        settings = settings or load_settings()
        engine = open_engine(settings)
        try:
            if migrate:
                await upgrade_to_head(engine)
            store = make_store(settings, engine, DatabaseClock())
            try:
                return await work(Resources(settings, engine, store))
            finally:
                await store.audit.close()
        finally:
            await engine.dispose()

    try:
        return asyncio.run(runner())
    except _DOMAIN_ERRORS as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None


def operator_of(ctx: click.Context) -> Actor:
    """The operator named with `balie --operator NAME`, as recorded in the audit log."""
    return Actor.operator(ctx.find_root().params.get("operator") or "cli")
