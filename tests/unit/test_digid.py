"""DigiD login through the service provider and the in-process test IdP: the flow that works,
the AuthnRequest as DigiD sees it, and artifact resolution with its failure modes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import zlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from lxml import etree

from identity.digid.errors import (
    DigidArtifactInvalid,
    DigidArtifactResolveFailed,
    DigidArtifactReused,
    DigidArtifactUnknown,
    DigidCancelled,
    DigidIssuerMismatch,
    DigidLoaTooLow,
    DigidRequestRejected,
    DigidSignatureInvalid,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.saml import make_artifact
from identity.digid.sp import DigidServiceProvider
from identity.errors import InvalidBsn

from digid_helpers import (
    ACS_URL,
    BSN,
    IDP_ENTITY,
    NS,
    SSO_URL,
    Keys,
    World,
    make_keys,
    make_world,
)

ALL_LEVELS = list(LevelOfAssurance)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@pytest.fixture
def world(keys: Keys) -> World:
    return make_world(keys)


def _authn_request_xml(redirect_url: str) -> etree._Element:
    query = parse_qs(urlsplit(redirect_url).query)
    deflated = base64.b64decode(query["SAMLRequest"][0])
    return etree.fromstring(zlib.decompress(deflated, -15))


@pytest.mark.parametrize("loa", ALL_LEVELS, ids=lambda level: level.value)
async def test_login_at_each_level_yields_bsn_and_level(
    world: World, loa: LevelOfAssurance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    info, request = world.start(requested=loa, relay_state="/afspraak/42")
    assert request.requested_loa is loa
    assert request.relay_state == "/afspraak/42"

    artifact = world.idp.login(request, bsn=BSN, loa=loa)
    redirect = urlsplit(world.idp.acs_redirect(request, artifact))
    assert f"{redirect.scheme}://{redirect.netloc}{redirect.path}" == ACS_URL
    assert parse_qs(redirect.query) == {"SAMLart": [artifact], "RelayState": ["/afspraak/42"]}

    response_xml = await world.sp.resolve_artifact(artifact, transport=world.transport)
    assertion = world.sp.validate_response(
        response_xml, request_id_lookup=world.lookup(info), now=world.clock()
    )

    assert assertion.bsn == BSN
    assert assertion.loa is loa
    assert assertion.in_response_to == info.request_id
    assert assertion.not_on_or_after == world.clock() + dt.timedelta(minutes=5)
    assert assertion.replay_until == assertion.not_on_or_after + dt.timedelta(seconds=60)
    assert assertion.assertion_id
    assert BSN not in repr(assertion)
    assert BSN not in caplog.text


async def test_higher_level_than_requested_is_accepted(world: World) -> None:
    info, request = world.start(requested=LevelOfAssurance.MIDDEN)
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.HOOG)
    xml = await world.sp.resolve_artifact(artifact, transport=world.transport)

    assertion = world.sp.validate_response(
        xml, request_id_lookup=world.lookup(info), now=world.clock()
    )

    assert assertion.loa is LevelOfAssurance.HOOG


async def test_lower_level_than_requested_is_refused_naming_both(world: World) -> None:
    info, request = world.start(requested=LevelOfAssurance.SUBSTANTIEEL)
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    xml = await world.sp.resolve_artifact(artifact, transport=world.transport)

    with pytest.raises(DigidLoaTooLow) as caught:
        world.sp.validate_response(xml, request_id_lookup=world.lookup(info), now=world.clock())

    assert caught.value.code == "digid_loa_too_low"
    assert caught.value.required is LevelOfAssurance.SUBSTANTIEEL
    assert caught.value.given is LevelOfAssurance.MIDDEN
    assert "'midden'" in str(caught.value)
    assert "'substantieel'" in str(caught.value)
    assert BSN not in str(caught.value)


async def test_cancel_gives_digid_cancel_status(world: World) -> None:
    info, request = world.start()
    artifact = world.idp.cancel(request)
    xml = await world.sp.resolve_artifact(artifact, transport=world.transport)
    status = etree.fromstring(xml.encode()).find("samlp:Status/samlp:StatusCode", NS)
    assert status.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Responder"
    assert status[0].get("Value") == "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"

    with pytest.raises(DigidCancelled) as caught:
        world.sp.validate_response(xml, request_id_lookup=world.lookup(info), now=world.clock())

    assert caught.value.code == "digid_cancelled"
    assert caught.value.in_response_to == info.request_id


def test_authn_request_asks_for_minimum_level_over_artifact_binding(world: World) -> None:
    info = world.sp.authn_request(
        loa=LevelOfAssurance.SUBSTANTIEEL, relay_state="x", force_authn=True
    )

    url = urlsplit(info.redirect_url)
    query = parse_qs(url.query)
    request = _authn_request_xml(info.redirect_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == SSO_URL
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert query["Signature"][0]
    assert request.get("ID") == info.request_id
    assert request.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
    assert request.get("AssertionConsumerServiceURL") == ACS_URL
    assert request.get("Destination") == SSO_URL
    assert request.get("ForceAuthn") == "true"
    assert request.get("IssueInstant") == "2026-01-05T09:00:00Z"
    context = request.find("samlp:RequestedAuthnContext", NS)
    assert context.get("Comparison") == "minimum"
    refs = [ref.text for ref in context.findall("saml:AuthnContextClassRef", NS)]
    assert refs == ["urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard"]


def test_authn_request_without_force_authn_omits_it(world: World) -> None:
    info = world.sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state="x")

    assert _authn_request_xml(info.redirect_url).get("ForceAuthn") is None


@pytest.mark.parametrize("relay_state", ["x" * 81, "met spatie\n", "bsn=ü"])
def test_relay_state_must_be_short_printable_ascii(world: World, relay_state: str) -> None:
    with pytest.raises(ValueError, match="relay_state"):
        world.sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state=relay_state)


def test_idp_refuses_authn_request_with_changed_relay_state(world: World) -> None:
    info = world.sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state="mine")
    query = urlsplit(info.redirect_url).query.replace("RelayState=mine", "RelayState=theirs")

    with pytest.raises(DigidRequestRejected, match="does not verify"):
        world.idp.parse_authn_request(query)


def test_idp_refuses_unsigned_authn_request(world: World) -> None:
    info = world.sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state="mine")
    query = parse_qs(urlsplit(info.redirect_url).query)
    unsigned = urlencode({"SAMLRequest": query["SAMLRequest"][0], "RelayState": "mine"})

    with pytest.raises(DigidRequestRejected, match="not signed"):
        world.idp.parse_authn_request(unsigned)


def test_idp_refuses_authn_request_signed_by_another_sp(keys: Keys) -> None:
    impostor = make_world(Keys(sp=keys.other, idp=keys.idp, other=keys.other))
    genuine = make_world(keys)
    info = impostor.sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state="x")

    with pytest.raises(DigidRequestRejected):
        genuine.idp.parse_authn_request(urlsplit(info.redirect_url).query)


def test_idp_refuses_stale_authn_request(world: World) -> None:
    info = world.sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state="x")
    world.clock.advance(dt.timedelta(minutes=31))

    with pytest.raises(DigidRequestRejected, match="too old"):
        world.idp.parse_authn_request(urlsplit(info.redirect_url).query)


def test_idp_login_refuses_bsn_failing_eleven_test(world: World) -> None:
    _, request = world.start()

    with pytest.raises(InvalidBsn) as caught:
        world.idp.login(request, bsn="123456789", loa=LevelOfAssurance.BASIS)

    assert "123456789" not in str(caught.value)


async def test_artifact_can_be_resolved_once(world: World) -> None:
    _info, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    await world.sp.resolve_artifact(artifact, transport=world.transport)

    with pytest.raises(DigidArtifactUnknown) as caught:
        await world.sp.resolve_artifact(artifact, transport=world.transport)

    assert caught.value.code == "digid_artifact_unknown"


def test_idp_reports_second_use_of_an_artifact(world: World) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    world.idp.take_response(artifact)

    with pytest.raises(DigidArtifactReused) as caught:
        world.idp.take_response(artifact)

    assert caught.value.code == "digid_artifact_reused"


async def test_expired_artifact_is_unknown(world: World) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    world.clock.advance(dt.timedelta(minutes=5))

    with pytest.raises(DigidArtifactUnknown):
        await world.sp.resolve_artifact(artifact, transport=world.transport)


async def test_artifact_never_issued_is_unknown(world: World) -> None:
    artifact = make_artifact(idp_entity_id=IDP_ENTITY, endpoint_index=1, handle=b"\x01" * 20)

    with pytest.raises(DigidArtifactUnknown):
        await world.sp.resolve_artifact(artifact, transport=world.transport)


@pytest.mark.parametrize(
    "artifact",
    [
        "not base64 at all!",
        base64.b64encode(b"\x00\x04" + b"\x00" * 10).decode(),
        make_artifact(
            idp_entity_id="https://other-idp.example", endpoint_index=1, handle=b"x" * 20
        ),
        base64.b64encode(b"\x00\x03\x00\x01" + b"\x00" * 40).decode(),
    ],
    ids=["not-base64", "too-short", "other-idp", "type-3"],
)
async def test_malformed_artifact_is_refused_before_any_request(
    world: World, artifact: str
) -> None:
    async def must_not_be_called(url: str, body: bytes) -> bytes:
        raise AssertionError("the SP contacted the IdP with a malformed artifact")

    with pytest.raises(DigidArtifactInvalid) as caught:
        await world.sp.resolve_artifact(artifact, transport=must_not_be_called)

    assert caught.value.code == "digid_artifact_invalid"


async def test_artifact_response_signed_by_another_key_is_refused(keys: Keys) -> None:
    world = make_world(keys, idp_keys=keys.other)
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)

    with pytest.raises(DigidSignatureInvalid) as caught:
        await world.sp.resolve_artifact(artifact, transport=world.transport)

    assert caught.value.code == "digid_signature_invalid"


async def test_transport_failure_becomes_resolve_failed(world: World) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)

    async def broken(url: str, body: bytes) -> bytes:
        raise ConnectionResetError("peer hung up")

    with pytest.raises(DigidArtifactResolveFailed, match="ConnectionResetError"):
        await world.sp.resolve_artifact(artifact, transport=broken)


@pytest.mark.parametrize(
    "answer",
    [
        b"<html>502 Bad Gateway</html>",
        b"not xml",
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>down</faultstring>"
        b"</soap:Fault></soap:Body></soap:Envelope>",
    ],
    ids=["html", "not-xml", "soap-fault"],
)
async def test_nonsense_from_idp_becomes_resolve_failed(world: World, answer: bytes) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)

    async def nonsense(url: str, body: bytes) -> bytes:
        return answer

    with pytest.raises(DigidArtifactResolveFailed):
        await world.sp.resolve_artifact(artifact, transport=nonsense)


async def test_artifact_response_for_another_request_is_refused(world: World) -> None:
    _, request = world.start()
    first = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    second = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    stale_answer = world.idp.resolve(world.sp.artifact_resolve_request(first))

    async def replaying(url: str, body: bytes) -> bytes:
        return stale_answer

    with pytest.raises(DigidArtifactResolveFailed, match="another request"):
        await world.sp.resolve_artifact(second, transport=replaying)


def test_idp_refuses_artifact_resolve_signed_by_someone_else(keys: Keys) -> None:
    genuine = make_world(keys)
    impostor = make_world(Keys(sp=keys.other, idp=keys.idp, other=keys.other))
    _, request = genuine.start()
    artifact = genuine.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)

    with pytest.raises(DigidRequestRejected):
        genuine.idp.resolve(impostor.sp.artifact_resolve_request(artifact))
    # The refused attempt did not use the artifact up.
    assert "s00000000:" in genuine.idp.take_response(artifact)


def test_idp_refuses_unsigned_artifact_resolve(world: World) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    envelope = etree.fromstring(world.sp.artifact_resolve_request(artifact))
    signature = envelope.find(".//ds:Signature", NS)
    signature.getparent().remove(signature)

    with pytest.raises(DigidRequestRejected, match="not signed"):
        world.idp.resolve(etree.tostring(envelope))


def test_idp_refuses_authn_request_for_unregistered_acs_or_entity(keys: Keys) -> None:
    genuine = make_world(keys)
    for change in ({"acs_url": ACS_URL + "/elsewhere"}, {"entity_id": "https://other-sp.example"}):
        # Signed with the trusted SP's own key: only the content is wrong.
        config = dataclasses.replace(genuine.sp.config, **change)  # type: ignore[arg-type]
        sp = DigidServiceProvider(config, clock=genuine.clock)
        info = sp.authn_request(loa=LevelOfAssurance.BASIS, relay_state="x")

        with pytest.raises(DigidRequestRejected, match=r"not registered|unknown SP"):
            genuine.idp.parse_authn_request(urlsplit(info.redirect_url).query)


def _unsigned_answer(world: World, *, status: str | None, issuer: str | None):
    """Resolve at the IdP, then strip the ArtifactResponse signature and change its content."""

    async def transport(url: str, body: bytes) -> bytes:
        envelope = etree.fromstring(world.idp.resolve(body))
        message = envelope.find(".//samlp:ArtifactResponse", NS)
        message.remove(message.find("ds:Signature", NS))
        if status is not None:
            message.find("samlp:Status/samlp:StatusCode", NS).set("Value", status)
        if issuer is not None:
            message.find("saml:Issuer", NS).text = issuer
        return etree.tostring(envelope)

    return transport


async def test_unsigned_artifact_response_is_accepted_for_its_signed_assertion(
    world: World,
) -> None:
    info, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    transport = _unsigned_answer(world, status=None, issuer=None)

    xml = await world.sp.resolve_artifact(artifact, transport=transport)

    assertion = world.sp.validate_response(
        xml, request_id_lookup=world.lookup(info), now=world.clock()
    )
    assert assertion.bsn == BSN


async def test_artifact_response_with_failure_status_is_refused(world: World) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    transport = _unsigned_answer(
        world, status="urn:oasis:names:tc:SAML:2.0:status:Requester", issuer=None
    )

    with pytest.raises(DigidArtifactResolveFailed, match="Requester"):
        await world.sp.resolve_artifact(artifact, transport=transport)


async def test_artifact_response_from_another_issuer_is_refused(world: World) -> None:
    _, request = world.start()
    artifact = world.idp.login(request, bsn=BSN, loa=LevelOfAssurance.MIDDEN)
    transport = _unsigned_answer(world, status=None, issuer="https://evil.example")

    with pytest.raises(DigidIssuerMismatch, match=r"evil\.example"):
        await world.sp.resolve_artifact(artifact, transport=transport)
