"""Tables of the retention package: the append-only audit log and its head."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlmodel import Field, SQLModel

from dossier.db import UTCDateTime

__all__ = ["AuditEvent", "AuditHead"]


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
