"""The test IdP's side of the HTTP-Redirect binding: verify and read an incoming AuthnRequest."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from identity.digid.errors import (
    DigidMalformedMessage,
    DigidRequestRejected,
    UnknownLevelOfAssurance,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.saml import NS_SAML, NS_SAMLP, Element, parse_instant, parse_xml, q, text_of

if TYPE_CHECKING:
    from identity.digid.testidp import TrustedSp

__all__ = ["IncomingAuthnRequest", "parse_authn_request"]

_SIGNED_PARAMETERS = ("SAMLRequest", "RelayState", "SigAlg")
_ACCEPTED_SIG_ALGS = frozenset({C.RSA_SHA256, C.RSA_SHA384, C.RSA_SHA512})
# A deflated AuthnRequest is a few hundred bytes; refuse to inflate bombs.
_MAX_INFLATED = 64 * 1024
_CLOCK_SKEW = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class IncomingAuthnRequest:
    """A verified AuthnRequest. `query_string` is the raw signed query, to carry in a form."""

    request_id: str
    sp_entity_id: str
    acs_url: str
    relay_state: str | None
    requested_loa: LevelOfAssurance | None
    force_authn: bool
    issued_at: dt.datetime
    query_string: str


def parse_authn_request(
    query_string: str, *, sp: TrustedSp, sso_url: str, now: dt.datetime, max_age: dt.timedelta
) -> IncomingAuthnRequest:
    """Verify the Redirect-binding signature of `query_string` with the SP's certificate and
    read the AuthnRequest in it.

    Raises DigidRequestRejected (unsigned, bad or weak signature, other SP, other ACS or
    binding, issued more than `max_age` ago or in the future) or DigidMalformedMessage.
    """
    values = parse_qs(query_string, keep_blank_values=True)
    if any(len(v) != 1 for v in values.values()):
        raise DigidMalformedMessage("a Redirect-binding parameter occurs more than once")
    single = {name: v[0] for name, v in values.items()}
    if "SAMLRequest" not in single:
        raise DigidMalformedMessage("the query holds no SAMLRequest")
    if "Signature" not in single or "SigAlg" not in single:
        raise DigidRequestRejected("the AuthnRequest is not signed")
    if single["SigAlg"] not in _ACCEPTED_SIG_ALGS:
        raise DigidRequestRejected(f"signature algorithm {single['SigAlg'][:100]!r} is refused")
    try:
        signature = base64.b64decode(single["Signature"], validate=True)
    except binascii.Error:
        raise DigidMalformedMessage("the Signature parameter is not base64") from None
    if not any(
        OneLogin_Saml2_Utils.validate_binary_sign(signed, signature, sp.cert_pem, single["SigAlg"])
        for signed in _signed_forms(query_string, single)
    ):
        raise DigidRequestRejected("the signature on the AuthnRequest does not verify")

    request = parse_xml(_inflate(single["SAMLRequest"]), what="AuthnRequest")
    if request.tag != q(NS_SAMLP, "AuthnRequest") or request.get("Version") != "2.0":
        raise DigidMalformedMessage("expected a SAML 2.0 AuthnRequest")
    request_id = request.get("ID") or ""
    if not request_id:
        raise DigidMalformedMessage("the AuthnRequest has no ID")
    issuer = text_of(request.find(q(NS_SAML, "Issuer")))
    if issuer != sp.entity_id:
        raise DigidRequestRejected(f"AuthnRequest from unknown SP {issuer[:200]!r}")
    acs_url = request.get("AssertionConsumerServiceURL") or sp.acs_url
    if acs_url != sp.acs_url:
        raise DigidRequestRejected(f"ACS URL {acs_url[:200]!r} is not registered for this SP")
    if request.get("ProtocolBinding", C.BINDING_HTTP_ARTIFACT) != C.BINDING_HTTP_ARTIFACT:
        raise DigidRequestRejected("DigiD answers with the HTTP-Artifact binding only")
    destination = request.get("Destination")
    if destination is not None and destination != sso_url:
        raise DigidRequestRejected(f"the AuthnRequest is addressed to {destination[:200]!r}")
    issued_at = parse_instant(request.get("IssueInstant"), what="AuthnRequest IssueInstant")
    if not now - max_age <= issued_at <= now + _CLOCK_SKEW:
        raise DigidRequestRejected("the AuthnRequest is too old or from the future")
    return IncomingAuthnRequest(
        request_id=request_id,
        sp_entity_id=issuer,
        acs_url=acs_url,
        relay_state=single.get("RelayState"),
        requested_loa=_requested_loa(request),
        force_authn=request.get("ForceAuthn") in ("true", "1"),
        issued_at=issued_at,
        query_string=query_string,
    )


def _signed_forms(query_string: str, values: dict[str, str]) -> list[str]:
    """The signed octets as sent (bindings 3.4.4.1), and as re-encoded from the decoded values.

    The second form is python3-saml's own fallback: proxies and HTTP clients sometimes
    normalise percent-encoding (yarl turns %2F into /), which breaks the raw form only.
    """
    raw = {part.split("=", 1)[0]: part for part in query_string.split("&") if "=" in part}
    forms = ["&".join(raw[name] for name in _SIGNED_PARAMETERS if name in raw)]
    for lowercase in (False, True):
        forms.append(
            "&".join(
                f"{name}={OneLogin_Saml2_Utils.escape_url(values[name], lowercase)}"
                for name in _SIGNED_PARAMETERS
                if name in values
            )
        )
    return forms


def _inflate(encoded: str) -> bytes:
    try:
        deflated = base64.b64decode(encoded, validate=True)
        inflater = zlib.decompressobj(-15)
        data = inflater.decompress(deflated, _MAX_INFLATED)
    except (binascii.Error, zlib.error):
        raise DigidMalformedMessage("SAMLRequest is not deflated base64") from None
    if inflater.unconsumed_tail:
        raise DigidMalformedMessage("SAMLRequest inflates to more than 64 KiB")
    return data


def _requested_loa(request: Element) -> LevelOfAssurance | None:
    context = request.find(q(NS_SAMLP, "RequestedAuthnContext"))
    if context is None:
        return None
    if context.get("Comparison", "exact") not in ("minimum", "exact"):
        raise DigidRequestRejected("DigiD supports the comparisons 'minimum' and 'exact' only")
    refs = [text_of(r) for r in context.findall(q(NS_SAML, "AuthnContextClassRef"))]
    try:
        # Several refs mean "any of these"; the weakest is what the SP will accept.
        return min(LevelOfAssurance.from_class_ref(r) for r in refs) if refs else None
    except UnknownLevelOfAssurance as err:
        raise DigidRequestRejected(str(err)) from None
