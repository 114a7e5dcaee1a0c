"""Staff sign-in through the municipality's identity provider (OpenID Connect).

GET /auth/oidc/login     start: state, nonce and PKCE verifier kept in a fresh session
GET /auth/oidc/callback  finish: verify, find or update the account, start a staff session
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import aiohttp
from aiohttp import web

from dossier.db import wall_clock
from identity.errors import Forbidden
from identity.oidc import AiohttpTransport, OidcClient, OidcConfig, OidcError, StaffRole
from identity.providers import OidcProvider
from identity.sessions import create_session
from identity.sso import account_for_sso
from retention.audit import Actor
from server.appkeys import CLOCK, DOSSIER_STORE, IDENTITY_PROVIDERS, SETTINGS
from server.middlewares import error_response
from server.requests import anonymous_actor
from server.security import principal_of, session_cookie
from server.settings import Settings

__all__ = ["OIDC", "add_routes", "oidc_client_context"]

OIDC = web.AppKey("oidc", OidcClient)


def oidc_config(settings: Settings) -> OidcConfig:
    """The client configuration from settings (only called when an issuer is set)."""
    return OidcConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        redirect_uri=f"{settings.public_origin}/auth/oidc/callback",
        role_mapping=cast(dict[str, StaffRole], settings.oidc_role_mapping),
        role_claim=settings.oidc_role_claim,
        department_claim=settings.oidc_department_claim or None,
    )


async def oidc_client_context(app: web.Application) -> AsyncIterator[None]:
    """One HTTP session and one client (with its metadata and key cache) per application."""
    async with aiohttp.ClientSession() as http:
        app[OIDC] = OidcClient(
            oidc_config(app[SETTINGS]),
            transport=AiohttpTransport(http),
            clock=wall_clock(app[CLOCK]),
        )
        app[IDENTITY_PROVIDERS]["oidc"] = OidcProvider(app[OIDC])
        yield


async def login(request: web.Request) -> web.StreamResponse:
    """GET /auth/oidc/login: off to the identity provider."""
    start = await request.app[OIDC].begin_login()
    store = request.app[DOSSIER_STORE]
    previous = principal_of(request)
    async with store.sessions() as session, session.begin():
        token, _ = await create_session(
            session,
            now=await request.app[CLOCK].now(session),
            kind="anonymous",
            pending={
                "oidc_state": start.state,
                "oidc_nonce": start.nonce,
                "oidc_verifier": start.code_verifier,
            },
            replaces=previous.session_hash if previous else None,
        )
    response = web.HTTPSeeOther(start.authorization_url)
    session_cookie(response, token)
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    """GET /auth/oidc/callback: verify the provider's answer and sign the staff member in."""
    principal = principal_of(request)
    pending = (principal.pending or {}) if principal else {}
    store = request.app[DOSSIER_STORE]
    try:
        if principal is None or "oidc_state" not in pending:
            raise Forbidden("no sign-in in progress in this browser; start again")
        identity = await request.app[OIDC].complete_login(
            code=request.query.get("code"),
            returned_state=request.query.get("state"),
            error=request.query.get("error"),
            expected_state=pending["oidc_state"],
            nonce=pending["oidc_nonce"],
            code_verifier=pending["oidc_verifier"],
        )
        async with store.sessions() as session, session.begin():
            now = await request.app[CLOCK].now(session)
            account = await account_for_sso(session, identity=identity, now=now)
            token, row = await create_session(
                session,
                now=now,
                kind="staff",
                role=account.role,
                staff_id=account.id,
                department_id=account.department_id,
                replaces=principal.session_hash,
            )
    except (OidcError, Forbidden) as exc:
        await store.audit.append(
            at=await store.now(),
            actor=anonymous_actor(request),
            action="staff.login",
            object_type="session",
            object_ref="oidc",
            result=exc.code,
        )
        return error_response(403, exc.code, str(exc))
    await store.audit.append(
        at=now, actor=Actor(account.role, account.employee_id), action="staff.login",
        object_type="session", object_ref="oidc",
    )  # fmt: skip
    response = web.json_response(
        {"role": account.role, "display_name": account.display_name, "csrf_token": row.csrf_token}
    )
    session_cookie(response, token)
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/auth/oidc/login", login)
    router.add_get("/auth/oidc/callback", callback)
