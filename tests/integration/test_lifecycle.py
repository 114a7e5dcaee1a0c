"""Appointments, deadlines, chat, cancel and destroy: the dossier's life as users see it."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from sqlmodel import col

from dossier.appointments import cancel_appointment, ensure_service_type
from dossier.chat import append_chat_message, list_chat_messages
from dossier.crypto.envelope import unwrap_data_key
from dossier.crypto.stream import decrypt_stream
from dossier.documents import list_documents, open_document, store_document
from dossier.errors import (
    DossierDestroyed,
    DossierNotFound,
    IntegrityError,
    InvalidInput,
    InvalidState,
)
from dossier.models import (
    Appointment,
    ChatMessage,
    DataKey,
    Document,
    Dossier,
    DossierState,
    Tombstone,
    TombstoneOutcome,
)
from dossier.shredding import destroy_dossier, finish_interrupted_destructions
from retention.audit import Actor, verify_chain
from retention.models import AuditEvent

from support import CLERK, RESIDENT, book, chunks, collect, engine_of

SYSTEM = Actor.system("test")


async def actions(store) -> list[str]:
    async with store.sessions() as session:
        query = select(AuditEvent.action).order_by(col(AuditEvent.seq))
        return list((await session.execute(query)).scalars())


async def test_deadline_is_56_days_after_creation_from_the_clock(store, clock):
    # A walk-in appointment that began ten minutes ago: creation is the later moment.
    booked = await book(store, clock, starts_at=clock.current - dt.timedelta(minutes=10))
    assert booked.dossier.created_at == clock.current
    assert booked.dossier.deadline == clock.current + dt.timedelta(days=56)
    assert booked.dossier.state == DossierState.SCHEDULED


async def test_appointment_weeks_ahead_keeps_its_dossier_until_after_the_call(store, clock):
    start = clock.current + dt.timedelta(weeks=3)
    booked = await book(store, clock, starts_at=start)
    assert booked.dossier.deadline == start + dt.timedelta(days=56)


async def test_service_with_shorter_retention(store, clock):
    booked = await book(store, clock, service="kort")
    assert booked.dossier.deadline == booked.appointment.starts_at + dt.timedelta(days=30)


async def test_retention_longer_than_eight_weeks_is_refused(store):
    async with store.sessions() as session, session.begin():
        with pytest.raises(InvalidInput, match="retention_days for 'lang' is 57"):
            await ensure_service_type(session, code="lang", label="Lang", retention_days=57)


async def test_unknown_service_and_bad_times_are_refused(store, clock):
    with pytest.raises(InvalidInput, match="unknown service type: 'paspoort'"):
        await book(store, clock, service="paspoort")
    from dossier.appointments import create_appointment

    start = clock.current + dt.timedelta(hours=1)
    with pytest.raises(InvalidInput, match="before it starts"):
        await create_appointment(
            store,
            actor=CLERK,
            department="burgerzaken",
            service_type="geboorteaangifte",
            starts_at=start,
            ends_at=start,
        )
    past = clock.current - dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match="is over already"):
        await create_appointment(
            store,
            actor=CLERK,
            department="burgerzaken",
            service_type="geboorteaangifte",
            starts_at=past,
            ends_at=past + dt.timedelta(minutes=30),
        )
    async with store.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Dossier))).scalar() == 0


async def test_chat_round_trip_in_order_and_audited(store, clock, booked):
    await append_chat_message(
        store, actor=RESIDENT, dossier_id=booked.dossier.id, text="Goedemorgen"
    )
    clock.advance(dt.timedelta(seconds=5))
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="Welkom! 👋")
    messages = await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    assert [(m.sender_role, m.text) for m in messages] == [
        ("resident", "Goedemorgen"),
        ("clerk", "Welkom! 👋"),
    ]
    async with store.sessions() as session:
        sealed = (await session.execute(select(ChatMessage.sealed))).scalars().all()
    assert all(b"Goedemorgen" not in s for s in sealed)
    assert (await actions(store))[-3:] == ["chat.appended", "chat.appended", "chat.read"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("   ", "cannot be empty"), ("x" * 4001, "at most 4000 characters, got 4001")],
)
async def test_bad_chat_messages_are_refused(store, booked, text, message):
    with pytest.raises(InvalidInput, match=message):
        await append_chat_message(store, actor=RESIDENT, dossier_id=booked.dossier.id, text=text)
    assert await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id) == []


async def test_chat_message_moved_to_another_dossier_does_not_decrypt(store, clock, booked):
    other = await book(store, clock)
    await append_chat_message(store, actor=RESIDENT, dossier_id=booked.dossier.id, text="geheim")
    async with store.sessions() as session, session.begin():
        await session.execute(update(ChatMessage).values(dossier_id=other.dossier.id))
    with pytest.raises(IntegrityError):
        await list_chat_messages(store, actor=CLERK, dossier_id=other.dossier.id)
    async with store.sessions() as session:
        failed = (
            await session.execute(
                select(AuditEvent.result).where(col(AuditEvent.action) == "chat.read")
            )
        ).scalars()
        assert list(failed) == ["integrity_error"]


async def test_unknown_dossier(store):
    with pytest.raises(DossierNotFound):
        await list_chat_messages(store, actor=CLERK, dossier_id=uuid.uuid4())


async def test_destroy_shreds_and_leaves_a_tombstone(store, clock, booked, settings):
    dossier_id = booked.dossier.id
    await append_chat_message(store, actor=RESIDENT, dossier_id=dossier_id, text="BSN-vrij bericht")
    info = await store_document(
        store,
        actor=RESIDENT,
        dossier_id=dossier_id,
        name="akte.pdf",
        media_type="application/pdf",
        content=chunks(b"%PDF-1.7 " + b"z" * 5000),
    )
    async with store.sessions() as session:
        key = await session.get(DataKey, dossier_id)
        row = await session.get(Document, info.document_id)
    assert key is not None
    assert row is not None
    blob_copy = store.blobs.path(row.blob_ref).read_bytes()  # e.g. in last night's backup

    clock.advance(dt.timedelta(days=3))
    tombstone = await destroy_dossier(
        store, actor=SYSTEM, dossier_id=dossier_id, outcome=TombstoneOutcome.DESTROYED_AT_DEADLINE
    )
    assert tombstone.outcome == TombstoneOutcome.DESTROYED_AT_DEADLINE
    assert tombstone.service_type == "geboorteaangifte"
    assert tombstone.selectielijst == "7"
    assert tombstone.removed_at == clock.current
    assert tombstone.deadline == booked.dossier.deadline

    with pytest.raises(DossierDestroyed):
        await list_chat_messages(store, actor=CLERK, dossier_id=dossier_id)
    with pytest.raises(DossierDestroyed):
        await open_document(store, actor=CLERK, dossier_id=dossier_id, document_id=info.document_id)
    with pytest.raises(DossierDestroyed):
        await append_chat_message(store, actor=CLERK, dossier_id=dossier_id, text="te laat")

    # Nothing of the content remains: no rows, no blob, and no key that opens the old copy.
    async with store.sessions() as session:
        for model in (ChatMessage, Document, DataKey, Dossier, Appointment):
            count = (await session.execute(select(func.count()).select_from(model))).scalar()
            assert count == 0, model
        keys = list((await session.execute(select(DataKey))).scalars())
    assert not store.blobs.path(row.blob_ref).exists()
    for candidate in keys:  # none left, and so nothing with which to decrypt the copy
        kek = store.keyring.get(candidate.kek_id)
        with pytest.raises(IntegrityError):
            unwrap_data_key(
                kek=kek, kek_id=candidate.kek_id, dossier_id=dossier_id, wrapped=candidate.wrapped
            )
    # Even the key bytes that once wrapped the DEK are gone from the SQLite files on disk.
    if settings.resolved_database_url.startswith("sqlite"):
        db_path = Path(make_url(settings.resolved_database_url).database or "")
        db_files = list(db_path.parent.glob(db_path.name + "*"))
        assert db_files
        for path in db_files:
            assert key.wrapped not in path.read_bytes(), path

    async def copy():
        yield blob_copy

    # The backup copy with a guessed (fresh) key: noise.
    with pytest.raises(IntegrityError):
        await collect(
            decrypt_stream(
                copy(), dek=b"\0" * 32, dossier_id=dossier_id, document_id=info.document_id
            )
        )
    assert (await verify_chain(engine_of(store))).ok
    assert (await actions(store))[-3:] == [
        "dossier.destroy_started",
        "dossier.key_destroyed",
        "dossier.destroyed",
    ]


async def test_destroy_twice_is_harmless(store, booked):
    first = await destroy_dossier(
        store,
        actor=SYSTEM,
        dossier_id=booked.dossier.id,
        outcome=TombstoneOutcome.DESTROYED_BY_OPERATOR,
    )
    events = await actions(store)
    second = await destroy_dossier(
        store, actor=SYSTEM, dossier_id=booked.dossier.id, outcome=TombstoneOutcome.EXPORTED
    )
    assert second.outcome == first.outcome == TombstoneOutcome.DESTROYED_BY_OPERATOR
    assert second.removed_at == first.removed_at
    assert await actions(store) == events  # the second run changed nothing, not even the log


async def test_destroy_unknown_dossier(store):
    with pytest.raises(DossierNotFound):
        await destroy_dossier(
            store, actor=SYSTEM, dossier_id=uuid.uuid4(), outcome=TombstoneOutcome.EXPORTED
        )


async def test_destruction_interrupted_after_key_deletion_is_finished(store, booked, monkeypatch):
    await store_document(
        store,
        actor=RESIDENT,
        dossier_id=booked.dossier.id,
        name="a.pdf",
        media_type="application/pdf",
        content=chunks(b"%PDF-1.4 abc"),
    )

    async def crash(blob_ref: str) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(store.blobs, "delete", crash)
    with pytest.raises(OSError, match="disk went away"):
        await destroy_dossier(
            store, actor=SYSTEM, dossier_id=booked.dossier.id, outcome=TombstoneOutcome.EXPORTED
        )
    monkeypatch.undo()
    # Half-way: the key is gone, so the content is already unreadable.
    with pytest.raises(DossierDestroyed):
        await list_documents(store, actor=CLERK, dossier_id=booked.dossier.id)
    async with store.sessions() as session:
        assert await session.get(DataKey, booked.dossier.id) is None

    # Start-up recovery finishes the job with the outcome first decided.
    assert await finish_interrupted_destructions(store, actor=SYSTEM) == 1
    async with store.sessions() as session:
        tombstone = await session.get(Tombstone, booked.dossier.id)
        assert (await session.execute(select(func.count()).select_from(Document))).scalar() == 0
    assert tombstone is not None
    assert tombstone.outcome == TombstoneOutcome.EXPORTED
    assert [p for p in store.blobs.root.rglob("*") if p.is_file()] == []
    assert (await verify_chain(engine_of(store))).ok


async def test_cancel_destroys_at_once(store, clock, booked):
    await append_chat_message(store, actor=CLERK, dossier_id=booked.dossier.id, text="tot straks")
    tombstone = await cancel_appointment(store, actor=CLERK, appointment_id=booked.appointment.id)
    assert tombstone.outcome == TombstoneOutcome.DESTROYED_ON_CANCEL
    assert tombstone.appointment_start == booked.appointment.starts_at
    with pytest.raises(DossierDestroyed):
        await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    again = await cancel_appointment(store, actor=CLERK, appointment_id=booked.appointment.id)
    assert again.dossier_id == tombstone.dossier_id
    assert "appointment.cancelled" in await actions(store)


async def test_cannot_cancel_after_the_call_began(store, booked):
    async with store.sessions() as session, session.begin():
        await session.execute(update(Dossier).values(state=DossierState.IN_CALL))
    with pytest.raises(InvalidState, match="in_call"):
        await cancel_appointment(store, actor=CLERK, appointment_id=booked.appointment.id)
    assert await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id) == []


async def test_cancel_unknown_appointment(store):
    with pytest.raises(DossierNotFound, match="no appointment"):
        await cancel_appointment(store, actor=CLERK, appointment_id=uuid.uuid4())
