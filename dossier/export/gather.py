"""Filling an `ExportContent` from a live dossier (every read audited, as any other read)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable

from sqlalchemy import select
from sqlmodel import col

from dossier.chat import list_chat_messages
from dossier.db import read_session
from dossier.documents import DocumentInfo, list_documents, open_document
from dossier.export.content import (
    ChatLine,
    ExportContent,
    ExportDocument,
    ExportParticipant,
    ExportPayment,
)
from dossier.lookup import get_live_dossier
from dossier.models import Appointment, Department, ServiceType
from dossier.payments import list_payments
from dossier.residents import read_resident_bsn
from dossier.store import DossierStore
from retention.audit import Actor
from retention.models import AuditEvent
from retention.policy import Policy

__all__ = ["gather_content"]

# Who took part, as the audit log saw them act on the dossier during the call.
_PARTICIPATION = ("call.knocked", "call.admitted", "call.ended", "chat.sent", "document.stored")


def _opener(
    store: DossierStore, actor: Actor, info: DocumentInfo
) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        opened = await open_document(
            store, actor=actor, dossier_id=info.dossier_id, document_id=info.document_id
        )
        async for piece in opened.content:
            yield piece

    return stream


async def _participants(
    store: DossierStore, dossier_id: uuid.UUID, appointment: Appointment
) -> tuple[ExportParticipant, ...]:
    async with read_session(store.sessions) as session:
        query = (
            select(col(AuditEvent.actor))
            .where(col(AuditEvent.object_ref) == str(dossier_id))
            .where(col(AuditEvent.action).in_(_PARTICIPATION))
            .order_by(col(AuditEvent.seq))
        )
        actors = list(dict.fromkeys((await session.execute(query)).scalars()))
    seen: list[ExportParticipant] = []
    for actor in actors:
        role, _, ref = actor.partition(":")
        if role in ("clerk", "resident", "guest") and ref:
            seen.append(ExportParticipant(role=role, ref=ref))
    if appointment.resident_pseudonym and not any(p.role == "resident" for p in seen):
        seen.append(ExportParticipant(role="resident", ref=appointment.resident_pseudonym))
    return tuple(seen)


async def gather_content(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    policy: Policy,
    exported_at: dt.datetime,
) -> ExportContent:
    """The dossier's content and metadata for an exporter. Raises what the dossier reads
    raise (DossierNotFound, DossierDestroyed, IntegrityError) and UnknownService when the
    policy no longer has the dossier's service type."""
    async with read_session(store.sessions) as session:
        dossier = await get_live_dossier(session, dossier_id)
        appointment = await session.get_one(Appointment, dossier.appointment_id)
        service = await session.get_one(ServiceType, appointment.service_type_id)
        department = await session.get_one(Department, appointment.department_id)
    rule = policy.rule(service.code)
    chat = await list_chat_messages(store, actor=actor, dossier_id=dossier_id)
    documents = await list_documents(store, actor=actor, dossier_id=dossier_id)
    payments = await list_payments(store, actor=actor, dossier_id=dossier_id)
    bsn = None
    if rule.needs_bsn:
        sealed = await read_resident_bsn(store, actor=actor, dossier_id=dossier_id)
        bsn = sealed[0] if sealed else None
    return ExportContent(
        dossier_id=dossier_id,
        appointment_id=appointment.id,
        service_code=service.code,
        service_label=service.label,
        department_code=department.code,
        department_name=department.name,
        created_at=dossier.created_at,
        appointment_start=appointment.starts_at,
        ended_at=dossier.ended_at,
        deadline=dossier.deadline,
        participants=await _participants(store, dossier_id, appointment),
        bsn=bsn,
        chat=tuple(ChatLine(m.sent_at, m.sender_role, m.text) for m in chat),
        documents=tuple(
            ExportDocument(
                document_id=d.document_id,
                name=d.name,
                media_type=d.media_type,
                size=d.size,
                uploaded_by_role=d.uploaded_by_role,
                created_at=d.created_at,
                open=_opener(store, actor, d),
            )
            for d in documents
        ),
        payments=tuple(
            ExportPayment(
                payment_id=p.payment_id,
                description=p.description,
                amount_cents=p.amount_cents,
                currency=p.currency,
                status=p.status.value,
                provider=p.provider,
                provider_reference=p.provider_reference,
                created_at=p.created_at,
                paid_at=p.paid_at,
            )
            for p in payments
        ),
        policy_version=policy.version,
        policy_digest=policy.digest,
        archiefvormer=policy.archiefvormer or department.name,
        archive_mode=rule.archive,
        selectielijst=rule.selectielijst or "",
        bewaartermijn=rule.bewaartermijn or None,
        informatiecategorie=rule.informatiecategorie or None,
        exported_at=exported_at,
        exported_by=actor.ref,
    )
