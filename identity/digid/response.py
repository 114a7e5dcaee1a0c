"""Validation of a DigiD SAML `Response`: from XML to a trusted `DigidAssertion`, or an error.

python3-saml (`OneLogin_Saml2_Response`) checks the signatures, including its defences
against XML signature wrapping: exactly one assertion in the whole document, signatures only
on the Response and that Assertion, each reference pointing at its parent. (The assertion
count is checked here first as well, for a clearer error; the SAML schema check refuses
duplicate IDs.) It runs non-strict, because its strict checks read the wall clock.
Everything strict mode would check is checked here instead, against the `now` the caller
passes in, and only ever on the assertion python3-saml verified
(`/samlp:Response/saml:Assertion`, of which there is exactly one once it has accepted the
document).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from identity.digid.config import DigidSpConfig
from identity.digid.errors import (
    DigidAssertionExpired,
    DigidAssertionNotYetValid,
    DigidAudienceMismatch,
    DigidAuthnFailed,
    DigidCancelled,
    DigidInvalidSubject,
    DigidIssuerMismatch,
    DigidLoaTooLow,
    DigidLoginNotCompleted,
    DigidMalformedMessage,
    DigidRecipientMismatch,
    DigidSignatureInvalid,
    DigidSignatureMissing,
    DigidUnknownRequest,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.saml import (
    NS_DS,
    NS_SAML,
    NS_SAMLP,
    STATUS_AUTHN_FAILED,
    Element,
    SamlStatus,
    check_signature_shape,
    parse_instant,
    parse_xml,
    q,
    read_status,
    text_of,
)
from identity.pseudonym import is_valid_bsn

__all__ = ["DigidAssertion", "RequestLookup", "ResponseValidator"]

RequestLookup = Callable[[str], LevelOfAssurance | None]
"""Given an InResponseTo, the level requested in that AuthnRequest; None if we never sent it."""

_NAME_ID = re.compile(r"s00000000:([0-9]{9})")
# python3-saml codes that mean "the document has no usable shape", not "forged".
_MALFORMED_CODES = frozenset(
    {
        OneLogin_Saml2_ValidationError.UNSUPPORTED_SAML_VERSION,
        OneLogin_Saml2_ValidationError.MISSING_ID,
        OneLogin_Saml2_ValidationError.MISSING_STATUS,
        OneLogin_Saml2_ValidationError.MISSING_STATUS_CODE,
    }
)


@dataclass(frozen=True, slots=True)
class DigidAssertion:
    """A verified DigiD login. The BSN is left out of `repr` so that it cannot leak into logs.

    `replay_until` is `not_on_or_after` plus the allowed clock skew: keep `assertion_id` in the
    replay store at least until then; after it, validation refuses the assertion anyway.
    """

    bsn: str = field(repr=False)
    loa: LevelOfAssurance
    assertion_id: str
    in_response_to: str
    not_on_or_after: dt.datetime
    replay_until: dt.datetime


class ResponseValidator:
    """Validates Responses for one service provider configuration."""

    def __init__(self, config: DigidSpConfig, settings: OneLogin_Saml2_Settings) -> None:
        self._config = config
        self._settings = settings
        schema_dir = Path(settings.get_schemas_path())
        # Parsed once: python3-saml would re-read the XSD files for every response.
        self._schema = etree.XMLSchema(
            etree.parse(str(schema_dir / "saml-schema-protocol-2.0.xsd"))
        )

    def validate(
        self, response_xml: str | bytes, *, request_id_lookup: RequestLookup, now: dt.datetime
    ) -> DigidAssertion:
        """Check everything DigiD's and SAML's rules demand; see `DigidServiceProvider`."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        data = response_xml.encode("utf-8") if isinstance(response_xml, str) else response_xml
        document = parse_xml(data, what="SAML response")
        if document.tag != q(NS_SAMLP, "Response"):
            raise DigidMalformedMessage("expected a samlp:Response")
        # Before the signature checks: a cancelled login carries no assertion to verify, and
        # a forged "cancelled" grants nothing.
        status = read_status(document, what="SAML response")
        if not status.success:
            raise _not_completed(status, document.get("InResponseTo"))
        assertion = self._verified_assertion(document, data)
        return self._check_content(
            assertion.getroottree().getroot(), assertion, request_id_lookup, now
        )

    def _verified_assertion(self, document: Element, data: bytes) -> Element:
        """Run python3-saml's signature checks; return the one signed assertion it verified."""
        if document.xpath("//saml:EncryptedAssertion", namespaces={"saml": NS_SAML}):
            raise DigidMalformedMessage("encrypted assertions are not supported")
        count = len(document.xpath("//saml:Assertion", namespaces={"saml": NS_SAML}))
        if count == 0:
            raise DigidMalformedMessage("the response holds no assertion")
        if count > 1:
            raise DigidSignatureInvalid(
                f"the response holds {count} assertions; one signed assertion is accepted "
                "(more suggest XML signature wrapping)"
            )
        if not self._schema.validate(document):
            raise DigidMalformedMessage("the response does not follow the SAML 2.0 schema")
        try:
            response = OneLogin_Saml2_Response(self._settings, base64.b64encode(data))
            response.is_valid({}, raise_exceptions=True)
        except OneLogin_Saml2_ValidationError as err:
            if err.code in _MALFORMED_CODES:
                raise DigidMalformedMessage("the response is not a usable SAML response") from None
            if err.code == OneLogin_Saml2_ValidationError.NO_SIGNATURE_FOUND:
                raise DigidSignatureMissing("the response and its assertion are unsigned") from None
            raise DigidSignatureInvalid(
                f"the signature does not verify (python3-saml validation code {err.code})"
            ) from None
        except OneLogin_Saml2_Error as err:
            raise DigidSignatureInvalid(
                f"the signature cannot be checked (python3-saml error code {err.code})"
            ) from None
        verified = response.get_xml_document()
        signatures = verified.xpath(OneLogin_Saml2_Utils.ASSERTION_SIGNATURE_XPATH, namespaces=_NS)
        if len(signatures) != 1:
            # python3-saml accepts a signed Response around an unsigned assertion; DigiD signs both.
            raise DigidSignatureMissing("the assertion is not signed")
        assertion = signatures[0].getparent()
        check_signature_shape(assertion, signatures[0], what="assertion")
        return assertion

    def _check_content(
        self, response: Element, assertion: Element, lookup: RequestLookup, now: dt.datetime
    ) -> DigidAssertion:
        config = self._config
        skew = config.allowed_clock_skew
        _check_issuer(response, assertion, config.idp_entity_id)
        destination = response.get("Destination")
        if destination is not None and destination != config.acs_url:
            raise DigidRecipientMismatch(
                f"the response is addressed to {destination[:200]!r}, not to {config.acs_url!r}"
            )
        conditions = _one(assertion, "Conditions", what="Conditions")
        _check_audience(conditions, config.entity_id)
        confirmation = _bearer_confirmation(assertion)
        recipient = confirmation.get("Recipient") or ""
        if recipient != config.acs_url:
            raise DigidRecipientMismatch(
                f"the assertion is for recipient {recipient[:200]!r}, not {config.acs_url!r}"
            )
        in_response_to = confirmation.get("InResponseTo") or ""
        outer = response.get("InResponseTo")
        if not in_response_to or (outer is not None and outer != in_response_to):
            raise DigidUnknownRequest("InResponseTo is missing or differs between response parts")
        requested = lookup(in_response_to)
        if requested is None:
            raise DigidUnknownRequest(f"InResponseTo {in_response_to[:80]!r} is no request of ours")

        expires, starts = _validity(response, assertion, conditions, confirmation)
        if now >= expires + skew:
            raise DigidAssertionExpired(f"the assertion expired at {expires.isoformat()}")
        if now + skew < starts:
            raise DigidAssertionNotYetValid(f"the assertion is valid from {starts.isoformat()}")

        statement = _one(assertion, "AuthnStatement", what="AuthnStatement")
        session_end = statement.get("SessionNotOnOrAfter")
        if session_end is not None and now >= parse_instant(session_end, what="session end") + skew:
            raise DigidAssertionExpired("the DigiD session of this assertion has ended")
        class_refs = statement.findall(
            f"{q(NS_SAML, 'AuthnContext')}/{q(NS_SAML, 'AuthnContextClassRef')}"
        )
        if len(class_refs) != 1:
            raise DigidMalformedMessage("the AuthnStatement must name one AuthnContextClassRef")
        given = LevelOfAssurance.from_class_ref(text_of(class_refs[0]))

        bsn = _bsn_of(assertion)
        if not given.satisfies(requested):
            raise DigidLoaTooLow(
                f"DigiD login at level {given.value!r}, but this service requires "
                f"at least {requested.value!r}",
                required=requested,
                given=given,
            )
        return DigidAssertion(
            bsn=bsn,
            loa=given,
            assertion_id=assertion.get("ID"),
            in_response_to=in_response_to,
            not_on_or_after=expires,
            replay_until=expires + skew,
        )


_NS = {"samlp": NS_SAMLP, "saml": NS_SAML, "ds": NS_DS}


def _not_completed(status: SamlStatus, in_response_to: str | None) -> DigidLoginNotCompleted:
    codes = status.code.rsplit(":", 1)[-1]
    if status.sub_code:
        codes += "/" + status.sub_code.rsplit(":", 1)[-1]
    # DigiD reports "the resident pressed Annuleren" as Responder with AuthnFailed below it.
    if status.sub_code == STATUS_AUTHN_FAILED or status.code == STATUS_AUTHN_FAILED:
        return DigidCancelled(
            f"the DigiD login was cancelled ({codes})", in_response_to=in_response_to
        )
    return DigidAuthnFailed(f"DigiD did not authenticate ({codes})", in_response_to=in_response_to)


def _check_issuer(response: Element, assertion: Element, idp_entity_id: str) -> None:
    outer = response.findall(q(NS_SAML, "Issuer"))
    inner = assertion.findall(q(NS_SAML, "Issuer"))
    if len(outer) > 1 or len(inner) != 1:
        raise DigidIssuerMismatch("the response must name its issuer once, the assertion once")
    for issuer in (text_of(i) for i in (*outer, *inner)):
        if issuer != idp_entity_id:
            raise DigidIssuerMismatch(f"issued by {issuer[:200]!r}, expected {idp_entity_id!r}")


def _validity(
    response: Element, assertion: Element, conditions: Element, confirmation: Element
) -> tuple[dt.datetime, dt.datetime]:
    """(first moment the assertion is no longer valid, first moment it is valid)."""
    expires = parse_instant(confirmation.get("NotOnOrAfter"), what="confirmation NotOnOrAfter")
    if conditions.get("NotOnOrAfter") is not None:
        ends = parse_instant(conditions.get("NotOnOrAfter"), what="Conditions NotOnOrAfter")
        expires = min(expires, ends)
    starts = [
        parse_instant(response.get("IssueInstant"), what="Response IssueInstant"),
        parse_instant(assertion.get("IssueInstant"), what="Assertion IssueInstant"),
    ]
    for owner, name in ((conditions, "Conditions"), (confirmation, "confirmation")):
        if owner.get("NotBefore") is not None:
            starts.append(parse_instant(owner.get("NotBefore"), what=f"{name} NotBefore"))
    # Something issued in the future comes from a wrong clock; treat it as not yet valid.
    return expires, max(starts)


def _one(parent: Element, local: str, *, what: str) -> Element:
    found = parent.findall(q(NS_SAML, local))
    if len(found) != 1:
        raise DigidMalformedMessage(f"the assertion must hold exactly one {what}, not {len(found)}")
    return found[0]


def _check_audience(conditions: Element, entity_id: str) -> None:
    restrictions = conditions.findall(q(NS_SAML, "AudienceRestriction"))
    if not restrictions:
        raise DigidAudienceMismatch("the assertion names no audience")
    # Each AudienceRestriction must be met on its own (SAML core 2.5.1.4).
    for restriction in restrictions:
        audiences = [text_of(a) for a in restriction.findall(q(NS_SAML, "Audience"))]
        if entity_id not in audiences:
            shown = ", ".join(repr(a[:200]) for a in audiences[:3]) or "none"
            raise DigidAudienceMismatch(f"the assertion is for {shown}, not for {entity_id!r}")


def _bearer_confirmation(assertion: Element) -> Element:
    confirmations = [
        c
        for c in assertion.findall(f"{q(NS_SAML, 'Subject')}/{q(NS_SAML, 'SubjectConfirmation')}")
        if c.get("Method") == C.CM_BEARER
    ]
    if len(confirmations) != 1:
        raise DigidMalformedMessage("the assertion must hold exactly one bearer confirmation")
    data = confirmations[0].find(q(NS_SAML, "SubjectConfirmationData"))
    if data is None:
        raise DigidMalformedMessage("the bearer confirmation has no SubjectConfirmationData")
    return data


def _bsn_of(assertion: Element) -> str:
    name_ids = assertion.findall(f"{q(NS_SAML, 'Subject')}/{q(NS_SAML, 'NameID')}")
    match = _NAME_ID.fullmatch(text_of(name_ids[0])) if len(name_ids) == 1 else None
    # Never echo the value: it is, or is close to, a BSN.
    if match is None or not is_valid_bsn(match.group(1)):
        raise DigidInvalidSubject("the NameID is not 's00000000:' followed by a valid BSN")
    return match.group(1)
