"""What the information manager's and privacy officer's pages (/beheer/...) share.

These people see retention metadata of every dossier and never its content (DESIGN §1); the
pages under /beheer show dates, states, rules and references only. Signing in is the staff
sign-in form; a clerk who opens /beheer is refused, anyone not signed in is sent to sign in.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from identity.sessions import Principal
from server.pages import language, page
from server.security import principal_of
from server.texts import texts

__all__ = ["NAVIGATION", "OVERSIGHT_ROLES", "oversight_page", "require_oversight"]

OVERSIGHT_ROLES: Final = frozenset({"information_manager", "privacy_officer"})
# (path, text key): the menu on every /beheer page, in this order.
NAVIGATION: Final = (
    ("/beheer", "oversight.nav.overview"),
    ("/beheer/verantwoording", "oversight.nav.report"),
    ("/beheer/vernietiging", "oversight.nav.destruction"),
    ("/beheer/bewaring", "oversight.nav.holds"),
    ("/beheer/meldingen", "oversight.nav.notices"),
    ("/beheer/beleid", "oversight.nav.policy"),
    ("/beheer/audit", "oversight.nav.audit"),
)


def require_oversight(request: web.Request) -> Principal:
    """The information manager or privacy officer behind the request.

    Not signed in: 303 to the sign-in form. Signed in with another role: 403 with a page
    that says who may come here.
    """
    principal = principal_of(request)
    if principal is None or principal.kind != "staff":
        raise web.HTTPSeeOther("/balie/inloggen")
    if principal.role not in OVERSIGHT_ROLES:
        t = texts(language(request))
        refusal = page(request, "message.html", status=403, title=t["oversight.nav"],
                       message=t["oversight.forbidden"], english="")  # fmt: skip
        raise web.HTTPForbidden(
            text=refusal.text, content_type="text/html", headers={"Cache-Control": "no-store"}
        )
    return principal


def oversight_page(
    request: web.Request,
    template: str,
    *,
    principal: Principal,
    title: str,
    status: int = 200,
    **context: Any,
) -> web.Response:
    """Render an /beheer page: `template` extends `oversight/base.html`, which adds the menu,
    the sign-out form (it needs `csrf`) and marks the current page."""
    response = page(
        request,
        template,
        status=status,
        title=title,
        navigation=NAVIGATION,
        csrf=principal.csrf_token,
        role=principal.role,
        **context,
    )
    # Metadata of dossiers: never kept by a browser or proxy cache.
    response.headers["Cache-Control"] = "no-store"
    return response
