"""SAML 2.0 plumbing shared by the service provider and the test IdP.

Parsing goes through python3-saml's hardened parser (no DTDs, no entities, no network,
comments removed, which also defeats the NameID comment-truncation trick); signing and
signature checks go through `OneLogin_Saml2_Utils`, which drives xmlsec. What this module
adds is the structure python3-saml has no class for: SOAP envelopes, `ArtifactResolve` and
`ArtifactResponse`, type-4 artifacts, strict UTC instants, and the checks that make a root
signature cover the element we go on to read.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from identity.digid.certs import KeyPair
from identity.digid.errors import (
    DigidArtifactInvalid,
    DigidMalformedMessage,
    DigidSignatureInvalid,
    DigidSignatureMissing,
)

__all__ = [
    "NS_DS",
    "NS_SAML",
    "NS_SAMLP",
    "NS_SOAP",
    "STATUS_AUTHN_FAILED",
    "STATUS_RESPONDER",
    "STATUS_SUCCESS",
    "Element",
    "SamlStatus",
    "format_instant",
    "make_artifact",
    "make_element",
    "new_id",
    "parse_artifact",
    "parse_instant",
    "parse_xml",
    "q",
    "read_status",
    "sign",
    "soap_body",
    "soap_envelope",
    "text_of",
    "to_bytes",
    "verify_signed_root",
]

# lxml ships no type information; elements are `Any` to mypy and named for the reader.
Element = Any

NS_SAML: str = C.NS_SAML
NS_SAMLP: str = C.NS_SAMLP
NS_DS: str = C.NS_DS
NS_SOAP: str = C.NS_SOAP
STATUS_SUCCESS: str = C.STATUS_SUCCESS
STATUS_RESPONDER: str = C.STATUS_RESPONDER
STATUS_AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
ARTIFACT_TYPE_CODE = 0x0004

_PREFIX_OF = {NS_SAML: "saml", NS_SAMLP: "samlp"}
_STRONG_SIGNATURE = frozenset({C.RSA_SHA256, C.RSA_SHA384, C.RSA_SHA512})
_STRONG_DIGEST = frozenset({C.SHA256, C.SHA384, C.SHA512})
# SAML core 1.3.3: xs:dateTime in UTC with a "Z" and no offset; fractions are allowed.
_INSTANT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def q(namespace: str, local: str) -> str:
    """Clark notation `{namespace}local`, as lxml spells qualified names."""
    return f"{{{namespace}}}{local}"


def make_element(
    tag: str,
    *,
    parent: Element | None = None,
    text: str | None = None,
    nsmap: dict[str, str] | None = None,
    **attributes: str,
) -> Element:
    """A new element (appended to `parent` if given) with text and attributes; lxml escapes."""
    if parent is None:
        element = etree.Element(tag, nsmap=nsmap)
    else:
        element = etree.SubElement(parent, tag, nsmap=nsmap)
    for name, value in attributes.items():
        element.set(name, value)
    if text is not None:
        element.text = text
    return element


def new_id() -> str:
    """A fresh message id: an NCName (cannot start with a digit) carrying 160 random bits."""
    return "_" + secrets.token_hex(20)


def format_instant(moment: dt.datetime) -> str:
    """`moment` as a SAML instant in UTC, whole seconds; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("a SAML instant needs an aware datetime")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str | None, *, what: str) -> dt.datetime:
    """Parse a SAML instant; raises DigidMalformedMessage naming `what` if it is not one."""
    match = _INSTANT.fullmatch(text or "")
    if match is None:
        raise DigidMalformedMessage(f"{what} is not a UTC instant: {(text or '')[:40]!r}")
    moment = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    fraction = (match.group(2) or "").ljust(6, "0")[:6]
    return moment.replace(microsecond=int(fraction))


def parse_xml(data: bytes | str, *, what: str) -> Element:
    """Parse with python3-saml's hardened parser; raises DigidMalformedMessage if not XML."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        # The parser is python3-saml's (DTDs/entities forbidden); every failure means "not XML".
        return OneLogin_Saml2_XML.to_etree(data)
    except (etree.LxmlError, ValueError) as err:
        raise DigidMalformedMessage(f"the {what} is not well-formed XML") from err


def to_bytes(element: Element) -> bytes:
    """Serialise an element (with the namespace declarations it needs) as UTF-8."""
    data: bytes = etree.tostring(element, encoding="utf-8", xml_declaration=False)
    return data


def text_of(element: Element | None) -> str:
    """The text content of an element, stripped; '' for None."""
    if element is None:
        return ""
    return "".join(element.itertext()).strip()


def sign(xml: bytes, keys: KeyPair) -> bytes:
    """Sign the element holding the first `saml:Issuer` of `xml` (rsa-sha256, sha256).

    The signature goes right after that Issuer, as the SAML schema wants; python3-saml
    decides the placement, which is why callers sign each element on its own document.
    """
    signed = OneLogin_Saml2_Utils.add_sign(
        xml, keys.key_pem, keys.cert_pem, sign_algorithm=C.RSA_SHA256, digest_algorithm=C.SHA256
    )
    return signed if isinstance(signed, bytes) else str(signed).encode("utf-8")


def verify_signed_root(root: Element, cert_pem: str, *, what: str) -> None:
    """Check that `root` itself carries one valid signature by `cert_pem` covering all of it.

    Raises DigidSignatureMissing if unsigned, DigidSignatureInvalid if the signature is bad,
    made with another key, uses SHA-1, or references anything but `root` (wrapping).
    """
    signatures = root.findall(q(NS_DS, "Signature"))
    if not signatures:
        raise DigidSignatureMissing(f"the {what} is not signed")
    if len(signatures) > 1:
        raise DigidSignatureInvalid(f"the {what} carries {len(signatures)} signatures")
    check_signature_shape(root, signatures[0], what=what)
    prefix = _PREFIX_OF.get(etree.QName(root).namespace or "")
    if prefix is None:
        raise DigidSignatureInvalid(f"the {what} is not a SAML element")
    # Verify on a document of its own, so that python3-saml's absolute XPath finds this root.
    document = parse_xml(to_bytes(root), what=what)
    xpath = f"/{prefix}:{etree.QName(root).localname}/ds:Signature"
    if not OneLogin_Saml2_Utils.validate_sign(document, cert_pem, xpath=xpath):
        raise DigidSignatureInvalid(f"the signature on the {what} does not verify")


def check_signature_shape(signed: Element, signature: Element, *, what: str) -> None:
    """Reject signatures that do not reference `signed` by a unique ID, or use weak hashes."""
    element_id = signed.get("ID") or ""
    references = signature.findall(f"{q(NS_DS, 'SignedInfo')}/{q(NS_DS, 'Reference')}")
    if len(references) != 1 or references[0].get("URI") != f"#{element_id}" or not element_id:
        raise DigidSignatureInvalid(f"the signature on the {what} does not cover the {what}")
    # Two elements with one ID let a reference resolve to the copy an attacker placed first.
    if len(signed.getroottree().xpath("//*[@ID=$id]", id=element_id)) != 1:
        raise DigidSignatureInvalid(f"the ID of the {what} occurs more than once")
    method = signature.find(f"{q(NS_DS, 'SignedInfo')}/{q(NS_DS, 'SignatureMethod')}")
    digest = references[0].find(q(NS_DS, "DigestMethod"))
    if method is None or method.get("Algorithm") not in _STRONG_SIGNATURE:
        raise DigidSignatureInvalid(f"the {what} is signed with a weak or unknown algorithm")
    if digest is None or digest.get("Algorithm") not in _STRONG_DIGEST:
        raise DigidSignatureInvalid(f"the {what} is signed over a weak or unknown digest")


def soap_envelope(message: bytes) -> bytes:
    """Wrap one serialised SAML message in a SOAP 1.1 envelope.

    Signatures inside stay valid: SAML signs with exclusive canonicalisation, which does not
    depend on the namespace declarations of the new surroundings.
    """
    envelope = etree.Element(q(NS_SOAP, "Envelope"), nsmap={"soap": NS_SOAP})
    body = etree.SubElement(envelope, q(NS_SOAP, "Body"))
    body.append(parse_xml(message, what="SAML message"))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + to_bytes(envelope)


def soap_body(data: bytes, *, what: str) -> Element:
    """The single element in the SOAP Body of `data`, re-rooted as a document of its own.

    Raises DigidMalformedMessage for anything that is not a SOAP 1.1 envelope with exactly
    one body element, and for a SOAP Fault (naming its faultstring).
    """
    envelope = parse_xml(data, what=f"SOAP message with the {what}")
    if envelope.tag != q(NS_SOAP, "Envelope"):
        raise DigidMalformedMessage(f"expected a SOAP envelope with the {what}")
    bodies = envelope.findall(q(NS_SOAP, "Body"))
    children = [c for c in bodies[0] if isinstance(c.tag, str)] if len(bodies) == 1 else []
    if len(children) != 1:
        raise DigidMalformedMessage(f"the SOAP body must hold exactly one {what}")
    if children[0].tag == q(NS_SOAP, "Fault"):
        reason = text_of(children[0].find("faultstring"))[:200]
        raise DigidMalformedMessage(f"SOAP fault instead of the {what}: {reason!r}")
    return parse_xml(to_bytes(children[0]), what=what)


@dataclass(frozen=True, slots=True)
class SamlStatus:
    """A `samlp:Status`: the top-level code, the second-level code if any, and the message."""

    code: str
    sub_code: str | None
    message: str

    @property
    def success(self) -> bool:
        return self.code == STATUS_SUCCESS


def read_status(message: Element, *, what: str) -> SamlStatus:
    """The status of a SAML protocol message; raises DigidMalformedMessage if it has none."""
    code = message.find(f"{q(NS_SAMLP, 'Status')}/{q(NS_SAMLP, 'StatusCode')}")
    if code is None or not code.get("Value"):
        raise DigidMalformedMessage(f"the {what} has no status code")
    sub = code.find(q(NS_SAMLP, "StatusCode"))
    text = text_of(message.find(f"{q(NS_SAMLP, 'Status')}/{q(NS_SAMLP, 'StatusMessage')}"))
    return SamlStatus(code.get("Value"), None if sub is None else sub.get("Value"), text[:200])


def make_artifact(*, idp_entity_id: str, endpoint_index: int, handle: bytes) -> str:
    """A SAML 2.0 type-4 artifact: type code, endpoint index, SHA-1 of the issuer, handle."""
    if len(handle) != 20:
        raise ValueError("a message handle has 20 bytes")
    source_id = hashlib.sha1(idp_entity_id.encode("utf-8")).digest()  # noqa: S324 (SAML spec)
    raw = ARTIFACT_TYPE_CODE.to_bytes(2, "big") + endpoint_index.to_bytes(2, "big")
    return base64.b64encode(raw + source_id + handle).decode("ascii")


def parse_artifact(artifact: str, *, idp_entity_id: str) -> bytes:
    """The message handle of a type-4 artifact issued by `idp_entity_id`.

    Raises DigidArtifactInvalid if it is not base64, not 44 bytes, not type 4, or was
    issued by another IdP (SourceID is the SHA-1 of the issuer's entity id).
    """
    try:
        raw = base64.b64decode(artifact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DigidArtifactInvalid("the SAML artifact is not base64") from None
    if len(raw) != 44 or int.from_bytes(raw[:2], "big") != ARTIFACT_TYPE_CODE:
        raise DigidArtifactInvalid("the SAML artifact is not a 44-byte type-4 artifact")
    source_id = hashlib.sha1(idp_entity_id.encode("utf-8")).digest()  # noqa: S324 (SAML spec)
    if not secrets.compare_digest(raw[4:24], source_id):
        raise DigidArtifactInvalid("the SAML artifact was not issued by the configured IdP")
    return raw[24:]
