"""Errors of staff sign-on (OpenID Connect).

IdentityError                    (identity.errors)
└── OidcError                    base of everything below; `code` is stable and machine-readable
    ├── OidcConfigError          our configuration is unusable, or does not match the provider
    ├── OidcProviderUnavailable  the provider did not answer, or answered something unusable
    ├── OidcStateMismatch        the callback's `state` is not the one this browser session started
    ├── OidcLoginRefused         the provider sent the user back with an error (e.g. access_denied)
    ├── OidcTokenRequestFailed   the token endpoint refused the code (wrong PKCE verifier, reuse)
    ├── OidcIdTokenInvalid       the id token failed a check; `reason` says which one
    ├── OidcClaimMissing         a claim we need (employee id) is absent or not a string
    └── OidcNoRole               the user signed in fine but holds no role that Balie knows

Messages name the problem and the value at fault, never a token, code or secret.
"""

from __future__ import annotations

from typing import Literal

from identity.errors import IdentityError

__all__ = [
    "IdTokenProblem",
    "OidcClaimMissing",
    "OidcConfigError",
    "OidcError",
    "OidcIdTokenInvalid",
    "OidcLoginRefused",
    "OidcNoRole",
    "OidcProviderUnavailable",
    "OidcStateMismatch",
    "OidcTokenRequestFailed",
]


class OidcError(IdentityError):
    code = "oidc_error"


class OidcConfigError(OidcError):
    code = "oidc_config_invalid"


class OidcProviderUnavailable(OidcError):
    code = "oidc_provider_unavailable"


class OidcStateMismatch(OidcError):
    code = "oidc_state_mismatch"


class OidcLoginRefused(OidcError):
    """The provider answered the authorization request with `error=...` instead of a code."""

    code = "oidc_login_refused"

    def __init__(self, message: str, *, provider_error: str) -> None:
        super().__init__(message)
        self.provider_error = provider_error


class OidcTokenRequestFailed(OidcError):
    """The token endpoint refused to exchange the code; `provider_error` is its `error` field."""

    code = "oidc_token_request_failed"

    def __init__(self, message: str, *, provider_error: str) -> None:
        super().__init__(message)
        self.provider_error = provider_error


IdTokenProblem = Literal[
    "malformed",
    "algorithm",
    "unknown_key",
    "signature",
    "issuer",
    "audience",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "nonce",
    "subject",
]


class OidcIdTokenInvalid(OidcError):
    """One error class for every failed id-token check: to the user they all mean "sign-in
    failed, try again"; `reason` keeps them apart for the audit log and the tests."""

    code = "oidc_id_token_invalid"

    def __init__(self, message: str, *, reason: IdTokenProblem) -> None:
        super().__init__(message)
        self.reason: IdTokenProblem = reason


class OidcClaimMissing(OidcError):
    code = "oidc_claim_missing"


class OidcNoRole(OidcError):
    """Signed in, but no Balie role. `subject` (the provider's id) is for the audit event;
    the message stays free of personal data because error messages end up in logs."""

    code = "oidc_no_role"

    def __init__(self, message: str, *, subject: str) -> None:
        super().__init__(message)
        self.subject = subject
