"""Chat messages of a dossier, each sealed on its own."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from dossier.crypto.records import RecordCipher
from dossier.db import read_session
from dossier.errors import IntegrityError, InvalidInput
from dossier.keys import load_data_key
from dossier.lookup import audit_access, get_live_dossier, record_dossier_event
from dossier.models import ChatMessage
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["MAX_CHAT_CHARS", "ChatEntry", "append_chat_message", "list_chat_messages"]

MAX_CHAT_CHARS = 4000
_KINDS = ("chat", "system")


@dataclass(frozen=True, slots=True)
class ChatEntry:
    """A decrypted chat message as participants see it."""

    message_id: uuid.UUID
    kind: str
    sender_role: str
    sent_at: dt.datetime
    text: str


async def append_chat_message(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    text: str,
    kind: str = "chat",
) -> ChatEntry:
    """Seal and store one message. Raises InvalidInput for an empty or too long text."""
    if kind not in _KINDS:
        raise InvalidInput(f"unknown chat message kind {kind!r}")
    if not text.strip():
        raise InvalidInput("a chat message cannot be empty")
    if len(text) > MAX_CHAT_CHARS:
        raise InvalidInput(
            f"a chat message has at most {MAX_CHAT_CHARS} characters, got {len(text)}"
        )
    async with store.sessions() as session, session.begin():
        await get_live_dossier(session, dossier_id)
        _, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
        now = await store.clock.now(session)
        message_id = uuid.uuid4()
        sealed = RecordCipher(dek, dossier_id).seal(
            record_id=message_id, kind=f"chat:{kind}", plaintext=text.encode("utf-8")
        )
        session.add(
            ChatMessage(
                message_id=message_id,
                dossier_id=dossier_id,
                kind=kind,
                sender_role=actor.role,
                sender_ref=actor.ref,
                sent_at=now,
                sealed=sealed,
            )
        )
        await record_dossier_event(
            session,
            at=now,
            actor=actor,
            action="chat.appended",
            dossier_id=dossier_id,
            detail={"message": str(message_id)},
        )
    return ChatEntry(message_id, kind, actor.role, now, text)


async def list_chat_messages(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID
) -> list[ChatEntry]:
    """Every message of the dossier, oldest first, decrypted; the read is audited.

    Raises IntegrityError (and records the failed read) if any message fails to authenticate.
    """
    try:
        async with read_session(store.sessions) as session:
            await get_live_dossier(session, dossier_id)
            _, dek = await load_data_key(session, keyring=store.keyring, dossier_id=dossier_id)
            query = (
                select(ChatMessage)
                .where(col(ChatMessage.dossier_id) == dossier_id)
                .order_by(col(ChatMessage.id))
            )
            rows = list((await session.execute(query)).scalars())
            cipher = RecordCipher(dek, dossier_id)
            entries = [
                ChatEntry(
                    row.message_id,
                    row.kind,
                    row.sender_role,
                    row.sent_at,
                    cipher.open(
                        record_id=row.message_id, kind=f"chat:{row.kind}", sealed=row.sealed
                    ).decode("utf-8"),
                )
                for row in rows
            ]
            now = await store.clock.now(session)
    except IntegrityError:
        await audit_access(
            store, actor=actor, action="chat.read", dossier_id=dossier_id, result="integrity_error"
        )
        raise
    # Recorded before anything is shown; if recording fails, nothing is.
    await audit_access(
        store,
        at=now,
        actor=actor,
        action="chat.read",
        dossier_id=dossier_id,
        detail={"messages": len(entries)},
    )
    return entries
