"""Tables of the identity package: staff accounts, web sessions, invitations and the DigiD
request and replay records.

No table here holds a BSN: residents appear by their keyed pseudonym only.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import LargeBinary, String, Text
from sqlmodel import Field, SQLModel

from dossier.db import UTCDateTime

__all__ = ["Invitation", "SamlRequest", "StaffAccount", "UsedAssertion", "WebSession"]


class StaffAccount(SQLModel, table=True):
    """A clerk, information manager or privacy officer, local or known through SSO."""

    __tablename__ = "staff_accounts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(sa_type=String(128), unique=True)
    employee_id: str = Field(sa_type=String(64))
    display_name: str = Field(sa_type=String(200))
    role: str = Field(sa_type=String(32))
    department_id: uuid.UUID | None = Field(default=None, foreign_key="departments.id")
    source: str = Field(sa_type=String(16))  # "local" or "oidc"
    password_hash: str | None = Field(default=None, sa_type=String(256))
    # The TOTP secret, sealed with a key derived from BALIE_SECRET_KEY.
    totp_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    # The last TOTP time step accepted: a code may be used once, even within its 30 seconds.
    totp_last_step: int | None = None
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    disabled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A browser session. Only the SHA-256 of the cookie value is stored, so a copy of this
    table cannot be replayed as cookies."""

    __tablename__ = "web_sessions"

    id_hash: str = Field(sa_type=String(64), primary_key=True)
    kind: str = Field(sa_type=String(16))  # anonymous, staff, resident, guest
    role: str | None = Field(default=None, sa_type=String(32))
    staff_id: uuid.UUID | None = Field(
        default=None, foreign_key="staff_accounts.id", ondelete="CASCADE"
    )
    resident_pseudonym: str | None = Field(default=None, sa_type=String(64))
    appointment_id: uuid.UUID | None = Field(
        default=None, foreign_key="appointments.id", ondelete="CASCADE", index=True
    )
    department_id: uuid.UUID | None = Field(default=None, foreign_key="departments.id")
    level_of_assurance: str | None = Field(default=None, sa_type=String(16))
    csrf_token: str = Field(sa_type=String(64))
    # Short-lived state of a login in progress (OIDC state/nonce/verifier, TOTP step).
    pending: str = Field(default="{}", sa_type=Text)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_seen_at: dt.datetime = Field(sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)


class Invitation(SQLModel, table=True):
    """The resident's link to one appointment; only the token's SHA-256 is stored."""

    __tablename__ = "invitations"

    token_hash: str = Field(sa_type=String(64), primary_key=True)
    appointment_id: uuid.UUID = Field(foreign_key="appointments.id", ondelete="CASCADE", index=True)
    kind: str = Field(sa_type=String(16))  # resident or guest (interpreter)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class SamlRequest(SQLModel, table=True):
    """An AuthnRequest we sent: its id is what a response's InResponseTo must name."""

    __tablename__ = "saml_requests"

    request_id: str = Field(sa_type=String(64), primary_key=True)
    session_hash: str = Field(sa_type=String(64))
    level_of_assurance: str = Field(sa_type=String(16))
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    consumed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class UsedAssertion(SQLModel, table=True):
    """Assertion ids seen, kept until they expire, so that none is accepted twice."""

    __tablename__ = "used_assertions"

    assertion_id: str = Field(sa_type=String(128), primary_key=True)
    used_at: dt.datetime = Field(sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
