"""Who a staff member is to Balie, read from the claims of a verified id token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from identity.oidc.config import OidcConfig, StaffRole
from identity.oidc.errors import OidcClaimMissing, OidcNoRole

__all__ = ["StaffIdentity", "staff_identity_from_claims"]


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    """A signed-in staff member: provider subject, employee id, name, Balie roles, department."""

    subject: str
    employee_id: str
    display_name: str
    roles: frozenset[StaffRole]
    department: str | None


def _claim_values(value: object) -> list[str]:
    # Providers send roles/groups as a JSON array; a few send one role as a plain string.
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _department(claims: Mapping[str, object], name: str | None) -> str | None:
    if name is None:
        return None
    values = _claim_values(claims.get(name))
    # Several departments would make "own department" ambiguous in every permission check;
    # better no department (a clerk then sees no dossiers) than a guess.
    if len(values) != 1 or not values[0].strip():
        return None
    return values[0].strip()


def staff_identity_from_claims(claims: Mapping[str, object], config: OidcConfig) -> StaffIdentity:
    """Map verified claims to a StaffIdentity through the configured claim names and mapping.

    Raises OidcClaimMissing when the employee id claim is absent, and OidcNoRole when none
    of the role claim's values maps to a Balie role.
    """
    employee_id = claims.get(config.employee_id_claim)
    if not isinstance(employee_id, str) or not employee_id.strip():
        raise OidcClaimMissing(
            f"the identity provider sent no {config.employee_id_claim!r} claim to use as "
            "employee id; add it to the id token or change employee_id_claim"
        )
    roles = frozenset(
        config.role_mapping[value]
        for value in _claim_values(claims.get(config.role_claim))
        if value in config.role_mapping
    )
    if not roles:
        raise OidcNoRole(
            "you signed in, but your account has no Balie role: none of the values of its "
            f"{config.role_claim!r} claim is mapped to one; ask your functional administrator "
            "for access",
            subject=str(claims["sub"]),
        )
    name = claims.get(config.display_name_claim)
    display_name = name.strip() if isinstance(name, str) and name.strip() else employee_id.strip()
    return StaffIdentity(
        subject=str(claims["sub"]),
        employee_id=employee_id.strip(),
        display_name=display_name,
        roles=roles,
        department=_department(claims, config.department_claim),
    )
