"""Tables of the dossier package.

A dossier's content (chat, documents, wrapped data key) hangs off the `dossiers` row; the
appointment is the booking it belongs to. When a dossier is destroyed or exported every one of
these rows goes, and a `tombstones` row without personal data remains. Issues to come add
tables (participants, payments, holds, export steps) that point at `dossiers.id`.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import CheckConstraint, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from dossier.db import UTCDateTime

__all__ = [
    "Appointment",
    "ChatMessage",
    "DataKey",
    "DemoCheckout",
    "Department",
    "Document",
    "DocumentState",
    "Dossier",
    "DossierState",
    "Payment",
    "PaymentEvent",
    "Refund",
    "ResidentIdentity",
    "ServiceType",
    "Tombstone",
    "TombstoneOutcome",
]


class DossierState(enum.StrEnum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    IN_CALL = "in_call"
    ENDED = "ended"
    CANCELLED = "cancelled"
    # Set before the data key is deleted, so an interrupted destruction is finished on re-run.
    DESTROYING = "destroying"


class DocumentState(enum.StrEnum):
    PENDING = "pending"  # blob being written; invisible to everyone
    COMPLETE = "complete"


class TombstoneOutcome(enum.StrEnum):
    EXPORTED = "exported"
    DESTROYED_AT_DEADLINE = "destroyed_at_deadline"
    DESTROYED_ON_CANCEL = "destroyed_on_cancel"
    DESTROYED_BY_OPERATOR = "destroyed_by_operator"


class Department(SQLModel, table=True):
    __tablename__ = "departments"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(sa_type=String(64), unique=True)
    name: str = Field(sa_type=String(200))


class ServiceType(SQLModel, table=True):
    """A kind of appointment (geboorteaangifte, ...). Issue 7 fills these from the policy file."""

    __tablename__ = "service_types"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(sa_type=String(64), unique=True)
    label: str = Field(sa_type=String(200))
    level_of_assurance: str = Field(sa_type=String(16))
    retention_days: int = Field(default=56)
    archive_mode: str = Field(sa_type=String(32), default="export_required")
    selectielijst: str = Field(sa_type=String(64), default="")
    policy_version: str = Field(sa_type=String(64), default="builtin-1")
    on_deadline: str = Field(sa_type=String(32), default="destroy")
    # Whether the service needs the resident's BSN itself (a birth registration does); then
    # it is kept, sealed, in the dossier. Otherwise only the pseudonym ever exists.
    needs_bsn: bool = Field(default=False)


class Appointment(SQLModel, table=True):
    __tablename__ = "appointments"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    department_id: uuid.UUID = Field(foreign_key="departments.id", index=True)
    service_type_id: uuid.UUID = Field(foreign_key="service_types.id")
    starts_at: dt.datetime = Field(sa_type=UTCDateTime)
    ends_at: dt.datetime = Field(sa_type=UTCDateTime)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(sa_type=String(128))
    # HMAC pseudonym of the BSN the appointment was booked for, if any; never the BSN itself.
    resident_pseudonym: str | None = Field(default=None, sa_type=String(64))


class Dossier(SQLModel, table=True):
    __tablename__ = "dossiers"
    __table_args__ = (Index("ix_dossiers_state_deadline", "state", "deadline"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    appointment_id: uuid.UUID = Field(foreign_key="appointments.id", unique=True)
    state: DossierState = Field(sa_type=String(16))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    # Later of creation and appointment start, plus the service's retention (<= 56 days).
    deadline: dt.datetime = Field(sa_type=UTCDateTime)
    state_changed_at: dt.datetime = Field(sa_type=UTCDateTime)
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    exported_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    export_reference: str | None = Field(default=None, sa_type=String(256))
    destroy_started_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroy_reason: str | None = Field(default=None, sa_type=String(32))
    policy_version: str = Field(sa_type=String(64))
    # The KEK that wraps its data key (as `data_keys` says while it exists); the tombstone
    # keeps it, so that a month's KEK is destroyed only when all its dossiers may go.
    kek_id: str | None = Field(default=None, sa_type=String(16), index=True)


class DataKey(SQLModel, table=True):
    """The dossier's data key, wrapped by a KEK. Deleting this row shreds the dossier."""

    __tablename__ = "data_keys"

    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", primary_key=True)
    kek_id: str = Field(sa_type=String(16), index=True)
    wrapped: bytes = Field(sa_type=LargeBinary)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"

    # The integer key orders messages; the UUID is bound into the ciphertext's associated data.
    id: int | None = Field(default=None, primary_key=True)
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", index=True)
    kind: str = Field(sa_type=String(16))
    sender_role: str = Field(sa_type=String(16))
    sender_ref: str = Field(sa_type=String(128))
    sent_at: dt.datetime = Field(sa_type=UTCDateTime)
    sealed: bytes = Field(sa_type=LargeBinary)


class Document(SQLModel, table=True):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("blob_ref"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", index=True)
    state: DocumentState = Field(sa_type=String(16))
    blob_ref: str = Field(sa_type=String(32))
    media_type: str = Field(sa_type=String(100))
    # The original file name is a sealed record of the dossier.
    name_sealed: bytes = Field(sa_type=LargeBinary)
    kek_id: str = Field(sa_type=String(16))
    segment_size: int
    plaintext_size: int | None = None
    sealed_size: int | None = None
    uploaded_by_role: str = Field(sa_type=String(16))
    uploaded_by_ref: str = Field(sa_type=String(128))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    completed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ResidentIdentity(SQLModel, table=True):
    """The resident's BSN as DigiD gave it, sealed in the dossier, for services that need it."""

    __tablename__ = "resident_identities"

    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", primary_key=True)
    sealed_bsn: bytes = Field(sa_type=LargeBinary)
    level_of_assurance: str = Field(sa_type=String(16))
    recorded_at: dt.datetime = Field(sa_type=UTCDateTime)


class Tombstone(SQLModel, table=True):
    """What remains of an exported or destroyed dossier: dates and rules, no personal data."""

    __tablename__ = "tombstones"

    dossier_id: uuid.UUID = Field(primary_key=True)
    appointment_id: uuid.UUID
    service_type: str = Field(sa_type=String(64), index=True)
    department: str = Field(sa_type=String(64))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    appointment_start: dt.datetime = Field(sa_type=UTCDateTime)
    deadline: dt.datetime = Field(sa_type=UTCDateTime)
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: TombstoneOutcome = Field(sa_type=String(32))
    removed_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    policy_version: str = Field(sa_type=String(64))
    selectielijst: str = Field(sa_type=String(64), default="")
    export_reference: str | None = Field(default=None, sa_type=String(256))
    destruction_batch: str | None = Field(default=None, sa_type=String(64))
    removed_by: str = Field(sa_type=String(128))
    # For an export: the target, what it confirmed (JSON: references such as document URLs)
    # and the SHA-256 of the manifest handed over.
    export_target: str | None = Field(default=None, sa_type=String(32))
    export_references: str | None = Field(default=None, sa_type=Text)
    export_manifest_sha256: str | None = Field(default=None, sa_type=String(64))
    # What the rules were when it went: the Archiefwet check of the reconciliation report
    # must not depend on a later policy. The KEK that wrapped its data key decides when that
    # month's key may be destroyed.
    archive_mode: str = Field(sa_type=String(32), default="")
    kek_id: str | None = Field(default=None, sa_type=String(16), index=True)


# Payments (dossier.payments). Statuses are stored as text; `dossier.payments.states` holds
# their names and the table of allowed moves. Amounts are whole euro cents, never floats.


class Payment(SQLModel, table=True):
    """A fee the clerk asked the resident to pay, and what the provider last said about it.

    The row is committed before the provider is called, so a crash in between leaves a row
    whose `idempotency_key` recreates the very same provider payment (never a second one).
    """

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_payment_id"),
        CheckConstraint("amount_cents > 0", name="ck_payments_amount_positive"),
        Index("ix_payments_status_checked_at", "status", "checked_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", index=True)
    provider: str = Field(sa_type=String(32))
    provider_payment_id: str | None = Field(default=None, sa_type=String(64))
    idempotency_key: str = Field(sa_type=String(64), unique=True)
    amount_cents: int
    currency: str = Field(default="EUR", sa_type=String(3))
    description: str = Field(sa_type=String(255))
    fee_code: str | None = Field(default=None, sa_type=String(64))
    status: str = Field(sa_type=String(16))
    checkout_url: str | None = Field(default=None, sa_type=String(2048))
    # Kept so that a retried creation sends the provider exactly the same request.
    redirect_url: str = Field(sa_type=String(2048))
    webhook_url: str = Field(sa_type=String(2048))
    requested_by_role: str = Field(sa_type=String(16))
    requested_by_ref: str = Field(sa_type=String(128))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
    # When the reconcile job last looked; it takes the longest-unchecked payments first.
    checked_at: dt.datetime = Field(sa_type=UTCDateTime)
    paid_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class PaymentEvent(SQLModel, table=True):
    """Every status a provider reported for a payment, applied or (stale, repeated) not."""

    __tablename__ = "payment_events"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: uuid.UUID = Field(foreign_key="payments.id", index=True)
    # Denormalised so that destroying a dossier deletes its events by dossier, like the rest.
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", index=True)
    at: dt.datetime = Field(sa_type=UTCDateTime)
    source: str = Field(sa_type=String(16))  # create | webhook | reconcile
    reported_status: str = Field(sa_type=String(16))
    previous_status: str = Field(sa_type=String(16))
    applied: bool
    # Why it was not applied, or why Balie set the status itself ("abandoned").
    note: str | None = Field(default=None, sa_type=String(32))


class Refund(SQLModel, table=True):
    """Money returned on a paid payment: a record of its own, never a status of the payment."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="ck_refunds_amount_positive"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    payment_id: uuid.UUID = Field(foreign_key="payments.id", index=True)
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", index=True)
    amount_cents: int
    status: str = Field(sa_type=String(16))
    provider_refund_id: str | None = Field(default=None, sa_type=String(64))
    requested_by_role: str = Field(sa_type=String(16))
    requested_by_ref: str = Field(sa_type=String(128))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)


class DemoCheckout(SQLModel, table=True):
    """The demo provider's side of a payment: what Mollie would keep, kept in Balie's database
    so that the checkout page works across processes and restarts.

    `reference` is the Balie payment id the demo was given, as a provider's metadata would
    hold it; destroying the dossier deletes the checkouts of its payments by it.
    """

    __tablename__ = "demo_checkouts"

    id: str = Field(sa_type=String(40), primary_key=True)
    idempotency_key: str = Field(sa_type=String(64), unique=True)
    reference: str = Field(sa_type=String(64), index=True)
    amount_cents: int
    description: str = Field(sa_type=String(255))
    status: str = Field(sa_type=String(16))
    redirect_url: str = Field(sa_type=String(2048))
    webhook_url: str = Field(sa_type=String(2048))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    decided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


# Exports (dossier.export). A job outlives its dossier: after a successful export the dossier
# is shredded, and the job still says what was handed over, where, and by whom.


class ExportJob(SQLModel, table=True):
    __tablename__ = "export_jobs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    dossier_id: uuid.UUID = Field(index=True)  # no foreign key: the dossier goes, the job stays
    department_id: uuid.UUID = Field(index=True)
    target: str = Field(sa_type=String(32))
    options: str = Field(sa_type=Text, default="{}")  # JSON, e.g. {"zaak": "..."}
    state: str = Field(sa_type=String(16), index=True)  # queued, running, failed, done
    progress: float = 0.0
    progress_text: str = Field(sa_type=String(200), default="")
    error: str | None = Field(default=None, sa_type=String(500))
    attempts: int = 0
    requested_by: str = Field(sa_type=String(128))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    references: str | None = Field(default=None, sa_type=Text)  # JSON
    manifest_sha256: str | None = Field(default=None, sa_type=String(64))


class ExportStep(SQLModel, table=True):
    """A step an exporter finished; a retry skips it (the exporter's idempotency)."""

    __tablename__ = "export_steps"

    export_id: uuid.UUID = Field(foreign_key="export_jobs.id", primary_key=True)
    key: str = Field(sa_type=String(200), primary_key=True)
    result: str = Field(sa_type=Text)  # JSON
    recorded_at: dt.datetime = Field(sa_type=UTCDateTime)
