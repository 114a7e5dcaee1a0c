"""The test IdP over HTTP: login page, form post, redirect with SAMLart, SOAP artifact
resolution through the aiohttp transport, and IdP metadata."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from identity.digid.errors import DigidArtifactUnknown, DigidCancelled
from identity.digid.loa import LevelOfAssurance
from identity.digid.metadata import parse_idp_metadata
from identity.digid.sp import DigidServiceProvider
from identity.digid.testidp_web import add_test_idp_routes
from identity.digid.transport import aiohttp_transport

from digid_helpers import ACS_URL, BSN, IDP_ENTITY, Keys, World, make_keys, make_world

Client = TestClient[web.Request, web.Application]
SSO_PATH = "/test-idp/sso"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@dataclasses.dataclass
class Served:
    world: World
    client: Client
    sp: DigidServiceProvider  # resolves artifacts at the real test server

    def login_query(self, loa: LevelOfAssurance = LevelOfAssurance.MIDDEN) -> tuple[str, str]:
        info = self.sp.authn_request(loa=loa, relay_state="/afspraak/7")
        return info.request_id, urlsplit(info.redirect_url).query

    async def resolve_and_validate(self, location: str, request_id: str, loa: LevelOfAssurance):
        artifact = parse_qs(urlsplit(location).query)["SAMLart"][0]
        xml = await self.sp.resolve_artifact(
            artifact, transport=aiohttp_transport(self.client.session)
        )
        return self.sp.validate_response(
            xml, request_id_lookup={request_id: loa}.get, now=self.world.clock()
        )


@pytest.fixture
async def served(
    keys: Keys, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> Served:
    world = make_world(
        keys,
        sso_url="http://127.0.0.1/test-idp/sso",
        resolve_url="http://127.0.0.1/test-idp/artifact",
    )
    app = web.Application()
    add_test_idp_routes(app.router, world.idp)
    client = await aiohttp_client(app)
    config = dataclasses.replace(
        world.sp.config, idp_artifact_resolution_url=str(client.make_url("/test-idp/artifact"))
    )
    return Served(world, client, DigidServiceProvider(config, clock=world.clock))


async def test_login_page_is_dutch_labelled_and_script_free(served: Served) -> None:
    _, query = served.login_query(LevelOfAssurance.SUBSTANTIEEL)

    response = await served.client.get(f"{SSO_PATH}?{query}")
    html = await response.text()

    assert response.status == 200
    assert response.content_type == "text/html"
    assert '<html lang="nl">' in html
    assert '<label for="bsn">' in html
    assert 'id="bsn"' in html
    for level in LevelOfAssurance:
        assert f'<label for="loa-{level.value}">' in html
    checked = re.findall(r'value="(\w+)"\s+checked', html)
    assert checked == ["substantieel"]
    assert "<script" not in html.lower()
    assert "geen echte DigiD" in html
    assert html.count("lager dan deze dienst vraagt") == 2  # basis and midden
    assert not re.search(r"\b[0-9]{9}\b", html), "the page shows a nine-digit number"


@pytest.mark.parametrize("loa", [LevelOfAssurance.BASIS, LevelOfAssurance.HOOG], ids=str)
async def test_login_form_redirects_to_acs_and_artifact_resolves(
    served: Served, loa: LevelOfAssurance
) -> None:
    request_id, query = served.login_query(loa)

    response = await served.client.post(
        SSO_PATH,
        data={"saml_request": query, "bsn": BSN, "loa": loa.value, "action": "login"},
        allow_redirects=False,
    )

    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(ACS_URL + "?")
    assert parse_qs(urlsplit(location).query)["RelayState"] == ["/afspraak/7"]
    assert BSN not in location
    assertion = await served.resolve_and_validate(location, request_id, loa)
    assert (assertion.bsn, assertion.loa) == (BSN, loa)


async def test_artifact_resolves_once_over_http(served: Served) -> None:
    request_id, query = served.login_query()
    response = await served.client.post(
        SSO_PATH,
        data={"saml_request": query, "bsn": BSN, "loa": "midden", "action": "login"},
        allow_redirects=False,
    )
    location = response.headers["Location"]
    await served.resolve_and_validate(location, request_id, LevelOfAssurance.MIDDEN)

    with pytest.raises(DigidArtifactUnknown):
        await served.resolve_and_validate(location, request_id, LevelOfAssurance.MIDDEN)


@pytest.mark.parametrize("bsn", ["123456789", "12345", ""])
async def test_invalid_bsn_is_explained_and_not_echoed(served: Served, bsn: str) -> None:
    _, query = served.login_query()

    response = await served.client.post(
        SSO_PATH,
        data={"saml_request": query, "bsn": bsn, "loa": "midden", "action": "login"},
        allow_redirects=False,
    )
    html = await response.text()

    assert response.status == 422
    assert 'role="alert"' in html
    assert "elfproef" in html
    assert 'aria-invalid="true"' in html
    assert not bsn or bsn not in html


async def test_missing_level_is_explained(served: Served) -> None:
    _, query = served.login_query()

    response = await served.client.post(
        SSO_PATH, data={"saml_request": query, "bsn": BSN, "action": "login"}
    )

    assert response.status == 422
    assert "Kies een betrouwbaarheidsniveau" in await response.text()


async def test_cancel_button_returns_digid_cancel_status(served: Served) -> None:
    request_id, query = served.login_query()

    response = await served.client.post(
        SSO_PATH, data={"saml_request": query, "action": "cancel"}, allow_redirects=False
    )

    assert response.status == 303
    with pytest.raises(DigidCancelled):
        await served.resolve_and_validate(
            response.headers["Location"], request_id, LevelOfAssurance.MIDDEN
        )


async def test_tampered_authn_request_gets_problem_page(served: Served) -> None:
    _, query = served.login_query()
    tampered = query.replace("RelayState=%2Fafspraak%2F7", "RelayState=%2Fafspraak%2F8")
    assert tampered != query

    page = await served.client.get(f"{SSO_PATH}?{tampered}")
    post = await served.client.post(
        SSO_PATH, data={"saml_request": tampered, "bsn": BSN, "loa": "midden", "action": "login"}
    )

    assert page.status == 400
    assert post.status == 400
    assert "digid_request_rejected" in await page.text()
    assert "Inloggen lukt niet" in await post.text()


@pytest.mark.parametrize("body", [b"", b"<not-soap/>", b"\xff\xfe garbage"])
async def test_artifact_endpoint_answers_garbage_with_soap_fault(served: Served, body: bytes):
    response = await served.client.post(
        "/test-idp/artifact", data=body, headers={"Content-Type": "text/xml"}
    )

    assert response.status == 500
    assert "<faultstring>digid_malformed_message</faultstring>" in await response.text()


async def test_metadata_names_endpoints_and_signing_certificate(served: Served, keys: Keys):
    response = await served.client.get("/test-idp/metadata")

    metadata = parse_idp_metadata(await response.text(), signer_cert_pem=keys.idp.cert_pem)

    assert response.status == 200
    assert metadata.entity_id == IDP_ENTITY
    assert metadata.sso_url == "http://127.0.0.1/test-idp/sso"
    assert metadata.artifact_resolution_url == "http://127.0.0.1/test-idp/artifact"
    assert "".join(metadata.signing_certs_pem[0].split()) == "".join(keys.idp.cert_pem.split())
