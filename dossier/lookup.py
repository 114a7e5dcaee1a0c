"""Finding a dossier that may have been destroyed, with the right error if it has."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.errors import DossierDestroyed, DossierNotFound
from dossier.models import Dossier, DossierState, Tombstone
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["get_dossier", "get_live_dossier", "record_failure"]


async def get_dossier(session: AsyncSession, dossier_id: uuid.UUID) -> Dossier:
    """The dossier row; DossierDestroyed if only its tombstone remains, else DossierNotFound."""
    dossier = await session.get(Dossier, dossier_id)
    if dossier is not None:
        return dossier
    if await session.get(Tombstone, dossier_id) is not None:
        raise DossierDestroyed(f"dossier {dossier_id} has been destroyed or exported")
    raise DossierNotFound(f"no dossier with id {dossier_id}")


async def get_live_dossier(session: AsyncSession, dossier_id: uuid.UUID) -> Dossier:
    """Like get_dossier, but a dossier whose destruction has begun counts as destroyed."""
    dossier = await get_dossier(session, dossier_id)
    if dossier.state in (DossierState.DESTROYING, DossierState.CANCELLED):
        raise DossierDestroyed(f"dossier {dossier_id} is being destroyed")
    return dossier


async def record_failure(
    store: DossierStore, *, actor: Actor, action: str, dossier_id: uuid.UUID, result: str
) -> None:
    """Audit an access that failed, on its own (the failed transaction rolled back)."""
    async with store.sessions() as session:
        now = await store.clock.now(session)
    await store.audit.append(
        at=now,
        actor=actor,
        action=action,
        object_type="dossier",
        object_ref=str(dossier_id),
        result=result,
    )
