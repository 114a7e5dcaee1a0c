"""Tables of the retention package: the audit log, policy versions, holds, notices,
destruction batches, key destructions and audit checkpoints."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from dossier.db import UTCDateTime

__all__ = [
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "AuditVerification",
    "DestructionBatch",
    "Hold",
    "KekDestruction",
    "PolicyVersion",
    "RetentionNotice",
]


class AuditEvent(SQLModel, table=True):
    """One audit event. Rows are never updated or deleted; `entry_hash` chains them."""

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    occurred_at: dt.datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(sa_type=String(160))
    action: str = Field(sa_type=String(64), index=True)
    object_type: str = Field(sa_type=String(32))
    object_ref: str = Field(sa_type=String(64), index=True)
    result: str = Field(sa_type=String(32))
    detail: str = Field(sa_type=Text)  # canonical JSON, no personal data
    prev_hash: str = Field(sa_type=String(64))
    entry_hash: str = Field(sa_type=String(64))


class AuditHead(SQLModel, table=True):
    """The last sequence number and hash, updated with every append.

    The chain alone cannot show that its newest rows were cut off; the head can, unless it is
    rewritten too, which is why `balie audit verify` also reports the head for external anchoring.
    """

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int
    entry_hash: str = Field(sa_type=String(64))


# --- Retention (issue 7). Every row here outlives the dossier it is about: they are the
# evidence, so none of them has a foreign key to `dossiers`, and none holds personal data.


class PolicyVersion(SQLModel, table=True):
    """A retention policy text, from proposal to being in force (DESIGN §3: four eyes).

    A proposal takes effect only when both an information manager and a privacy officer
    approved it; then the version in force before it becomes `superseded`. States:
    proposed, in_force, superseded, rejected.
    """

    __tablename__ = "policy_versions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    version: str = Field(sa_type=String(64), index=True)
    digest: str = Field(sa_type=String(64))  # SHA-256 of `text` as UTF-8
    text: str = Field(sa_type=Text)
    state: str = Field(sa_type=String(16), index=True)
    justification: str = Field(sa_type=Text)
    proposed_by: str = Field(sa_type=String(160))
    proposed_at: dt.datetime = Field(sa_type=UTCDateTime)
    im_approved_by: str | None = Field(default=None, sa_type=String(160))
    im_approved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    po_approved_by: str | None = Field(default=None, sa_type=String(160))
    po_approved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    rejected_by: str | None = Field(default=None, sa_type=String(160))
    rejected_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    rejection_reason: str | None = Field(default=None, sa_type=Text)
    in_force_from: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    superseded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class Hold(SQLModel, table=True):
    """A request to keep a dossier past its deadline (complaint, objection, Woo, court case).

    States: requested, active (approved by an information manager), rejected, released
    (ended early), expired (its end date passed). Only an active hold whose `ends_at` lies
    in the future stops the sweeper.
    """

    __tablename__ = "holds"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    dossier_id: uuid.UUID = Field(index=True)
    department_id: uuid.UUID = Field(index=True)
    service_type: str = Field(sa_type=String(64))
    ground: str = Field(sa_type=String(16))  # complaint, objection, woo, court, other
    reason: str = Field(sa_type=String(500))  # no personal data: the request says so
    ends_at: dt.datetime = Field(sa_type=UTCDateTime)
    state: str = Field(sa_type=String(16), index=True)
    requested_by: str = Field(sa_type=String(160))
    requested_at: dt.datetime = Field(sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, sa_type=String(160))
    decided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    decision_note: str | None = Field(default=None, sa_type=String(500))
    ended_by: str | None = Field(default=None, sa_type=String(160))
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class RetentionNotice(SQLModel, table=True):
    """A warning to the department (T-14, T-7, T-1 days) or an escalation to the information
    managers (T-7, export required and not done). One of each kind per dossier, ever."""

    __tablename__ = "retention_notices"
    __table_args__ = (UniqueConstraint("dossier_id", "kind"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    dossier_id: uuid.UUID = Field(index=True)
    department_id: uuid.UUID = Field(index=True)
    service_type: str = Field(sa_type=String(64))
    kind: str = Field(sa_type=String(16))  # warning_14, warning_7, warning_1, escalation
    deadline: dt.datetime = Field(sa_type=UTCDateTime)
    created_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    emailed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    email_error: str | None = Field(default=None, sa_type=String(500))
    acknowledged_by: str | None = Field(default=None, sa_type=String(160))
    acknowledged_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class DestructionBatch(SQLModel, table=True):
    """One sweep that destroyed dossiers: the unit of a destruction statement."""

    __tablename__ = "destruction_batches"

    id: str = Field(sa_type=String(64), primary_key=True)
    started_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    actor: str = Field(sa_type=String(160))
    policy_version: str = Field(sa_type=String(64))
    dossiers: int = 0


class KekDestruction(SQLModel, table=True):
    """A month's key-encryption key that was destroyed, and why it could go."""

    __tablename__ = "kek_destructions"

    kek_id: str = Field(sa_type=String(16), primary_key=True)
    destroyed_at: dt.datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(sa_type=String(160))
    last_deadline: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    dossiers: int = 0


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement "the chain had `seq` events ending in `entry_hash`" (append-only).

    The same statement goes to the witness directory outside the database; the signing key
    lives outside the database too, so rewriting history needs both.
    """

    __tablename__ = "audit_checkpoints"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    entry_hash: str = Field(sa_type=String(64))
    signed_at: dt.datetime = Field(sa_type=UTCDateTime)
    key_id: str = Field(sa_type=String(64))  # SHA-256 of the raw public key, hex
    signature: str = Field(sa_type=String(128))  # Ed25519 over the statement, hex


class AuditVerification(SQLModel, table=True):
    """The outcome of each `balie audit verify` (or scheduled check), for the overview page."""

    __tablename__ = "audit_verifications"

    id: int | None = Field(default=None, primary_key=True)
    verified_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    by: str = Field(sa_type=String(160))
    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str = Field(sa_type=String(500), default="")
