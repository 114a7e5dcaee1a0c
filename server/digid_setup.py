"""Building the DigiD wiring from settings: the test IdP in dev/test, real DigiD otherwise."""

from __future__ import annotations

from aiohttp import web

from dossier.db import Clock, wall_clock
from identity.digid import DigidServiceProvider, DigidSpConfig, ensure_key_pair
from identity.digid.testidp import TestIdp, TestIdpConfig, TrustedSp
from identity.digid.testidp_web import add_test_idp_routes
from server.digid_routes import DigidWiring
from server.pages import TEMPLATES, make_environment
from server.ratelimit import RateLimiter
from server.settings import Settings

__all__ = ["mount_test_digid"]

TEST_IDP_PREFIX = "/test-idp"


def mount_test_digid(app: web.Application, settings: Settings, clock: Clock) -> DigidWiring:
    """The DigiD test IdP on this server, and an SP that trusts it (dev/test only).

    Keys are generated in the data directory at first start and never committed. Artifacts
    are resolved by handing the SOAP message to the in-process IdP: the same bytes the SP
    would post to DigiD, without a request from the server to itself.
    """
    assert settings.is_development, "the DigiD test IdP never runs in production"
    origin = settings.public_origin
    now = wall_clock(clock)
    keys_dir = settings.data_dir / "digid"
    sp_keys = ensure_key_pair(
        keys_dir, name="sp", common_name="Balie SP (test)", now=now(), key_size=2048
    )
    idp_keys = ensure_key_pair(
        keys_dir, name="test-idp", common_name="DigiD test IdP", now=now(), key_size=2048
    )
    sp_config = DigidSpConfig(
        entity_id=f"{origin}/digid/metadata",
        acs_url=f"{origin}/digid/acs",
        sp_key_pem=sp_keys.key_pem,
        sp_cert_pem=sp_keys.cert_pem,
        idp_entity_id=f"{origin}{TEST_IDP_PREFIX}",
        idp_sso_url=f"{origin}{TEST_IDP_PREFIX}/sso",
        idp_artifact_resolution_url=f"{origin}{TEST_IDP_PREFIX}/artifact",
        idp_cert_pem=idp_keys.cert_pem,
    )
    idp = TestIdp(
        TestIdpConfig(
            entity_id=sp_config.idp_entity_id,
            keys=idp_keys,
            sp=TrustedSp(sp_config.entity_id, sp_config.acs_url, sp_keys.cert_pem),
            sso_url=sp_config.idp_sso_url,
            artifact_resolution_url=sp_config.idp_artifact_resolution_url,
        ),
        clock=now,
    )
    add_test_idp_routes(app.router, idp, prefix=TEST_IDP_PREFIX, templates=TEMPLATES)

    async def in_process(url: str, body: bytes) -> bytes:
        return idp.resolve(body)

    return DigidWiring(
        sp=DigidServiceProvider(sp_config, clock=now),
        transport=in_process,
        pages=make_environment(),
        limiter=RateLimiter(per_minute=20, burst=10),
        test_idp=idp,
    )
