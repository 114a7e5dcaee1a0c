"""The DigiD SAML 2.0 service provider: AuthnRequest out, artifact in, verified BSN out.

The flow, as DigiD runs it:

1. `authn_request` gives the URL to send the resident's browser to (HTTP-Redirect binding,
   signed with rsa-sha256, asking for the service's level of assurance as a minimum).
2. DigiD sends the browser back to our assertion consumer service with `SAMLart` and
   `RelayState` (HTTP-Artifact binding).
3. `resolve_artifact` fetches the `Response` over a back channel (SOAP, mutual TLS in
   production; the caller supplies the transport).
4. `validate_response` checks it and returns the `DigidAssertion`.

Replay protection (each assertion id accepted once) is the caller's job, with a table in the
database; `DigidAssertion.assertion_id` and `replay_until` are what it needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from identity.digid.certs import KeyPair
from identity.digid.config import DigidSpConfig, onelogin_settings
from identity.digid.errors import (
    DigidArtifactResolveFailed,
    DigidArtifactUnknown,
    DigidConfigError,
    DigidError,
    DigidIssuerMismatch,
    DigidMalformedMessage,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.response import DigidAssertion, RequestLookup, ResponseValidator
from identity.digid.saml import (
    NS_DS,
    NS_SAML,
    NS_SAMLP,
    format_instant,
    make_element,
    new_id,
    parse_artifact,
    parse_xml,
    q,
    read_status,
    sign,
    soap_body,
    soap_envelope,
    text_of,
    to_bytes,
    verify_signed_root,
)

__all__ = [
    "AuthnRequestInfo",
    "DigidAssertion",
    "DigidServiceProvider",
    "DigidSpConfig",
    "RequestLookup",
    "Transport",
    "utc_now",
]

Transport = Callable[[str, bytes], Awaitable[bytes]]
"""POST a SOAP body to a URL and return the SOAP response body (raise on non-200)."""

# SAML bindings 3.4.3: RelayState MUST NOT exceed 80 bytes.
_MAX_RELAY_STATE = 80


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class AuthnRequestInfo:
    """An AuthnRequest sent: remember `request_id` and `loa` (e.g. in the session) for the ACS."""

    request_id: str
    redirect_url: str
    loa: LevelOfAssurance
    issued_at: dt.datetime


class DigidServiceProvider:
    """The SAML side of DigiD for one configuration. Holds no per-login state.

    `clock` gives IssueInstants of outgoing messages; validation takes `now` explicitly.
    """

    def __init__(
        self, config: DigidSpConfig, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.config = config
        self._clock = clock
        self._keys = KeyPair(key_pem=config.sp_key_pem, cert_pem=config.sp_cert_pem)
        self._settings = {loa: onelogin_settings(config, requested=loa) for loa in LevelOfAssurance}
        self._validator = ResponseValidator(config, onelogin_settings(config))

    def authn_request(
        self, *, loa: LevelOfAssurance, relay_state: str, force_authn: bool = False
    ) -> AuthnRequestInfo:
        """A signed AuthnRequest for `loa` (comparison "minimum"), as an HTTP-Redirect URL.

        `relay_state` comes back unchanged with the artifact; it must be at most 80 bytes of
        printable ASCII and must not contain personal data. Raises ValueError otherwise.
        """
        if not (relay_state.isascii() and relay_state.isprintable()):
            raise ValueError("relay_state must be printable ASCII")
        if len(relay_state) > _MAX_RELAY_STATE:
            raise ValueError(f"relay_state must be at most {_MAX_RELAY_STATE} bytes")
        settings = self._settings[loa]
        request = OneLogin_Saml2_Authn_Request(
            settings, force_authn=force_authn, set_nameid_policy=False
        )
        issued_at = self._clock()
        # python3-saml stamps the wall clock; the injected clock is the one the tests move.
        document = parse_xml(request.get_xml(), what="AuthnRequest")
        document.set("IssueInstant", format_instant(issued_at))
        parameters = {
            "SAMLRequest": OneLogin_Saml2_Utils.deflate_and_base64_encode(to_bytes(document)),
            "RelayState": relay_state,
        }
        OneLogin_Saml2_Auth({}, old_settings=settings).add_request_signature(
            parameters, C.RSA_SHA256
        )
        url = OneLogin_Saml2_Utils.redirect(self.config.idp_sso_url, parameters)
        return AuthnRequestInfo(
            request_id=request.get_id(), redirect_url=url, loa=loa, issued_at=issued_at
        )

    def artifact_resolve_request(self, artifact: str) -> bytes:
        """A SOAP envelope with a signed ArtifactResolve for `artifact`.

        Raises DigidArtifactInvalid if `artifact` is not a type-4 artifact of the configured IdP.
        """
        return self._artifact_resolve(artifact)[1]

    def _artifact_resolve(self, artifact: str) -> tuple[str, bytes]:
        parse_artifact(artifact, idp_entity_id=self.config.idp_entity_id)
        request_id = new_id()
        nsmap = {"samlp": NS_SAMLP, "saml": NS_SAML}
        resolve = make_element(
            q(NS_SAMLP, "ArtifactResolve"),
            nsmap=nsmap,
            ID=request_id,
            Version="2.0",
            IssueInstant=format_instant(self._clock()),
            Destination=self.config.idp_artifact_resolution_url,
        )
        make_element(q(NS_SAML, "Issuer"), parent=resolve, text=self.config.entity_id)
        make_element(q(NS_SAMLP, "Artifact"), parent=resolve, text=artifact)
        return request_id, soap_envelope(sign(to_bytes(resolve), self._keys))

    async def resolve_artifact(self, artifact: str, *, transport: Transport) -> str:
        """Resolve `artifact` at the IdP; return the SAML Response XML it stood for.

        The ArtifactResponse must answer our request (InResponseTo) with status Success and
        come from the configured IdP; if it is signed, the signature must verify. The returned
        Response is not yet validated: pass it to `validate_response`.
        Raises DigidArtifactInvalid (not an artifact of our IdP), DigidArtifactResolveFailed
        (transport error, SOAP fault, garbage, wrong InResponseTo, non-success status),
        DigidArtifactUnknown (the IdP has no message: unknown, expired or already resolved),
        DigidSignatureInvalid or DigidIssuerMismatch (an ArtifactResponse we must not trust).
        """
        request_id, body = self._artifact_resolve(artifact)
        url = self.config.idp_artifact_resolution_url
        try:
            answer = await transport(url, body)
        except DigidError:
            raise
        except Exception as err:
            raise DigidArtifactResolveFailed(
                f"artifact resolution at {url} failed: {type(err).__name__}"
            ) from err
        try:
            message = soap_body(answer, what="ArtifactResponse")
            if message.tag != q(NS_SAMLP, "ArtifactResponse"):
                raise DigidMalformedMessage("the IdP did not answer with an ArtifactResponse")
            status = read_status(message, what="ArtifactResponse")
        except DigidMalformedMessage as err:
            raise DigidArtifactResolveFailed(f"artifact resolution at {url}: {err}") from err
        if message.find(q(NS_DS, "Signature")) is not None:
            verify_signed_root(message, self.config.idp_cert_pem, what="ArtifactResponse")
        issuer = message.find(q(NS_SAML, "Issuer"))
        if issuer is not None and text_of(issuer) != self.config.idp_entity_id:
            raise DigidIssuerMismatch(
                f"ArtifactResponse issued by {text_of(issuer)[:200]!r}, "
                f"expected {self.config.idp_entity_id!r}"
            )
        if message.get("InResponseTo") != request_id:
            raise DigidArtifactResolveFailed("the ArtifactResponse answers another request")
        if not status.success:
            raise DigidArtifactResolveFailed(
                f"the IdP refused to resolve the artifact ({status.code.rsplit(':', 1)[-1]})"
            )
        responses = message.findall(q(NS_SAMLP, "Response"))
        if not responses:
            raise DigidArtifactUnknown(
                "the IdP holds no message for this artifact (unknown, expired or used before)"
            )
        if len(responses) > 1:
            raise DigidArtifactResolveFailed("the ArtifactResponse holds more than one Response")
        return to_bytes(responses[0]).decode("utf-8")

    def validate_response(
        self, response_xml: str | bytes, *, request_id_lookup: RequestLookup, now: dt.datetime
    ) -> DigidAssertion:
        """Check a Response from DigiD and return who logged in, at which level.

        Checks, in this order: status (DigiD's cancel status raises DigidCancelled, any other
        failure DigidAuthnFailed); signatures via python3-saml, which also refuses signature
        wrapping (DigidSignatureMissing / DigidSignatureInvalid; the assertion itself must be
        signed); issuer (DigidIssuerMismatch); Destination and Recipient equal to our ACS URL
        (DigidRecipientMismatch); audience (DigidAudienceMismatch); InResponseTo a request for
        which `request_id_lookup` returns the requested level (DigidUnknownRequest; the lookup
        should not consume the request, do that after success); NotBefore, NotOnOrAfter and
        IssueInstants against `now` with the configured skew (DigidAssertionNotYetValid,
        DigidAssertionExpired); NameID `s00000000:<BSN>` passing the eleven-test
        (DigidInvalidSubject); level of assurance at least the requested one (DigidLoaTooLow;
        a class reference outside DigiD's four raises UnknownLevelOfAssurance). Malformed or
        schema-invalid input raises DigidMalformedMessage. No message ever contains the BSN.
        """
        return self._validator.validate(response_xml, request_id_lookup=request_id_lookup, now=now)

    def metadata(self, *, valid_for: dt.timedelta = dt.timedelta(days=7)) -> str:
        """The SP's signed SAML metadata (EntityDescriptor), valid for `valid_for` from now.

        Raises DigidConfigError if python3-saml finds the generated metadata invalid.
        """
        settings = onelogin_settings(self.config)
        settings.get_security_data()["metadataValidUntil"] = format_instant(
            self._clock() + valid_for
        )
        metadata = settings.get_sp_metadata()
        text = metadata.decode("utf-8") if isinstance(metadata, bytes) else str(metadata)
        # Schema only: python3-saml's validate_metadata compares validUntil with the wall clock.
        if isinstance(OneLogin_Saml2_XML.validate_xml(text, "saml-schema-metadata-2.0.xsd"), str):
            raise DigidConfigError("generated SP metadata does not follow the metadata schema")
        return text
