"""DigiD: the SAML 2.0 service provider residents log in through, and a test IdP for dev/test.

Production code imports from here. The test IdP (`identity.digid.testidp`,
`identity.digid.testidp_web`) is imported explicitly, and only in `dev`/`test` mode.
"""

from __future__ import annotations

from identity.digid.certs import KeyPair, ensure_key_pair, load_key_pair
from identity.digid.config import DigidSpConfig
from identity.digid.loa import LevelOfAssurance
from identity.digid.metadata import IdpMetadata, parse_idp_metadata
from identity.digid.response import DigidAssertion, RequestLookup
from identity.digid.sp import AuthnRequestInfo, DigidServiceProvider, Transport
from identity.digid.transport import aiohttp_transport, mutual_tls_context

__all__ = [
    "AuthnRequestInfo",
    "DigidAssertion",
    "DigidServiceProvider",
    "DigidSpConfig",
    "IdpMetadata",
    "KeyPair",
    "LevelOfAssurance",
    "RequestLookup",
    "Transport",
    "aiohttp_transport",
    "ensure_key_pair",
    "load_key_pair",
    "mutual_tls_context",
    "parse_idp_metadata",
]
