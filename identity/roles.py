"""Staff roles (DESIGN section 1), one list for every sign-in provider."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["STAFF_ROLES", "StaffRole"]

StaffRole = Literal["clerk", "information_manager", "privacy_officer"]
STAFF_ROLES: frozenset[StaffRole] = frozenset(get_args(StaffRole))
