"""Shared pieces for the DigiD tests: a movable clock, an SP and test IdP wired to each other,
and the XML surgery that forged responses need."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml import etree

from identity.digid.certs import KeyPair, generate_key_pair
from identity.digid.config import DigidSpConfig
from identity.digid.loa import LevelOfAssurance
from identity.digid.saml import NS_DS, NS_SAML, NS_SAMLP, new_id
from identity.digid.sp import AuthnRequestInfo, DigidServiceProvider
from identity.digid.testidp import IncomingAuthnRequest, TestIdp, TestIdpConfig, TrustedSp

BSN = "999993653"
OTHER_BSN = "111222333"
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
SP_ENTITY = "https://balie.gemeente.example/saml/sp"
ACS_URL = "https://balie.gemeente.example/digid/acs"
IDP_ENTITY = "https://test-idp.balie.example"
SSO_URL = "https://balie.gemeente.example/test-idp/sso"
RESOLVE_URL = "https://balie.gemeente.example/test-idp/artifact"
NS = {"samlp": NS_SAMLP, "saml": NS_SAML, "ds": NS_DS}


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class Keys:
    sp: KeyPair
    idp: KeyPair
    other: KeyPair


def make_keys() -> Keys:
    def pair(name: str) -> KeyPair:
        return generate_key_pair(
            common_name=name, now=START, valid_for=dt.timedelta(days=365), key_size=2048
        )

    return Keys(sp=pair("sp"), idp=pair("idp"), other=pair("other"))


@dataclass
class World:
    clock: Clock
    keys: Keys
    sp: DigidServiceProvider
    idp: TestIdp

    def start(
        self, requested: LevelOfAssurance = LevelOfAssurance.MIDDEN, relay_state: str = "rs-1"
    ) -> tuple[AuthnRequestInfo, IncomingAuthnRequest]:
        """SP sends an AuthnRequest; the test IdP receives and verifies it."""
        info = self.sp.authn_request(loa=requested, relay_state=relay_state)
        return info, self.idp.parse_authn_request(urlsplit(info.redirect_url).query)

    def lookup(self, *infos: AuthnRequestInfo) -> Callable[[str], LevelOfAssurance | None]:
        issued = {info.request_id: info.loa for info in infos}
        return issued.get

    async def transport(self, url: str, body: bytes) -> bytes:
        assert url == self.sp.config.idp_artifact_resolution_url
        return self.idp.resolve(body)


def make_world(
    keys: Keys,
    *,
    clock: Clock | None = None,
    sso_url: str = SSO_URL,
    resolve_url: str = RESOLVE_URL,
    idp_keys: KeyPair | None = None,
) -> World:
    clock = clock or Clock()
    config = DigidSpConfig(
        entity_id=SP_ENTITY,
        acs_url=ACS_URL,
        sp_key_pem=keys.sp.key_pem,
        sp_cert_pem=keys.sp.cert_pem,
        idp_entity_id=IDP_ENTITY,
        idp_sso_url=sso_url,
        idp_artifact_resolution_url=resolve_url,
        idp_cert_pem=keys.idp.cert_pem,
    )
    idp = TestIdp(
        TestIdpConfig(
            entity_id=IDP_ENTITY,
            keys=idp_keys or keys.idp,
            sp=TrustedSp(entity_id=SP_ENTITY, acs_url=ACS_URL, cert_pem=keys.sp.cert_pem),
            sso_url=sso_url,
            artifact_resolution_url=resolve_url,
        ),
        clock=clock,
    )
    return World(clock=clock, keys=keys, sp=DigidServiceProvider(config, clock=clock), idp=idp)


# --- XML surgery for signature-wrapping attacks -------------------------------------------


def _parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def _evil_copy(assertion: etree._Element, bsn: str, *, keep_id: bool) -> etree._Element:
    """An unsigned copy of `assertion` naming `bsn`."""
    evil = copy.deepcopy(assertion)
    for signature in evil.findall(f"{{{NS_DS}}}Signature"):
        evil.remove(signature)
    evil.find("saml:Subject/saml:NameID", NS).text = f"s00000000:{bsn}"
    if not keep_id:
        evil.set("ID", new_id())
    return evil


def _signed_assertion(response: etree._Element) -> etree._Element:
    assertion = response.find("saml:Assertion", NS)
    assert assertion is not None
    assert assertion.find("ds:Signature", NS) is not None
    return assertion


def xsw_evil_sibling_first(xml: str, bsn: str) -> str:
    """XSW: an unsigned evil assertion inserted before the untouched signed one."""
    response = _parse(xml)
    original = _signed_assertion(response)
    original.addprevious(_evil_copy(original, bsn, keep_id=False))
    return etree.tostring(response).decode()


def xsw_original_in_extensions(xml: str, bsn: str) -> str:
    """XSW: the signed assertion hidden in samlp:Extensions, an evil one (same ID) in its place."""
    response = _parse(xml)
    original = _signed_assertion(response)
    evil = _evil_copy(original, bsn, keep_id=True)
    original.addprevious(evil)
    extensions = etree.Element(f"{{{NS_SAMLP}}}Extensions")
    response.find("saml:Issuer", NS).addnext(extensions)
    extensions.append(original)
    return etree.tostring(response).decode()


def xsw_original_in_evil_signature(xml: str, bsn: str) -> str:
    """XSW: the evil assertion carries the original signature, the original sits in its
    ds:Object, so that a verifier resolving the reference by ID finds the genuine one."""
    response = _parse(xml)
    original = _signed_assertion(response)
    evil = _evil_copy(original, bsn, keep_id=True)
    signature = copy.deepcopy(original.find("ds:Signature", NS))
    evil.find("saml:Issuer", NS).addnext(signature)
    holder = etree.SubElement(signature, f"{{{NS_DS}}}Object")
    original.addprevious(evil)
    holder.append(original)
    return etree.tostring(response).decode()


def xsw_only_signature_moved(xml: str, bsn: str) -> str:
    """The original signature on an evil assertion (same ID), the original removed."""
    response = _parse(xml)
    original = _signed_assertion(response)
    evil = _evil_copy(original, bsn, keep_id=True)
    evil.find("saml:Issuer", NS).addnext(copy.deepcopy(original.find("ds:Signature", NS)))
    original.addprevious(evil)
    response.remove(original)
    return etree.tostring(response).decode()


XSW_VARIANTS = {
    "evil-sibling-first": xsw_evil_sibling_first,
    "original-in-extensions": xsw_original_in_extensions,
    "original-in-evil-signature": xsw_original_in_evil_signature,
    "signature-moved-to-evil": xsw_only_signature_moved,
}
