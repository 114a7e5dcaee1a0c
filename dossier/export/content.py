"""Everything an exporter hands over, as plain data: no database, no keys.

`gather_content` (in `dossier.export.gather`) fills it from the dossier; exporters and their
tests only ever see this. Document bytes come through `ExportDocument.open()`, a fresh
stream of the decrypted content each time it is called (streams are authenticated segment by
segment; nothing is held whole in memory).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

__all__ = [
    "ChatLine",
    "ExportContent",
    "ExportDocument",
    "ExportParticipant",
    "ExportPayment",
]


@dataclass(frozen=True)
class ExportParticipant:
    """Who took part, by role: staff by employee id, the resident by pseudonym."""

    role: str  # clerk, resident, guest
    ref: str  # employee id, BSN pseudonym, or an interpreter's session reference


@dataclass(frozen=True)
class ChatLine:
    sent_at: dt.datetime
    role: str  # clerk, resident, guest
    text: str


@dataclass(frozen=True)
class ExportDocument:
    document_id: uuid.UUID
    name: str  # the original file name
    media_type: str  # as sniffed at upload: application/pdf, image/jpeg, image/png, ...
    size: int
    uploaded_by_role: str
    created_at: dt.datetime
    open: Callable[[], AsyncIterator[bytes]]  # a new stream of the plaintext per call


@dataclass(frozen=True)
class ExportPayment:
    payment_id: uuid.UUID
    description: str
    amount_cents: int
    currency: str  # EUR
    status: str  # created, open, pending, paid, failed, canceled, expired
    provider: str
    provider_reference: str | None
    created_at: dt.datetime
    paid_at: dt.datetime | None


@dataclass(frozen=True)
class ExportContent:
    """One dossier, ready to hand over."""

    dossier_id: uuid.UUID
    appointment_id: uuid.UUID
    service_code: str
    service_label: str
    department_code: str
    department_name: str
    created_at: dt.datetime
    appointment_start: dt.datetime
    ended_at: dt.datetime | None
    deadline: dt.datetime
    participants: tuple[ExportParticipant, ...]
    # Only where the service type requires it (policy `needs_bsn`); otherwise None.
    bsn: str | None
    chat: tuple[ChatLine, ...]
    documents: tuple[ExportDocument, ...]
    payments: tuple[ExportPayment, ...]
    # From the policy in force: what the archive needs to know about this kind of record.
    policy_version: str
    policy_digest: str
    archiefvormer: str
    archive_mode: str  # export_required, export_optional, none
    selectielijst: str
    bewaartermijn: str | None  # ISO 8601 period or "permanent"
    informatiecategorie: str | None
    exported_at: dt.datetime
    exported_by: str  # the clerk's employee id
