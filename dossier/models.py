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

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from dossier.db import UTCDateTime

__all__ = [
    "Appointment",
    "ChatMessage",
    "DataKey",
    "Department",
    "Document",
    "DocumentState",
    "Dossier",
    "DossierState",
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
