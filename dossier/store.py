"""What the dossier services need from the outside world, bundled once per application."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.blobstore import BlobStore
from dossier.crypto.keyring import Keyring
from dossier.crypto.stream import DEFAULT_SEGMENT_SIZE
from dossier.db import Clock
from retention.auditlog import AuditLog

__all__ = ["DossierStore"]


@dataclass(frozen=True, slots=True)
class DossierStore:
    """Sessions, audit log, keyring, blob store and clock: what every dossier service needs.

    Services that finish in one transaction still take a session of their own from
    `sessions`; those that span steps (storing a document, destroying a dossier) commit
    between steps so that each step is durable before the next begins.
    """

    sessions: async_sessionmaker[AsyncSession]
    audit: AuditLog
    keyring: Keyring
    blobs: BlobStore
    clock: Clock
    segment_size: int = DEFAULT_SEGMENT_SIZE

    async def now(self) -> dt.datetime:
        """The clock's now, for callers that have no session of their own at hand."""
        async with self.sessions() as session:
            return await self.clock.now(session)
