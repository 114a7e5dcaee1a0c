"""IdP metadata: written by the test IdP, read to configure the service provider.

Logius publishes DigiD's metadata (per environment: preproduction, production); reading it
gives the entity id, the SSO and artifact resolution URLs and the signing certificate(s)
that `DigidSpConfig` needs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from identity.digid.certs import KeyPair, load_certificate
from identity.digid.errors import DigidConfigError, DigidMalformedMessage
from identity.digid.saml import make_element, parse_xml, q, to_bytes

__all__ = ["IdpMetadata", "idp_metadata_xml", "parse_idp_metadata"]

NS_MD = C.NS_MD
_NSMAP = {"md": NS_MD, "ds": C.NS_DS}


@dataclass(frozen=True, slots=True)
class IdpMetadata:
    """What the SP needs from an IdP's metadata. The first signing certificate is current;
    DigiD lists a second one while it rolls its key over."""

    entity_id: str
    sso_url: str
    artifact_resolution_url: str
    signing_certs_pem: tuple[str, ...]


def idp_metadata_xml(
    *,
    entity_id: str,
    sso_url: str,
    artifact_resolution_url: str,
    keys: KeyPair,
    valid_until: dt.datetime | None = None,
) -> str:
    """Signed metadata for an IdP with Redirect SSO and SOAP artifact resolution."""
    root = make_element(q(NS_MD, "EntityDescriptor"), nsmap=_NSMAP, entityID=entity_id)
    if valid_until is not None:
        root.set("validUntil", valid_until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    idp = make_element(
        q(NS_MD, "IDPSSODescriptor"),
        parent=root,
        WantAuthnRequestsSigned="true",
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol",
    )
    key = make_element(q(NS_MD, "KeyDescriptor"), parent=idp, use="signing")
    x509 = make_element(
        q(C.NS_DS, "X509Data"), parent=make_element(q(C.NS_DS, "KeyInfo"), parent=key)
    )
    body = "".join(line for line in keys.cert_pem.strip().splitlines() if "-----" not in line)
    make_element(q(C.NS_DS, "X509Certificate"), parent=x509, text=body)
    make_element(
        q(NS_MD, "ArtifactResolutionService"),
        parent=idp,
        Binding=C.BINDING_SOAP,
        Location=artifact_resolution_url,
        index="0",
        isDefault="true",
    )
    make_element(
        q(NS_MD, "SingleSignOnService"),
        parent=idp,
        Binding=C.BINDING_HTTP_REDIRECT,
        Location=sso_url,
    )
    signed = OneLogin_Saml2_Metadata.sign_metadata(
        to_bytes(root).decode("utf-8"), keys.key_pem, keys.cert_pem
    )
    return signed.decode("utf-8") if isinstance(signed, bytes) else str(signed)


def parse_idp_metadata(xml: str | bytes, *, signer_cert_pem: str | None = None) -> IdpMetadata:
    """Read an IdP's entity id, endpoints and signing certificates from its metadata.

    With `signer_cert_pem`, the metadata must carry a valid signature by that certificate.
    Raises DigidConfigError if something the SP needs is missing or the signature is wrong,
    DigidMalformedMessage if `xml` is not XML.
    """
    document = parse_xml(xml, what="IdP metadata")
    if signer_cert_pem is not None and not OneLogin_Saml2_Utils.validate_metadata_sign(
        document, signer_cert_pem
    ):
        raise DigidConfigError("the IdP metadata is not signed by the expected certificate")
    try:
        found = OneLogin_Saml2_IdPMetadataParser.parse(to_bytes(document))
    except (ValueError, AttributeError, IndexError) as err:
        raise DigidMalformedMessage("the IdP metadata has no usable IDPSSODescriptor") from err
    idp = found.get("idp", {})
    sso_url = idp.get("singleSignOnService", {}).get("url")
    entity_id = idp.get("entityId")
    multi = idp.get("x509certMulti", {}).get("signing", [])
    certs = tuple(multi) if multi else ((idp["x509cert"],) if idp.get("x509cert") else ())
    resolution = document.xpath(
        "//md:IDPSSODescriptor/md:ArtifactResolutionService[@Binding=$binding]/@Location",
        namespaces=_NSMAP,
        binding=C.BINDING_SOAP,
    )
    if not entity_id or not sso_url or not resolution or not certs:
        raise DigidConfigError(
            "the IdP metadata lacks an entity id, a Redirect SSO URL, a SOAP artifact "
            "resolution URL or a signing certificate"
        )
    pems = tuple(OneLogin_Saml2_Utils.format_cert(cert, heads=True) for cert in certs)
    for pem in pems:
        load_certificate(pem)
    return IdpMetadata(
        entity_id=entity_id,
        sso_url=sso_url,
        artifact_resolution_url=str(resolution[0]),
        signing_certs_pem=pems,
    )
