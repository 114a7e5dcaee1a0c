"""Errors of the identity package.

IdentityError        base; `code` is stable and machine-readable
└── InvalidBsn       a BSN that fails the eleven-test or is not nine digits
"""

from __future__ import annotations

__all__ = ["IdentityError", "InvalidBsn"]


class IdentityError(Exception):
    code = "identity_error"


class InvalidBsn(IdentityError):
    code = "invalid_bsn"
