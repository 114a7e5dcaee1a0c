"""Staff single sign-on with the municipality's OpenID Connect provider.

Authorization code flow with PKCE (S256); the id token is verified (RS256/ES256 against the
provider's published keys, issuer, audience, times with a bounded clock skew, nonce) and its
claims are mapped to Balie roles and a department. Errors: see `identity.oidc.errors`.
"""

from identity.oidc.client import Clock, LoginStart, OidcClient, utc_now
from identity.oidc.config import STAFF_ROLES, OidcConfig, StaffRole, TokenEndpointAuth
from identity.oidc.errors import (
    OidcClaimMissing,
    OidcConfigError,
    OidcError,
    OidcIdTokenInvalid,
    OidcLoginRefused,
    OidcNoRole,
    OidcProviderUnavailable,
    OidcStateMismatch,
    OidcTokenRequestFailed,
)
from identity.oidc.metadata import ProviderMetadata
from identity.oidc.staff import StaffIdentity
from identity.oidc.transport import AiohttpTransport, HttpReply, OidcTransport

__all__ = [
    "STAFF_ROLES",
    "AiohttpTransport",
    "Clock",
    "HttpReply",
    "LoginStart",
    "OidcClaimMissing",
    "OidcClient",
    "OidcConfig",
    "OidcConfigError",
    "OidcError",
    "OidcIdTokenInvalid",
    "OidcLoginRefused",
    "OidcNoRole",
    "OidcProviderUnavailable",
    "OidcStateMismatch",
    "OidcTokenRequestFailed",
    "OidcTransport",
    "ProviderMetadata",
    "StaffIdentity",
    "StaffRole",
    "TokenEndpointAuth",
    "utc_now",
]
