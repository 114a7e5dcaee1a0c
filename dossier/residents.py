"""The resident's BSN in the dossier: sealed, and only for services that need it."""

from __future__ import annotations

import datetime as dt
import uuid

from dossier.crypto.records import RecordCipher
from dossier.db import read_session
from dossier.keys import load_data_key
from dossier.lookup import audit_access, get_live_dossier, record_dossier_event
from dossier.models import ResidentIdentity
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["read_resident_bsn", "record_resident_bsn"]

_KIND = "resident:bsn"


async def record_resident_bsn(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID, bsn: str, level_of_assurance: str
) -> None:
    """Seal the BSN into the dossier (replacing an earlier one); the audit names no BSN."""
    async with store.sessions() as session, session.begin():
        await get_live_dossier(session, dossier_id)
        _, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
        now = await store.clock.now(session)
        sealed = RecordCipher(dek, dossier_id).seal(
            record_id=dossier_id, kind=_KIND, plaintext=bsn.encode("ascii")
        )
        row = await session.get(ResidentIdentity, dossier_id)
        if row is None:
            row = ResidentIdentity(
                dossier_id=dossier_id, sealed_bsn=sealed, level_of_assurance=level_of_assurance,
                recorded_at=now,
            )  # fmt: skip
            session.add(row)
        else:
            row.sealed_bsn, row.level_of_assurance, row.recorded_at = (
                sealed,
                level_of_assurance,
                now,
            )
        await record_dossier_event(
            session, at=now, actor=actor, action="resident.identified", dossier_id=dossier_id,
            detail={"level_of_assurance": level_of_assurance},
        )  # fmt: skip


async def read_resident_bsn(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID
) -> tuple[str, str, dt.datetime] | None:
    """(BSN, level of assurance, when) if the dossier holds one; the read is audited."""
    async with read_session(store.sessions) as session:
        await get_live_dossier(session, dossier_id)
        row = await session.get(ResidentIdentity, dossier_id)
        if row is None:
            return None
        _, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
        bsn = RecordCipher(dek, dossier_id).open(
            record_id=dossier_id, kind=_KIND, sealed=row.sealed_bsn
        )
        now = await store.clock.now(session)
    await audit_access(
        store, at=now, actor=actor, action="resident.bsn_read", dossier_id=dossier_id
    )
    return bsn.decode("ascii"), row.level_of_assurance, row.recorded_at
