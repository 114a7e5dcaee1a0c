"""What Balie needs to know about the municipality's OpenID Connect provider, checked up front.

A mistake here (a typo in a role name, an http:// issuer) should stop the server at start-up
with a message naming the setting, not surface later as a staff member who cannot sign in.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import SecretStr

from identity.oidc.errors import OidcConfigError
from identity.roles import STAFF_ROLES, StaffRole

__all__ = ["STAFF_ROLES", "OidcConfig", "StaffRole", "TokenEndpointAuth", "check_provider_url"]


TokenEndpointAuth = Literal["client_secret_basic", "client_secret_post"]

# More than a few minutes of skew means a broken clock somewhere; accepting it would stretch
# the lifetime of every id token by as much.
_MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_provider_url(url: str, what: str, *, allow_query: bool = True) -> None:
    """Refuse anything but an absolute https URL (http only to a loopback host, for tests and
    a provider on the same machine). Raises OidcConfigError naming `what` and the URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise OidcConfigError(f"{what} must be an absolute URL, got {url!r}")
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
        # Over plain http anyone on the path could swap the signing keys or read the code.
        raise OidcConfigError(f"{what} must use https, got {url!r}")
    if parts.fragment or (parts.query and not allow_query):
        raise OidcConfigError(f"{what} must not have a query or fragment, got {url!r}")


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """Settings of the staff OpenID Connect client; validated when constructed.

    `role_mapping` maps a value of the role claim (an app role or group name at the provider)
    to a Balie role; values that are not in the mapping are ignored, because a groups claim
    usually carries many groups that mean nothing to Balie.

    Raises OidcConfigError naming the first bad field.
    """

    issuer: str
    client_id: str
    client_secret: SecretStr
    redirect_uri: str
    role_mapping: Mapping[str, StaffRole]
    scopes: str = "openid profile email"
    role_claim: str = "roles"
    department_claim: str | None = "department"
    employee_id_claim: str = "preferred_username"
    display_name_claim: str = "name"
    clock_skew: dt.timedelta = field(default=dt.timedelta(seconds=60))
    token_endpoint_auth: TokenEndpointAuth = "client_secret_basic"  # noqa: S105 - a method name

    def __post_init__(self) -> None:
        check_provider_url(self.issuer, "issuer", allow_query=False)
        check_provider_url(self.redirect_uri, "redirect_uri", allow_query=False)
        if not self.client_id.strip():
            raise OidcConfigError("client_id must not be empty")
        if not isinstance(self.client_secret, SecretStr):
            raise OidcConfigError("client_secret must be a SecretStr, so that it never prints")
        if not self.client_secret.get_secret_value():
            raise OidcConfigError("client_secret must not be empty")
        if "openid" not in self.scopes.split():
            raise OidcConfigError(f"scopes must include 'openid', got {self.scopes!r}")
        for name in ("role_claim", "employee_id_claim", "display_name_claim"):
            if not getattr(self, name):
                raise OidcConfigError(f"{name} must not be empty")
        if self.department_claim == "":
            raise OidcConfigError("department_claim must be a claim name or None, not empty")
        if not self.role_mapping:
            raise OidcConfigError("role_mapping is empty: nobody could ever sign in")
        for claim_value, role in self.role_mapping.items():
            if role not in STAFF_ROLES:
                raise OidcConfigError(
                    f"role_mapping[{claim_value!r}] = {role!r} is not a Balie role "
                    f"(one of {', '.join(sorted(STAFF_ROLES))})"
                )
        if not dt.timedelta(0) <= self.clock_skew <= _MAX_CLOCK_SKEW:
            raise OidcConfigError(
                f"clock_skew must be between 0 and {_MAX_CLOCK_SKEW}, got {self.clock_skew}"
            )
        if self.token_endpoint_auth not in get_args(TokenEndpointAuth):
            raise OidcConfigError(
                f"token_endpoint_auth must be one of {get_args(TokenEndpointAuth)}, "
                f"got {self.token_endpoint_auth!r}"
            )
        # A read-only copy: the caller's dict must not change the roles of a running client.
        object.__setattr__(self, "role_mapping", MappingProxyType(dict(self.role_mapping)))

    @property
    def discovery_url(self) -> str:
        """Where the provider publishes its metadata (OpenID Connect Discovery 1.0, section 4)."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"
