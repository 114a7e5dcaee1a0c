"""Building the long-lived resources from settings, shared by the app and the CLI."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.blobstore import LocalBlobStore
from dossier.crypto.keyring import FileKeyring
from dossier.db import Clock, create_engine, make_sessionmaker
from dossier.documents import recover_incomplete_documents
from dossier.shredding import finish_interrupted_destructions
from dossier.store import DossierStore
from retention.audit import Actor
from retention.auditlog import AuditLog
from server.settings import Settings

__all__ = ["make_store", "open_engine", "recover"]


def open_engine(settings: Settings) -> AsyncEngine:
    """The database engine; creates the data directory for the default SQLite file."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_engine(settings.resolved_database_url)


def make_store(settings: Settings, engine: AsyncEngine, clock: Clock) -> DossierStore:
    """The dossier store over `engine`, with the keyring and blob store from settings.

    The caller closes `store.audit` when done (it may own a thread and a connection).
    """
    return DossierStore(
        sessions=make_sessionmaker(engine),
        audit=AuditLog(engine),
        # Only dev/test mint KEKs on demand; production needs `balie keys create` beforehand.
        keyring=FileKeyring(settings.resolved_key_dir, create_missing=settings.is_development),
        blobs=LocalBlobStore(settings.resolved_blob_dir),
        clock=clock,
        segment_size=settings.document_segment_size,
    )


async def recover(store: DossierStore) -> None:
    """Finish what a crash interrupted: partial uploads and half-done destructions."""
    startup = Actor.system("startup")
    await recover_incomplete_documents(store, actor=startup)
    await finish_interrupted_destructions(store, actor=startup)
