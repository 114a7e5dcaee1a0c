"""Documents through the encrypted store, against a real database and blob directory."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlmodel import col

from dossier.appointments import BookedAppointment
from dossier.blobstore import LocalBlobStore
from dossier.db import ManualClock
from dossier.documents import list_documents, open_document, store_document
from dossier.errors import DocumentNotFound, DocumentTooLarge, IntegrityError, InvalidInput
from dossier.models import Document
from dossier.store import DossierStore
from retention.audit import verify_chain
from retention.models import AuditEvent

from support import CLERK, RESIDENT, book, chunks, collect, engine_of

MIB = 1 << 20


async def put(store: DossierStore, booked: BookedAppointment, data: bytes, name: str = "akte.pdf"):
    return await store_document(
        store,
        actor=RESIDENT,
        dossier_id=booked.dossier.id,
        name=name,
        media_type="application/pdf",
        content=chunks(data),
    )


async def read(store: DossierStore, booked: BookedAppointment, document_id) -> bytes:
    opened = await open_document(
        store, actor=CLERK, dossier_id=booked.dossier.id, document_id=document_id
    )
    return await collect(opened.content)


def blob_path(store: DossierStore, blob_ref: str) -> Path:
    assert isinstance(store.blobs, LocalBlobStore)
    return store.blobs.path(blob_ref)


async def blob_ref_of(store: DossierStore, document_id) -> str:
    async with store.sessions() as session:
        row = await session.get(Document, document_id)
    assert row is not None
    return row.blob_ref


@pytest.mark.parametrize("size", [0, 1, MIB, MIB + 1, 5 * MIB + 3])
async def test_round_trip_at_segment_boundaries(store, booked, size):
    data = os.urandom(size)
    info = await put(store, booked, data)
    assert info.size == size
    assert await read(store, booked, info.document_id) == data
    # What lies on disk is not the plaintext.
    sealed = blob_path(store, await blob_ref_of(store, info.document_id)).read_bytes()
    if size >= 16:
        assert data[:16] not in sealed


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(size=st.integers(min_value=0, max_value=2000), segment=st.integers(16, 96))
async def test_round_trip_any_size_and_segment(store, booked, size, segment):
    data = random.Random(size).randbytes(size)
    small = dataclasses.replace(store, segment_size=segment)
    info = await put(small, booked, data)
    assert await read(small, booked, info.document_id) == data


async def test_name_and_digest_are_kept_encrypted(store, booked):
    info = await put(store, booked, b"%PDF-1.7 inhoud", name="geboorteakte-Jansen.pdf")
    async with store.sessions() as session:
        row = await session.get(Document, info.document_id)
    assert row is not None
    assert b"Jansen" not in row.name_sealed
    assert info.name == "geboorteakte-Jansen.pdf"
    listed = await list_documents(store, actor=CLERK, dossier_id=booked.dossier.id)
    assert [d.name for d in listed] == ["geboorteakte-Jansen.pdf"]


async def test_flipped_byte_raises_integrity_error_without_plaintext(store, booked):
    data = os.urandom(1000)
    info = await put(store, booked, data)
    path = blob_path(store, await blob_ref_of(store, info.document_id))
    sealed = bytearray(path.read_bytes())
    sealed[-100] ^= 0x01
    path.write_bytes(bytes(sealed))
    opened = await open_document(
        store, actor=CLERK, dossier_id=booked.dossier.id, document_id=info.document_id
    )
    received = []
    with pytest.raises(IntegrityError, match="segment 0"):
        async for piece in opened.content:
            received.append(piece)
    assert received == []
    # The failed read is on record.
    async with store.sessions() as session:
        results = (await session.execute(select(AuditEvent.result))).scalars().all()
    assert "integrity_error" in results


async def test_segment_spliced_from_another_document_is_detected(store, booked):
    small = dataclasses.replace(store, segment_size=64)
    first = await put(small, booked, b"A" * 300)
    second = await put(small, booked, b"B" * 300)
    a = blob_path(store, await blob_ref_of(store, first.document_id))
    b = blob_path(store, await blob_ref_of(store, second.document_id))
    sealed_a, sealed_b = a.read_bytes(), b.read_bytes()
    header = len(sealed_a) - (300 + 5 * 16)
    seg = 64 + 16
    # Replace segment 1 of A with segment 1 of B (same index, same dossier key).
    spliced = sealed_a[: header + seg] + sealed_b[header + seg : header + 2 * seg]
    spliced += sealed_a[header + 2 * seg :]
    a.write_bytes(spliced)
    opened = await open_document(
        small, actor=CLERK, dossier_id=booked.dossier.id, document_id=first.document_id
    )
    received = []
    with pytest.raises(IntegrityError, match="segment 1"):
        async for piece in opened.content:
            received.append(piece)
    assert b"".join(received) == b"A" * 64  # only the authentic first segment


async def test_document_moved_to_another_dossier_does_not_open(store, clock: ManualClock, booked):
    other = await book(store, clock)
    info = await put(store, booked, b"%PDF- vertrouwelijk")
    async with store.sessions() as session, session.begin():
        await session.execute(
            update(Document)
            .where(col(Document.id) == info.document_id)
            .values(dossier_id=other.dossier.id)
        )
    with pytest.raises(IntegrityError):
        await read(store, other, info.document_id)


async def test_oversized_upload_stops_early_and_leaves_nothing(store, booked):
    pulled = 0

    async def endless():
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 65536

    with pytest.raises(DocumentTooLarge, match="1000000 bytes"):
        await store_document(
            store,
            actor=RESIDENT,
            dossier_id=booked.dossier.id,
            name="groot.pdf",
            media_type="application/pdf",
            content=endless(),
            max_size=1_000_000,
        )
    assert pulled == 1_000_000 // 65536 + 1  # stopped at the first chunk over the limit
    async with store.sessions() as session:
        assert (await session.execute(select(Document))).first() is None
    blobs = store.blobs
    assert isinstance(blobs, LocalBlobStore)
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == []
    assert (await verify_chain(engine_of(store))).ok


async def test_failing_upload_source_leaves_nothing(store, booked):
    async def broken():
        yield b"%PDF-" + b"1" * 5000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store_document(
            store,
            actor=RESIDENT,
            dossier_id=booked.dossier.id,
            name="half.pdf",
            media_type="application/pdf",
            content=broken(),
        )
    assert await list_documents(store, actor=CLERK, dossier_id=booked.dossier.id) == []
    async with store.sessions() as session:
        assert (await session.execute(select(Document))).first() is None


@pytest.mark.parametrize("name", ["", "a" * 256, "evil\nname.pdf"])
async def test_bad_document_names_are_refused(store, booked, name):
    with pytest.raises(InvalidInput, match="document name"):
        await put(store, booked, b"x", name=name)


async def test_unknown_document_and_wrong_dossier(store, clock, booked):
    info = await put(store, booked, b"x")
    other = await book(store, clock)
    import uuid

    with pytest.raises(DocumentNotFound):
        await read(store, booked, uuid.uuid4())
    with pytest.raises(DocumentNotFound):
        await read(store, other, info.document_id)
