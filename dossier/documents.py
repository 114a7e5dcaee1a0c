"""Documents of a dossier: streamed in sealed, streamed out decrypted, never whole in memory.

No digest is computed on upload: AES-GCM already authenticates every segment, and the
SHA-256 that an archive needs (MDTO `checksum`, ZGW `integriteit`) is computed by the exporter
over the bytes it actually hands over, with the date it did so.

Storing is three steps so that a crash at any point leaves nothing visible:

    1. a `pending` row is committed (invisible to readers), naming a fresh blob reference;
    2. the sealed bytes are written to the blob store (temporary file, fsync, rename);
    3. the row is marked `complete` in a transaction that also records the audit event.

The blob writer holds its lock until step 3 has committed, so start-up recovery
(`recover_incomplete_documents`) removes exactly the rows and files of dead writers.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from dossier.crypto.records import RecordCipher
from dossier.crypto.stream import StreamHeader, decrypt_stream, encrypt_stream
from dossier.db import read_session
from dossier.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    DossierError,
    IntegrityError,
    InvalidInput,
    InvalidState,
)
from dossier.keys import load_data_key
from dossier.lookup import audit_access, get_live_dossier, record_dossier_event
from dossier.models import Document, DocumentState
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = [
    "DocumentInfo",
    "OpenedDocument",
    "list_documents",
    "open_document",
    "recover_incomplete_documents",
    "store_document",
]

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 255
# An upload's pending row exists a moment before its file does; see recover_incomplete_documents.
PENDING_GRACE = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A complete document as participants see it (its name decrypted)."""

    document_id: uuid.UUID
    dossier_id: uuid.UUID
    name: str
    media_type: str
    size: int
    uploaded_by_role: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OpenedDocument:
    """A document ready to stream: its metadata and its plaintext as an async iterator."""

    info: DocumentInfo
    content: AsyncIterator[bytes]


def _info(row: Document, cipher: RecordCipher) -> DocumentInfo:
    if row.plaintext_size is None:
        raise IntegrityError(f"document {row.id} is complete but lacks its size")
    name = cipher.open(record_id=row.id, kind="document:name", sealed=row.name_sealed)
    return DocumentInfo(
        document_id=row.id,
        dossier_id=row.dossier_id,
        name=name.decode("utf-8"),
        media_type=row.media_type,
        size=row.plaintext_size,
        uploaded_by_role=row.uploaded_by_role,
        created_at=row.created_at,
    )


async def _counted(
    source: AsyncIterable[bytes], counter: list[int], limit: int | None
) -> AsyncIterator[bytes]:
    async for chunk in source:
        counter[0] += len(chunk)
        if limit is not None and counter[0] > limit:
            # Stop reading at once: the rest of an oversized upload is never consumed.
            raise DocumentTooLarge(f"document is larger than the limit of {limit} bytes")
        yield chunk


async def store_document(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    name: str,
    media_type: str,
    content: AsyncIterable[bytes],
    max_size: int | None = None,
) -> DocumentInfo:
    """Seal `content` into the dossier as a new document and return its metadata.

    Raises DocumentTooLarge as soon as more than `max_size` bytes arrived (the row and the
    partial blob are removed), InvalidInput for a bad name, DossierDestroyed if the dossier
    was destroyed meanwhile. On any failure nothing of the document remains.
    """
    if not name or len(name) > MAX_NAME_CHARS or any(ord(c) < 0x20 for c in name):
        raise InvalidInput(f"document name must be 1 to {MAX_NAME_CHARS} printable characters")
    document_id, blob_ref = uuid.uuid4(), uuid.uuid4().hex
    async with store.sessions() as session, session.begin():
        await get_live_dossier(session, dossier_id)
        kek_id, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
        cipher = RecordCipher(dek, dossier_id)
        row = Document(
            id=document_id,
            dossier_id=dossier_id,
            state=DocumentState.PENDING,
            blob_ref=blob_ref,
            media_type=media_type,
            name_sealed=cipher.seal(
                record_id=document_id, kind="document:name", plaintext=name.encode("utf-8")
            ),
            kek_id=kek_id,
            segment_size=store.segment_size,
            uploaded_by_role=actor.role,
            uploaded_by_ref=actor.ref,
            created_at=await store.clock.now(session),
        )
        session.add(row)

    header = StreamHeader.new(
        dossier_id=dossier_id,
        document_id=document_id,
        key_id=kek_id,
        segment_size=store.segment_size,
    )
    counter = [0]
    try:
        async with store.blobs.writer(blob_ref) as writer:
            sealed_size = await writer.write_all(
                encrypt_stream(
                    _counted(content, counter, max_size), dek=dek, header=header, reuse_output=True
                )
            )
            async with store.sessions() as session, session.begin():
                current = await session.get(Document, document_id)
                if current is None:
                    await get_live_dossier(session, dossier_id)  # destroyed meanwhile?
                    raise InvalidState(f"upload of document {document_id} was discarded")
                now = await store.clock.now(session)
                current.state = DocumentState.COMPLETE
                current.plaintext_size, current.sealed_size = counter[0], sealed_size
                current.completed_at = now
                await record_dossier_event(
                    session,
                    at=now,
                    actor=actor,
                    action="document.stored",
                    dossier_id=dossier_id,
                    detail={"document": str(document_id), "size": counter[0]},
                )
            return _info(current, cipher)
    except BaseException as exc:
        # The writer already removed the blob; the pending row goes too.
        await _discard_pending(store, document_id)
        if isinstance(exc, DossierError):
            await audit_access(
                store, actor=actor, action="document.store", dossier_id=dossier_id, result=exc.code
            )
        raise


async def _discard_pending(store: DossierStore, document_id: uuid.UUID) -> None:
    async with store.sessions() as session, session.begin():
        row = await session.get(Document, document_id)
        if row is not None and row.state == DocumentState.PENDING:
            await session.delete(row)


async def open_document(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID, document_id: uuid.UUID
) -> OpenedDocument:
    """Open a complete document for streaming; the read is audited before any byte flows.

    The content iterator raises IntegrityError (and records the failed read) at the first
    segment that does not authenticate; it never yields unauthenticated bytes.
    """
    async with read_session(store.sessions) as session:
        await get_live_dossier(session, dossier_id)
        row = await session.get(Document, document_id)
        if row is None or row.dossier_id != dossier_id or row.state != DocumentState.COMPLETE:
            raise DocumentNotFound(f"no document {document_id} in dossier {dossier_id}")
        _, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
        now = await store.clock.now(session)
        try:
            info: DocumentInfo | None = _info(row, RecordCipher(dek, dossier_id))
        except IntegrityError:
            info = None

    async def record_refusal() -> None:
        await audit_access(
            store,
            actor=actor,
            action="document.read",
            dossier_id=dossier_id,
            result="integrity_error",
        )

    if info is None:
        await record_refusal()
        raise IntegrityError(f"document {document_id} metadata does not authenticate")
    await audit_access(
        store,
        at=now,
        actor=actor,
        action="document.read",
        dossier_id=dossier_id,
        detail={"document": str(document_id)},
    )

    async def content() -> AsyncIterator[bytes]:
        try:
            try:
                async with store.blobs.reader(row.blob_ref) as reader:
                    async for piece in decrypt_stream(
                        reader, dek=dek, dossier_id=dossier_id, document_id=document_id
                    ):
                        yield piece
            except FileNotFoundError:
                raise IntegrityError(f"document {document_id} has no stored content") from None
        except IntegrityError:
            await record_refusal()
            raise

    return OpenedDocument(info=info, content=content())


async def list_documents(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID
) -> list[DocumentInfo]:
    """The complete documents of the dossier, oldest first (names decrypted; audited)."""
    async with read_session(store.sessions) as session:
        await get_live_dossier(session, dossier_id)
        _, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
        query = (
            select(Document)
            .where(col(Document.dossier_id) == dossier_id)
            .where(col(Document.state) == DocumentState.COMPLETE)
            .order_by(col(Document.created_at), col(Document.id))
        )
        cipher = RecordCipher(dek, dossier_id)
        infos = [_info(row, cipher) for row in (await session.execute(query)).scalars()]
        now = await store.clock.now(session)
    await audit_access(
        store,
        at=now,
        actor=actor,
        action="document.listed",
        dossier_id=dossier_id,
        detail={"documents": len(infos)},
    )
    return infos


async def recover_incomplete_documents(
    store: DossierStore, *, actor: Actor, grace: dt.timedelta = PENDING_GRACE
) -> int:
    """Remove what crashed uploads left: their pending rows and partial files.

    A pending row whose blob (partial or whole) exists with no live writer holding it belongs
    to a dead writer. A pending row with no file at all may be an upload that is just starting
    in another process, so it is removed only once older than `grace`. Returns rows removed.
    """
    async with store.sessions() as session:
        now = await store.clock.now(session)
        query = select(Document).where(col(Document.state) == DocumentState.PENDING)
        pending = list((await session.execute(query)).scalars())
    removed = 0
    for row in pending:
        if store.blobs.is_being_written(row.blob_ref):
            continue
        if not store.blobs.has_data(row.blob_ref) and now - row.created_at < grace:
            continue
        await store.blobs.delete(row.blob_ref)
        async with store.sessions() as session, session.begin():
            current = await session.get(Document, row.id)
            if current is None or current.state != DocumentState.PENDING:
                continue
            await session.delete(current)
            await record_dossier_event(
                session,
                at=await store.clock.now(session),
                actor=actor,
                action="document.discarded_incomplete",
                dossier_id=row.dossier_id,
                detail={"document": str(row.id)},
            )
        removed += 1
    await store.blobs.remove_leftovers()
    if removed:
        log.info("removed %d documents whose upload was interrupted", removed)
    return removed
