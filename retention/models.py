"""Tables of the retention package: the audit log, policy versions, holds, notices,
destruction batches, key destructions and audit checkpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Column, Computed, String, Text, UniqueConstraint
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine
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


class EntryField(ColumnElement[Any]):
    """One field of an audit event, read out of its canonical entry by the database.

    The entry (see `retention.audit`) is the fields joined by U+001F: seq, UTC time
    (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, always 27 characters), actor, action, object type, object
    reference, result, detail. On SQLite a field's start is found from the lengths of the
    fields before it (a generated column may read another there); PostgreSQL has split_part
    but no generated column may read another.
    """

    inherit_cache = True

    def __init__(self, name: str) -> None:
        self.name = name


_TEXT_FIELDS = ("actor", "action", "object_type", "object_ref", "result", "detail")


def _sqlite_start(name: str) -> str:
    # The first text field starts after "seq<US>" plus the 27-character time and its <US>.
    start = "instr(entry, char(31)) + 29"
    for before in _TEXT_FIELDS[: _TEXT_FIELDS.index(name)]:
        start += f" + length({before}) + 1"
    return start


@compiles(EntryField, "sqlite")
def _entry_field_sqlite(element: EntryField, compiler: Any, **kw: Any) -> str:
    if element.name == "occurred_at":  # as SQLAlchemy stores a UTC DATETIME on SQLite
        return (
            "substr(entry, instr(entry, char(31)) + 1, 10) || ' ' ||"
            " substr(entry, instr(entry, char(31)) + 12, 15)"
        )
    start = _sqlite_start(element.name)
    if element.name == "detail":  # the last field runs to the end
        return f"substr(entry, {start})"
    return f"substr(entry, {start}, instr(substr(entry, {start}), char(31)) - 1)"


@compiles(EntryField, "postgresql")
def _entry_field_postgresql(element: EntryField, compiler: Any, **kw: Any) -> str:
    if element.name == "occurred_at":
        # make_timestamp is immutable, a text-to-timestamp cast is not (a generated column
        # needs the former); the entry's time is UTC by construction.
        time = "split_part(entry, chr(31), 2)"
        parts = ", ".join(
            f"substr({time}, {start}, {length})::integer"
            for start, length in ((1, 4), (6, 2), (9, 2), (12, 2), (15, 2))
        )
        return f"timezone('UTC', make_timestamp({parts}, substr({time}, 18, 9)::double precision))"
    position = 3 + _TEXT_FIELDS.index(element.name)
    return f"split_part(entry, chr(31), {position})"


class FromEntry(Computed):
    """GENERATED ALWAYS AS (field of entry): VIRTUAL on SQLite, so the field exists only as
    the entry's bytes and cannot disagree with them; STORED on PostgreSQL, which has no
    virtual ones (15) but lets no statement write a generated column either."""

    inherit_cache = True

    def __init__(self, name: str) -> None:
        super().__init__(EntryField(name))


@compiles(FromEntry)
def _from_entry_ddl(element: FromEntry, compiler: Any, **kw: Any) -> str:
    expression = compiler.sql_compiler.process(
        element.sqltext, include_table=False, literal_binds=True
    )
    kind = "STORED" if compiler.dialect.name == "postgresql" else "VIRTUAL"
    return f"GENERATED ALWAYS AS ({expression}) {kind}"


def _from_entry(name: str, type_: TypeEngine[Any], *, index: bool = False) -> Any:
    """A column the database derives from the entry (see FromEntry)."""
    return Field(sa_column=Column(name, type_, FromEntry(name), nullable=False, index=index))


class AuditEvent(SQLModel, table=True):
    """One audit event. Rows are never updated or deleted; `entry_hash` chains them.

    `entry` holds the canonical entry exactly as hashed, and every other field is derived from
    it by the database: what a report reads is what the chain covers, and verification only
    has to read and hash the entries.
    """

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    entry: str = Field(sa_type=Text)
    occurred_at: dt.datetime = _from_entry("occurred_at", UTCDateTime())
    actor: str = _from_entry("actor", String(160))
    action: str = _from_entry("action", String(64), index=True)
    object_type: str = _from_entry("object_type", String(32))
    object_ref: str = _from_entry("object_ref", String(64), index=True)
    result: str = _from_entry("result", String(32))
    detail: str = _from_entry("detail", Text())  # canonical JSON, no personal data
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
