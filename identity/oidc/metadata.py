"""The provider's discovery document, reduced to what Balie uses and checked before use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from identity.oidc.config import OidcConfig, check_provider_url
from identity.oidc.errors import OidcConfigError, OidcProviderUnavailable
from identity.oidc.id_token import ACCEPTED_ALGORITHMS

__all__ = ["ProviderMetadata"]


def _optional_list(document: Mapping[str, object], name: str) -> list[object] | None:
    value = document.get(name)
    return value if isinstance(value, list) else None


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """Issuer and the three endpoints of an OpenID Connect provider."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str

    @classmethod
    def from_document(cls, document: object, config: OidcConfig) -> ProviderMetadata:
        """Validate a discovery document against `config`.

        Raises OidcConfigError when the provider is not the configured one (its `issuer` differs,
        which OpenID Connect Discovery 1.0 section 4.3 says must stop us) or cannot do what we
        need (S256 PKCE, RS256/ES256, our client authentication method); raises
        OidcProviderUnavailable when the document is not usable at all.
        """
        where = config.discovery_url
        if not isinstance(document, Mapping):
            raise OidcProviderUnavailable(f"{where} did not return a JSON object")
        issuer = document.get("issuer")
        if issuer != config.issuer:
            raise OidcConfigError(
                f"the provider at {where} calls itself issuer {str(issuer)[:200]!r}, but Balie "
                f"is configured with issuer {config.issuer!r}; the two must be identical"
            )
        endpoints: dict[str, str] = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str):
                raise OidcProviderUnavailable(f"{where} does not name a {name}")
            check_provider_url(value, f"the provider's {name}")
            endpoints[name] = value

        # Absent lists mean "not advertised", which many providers leave out; only a list that
        # excludes what we need is a definite no.
        pkce = _optional_list(document, "code_challenge_methods_supported")
        if pkce is not None and "S256" not in pkce:
            raise OidcConfigError(f"the provider at {where} does not support PKCE with S256")
        algorithms = _optional_list(document, "id_token_signing_alg_values_supported")
        if algorithms is not None and not set(ACCEPTED_ALGORITHMS) & set(map(str, algorithms)):
            raise OidcConfigError(
                f"the provider at {where} signs id tokens with none of "
                f"{', '.join(ACCEPTED_ALGORITHMS)}"
            )
        auth_methods = _optional_list(document, "token_endpoint_auth_methods_supported")
        if auth_methods is not None and config.token_endpoint_auth not in auth_methods:
            raise OidcConfigError(
                f"the provider at {where} does not accept token_endpoint_auth "
                f"{config.token_endpoint_auth!r}"
            )
        return cls(issuer=config.issuer, **endpoints)
