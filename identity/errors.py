"""Errors of the identity package.

IdentityError        base; `code` is stable and machine-readable
└── InvalidBsn       a BSN that fails the eleven-test or is not nine digits
"""

from __future__ import annotations

__all__ = [
    "Forbidden",
    "IdentityError",
    "InvalidAccount",
    "InvalidBsn",
    "InvitationInvalid",
    "LoginFailed",
    "NotAuthenticated",
]


class IdentityError(Exception):
    code = "identity_error"


class InvalidBsn(IdentityError):
    code = "invalid_bsn"


class LoginFailed(IdentityError):
    code = "login_failed"


class NotAuthenticated(IdentityError):
    code = "not_authenticated"


class Forbidden(IdentityError):
    code = "forbidden"


class InvalidAccount(IdentityError):
    code = "invalid_account"


class InvitationInvalid(IdentityError):
    code = "invitation_invalid"
