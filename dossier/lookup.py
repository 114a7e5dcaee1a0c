"""Finding a dossier (with the right error if it was destroyed) and auditing what is done to it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.errors import DossierDestroyed, DossierNotFound
from dossier.models import Dossier, DossierState, Tombstone, TombstoneOutcome
from dossier.store import DossierStore
from retention.audit import Actor, record_event

__all__ = ["audit_access", "get_dossier", "get_live_dossier", "record_dossier_event"]


async def get_dossier(session: AsyncSession, dossier_id: uuid.UUID) -> Dossier:
    """The dossier row; DossierDestroyed if only its tombstone remains, else DossierNotFound."""
    dossier = await session.get(Dossier, dossier_id)
    if dossier is not None:
        return dossier
    tombstone = await session.get(Tombstone, dossier_id)
    if tombstone is not None:
        when = f"{tombstone.removed_at:%Y-%m-%d %H:%M} UTC"
        if tombstone.outcome == TombstoneOutcome.EXPORTED:
            where = tombstone.export_target or "the record system"
            raise DossierDestroyed(f"dossier {dossier_id} was exported ({where}, {when}); "
                                   "only its tombstone remains here")  # fmt: skip
        raise DossierDestroyed(f"dossier {dossier_id} was destroyed ({when})")
    raise DossierNotFound(f"no dossier with id {dossier_id}")


async def get_live_dossier(session: AsyncSession, dossier_id: uuid.UUID) -> Dossier:
    """Like get_dossier, but a dossier whose destruction has begun counts as destroyed."""
    dossier = await get_dossier(session, dossier_id)
    if dossier.state in (DossierState.DESTROYING, DossierState.CANCELLED):
        raise DossierDestroyed(f"dossier {dossier_id} is being destroyed")
    return dossier


async def record_dossier_event(
    session: AsyncSession,
    *,
    at: dt.datetime,
    actor: Actor,
    action: str,
    dossier_id: uuid.UUID,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Audit a change to the dossier inside the transaction that makes it."""
    await record_event(
        session,
        at=at,
        actor=actor,
        action=action,
        object_type="dossier",
        object_ref=str(dossier_id),
        detail=detail,
    )


async def audit_access(
    store: DossierStore,
    *,
    actor: Actor,
    action: str,
    dossier_id: uuid.UUID,
    at: dt.datetime | None = None,
    result: str = "ok",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Audit a read of the dossier, or an attempt that failed, as an event on its own.

    Reads record before anything is shown: if recording fails, nothing is.
    """
    await store.audit.append(
        at=at or await store.now(),
        actor=actor,
        action=action,
        object_type="dossier",
        object_ref=str(dossier_id),
        result=result,
        detail=detail,
    )
