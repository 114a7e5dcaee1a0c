"""Building the DigiD wiring from settings: the test IdP in dev/test, real DigiD otherwise."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from dossier.db import Clock, wall_clock
from identity.digid import (
    DigidServiceProvider,
    DigidSpConfig,
    aiohttp_transport,
    ensure_key_pair,
    load_key_pair,
    mutual_tls_context,
    parse_idp_metadata,
)
from identity.digid.testidp import TestIdp, TestIdpConfig, TrustedSp
from identity.digid.testidp_web import add_test_idp_routes
from server.appkeys import SETTINGS
from server.digid_routes import DigidWiring
from server.pages import TEMPLATES
from server.ratelimit import RateLimiter
from server.settings import Settings

__all__ = ["DIGID_HTTP", "digid_http_context", "mount_digid", "mount_test_digid"]

DIGID_HTTP = web.AppKey("digid_http", aiohttp.ClientSession)

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
        limiter=RateLimiter(per_minute=20, burst=10),
        test_idp=idp,
    )


def mount_digid(app: web.Application, settings: Settings, clock: Clock) -> DigidWiring:
    """The SP for real DigiD, from the metadata, keys and client certificate in settings.

    Raises DigidConfigError (or OSError for unreadable files) so that a misconfigured
    production server does not start.
    """
    assert settings.digid_idp_metadata is not None
    assert settings.digid_sp_key is not None
    assert settings.digid_sp_cert is not None
    idp = parse_idp_metadata(settings.digid_idp_metadata.read_bytes())
    sp_keys = load_key_pair(settings.digid_sp_key, settings.digid_sp_cert)
    origin = settings.public_origin
    config = DigidSpConfig(
        entity_id=f"{origin}/digid/metadata",
        acs_url=f"{origin}/digid/acs",
        sp_key_pem=sp_keys.key_pem,
        sp_cert_pem=sp_keys.cert_pem,
        idp_entity_id=idp.entity_id,
        idp_sso_url=idp.sso_url,
        idp_artifact_resolution_url=idp.artifact_resolution_url,
        idp_cert_pem=idp.signing_certs_pem[0],
    )

    async def over_https(url: str, body: bytes) -> bytes:
        return await aiohttp_transport(app[DIGID_HTTP])(url, body)

    app.cleanup_ctx.append(digid_http_context)
    return DigidWiring(
        sp=DigidServiceProvider(config, clock=wall_clock(clock)),
        transport=over_https,
        limiter=RateLimiter(per_minute=20, burst=10),
    )


async def digid_http_context(app: web.Application) -> AsyncIterator[None]:
    """The HTTP session for artifact resolution, with the client certificate if configured."""
    settings = app[SETTINGS]
    ssl_context: ssl.SSLContext | bool = True
    if settings.digid_tls_cert is not None and settings.digid_tls_key is not None:
        ssl_context = mutual_tls_context(
            client_cert=settings.digid_tls_cert, client_key=settings.digid_tls_key
        )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context)) as http:
        app[DIGID_HTTP] = http
        yield
