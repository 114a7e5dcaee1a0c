"""Staff known through single sign-on: the provider vouches, Balie keeps a matching account.

The account is created at first sign-in and updated at every later one, so that a role or
department changed at the municipality takes effect at the next login. A person with more
than one Balie role is refused rather than given the larger one: the municipality decides,
not a rule of thumb here.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.models import Department
from identity.errors import Forbidden
from identity.models import StaffAccount
from identity.oidc import StaffIdentity

__all__ = ["account_for_sso"]


async def account_for_sso(
    session: AsyncSession, *, identity: StaffIdentity, now: dt.datetime
) -> StaffAccount:
    """The account for a verified SSO identity, created or brought up to date.

    Raises Forbidden for more than one Balie role, or a clerk whose department claim names no
    department of this installation (matched on code or name, case-insensitively).
    """
    if len(identity.roles) != 1:
        roles = ", ".join(sorted(identity.roles))
        raise Forbidden(f"this account has more than one Balie role ({roles}); ask for one")
    (role,) = identity.roles
    department_id = None
    if identity.department is not None:
        wanted = identity.department.casefold()
        query = select(col(Department.id)).where(
            (func.lower(col(Department.code)) == wanted)
            | (func.lower(col(Department.name)) == wanted)
        )
        department_id = (await session.execute(query)).scalar()
    if role == "clerk" and department_id is None:
        raise Forbidden("no known department for this clerk; ask the administrator")
    username = f"sso:{identity.subject}"
    existing = select(StaffAccount).where(col(StaffAccount.username) == username)
    account = (await session.execute(existing)).scalar()
    if account is None:
        account = StaffAccount(username=username, source="oidc", created_at=now,
                               employee_id="", display_name="", role=role)  # fmt: skip
        session.add(account)
    account.employee_id = identity.employee_id[:64]
    account.display_name = identity.display_name[:200]
    account.role = role
    account.department_id = department_id
    await session.flush()
    return account
