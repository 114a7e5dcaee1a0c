"""The DigiD test IdP: for development, demos and tests only, never in production.

It speaks DigiD's protocol to one trusted service provider: a signed AuthnRequest arrives
over HTTP-Redirect; after a login (any valid BSN, any level) or a cancel, the browser goes
back to the SP with a type-4 artifact; the SP resolves it with a signed ArtifactResolve over
SOAP and receives a signed ArtifactResponse holding a signed Response with a signed Assertion.
Issued messages live in memory, keyed by artifact handle, and can be resolved once.

`response_content`, `render` and `issue_artifact` are public so that tests can deliver forged
responses through the very same artifact path.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

from identity.digid.certs import KeyPair
from identity.digid.errors import (
    DigidArtifactReused,
    DigidArtifactUnknown,
    DigidError,
    DigidRequestRejected,
    DigidSignatureInvalid,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.saml import (
    NS_SAML,
    NS_SAMLP,
    STATUS_AUTHN_FAILED,
    STATUS_RESPONDER,
    STATUS_SUCCESS,
    Element,
    format_instant,
    make_artifact,
    make_element,
    new_id,
    parse_artifact,
    parse_xml,
    q,
    sign,
    soap_body,
    soap_envelope,
    text_of,
    to_bytes,
    verify_signed_root,
)
from identity.digid.sp import utc_now
from identity.digid.testidp_request import IncomingAuthnRequest, parse_authn_request
from identity.errors import InvalidBsn
from identity.pseudonym import is_valid_bsn

__all__ = [
    "IncomingAuthnRequest",
    "ResponseContent",
    "TestIdp",
    "TestIdpConfig",
    "TrustedSp",
]

logger = logging.getLogger(__name__)

_NSMAP = {"samlp": NS_SAMLP, "saml": NS_SAML}


@dataclass(frozen=True, slots=True)
class TrustedSp:
    """The one service provider the test IdP serves: its entity id, ACS URL and certificate."""

    entity_id: str
    acs_url: str
    cert_pem: str


@dataclass(frozen=True, slots=True)
class TestIdpConfig:
    """Settings of the test IdP. URLs are where its endpoints are mounted (for metadata)."""

    __test__ = False  # not a pytest test class, despite the name

    entity_id: str
    keys: KeyPair
    sp: TrustedSp
    sso_url: str
    artifact_resolution_url: str
    assertion_lifetime: dt.timedelta = dt.timedelta(minutes=5)
    artifact_lifetime: dt.timedelta = dt.timedelta(minutes=5)
    request_lifetime: dt.timedelta = dt.timedelta(minutes=30)
    endpoint_index: int = 1
    sign_artifact_responses: bool = True


@dataclass(frozen=True, slots=True)
class ResponseContent:
    """What goes into one Response; `render` turns it into signed XML. Hides the BSN in repr."""

    issuer: str
    destination: str
    audience: str
    in_response_to: str
    issued_at: dt.datetime
    lifetime: dt.timedelta
    bsn: str | None = field(default=None, repr=False)
    loa: LevelOfAssurance | None = None
    status: str = STATUS_SUCCESS
    sub_status: str | None = None
    status_message: str | None = None
    recipient: str | None = None  # SubjectConfirmationData@Recipient; default: destination
    response_id: str = field(default_factory=new_id)
    assertion_id: str = field(default_factory=new_id)


@dataclass(slots=True)
class _Issued:
    xml: str
    expires: dt.datetime
    used: bool = False


class TestIdp:
    """An in-process DigiD test IdP. `clock` returns an aware UTC datetime."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self, config: TestIdpConfig, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.config = config
        self._clock = clock
        self._issued: dict[bytes, _Issued] = {}

    def parse_authn_request(self, query_string: str) -> IncomingAuthnRequest:
        """Verify and parse a Redirect-binding AuthnRequest from the raw query string.

        Raises DigidRequestRejected (unsigned, bad signature, unknown SP, wrong ACS, stale)
        or DigidMalformedMessage (not a deflated, base64-encoded AuthnRequest).
        """
        return parse_authn_request(
            query_string,
            sp=self.config.sp,
            sso_url=self.config.sso_url,
            now=self._clock(),
            max_age=self.config.request_lifetime,
        )

    def login(self, request: IncomingAuthnRequest, *, bsn: str, loa: LevelOfAssurance) -> str:
        """Authenticate `bsn` at `loa` (even below the requested level); return the artifact.

        Raises InvalidBsn if `bsn` fails the eleven-test.
        """
        if not is_valid_bsn(bsn):
            raise InvalidBsn("that is not a valid BSN (nine digits passing the eleven-test)")
        return self.issue_artifact(self.render(self.response_content(request, bsn=bsn, loa=loa)))

    def cancel(self, request: IncomingAuthnRequest) -> str:
        """The resident pressed "Annuleren": DigiD's cancel status (Responder/AuthnFailed)."""
        content = ResponseContent(
            issuer=self.config.entity_id,
            destination=request.acs_url,
            audience=request.sp_entity_id,
            in_response_to=request.request_id,
            issued_at=self._clock(),
            lifetime=self.config.assertion_lifetime,
            status=STATUS_RESPONDER,
            sub_status=STATUS_AUTHN_FAILED,
            status_message="Authentication cancelled",
        )
        return self.issue_artifact(self.render(content))

    def response_content(
        self, request: IncomingAuthnRequest, *, bsn: str, loa: LevelOfAssurance
    ) -> ResponseContent:
        """The content of a successful login answering `request`, issued now."""
        return ResponseContent(
            issuer=self.config.entity_id,
            destination=request.acs_url,
            audience=request.sp_entity_id,
            in_response_to=request.request_id,
            issued_at=self._clock(),
            lifetime=self.config.assertion_lifetime,
            bsn=bsn,
            loa=loa,
        )

    def render(
        self,
        content: ResponseContent,
        *,
        sign_assertion: bool = True,
        sign_response: bool = True,
        keys: KeyPair | None = None,
    ) -> str:
        """The Response XML for `content`, signed with `keys` (default: this IdP's keys)."""
        return render_response(
            content,
            keys=keys or self.config.keys,
            sign_assertion=sign_assertion,
            sign_response=sign_response,
        )

    def issue_artifact(self, response_xml: str) -> str:
        """Keep `response_xml` for one resolution and return a fresh artifact for it.

        Raises DigidMalformedMessage if `response_xml` is not XML.
        """
        parse_xml(response_xml, what="Response to issue")
        now = self._clock()
        self._forget_expired(now)
        handle = secrets.token_bytes(20)
        self._issued[handle] = _Issued(response_xml, now + self.config.artifact_lifetime)
        return make_artifact(
            idp_entity_id=self.config.entity_id,
            endpoint_index=self.config.endpoint_index,
            handle=handle,
        )

    def take_response(self, artifact: str) -> str:
        """The Response issued under `artifact`, once.

        Raises DigidArtifactInvalid (not one of our artifacts), DigidArtifactReused (resolved
        before) or DigidArtifactUnknown (never issued here, or expired).
        """
        handle = parse_artifact(artifact, idp_entity_id=self.config.entity_id)
        now = self._clock()
        self._forget_expired(now)
        issued = self._issued.get(handle)
        if issued is None:
            raise DigidArtifactUnknown("no message under this artifact (never issued or expired)")
        if issued.used:
            raise DigidArtifactReused("this artifact was resolved before")
        issued.used = True
        return issued.xml

    def acs_redirect(self, request: IncomingAuthnRequest, artifact: str) -> str:
        """The URL that sends the browser back to the SP's ACS with the artifact."""
        query = {"SAMLart": artifact}
        if request.relay_state is not None:
            query["RelayState"] = request.relay_state
        separator = "&" if "?" in request.acs_url else "?"
        return request.acs_url + separator + urlencode(query)

    def resolve(self, soap_request: bytes) -> bytes:
        """Answer a SOAP ArtifactResolve from the trusted SP with a SOAP ArtifactResponse.

        An unknown, expired or used artifact gets status Success without a message, as SAML
        core 3.5.6 prescribes. Raises DigidMalformedMessage for a malformed request and
        DigidRequestRejected for one not signed by the trusted SP.
        """
        resolve = soap_body(soap_request, what="ArtifactResolve")
        if resolve.tag != q(NS_SAMLP, "ArtifactResolve"):
            raise DigidRequestRejected("expected an ArtifactResolve")
        try:
            verify_signed_root(resolve, self.config.sp.cert_pem, what="ArtifactResolve")
        except DigidSignatureInvalid as err:
            raise DigidRequestRejected(str(err)) from err
        issuer = text_of(resolve.find(q(NS_SAML, "Issuer")))
        if issuer != self.config.sp.entity_id:
            raise DigidRequestRejected(f"ArtifactResolve from unknown SP {issuer[:200]!r}")
        response: Element | None = None
        try:
            response = parse_xml(
                self.take_response(text_of(resolve.find(q(NS_SAMLP, "Artifact")))),
                what="Response",
            )
        except DigidError as err:
            logger.info("test IdP: no message for an artifact (%s)", err.code)
        return soap_envelope(self._artifact_response(resolve.get("ID") or "", response))

    def _artifact_response(self, in_response_to: str, response: Element | None) -> bytes:
        message = make_element(
            q(NS_SAMLP, "ArtifactResponse"),
            nsmap=_NSMAP,
            ID=new_id(),
            Version="2.0",
            IssueInstant=format_instant(self._clock()),
            InResponseTo=in_response_to,
        )
        make_element(q(NS_SAML, "Issuer"), parent=message, text=self.config.entity_id)
        status = make_element(q(NS_SAMLP, "Status"), parent=message)
        make_element(q(NS_SAMLP, "StatusCode"), parent=status, Value=STATUS_SUCCESS)
        if response is not None:
            message.append(response)
        data = to_bytes(message)
        return sign(data, self.config.keys) if self.config.sign_artifact_responses else data

    def _forget_expired(self, now: dt.datetime) -> None:
        for handle in [h for h, issued in self._issued.items() if issued.expires <= now]:
            del self._issued[handle]


def render_response(
    content: ResponseContent, *, keys: KeyPair, sign_assertion: bool, sign_response: bool
) -> str:
    """Build the Response XML for `content`; see `TestIdp.render`."""
    instant = format_instant(content.issued_at)
    response = make_element(
        q(NS_SAMLP, "Response"),
        nsmap=_NSMAP,
        ID=content.response_id,
        Version="2.0",
        IssueInstant=instant,
        Destination=content.destination,
        InResponseTo=content.in_response_to,
    )
    make_element(q(NS_SAML, "Issuer"), parent=response, text=content.issuer)
    status = make_element(q(NS_SAMLP, "Status"), parent=response)
    code = make_element(q(NS_SAMLP, "StatusCode"), parent=status, Value=content.status)
    if content.sub_status is not None:
        make_element(q(NS_SAMLP, "StatusCode"), parent=code, Value=content.sub_status)
    if content.status_message is not None:
        make_element(q(NS_SAMLP, "StatusMessage"), parent=status, text=content.status_message)
    if content.status == STATUS_SUCCESS:
        assertion = to_bytes(_assertion(content))
        if sign_assertion:
            # Signed as a document of its own: python3-saml signs the first Issuer's parent.
            assertion = sign(assertion, keys)
        response.append(parse_xml(assertion, what="assertion"))
    data = to_bytes(response)
    return (sign(data, keys) if sign_response else data).decode("utf-8")


def _assertion(content: ResponseContent) -> Element:
    if content.bsn is None or content.loa is None:
        raise ValueError("a successful response needs a BSN and a level of assurance")
    instant = format_instant(content.issued_at)
    not_after = format_instant(content.issued_at + content.lifetime)
    assertion = make_element(
        q(NS_SAML, "Assertion"),
        nsmap={"saml": NS_SAML},
        ID=content.assertion_id,
        Version="2.0",
        IssueInstant=instant,
    )
    make_element(q(NS_SAML, "Issuer"), parent=assertion, text=content.issuer)
    subject = make_element(q(NS_SAML, "Subject"), parent=assertion)
    make_element(q(NS_SAML, "NameID"), parent=subject, text=f"s00000000:{content.bsn}")
    confirmation = make_element(
        q(NS_SAML, "SubjectConfirmation"), parent=subject, Method=C.CM_BEARER
    )
    make_element(
        q(NS_SAML, "SubjectConfirmationData"),
        parent=confirmation,
        InResponseTo=content.in_response_to,
        NotOnOrAfter=not_after,
        Recipient=content.recipient or content.destination,
    )
    conditions = make_element(
        q(NS_SAML, "Conditions"), parent=assertion, NotBefore=instant, NotOnOrAfter=not_after
    )
    restriction = make_element(q(NS_SAML, "AudienceRestriction"), parent=conditions)
    make_element(q(NS_SAML, "Audience"), parent=restriction, text=content.audience)
    statement = make_element(
        q(NS_SAML, "AuthnStatement"), parent=assertion, AuthnInstant=instant, SessionIndex=new_id()
    )
    context = make_element(q(NS_SAML, "AuthnContext"), parent=statement)
    make_element(q(NS_SAML, "AuthnContextClassRef"), parent=context, text=content.loa.class_ref)
    return assertion
