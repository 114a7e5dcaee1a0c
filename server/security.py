"""Web hygiene for every response and every state-changing request (DESIGN section 4).

* security headers on every response, errors and static files included (a response-prepare
  signal, so no handler can forget them);
* the session: the `__Host-` cookie is resolved to a Principal once per request;
* CSRF: a state-changing request must come from our own origin (Sec-Fetch-Site, else Origin)
  and, once there is a session, carry its CSRF token in a header or form field.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from identity.sessions import SESSION_COOKIE, Principal, load_principal
from server.appkeys import DOSSIER_STORE, SETTINGS
from server.middlewares import error_response

__all__ = [
    "CSRF_HEADER",
    "PRINCIPAL",
    "add_security_headers",
    "csrf_middleware",
    "principal_of",
    "session_cookie",
    "session_middleware",
]

PRINCIPAL = web.RequestKey("principal", Principal)
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# The DigiD test IdP stands in for another site that happens to share our origin in dev/test:
# its login form cannot carry Balie's session token (DigiD's would not either).
# The same holds for the demo payment provider's checkout page.
_TOKEN_EXEMPT_PREFIXES = ("/test-idp/", "/demo-betaling/")
# Server-to-server calls with no cookie and no browser: a payment provider's webhook. It only
# names a payment id; the status is then fetched from the provider, so a forged call can make
# Balie ask, never make it believe.
_CSRF_EXEMPT_PREFIXES = ("/api/payments/webhook/",)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=()",
}


def principal_of(request: web.Request) -> Principal | None:
    """Who is behind this request, if anyone signed in."""
    principal: Principal | None = request.get(PRINCIPAL, None)
    return principal


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set the security headers; API answers (dossier data) are never cached."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


def session_cookie(response: web.StreamResponse, token: str | None) -> None:
    """Set (or, with None, clear) the session cookie with the attributes DESIGN asks for."""
    if token is None:
        response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
        return
    # __Host-: Secure, Path=/ and no Domain, so no other host or path can set or read it.
    # SameSite=Lax, not Strict: the resident arrives from DigiD by a top-level redirect.
    response.set_cookie(SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="Lax")


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the session cookie to a Principal (absent if none or expired)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        store = request.app[DOSSIER_STORE]
        principal = await load_principal(store.sessions, clock=store.clock, token=token)
        if principal is not None:
            request[PRINCIPAL] = principal
    return await handler(request)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-site state changes (403) before any handler runs."""
    if request.method not in _UNSAFE or request.path.startswith(_CSRF_EXEMPT_PREFIXES):
        return await handler(request)
    public = request.app[SETTINGS].public_origin
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site not in ("same-origin", "none"):
            return error_response(403, "csrf", f"cross-site request refused ({site})")
    elif request.headers.get("Origin") != public:
        origin = request.headers.get("Origin", "none")
        return error_response(403, "csrf", f"request from origin {origin!r} refused")
    principal = principal_of(request)
    if principal is not None and not request.path.startswith(_TOKEN_EXEMPT_PREFIXES):
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.content_type == "application/x-www-form-urlencoded":
            sent = str((await request.post()).get("csrf_token", ""))
        if not sent or not _same(sent, principal.csrf_token):
            return error_response(403, "csrf", "missing or wrong CSRF token")
    return await handler(request)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
