"""Local staff accounts: argon2 password hashes plus a TOTP second factor.

For development and small installations; municipalities with single sign-on use OIDC. A
login needs the user name, the password and a current six-digit code; a failure says only
that one of the three was wrong, and costs the same time whether the user exists or not.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.crypto.envelope import derive_subkey
from dossier.models import Department
from identity.errors import InvalidAccount, LoginFailed
from identity.models import StaffAccount
from identity.roles import STAFF_ROLES

__all__ = [
    "MIN_PASSWORD_CHARS",
    "STAFF_ROLES",
    "NewCredentials",
    "add_local_account",
    "authenticate_local",
    "reset_local_account",
]

MIN_PASSWORD_CHARS = 12
_TOTP_STEP = 30
_HASHER = PasswordHasher()
# Verified against when the user does not exist, so that both paths cost the same.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class NewCredentials:
    """What an operator hands to a new or reset user: shown once, stored nowhere in clear."""

    account: StaffAccount
    password: str
    totp_uri: str  # otpauth:// URI for an authenticator app (QR code)


def _totp_cipher(secret_key: bytes) -> AESGCM:
    return AESGCM(derive_subkey(secret_key, purpose="staff-totp"))


def _seal_totp(secret_key: bytes, account_id: uuid.UUID, totp_secret: str) -> bytes:
    nonce = secrets.token_bytes(12)
    sealed = _totp_cipher(secret_key).encrypt(nonce, totp_secret.encode(), account_id.bytes)
    return nonce + sealed


def _open_totp(secret_key: bytes, account: StaffAccount) -> str | None:
    if account.totp_sealed is None:
        return None
    nonce, sealed = account.totp_sealed[:12], account.totp_sealed[12:]
    try:
        return _totp_cipher(secret_key).decrypt(nonce, sealed, account.id.bytes).decode()
    except InvalidTag:
        return None  # the secret key changed: the user must be reset


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidAccount(f"a password needs at least {MIN_PASSWORD_CHARS} characters")


async def add_local_account(
    session: AsyncSession,
    *,
    secret_key: bytes,
    username: str,
    display_name: str,
    employee_id: str,
    role: str,
    department: str | None,
    now: dt.datetime,
    password: str | None = None,
) -> NewCredentials:
    """Create a local account with a password (generated if not given) and a TOTP secret.

    Raises InvalidAccount for an unknown role or department, a clerk without a department,
    a taken user name or a short password.
    """
    if role not in STAFF_ROLES:
        raise InvalidAccount(f"unknown role {role!r}; one of {', '.join(sorted(STAFF_ROLES))}")
    if role == "clerk" and department is None:
        raise InvalidAccount("a clerk belongs to a department")
    if not username or len(username) > 128 or not username.isprintable():
        raise InvalidAccount("a user name is 1 to 128 printable characters")
    taken = select(col(StaffAccount.id)).where(col(StaffAccount.username) == username)
    if (await session.execute(taken)).first() is not None:
        raise InvalidAccount(f"user name {username!r} is taken")
    department_id = None
    if department is not None:
        query = select(col(Department.id)).where(col(Department.code) == department)
        department_id = (await session.execute(query)).scalar()
        if department_id is None:
            raise InvalidAccount(f"unknown department {department!r}")
    password = password or secrets.token_urlsafe(15)
    _check_password(password)
    account = StaffAccount(
        username=username,
        employee_id=employee_id,
        display_name=display_name,
        role=role,
        department_id=department_id,
        source="local",
        created_at=now,
    )
    uri = _set_credentials(account, secret_key=secret_key, password=password)
    session.add(account)
    await session.flush()
    return NewCredentials(account=account, password=password, totp_uri=uri)


def _set_credentials(account: StaffAccount, *, secret_key: bytes, password: str) -> str:
    totp_secret = pyotp.random_base32()
    account.password_hash = _HASHER.hash(password)
    account.totp_sealed = _seal_totp(secret_key, account.id, totp_secret)
    account.totp_last_step = None
    return str(pyotp.TOTP(totp_secret).provisioning_uri(name=account.username, issuer_name="Balie"))


async def reset_local_account(
    session: AsyncSession, *, secret_key: bytes, username: str, password: str | None = None
) -> NewCredentials:
    """Give a local account a new password and TOTP secret. Raises InvalidAccount if unknown."""
    query = select(StaffAccount).where(col(StaffAccount.username) == username)
    account = (await session.execute(query)).scalar()
    if account is None or account.source != "local":
        raise InvalidAccount(f"no local account {username!r}")
    password = password or secrets.token_urlsafe(15)
    _check_password(password)
    uri = _set_credentials(account, secret_key=secret_key, password=password)
    return NewCredentials(account=account, password=password, totp_uri=uri)


async def current_totp_code(
    session: AsyncSession, *, secret_key: bytes, username: str, now: dt.datetime
) -> str:
    """The TOTP code a local account's authenticator app shows at `now`.

    For the demo and development only (the CLI refuses it in production): it turns the
    second factor into something the server hands out. Raises InvalidAccount if unknown.
    """
    query = select(StaffAccount).where(col(StaffAccount.username) == username)
    account = (await session.execute(query)).scalar()
    totp_secret = _open_totp(secret_key, account) if account is not None else None
    if totp_secret is None:
        raise InvalidAccount(f"no local account {username!r} with a TOTP secret")
    return str(pyotp.TOTP(totp_secret).at(now))


async def authenticate_local(
    session: AsyncSession,
    *,
    secret_key: bytes,
    username: str,
    password: str,
    totp_code: str,
    now: dt.datetime,
) -> StaffAccount:
    """The account, if user name, password and a not yet used TOTP code all match.

    Raises LoginFailed otherwise, without saying which part was wrong.
    """
    refused = LoginFailed("wrong user name, password or code")
    query = select(StaffAccount).where(col(StaffAccount.username) == username)
    account = (await session.execute(query)).scalar()
    try:
        _HASHER.verify(
            account.password_hash if account and account.password_hash else _DUMMY_HASH, password
        )
    except (VerificationError, InvalidHashError):
        raise refused from None
    if account is None or account.password_hash is None or account.disabled_at is not None:
        raise refused
    totp_secret = _open_totp(secret_key, account)
    if totp_secret is None or not totp_code.isdigit():
        raise refused
    step = _matching_step(totp_secret, totp_code, now)
    if step is None or (account.totp_last_step is not None and step <= account.totp_last_step):
        raise refused  # wrong, or already used: a code counts once
    account.totp_last_step = step
    if _HASHER.check_needs_rehash(account.password_hash):
        account.password_hash = _HASHER.hash(password)
    return account


def _matching_step(totp_secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step whose code matches (now, or one step either side for clock drift)."""
    totp = pyotp.TOTP(totp_secret)
    current = int(now.timestamp()) // _TOTP_STEP
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.at(step * _TOTP_STEP), code):
            return step
    return None
