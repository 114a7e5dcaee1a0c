"""A dossier's data key: created with the dossier, unwrapped on use, deleted to shred it."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.crypto.envelope import new_data_key, unwrap_data_key, wrap_data_key
from dossier.crypto.keyring import Keyring
from dossier.errors import DossierDestroyed
from dossier.models import DataKey

__all__ = ["create_data_key", "load_data_key"]


async def create_data_key(
    session: AsyncSession, *, keyring: Keyring, dossier_id: uuid.UUID, now: dt.datetime
) -> str:
    """Make the dossier's DEK and store it wrapped by the KEK of the current month; returns
    that KEK's id."""
    kek_id, kek = keyring.key_for_wrapping(now)
    wrapped = wrap_data_key(kek=kek, kek_id=kek_id, dossier_id=dossier_id, dek=new_data_key())
    session.add(DataKey(dossier_id=dossier_id, kek_id=kek_id, wrapped=wrapped, created_at=now))
    return kek_id


async def load_data_key(
    session: AsyncSession, *, keyring: Keyring, dossier_id: uuid.UUID
) -> tuple[str, bytes]:
    """The dossier's KEK id and unwrapped DEK.

    Raises DossierDestroyed when the key is gone (the dossier is being shredded),
    KeyUnavailable when its KEK is missing, IntegrityError when the wrapped key was altered.
    """
    row = await session.get(DataKey, dossier_id)
    if row is None:
        raise DossierDestroyed(f"dossier {dossier_id} has been destroyed")
    kek = keyring.get(row.kek_id)
    return row.kek_id, unwrap_data_key(
        kek=kek, kek_id=row.kek_id, dossier_id=dossier_id, wrapped=row.wrapped
    )
