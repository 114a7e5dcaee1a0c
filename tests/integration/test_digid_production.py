"""Production wiring: DigiD from metadata and key files, artifacts resolved over HTTP.

The "DigiD" here is the test IdP running as a separate server, configured only through what a
municipality configures for real DigiD: its metadata file and the SP's key and certificate.
"""

from __future__ import annotations

import html
import re
import socket
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import DummyCookieJar, web
from yarl import URL

from dossier.db import wall_clock
from dossier.export.signing import load_export_key
from identity.digid.certs import ensure_key_pair
from identity.digid.metadata import idp_metadata_xml
from identity.digid.testidp import TestIdp, TestIdpConfig, TrustedSp
from identity.digid.testidp_web import add_test_idp_routes
from identity.invitations import create_invitation
from identity.sessions import SESSION_COOKIE
from retention.checkpoints import load_checkpoint_key
from server.app import create_app
from server.pages import TEMPLATES
from server.settings import Settings

from support import book

BSN = "999993653"


@pytest.fixture
async def production(aiohttp_server, aiohttp_client, settings, clock, store, tmp_path):
    keys = tmp_path / "digid-keys"
    sp = ensure_key_pair(keys, name="sp", common_name="sp", now=clock.current, key_size=2048)
    idp_keys = ensure_key_pair(
        keys, name="idp", common_name="idp", now=clock.current, key_size=2048
    )
    idp_app = web.Application()
    with socket.socket() as probe:  # a free port, known before the IdP's routes are made
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    idp_base = f"http://127.0.0.1:{port}/digid"
    public = "http://127.0.0.1:8443"
    idp = TestIdp(
        TestIdpConfig(
            entity_id=idp_base,
            keys=idp_keys,
            sp=TrustedSp(f"{public}/digid/metadata", f"{public}/digid/acs", sp.cert_pem),
            sso_url=f"{idp_base}/sso",
            artifact_resolution_url=f"{idp_base}/artifact",
        ),
        clock=wall_clock(clock),
    )
    add_test_idp_routes(idp_app.router, idp, prefix="/digid", templates=TEMPLATES)
    await aiohttp_server(idp_app, port=port)
    metadata = tmp_path / "digid-metadata.xml"
    metadata.write_text(
        idp_metadata_xml(
            entity_id=idp_base,
            sso_url=f"{idp_base}/sso",
            artifact_resolution_url=f"{idp_base}/artifact",
            keys=idp_keys,
        )
    )
    # An operator installs the export signing key (`balie keys create-export-key`).
    load_export_key(settings.resolved_key_dir, create=True)
    load_checkpoint_key(settings.resolved_audit_signing_key, create=True)
    configured = Settings(
        environment="production",
        data_dir=settings.data_dir,
        database_url=settings.resolved_database_url,
        key_dir=settings.resolved_key_dir,
        pseudonym_key="p" * 40,
        secret_key="s" * 40,
        public_url=public,
        digid_idp_metadata=metadata,
        digid_sp_key=keys / "sp.key.pem",
        digid_sp_cert=keys / "sp.cert.pem",
    )
    client = await aiohttp_client(create_app(configured, clock=clock), cookie_jar=DummyCookieJar())
    return client, configured


async def test_resident_logs_in_against_digid_configured_from_files(production, store, clock):
    client, _ = production
    booked = await book(store, clock)
    async with store.sessions() as session, session.begin():
        token = await create_invitation(
            session,
            appointment_id=booked.appointment.id,
            kind="resident",
            appointment_ends_at=booked.appointment.ends_at,
            now=clock.current,
        )
    assert (await client.get("/readyz")).status == 200
    start = await client.get(f"/i/{token}", allow_redirects=False)
    assert start.status == 303
    cookie = {"Cookie": f"{SESSION_COOKIE}={start.cookies[SESSION_COOKIE].value}"}
    async with aiohttp.ClientSession() as browser:  # the resident's browser at DigiD
        sso = URL(start.headers["Location"], encoded=True)
        async with browser.get(sso) as page:
            assert page.status == 200
            saml_request = html.unescape(
                re.search(r'name="saml_request" value="([^"]*)"', await page.text()).group(1)
            )
        form = {"saml_request": saml_request, "bsn": BSN, "loa": "substantieel", "action": "login"}
        async with browser.post(sso.with_query(None), data=form, allow_redirects=False) as done:
            assert done.status == 303
            back = URL(done.headers["Location"])
    artifact = back.query["SAMLart"]
    acs = URL(f"/digid/acs?SAMLart={quote(artifact, safe='')}", encoded=True)
    response = await client.get(acs, headers=cookie, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/afspraak/{booked.appointment.id}"


async def test_production_without_digid_is_not_ready(aiohttp_client, settings, clock, store):
    configured = Settings(
        environment="production",
        data_dir=settings.data_dir,
        database_url=settings.resolved_database_url,
        key_dir=settings.resolved_key_dir,
        pseudonym_key="p" * 40,
        secret_key="s" * 40,
    )
    client = await aiohttp_client(create_app(configured, clock=clock))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["digid"].startswith("not configured")
    assert (await client.get("/i/whatever")).status == 404


def test_incomplete_digid_settings_are_refused(isolated_env, tmp_path):
    with pytest.raises(ValueError, match="BALIE_DIGID_SP_KEY"):
        Settings(digid_idp_metadata=tmp_path / "m.xml")
    with pytest.raises(ValueError, match="BALIE_DIGID_TLS_KEY"):
        Settings(digid_tls_cert=tmp_path / "c.pem")
