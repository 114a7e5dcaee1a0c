"""Forged, altered and misdirected DigiD responses: each refused with its own error code, and
none of the error messages (or log lines) carries the BSN."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pytest

from identity.digid.errors import (
    DigidAssertionExpired,
    DigidAssertionNotYetValid,
    DigidAudienceMismatch,
    DigidError,
    DigidInvalidSubject,
    DigidIssuerMismatch,
    DigidMalformedMessage,
    DigidRecipientMismatch,
    DigidSignatureInvalid,
    DigidSignatureMissing,
    DigidUnknownRequest,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.sp import AuthnRequestInfo
from identity.digid.testidp import ResponseContent

from digid_helpers import ACS_URL, BSN, OTHER_BSN, XSW_VARIANTS, Keys, World, make_keys, make_world

MIDDEN = LevelOfAssurance.MIDDEN


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@pytest.fixture
def world(keys: Keys) -> World:
    return make_world(keys)


@pytest.fixture
def login(world: World) -> tuple[AuthnRequestInfo, ResponseContent]:
    """An AuthnRequest we issued and the content of a genuine answer to it."""
    info, request = world.start(requested=MIDDEN)
    return info, world.idp.response_content(request, bsn=BSN, loa=MIDDEN)


def _refused(
    world: World,
    info: AuthnRequestInfo,
    xml: str,
    error: type[DigidError],
    code: str,
    *,
    now: dt.datetime | None = None,
) -> DigidError:
    with pytest.raises(error) as caught:
        world.sp.validate_response(
            xml, request_id_lookup=world.lookup(info), now=now or world.clock()
        )
    assert caught.type is error, f"expected exactly {error.__name__}, got {caught.type.__name__}"
    assert caught.value.code == code
    for bsn in (BSN, OTHER_BSN):
        assert bsn not in str(caught.value)
        assert bsn not in repr(caught.value.args)
    return caught.value


def test_genuine_response_passes(world: World, login: tuple[AuthnRequestInfo, ResponseContent]):
    """The baseline the rejections below deviate from."""
    info, content = login

    assertion = world.sp.validate_response(
        world.idp.render(content), request_id_lookup=world.lookup(info), now=world.clock()
    )

    assert (assertion.bsn, assertion.loa) == (BSN, MIDDEN)


def test_unsigned_response_and_assertion(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(content, sign_assertion=False, sign_response=False)

    _refused(world, info, xml, DigidSignatureMissing, "digid_signature_missing")


def test_signed_response_around_unsigned_assertion(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(content, sign_assertion=False, sign_response=True)

    _refused(world, info, xml, DigidSignatureMissing, "digid_signature_missing")


@pytest.mark.parametrize("sign_response", [True, False], ids=["response-signed", "assertion-only"])
def test_bsn_changed_after_signing(world: World, login, sign_response: bool) -> None:
    info, content = login
    xml = world.idp.render(content, sign_response=sign_response)
    assert xml.count(f"s00000000:{BSN}") == 1

    tampered = xml.replace(f"s00000000:{BSN}", f"s00000000:{OTHER_BSN}")

    _refused(world, info, tampered, DigidSignatureInvalid, "digid_signature_invalid")


@pytest.mark.parametrize("variant", sorted(XSW_VARIANTS))
@pytest.mark.parametrize("sign_response", [False, True], ids=["assertion-only", "both-signed"])
def test_xml_signature_wrapping(world: World, login, variant: str, sign_response: bool) -> None:
    info, content = login
    genuine = world.idp.render(content, sign_response=sign_response)

    wrapped = XSW_VARIANTS[variant](genuine, OTHER_BSN)

    assert f"s00000000:{OTHER_BSN}" in wrapped
    _refused(world, info, wrapped, DigidSignatureInvalid, "digid_signature_invalid")


def test_signed_by_another_key(world: World, login, keys: Keys) -> None:
    info, content = login
    xml = world.idp.render(content, keys=keys.other)

    _refused(world, info, xml, DigidSignatureInvalid, "digid_signature_invalid")


def test_wrong_issuer(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(dataclasses.replace(content, issuer="https://evil-idp.example"))

    error = _refused(world, info, xml, DigidIssuerMismatch, "digid_wrong_issuer")
    assert "https://evil-idp.example" in str(error)


def test_wrong_audience(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(dataclasses.replace(content, audience="https://other-sp.example"))

    error = _refused(world, info, xml, DigidAudienceMismatch, "digid_wrong_audience")
    assert "https://other-sp.example" in str(error)


def test_wrong_recipient(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(dataclasses.replace(content, destination="https://other-sp.example/acs"))

    _refused(world, info, xml, DigidRecipientMismatch, "digid_wrong_recipient")


def test_recipient_in_signed_assertion_must_be_our_acs(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(dataclasses.replace(content, recipient="https://other-sp.example/acs"))

    error = _refused(world, info, xml, DigidRecipientMismatch, "digid_wrong_recipient")
    assert "recipient 'https://other-sp.example/acs'" in str(error)


def test_destination_changed_on_unsigned_response(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(content, sign_response=False)
    redirected = xml.replace(f'Destination="{ACS_URL}"', 'Destination="https://evil.example/acs"')
    assert redirected != xml

    error = _refused(world, info, redirected, DigidRecipientMismatch, "digid_wrong_recipient")
    assert "addressed to 'https://evil.example/acs'" in str(error)


def test_response_reusing_the_assertion_id_breaks_the_schema(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(content, sign_response=False)
    same_ids = xml.replace(f'ID="{content.response_id}"', f'ID="{content.assertion_id}"')

    _refused(world, info, same_ids, DigidMalformedMessage, "digid_malformed_message")


def test_in_response_to_we_never_issued(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(dataclasses.replace(content, in_response_to="_never_sent_by_us"))

    error = _refused(world, info, xml, DigidUnknownRequest, "digid_unknown_request")
    assert "_never_sent_by_us" in str(error)


def test_expired_assertion(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(content)
    # Lifetime 5 minutes plus 60 seconds of allowed skew.
    last_good = world.clock() + dt.timedelta(minutes=6) - dt.timedelta(seconds=1)

    world.sp.validate_response(xml, request_id_lookup=world.lookup(info), now=last_good)
    _refused(
        world,
        info,
        xml,
        DigidAssertionExpired,
        "digid_assertion_expired",
        now=last_good + dt.timedelta(seconds=1),
    )


def test_not_before_in_the_future(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(
        dataclasses.replace(content, issued_at=world.clock() + dt.timedelta(minutes=2))
    )

    _refused(world, info, xml, DigidAssertionNotYetValid, "digid_assertion_not_yet_valid")
    world.clock.advance(dt.timedelta(minutes=1))  # now within the 60 s skew of NotBefore
    world.sp.validate_response(xml, request_id_lookup=world.lookup(info), now=world.clock())


@pytest.mark.parametrize("bsn", ["123456789", "99999365", "abcdefghi"])
def test_name_id_without_valid_bsn(world: World, login, bsn: str) -> None:
    info, content = login
    xml = world.idp.render(dataclasses.replace(content, bsn=bsn))

    error = _refused(world, info, xml, DigidInvalidSubject, "digid_invalid_subject")
    assert bsn not in str(error)


@pytest.mark.parametrize(
    "xml",
    [
        "",
        "<samlp:Response",
        "not xml at all",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<r>&b;</r>",
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>',
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0"/>',
    ],
    ids=["empty", "truncated", "text", "entity-expansion", "wrong-message", "no-status"],
)
def test_malformed_response(world: World, login, xml: str) -> None:
    info, _ = login

    _refused(world, info, xml, DigidMalformedMessage, "digid_malformed_message")


def test_success_without_assertion(world: World, login) -> None:
    info, content = login
    xml = world.idp.render(content)
    start = xml.index("<saml:Assertion")
    end = xml.index("</saml:Assertion>") + len("</saml:Assertion>")

    _refused(world, info, xml[:start] + xml[end:], DigidMalformedMessage, "digid_malformed_message")


def test_rejections_log_no_bsn(world: World, login, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    info, content = login
    for xml in (
        world.idp.render(content).replace(BSN, OTHER_BSN),
        world.idp.render(dataclasses.replace(content, audience="https://x.example")),
        XSW_VARIANTS["evil-sibling-first"](world.idp.render(content), OTHER_BSN),
    ):
        with pytest.raises(DigidError):
            world.sp.validate_response(xml, request_id_lookup=world.lookup(info), now=world.clock())

    assert BSN not in caplog.text
    assert OTHER_BSN not in caplog.text
