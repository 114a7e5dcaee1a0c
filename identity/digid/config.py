"""Configuration of the DigiD service provider, and its translation into python3-saml settings."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from identity.digid.certs import check_key_pair, load_certificate
from identity.digid.errors import DigidConfigError
from identity.digid.loa import LevelOfAssurance

__all__ = ["DigidSpConfig", "onelogin_settings"]

_MAX_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class DigidSpConfig:
    """Everything the service provider needs to know; validates itself on construction.

    URLs must be absolute https URLs (plain http only for loopback hosts, for development).
    Raises DigidConfigError naming the field that is wrong.
    """

    entity_id: str
    acs_url: str
    sp_key_pem: str = field(repr=False)
    sp_cert_pem: str
    idp_entity_id: str
    idp_sso_url: str
    idp_artifact_resolution_url: str
    idp_cert_pem: str
    allowed_clock_skew: dt.timedelta = dt.timedelta(seconds=60)

    def __post_init__(self) -> None:
        for name in ("entity_id", "idp_entity_id"):
            value = getattr(self, name)
            if not value or len(value) > 1024 or any(c.isspace() for c in value):
                raise DigidConfigError(f"{name} must be a non-empty URI without spaces")
        for name in ("acs_url", "idp_sso_url", "idp_artifact_resolution_url"):
            _check_url(name, getattr(self, name))
        try:
            check_key_pair(self.sp_key_pem, self.sp_cert_pem)
            load_certificate(self.idp_cert_pem)
        except DigidConfigError as err:
            raise DigidConfigError(f"SP or IdP key material: {err}") from None
        if not dt.timedelta(0) <= self.allowed_clock_skew <= _MAX_SKEW:
            raise DigidConfigError(
                f"allowed_clock_skew must be between 0 and {_MAX_SKEW}, "
                f"not {self.allowed_clock_skew}"
            )


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise DigidConfigError(f"{name} must be an absolute https URL without fragment: {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise DigidConfigError(f"{name} must use https outside loopback hosts: {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def onelogin_settings(
    config: DigidSpConfig, *, requested: LevelOfAssurance | None = None
) -> OneLogin_Saml2_Settings:
    """python3-saml settings for `config`; `requested` sets the RequestedAuthnContext.

    Non-strict on purpose: python3-saml's strict checks read the wall clock, so the time,
    audience, recipient and InResponseTo checks live in `identity.digid.response` instead,
    against an injected clock. Signature checks do not depend on strictness.
    Raises DigidConfigError if python3-saml refuses the settings.
    """
    settings: dict[str, Any] = {
        "strict": False,
        "debug": False,
        "sp": {
            "entityId": config.entity_id,
            "assertionConsumerService": {
                "url": config.acs_url,
                "binding": C.BINDING_HTTP_ARTIFACT,
            },
            "NameIDFormat": C.NAMEID_UNSPECIFIED,
            "x509cert": config.sp_cert_pem,
            "privateKey": config.sp_key_pem,
        },
        "idp": {
            "entityId": config.idp_entity_id,
            "singleSignOnService": {"url": config.idp_sso_url, "binding": C.BINDING_HTTP_REDIRECT},
            "x509cert": config.idp_cert_pem,
        },
        "security": {
            "authnRequestsSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantNameId": True,
            "wantAttributeStatement": False,
            "signMetadata": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            "rejectDeprecatedAlgorithm": True,
            "requestedAuthnContext": [requested.class_ref] if requested else False,
            "requestedAuthnContextComparison": "minimum",
        },
    }
    try:
        return OneLogin_Saml2_Settings(settings, sp_validation_only=False)
    except OneLogin_Saml2_Error as err:
        raise DigidConfigError(f"python3-saml refuses the DigiD settings: {err}") from None
