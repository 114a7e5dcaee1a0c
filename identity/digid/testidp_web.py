"""HTTP endpoints of the DigiD test IdP (development and tests only).

    GET  {prefix}/sso        login page for a signed Redirect-binding AuthnRequest
    POST {prefix}/sso        log in (BSN + level) or cancel; 303 to the SP's ACS with SAMLart
    POST {prefix}/artifact   SOAP artifact resolution
    GET  {prefix}/metadata   the IdP's SAML metadata

The pages are plain HTML without script, in Dutch (B1) with English hints, so that they
pass an accessibility check. The signed AuthnRequest travels in a hidden field and is
verified again on POST: the test IdP keeps no state per browser.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from identity.digid.errors import DigidError
from identity.digid.loa import LevelOfAssurance
from identity.digid.metadata import idp_metadata_xml
from identity.digid.testidp import IncomingAuthnRequest, TestIdp
from identity.pseudonym import is_valid_bsn

__all__ = ["DEFAULT_TEMPLATES", "add_test_idp_routes"]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"

_LEVELS = {
    LevelOfAssurance.BASIS: ("Basis: gebruikersnaam en wachtwoord", "username and password"),
    LevelOfAssurance.MIDDEN: ("Midden: DigiD app of sms-controle", "app or text message"),
    LevelOfAssurance.SUBSTANTIEEL: (
        "Substantieel: DigiD app met identiteitsbewijs",
        "app with identity document check",
    ),
    LevelOfAssurance.HOOG: ("Hoog: identiteitsbewijs met chip", "identity card with chip"),
}
_HTML = "text/html"
_SOAP = "text/xml"


def add_test_idp_routes(
    router: web.UrlDispatcher,
    idp: TestIdp,
    *,
    prefix: str = "/test-idp",
    templates: Path = DEFAULT_TEMPLATES,
) -> None:
    """Mount the test IdP's endpoints under `prefix`. Never call this in production mode."""
    views = _Views(idp, templates)
    router.add_get(f"{prefix}/sso", views.login_page)
    router.add_post(f"{prefix}/sso", views.login_submit)
    router.add_post(f"{prefix}/artifact", views.resolve)
    router.add_get(f"{prefix}/metadata", views.metadata)


class _Views:
    def __init__(self, idp: TestIdp, templates: Path) -> None:
        self._idp = idp
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    async def login_page(self, request: web.Request) -> web.Response:
        try:
            authn = self._idp.parse_authn_request(request.rel_url.raw_query_string)
        except DigidError as err:
            return self._problem(err)
        return self._page(request, authn, selected=authn.requested_loa, error=None, status=200)

    async def login_submit(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            authn = self._idp.parse_authn_request(str(form.get("saml_request", "")))
        except DigidError as err:
            return self._problem(err)
        if form.get("action") == "cancel":
            raise web.HTTPSeeOther(self._idp.acs_redirect(authn, self._idp.cancel(authn)))
        try:
            loa = LevelOfAssurance.parse(str(form.get("loa", "")))
        except DigidError:
            return self._page(request, authn, selected=None, error="loa", status=422)
        bsn = str(form.get("bsn", "")).strip()
        if not is_valid_bsn(bsn):
            # The entered value is not shown again: it may be (almost) someone's BSN.
            return self._page(request, authn, selected=loa, error="bsn", status=422)
        artifact = self._idp.login(authn, bsn=bsn, loa=loa)
        raise web.HTTPSeeOther(self._idp.acs_redirect(authn, artifact))

    async def resolve(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            answer = self._idp.resolve(body)
        except DigidError as err:
            logger.info("test IdP: refused an ArtifactResolve (%s)", err.code)
            return web.Response(status=500, body=_soap_fault(err.code), content_type=_SOAP)
        return web.Response(body=answer, content_type=_SOAP, charset="utf-8")

    async def metadata(self, request: web.Request) -> web.Response:
        config = self._idp.config
        xml = idp_metadata_xml(
            entity_id=config.entity_id,
            sso_url=config.sso_url,
            artifact_resolution_url=config.artifact_resolution_url,
            keys=config.keys,
        )
        return web.Response(text=xml, content_type="application/samlmetadata+xml")

    def _page(
        self,
        request: web.Request,
        authn: IncomingAuthnRequest,
        *,
        selected: LevelOfAssurance | None,
        error: str | None,
        status: int,
    ) -> web.Response:
        levels: list[dict[str, Any]] = [
            {
                "value": level.value,
                "label": label,
                "hint": hint,
                "checked": level == (selected or authn.requested_loa or LevelOfAssurance.MIDDEN),
                "below_request": authn.requested_loa is not None
                and not level.satisfies(authn.requested_loa),
            }
            for level, (label, hint) in _LEVELS.items()
        ]
        html = self._env.get_template("test_idp/login.html").render(
            sp_entity_id=authn.sp_entity_id,
            requested=authn.requested_loa.value if authn.requested_loa else None,
            levels=levels,
            error=error,
            saml_request=authn.query_string,
            action=request.path,
        )
        return web.Response(text=html, status=status, content_type=_HTML)

    def _problem(self, err: DigidError) -> web.Response:
        html = self._env.get_template("test_idp/problem.html").render(code=err.code)
        return web.Response(text=html, status=400, content_type=_HTML)


def _soap_fault(code: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{code}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()
