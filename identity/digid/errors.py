"""Errors of the DigiD service provider and the DigiD test IdP.

    DigidError                       base; `code` is stable and machine-readable
    ├── DigidConfigError             a configuration value, key or certificate is unusable
    ├── UnknownLevelOfAssurance      a level name or AuthnContextClassRef we do not know
    ├── DigidMalformedMessage        not XML, not base64, or not the SAML message expected here
    │   └── DigidArtifactInvalid     not a SAML type-4 artifact (of the configured IdP)
    ├── DigidRequestRejected         test IdP: an AuthnRequest or ArtifactResolve it must refuse
    ├── DigidArtifactUnknown         no message for that artifact: never issued, expired or used
    │   └── DigidArtifactReused      test IdP: that artifact was resolved before
    ├── DigidArtifactResolveFailed   the SOAP round trip to the IdP failed or answered nonsense
    ├── DigidLoginNotCompleted       the IdP answered, but nobody was authenticated
    │   ├── DigidCancelled           the resident cancelled at DigiD
    │   └── DigidAuthnFailed         any other non-success status
    ├── DigidLoaTooLow               authenticated, but below the level the service requires
    └── DigidResponseRejected        a response that must not be trusted
        ├── DigidSignatureInvalid    signature wrong, made with another key, or wrapped (XSW)
        │   └── DigidSignatureMissing  the assertion is not signed
        ├── DigidIssuerMismatch      issued by someone other than the configured IdP
        ├── DigidAudienceMismatch    meant for another service provider
        ├── DigidRecipientMismatch   meant for another assertion consumer service URL
        ├── DigidAssertionExpired    past NotOnOrAfter (plus the allowed clock skew)
        ├── DigidAssertionNotYetValid  before NotBefore (minus the allowed clock skew)
        ├── DigidUnknownRequest      InResponseTo names no request we issued
        └── DigidInvalidSubject      the NameID is not `s00000000:` and a valid BSN

Messages name the offending value where it is not personal data; a BSN never appears in a
message, not even one that fails the eleven-test.
"""

from __future__ import annotations

from identity.errors import IdentityError

__all__ = [
    "DigidArtifactInvalid",
    "DigidArtifactResolveFailed",
    "DigidArtifactReused",
    "DigidArtifactUnknown",
    "DigidAssertionExpired",
    "DigidAssertionNotYetValid",
    "DigidAudienceMismatch",
    "DigidAuthnFailed",
    "DigidCancelled",
    "DigidConfigError",
    "DigidError",
    "DigidInvalidSubject",
    "DigidIssuerMismatch",
    "DigidLoaTooLow",
    "DigidLoginNotCompleted",
    "DigidMalformedMessage",
    "DigidRecipientMismatch",
    "DigidRequestRejected",
    "DigidResponseRejected",
    "DigidSignatureInvalid",
    "DigidSignatureMissing",
    "DigidUnknownRequest",
    "UnknownLevelOfAssurance",
]


class DigidError(IdentityError):
    """Base class of every error the DigiD modules raise on purpose."""

    code = "digid_error"


class DigidConfigError(DigidError):
    code = "digid_config_invalid"


class UnknownLevelOfAssurance(DigidError):
    code = "digid_unknown_loa"


class DigidMalformedMessage(DigidError):
    code = "digid_malformed_message"


class DigidArtifactInvalid(DigidMalformedMessage):
    code = "digid_artifact_invalid"


class DigidRequestRejected(DigidError):
    code = "digid_request_rejected"


class DigidArtifactUnknown(DigidError):
    code = "digid_artifact_unknown"


class DigidArtifactReused(DigidArtifactUnknown):
    code = "digid_artifact_reused"


class DigidArtifactResolveFailed(DigidError):
    code = "digid_artifact_resolve_failed"


class DigidLoginNotCompleted(DigidError):
    """The IdP says nobody was authenticated; `in_response_to` names our request, if given."""

    code = "digid_login_not_completed"

    def __init__(self, message: str, *, in_response_to: str | None = None) -> None:
        super().__init__(message)
        self.in_response_to = in_response_to


class DigidCancelled(DigidLoginNotCompleted):
    code = "digid_cancelled"


class DigidAuthnFailed(DigidLoginNotCompleted):
    code = "digid_authn_failed"


class DigidLoaTooLow(DigidError):
    """Carries both levels (as `LevelOfAssurance`) so that a page can explain the refusal."""

    code = "digid_loa_too_low"

    def __init__(self, message: str, *, required: object, given: object) -> None:
        super().__init__(message)
        self.required = required
        self.given = given


class DigidResponseRejected(DigidError):
    code = "digid_response_rejected"


class DigidSignatureInvalid(DigidResponseRejected):
    code = "digid_signature_invalid"


class DigidSignatureMissing(DigidSignatureInvalid):
    code = "digid_signature_missing"


class DigidIssuerMismatch(DigidResponseRejected):
    code = "digid_wrong_issuer"


class DigidAudienceMismatch(DigidResponseRejected):
    code = "digid_wrong_audience"


class DigidRecipientMismatch(DigidResponseRejected):
    code = "digid_wrong_recipient"


class DigidAssertionExpired(DigidResponseRejected):
    code = "digid_assertion_expired"


class DigidAssertionNotYetValid(DigidResponseRejected):
    code = "digid_assertion_not_yet_valid"


class DigidUnknownRequest(DigidResponseRejected):
    code = "digid_unknown_request"


class DigidInvalidSubject(DigidResponseRejected):
    code = "digid_invalid_subject"
