"""The application factory. Nothing happens at import time; the CLI and tests share this."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.engine import make_url

from dossier.db import Clock, DatabaseClock, wall_clock
from identity.providers import DigidProvider, IdentityProvider, LocalAccounts
from retention.policy import load_policy
from retention.policy_versions import CurrentPolicy
from server import (
    audit_routes,
    call_pages,
    digid_routes,
    document_routes,
    export_routes,
    health,
    hold_routes,
    oidc_routes,
    payment_routes,
    policy_routes,
    precall_routes,
    report_routes,
    staff_api,
    static,
)
from server.appkeys import (
    CLOCK,
    DOSSIER_STORE,
    ENGINE,
    IDENTITY_PROVIDERS,
    LOGIN_LIMITER,
    POLICY,
    SETTINGS,
)
from server.digid_routes import DIGID
from server.digid_setup import mount_digid, mount_test_digid
from server.document_routes import UPLOAD_LIMITER, UPLOAD_RULES, upload_rules
from server.export_routes import export_context
from server.middlewares import error_middleware
from server.migrate import current_revision, head_revision, upgrade_to_head
from server.oidc_routes import oidc_client_context
from server.pages import PAGES, make_environment
from server.payment_routes import WEBHOOK_LIMITER, payments_context
from server.precall_routes import precall_context
from server.ratelimit import RateLimiter
from server.resources import make_store, open_engine, recover
from server.scheduler import scheduler_context
from server.security import add_security_headers, csrf_middleware, session_middleware
from server.settings import Settings
from server.signaling.hub import MemoryHub
from server.signaling.pghub import PostgresHub
from server.signaling.room import HUB, OPEN_SOCKETS, call_socket, close_open_sockets

__all__ = ["LINGERING_SECONDS", "MAX_JSON_BODY", "create_app"]

log = logging.getLogger(__name__)

# Requests that carry JSON are small; document uploads stream past this limit.
MAX_JSON_BODY = 64 * 1024
# How the HTTP server runs (`balie serve`, the demo, the tests). After refusing a request
# early (an upload past its size limit), aiohttp reads and discards what the client still
# sends, so that the client gets to read the refusal instead of a connection reset. Its
# default of 10 s lets one refused upload cost gigabytes of reading; 2 s is enough for a
# client to notice the answer.
LINGERING_SECONDS = 2.0


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """Build the Balie application for `settings`; resources open when it starts."""
    app = web.Application(
        # Outermost first: errors of every later layer become JSON with a code.
        middlewares=[error_middleware, session_middleware, csrf_middleware],
        client_max_size=MAX_JSON_BODY,
    )
    app[SETTINGS] = settings
    # The version in force comes from the database at start (the `database` context); on a
    # fresh database the policy file is adopted, and a mistake in it stops the server.
    app[POLICY] = CurrentPolicy()
    app[CLOCK] = clock or DatabaseClock()
    app[LOGIN_LIMITER] = RateLimiter(per_minute=10, burst=5)
    providers: dict[str, IdentityProvider] = {"local": LocalAccounts()}
    app[IDENTITY_PROVIDERS] = providers
    app[PAGES] = make_environment()
    app.on_response_prepare.append(add_security_headers)
    app.cleanup_ctx.append(database)
    health.add_routes(app.router)
    staff_api.add_routes(app.router)
    app.cleanup_ctx.append(signaling_hub)
    app.cleanup_ctx.append(precall_context)
    precall_routes.add_routes(app.router)
    app[OPEN_SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_open_sockets)
    app.router.add_get("/ws/calls/{dossier_id}", call_socket)
    call_pages.add_routes(app.router)
    app[UPLOAD_RULES] = upload_rules(settings)
    # Uploads are costly (inspection, sealing): 20 a minute per session, in bursts of 5.
    app[UPLOAD_LIMITER] = RateLimiter(per_minute=20, burst=5)
    document_routes.add_routes(app.router)
    app.cleanup_ctx.append(payments_context)
    app.cleanup_ctx.append(export_context)
    app.cleanup_ctx.append(scheduler_context)
    # Webhooks come from the provider's servers: generous, but a flood of forged ids (each
    # one audited) is cut off.
    app[WEBHOOK_LIMITER] = RateLimiter(per_minute=600, burst=100)
    payment_routes.add_routes(app.router)
    export_routes.add_routes(app.router)
    # The information manager's and privacy officer's pages (/beheer/...), and the clerk's
    # hold requests: retention metadata only, never content.
    report_routes.add_routes(app.router)
    hold_routes.add_routes(app.router)
    policy_routes.add_routes(app.router)
    audit_routes.add_routes(app.router)
    static.add_routes(app.router)
    if settings.oidc_issuer:
        app.cleanup_ctx.append(oidc_client_context)
        oidc_routes.add_routes(app.router)
    if settings.is_development:
        app[DIGID] = mount_test_digid(app, settings, app[CLOCK])
    elif settings.digid_idp_metadata is not None:
        app[DIGID] = mount_digid(app, settings, app[CLOCK])
    if DIGID in app:
        digid_routes.add_routes(app.router)
        providers["digid"] = DigidProvider(app[DIGID].sp, now=wall_clock(app[CLOCK]))
    return app


async def signaling_hub(app: web.Application) -> AsyncIterator[None]:
    """The hub that carries signaling between the sockets of a call: in memory on SQLite (one
    process), over LISTEN/NOTIFY on PostgreSQL (any number of processes)."""
    url = make_url(app[SETTINGS].resolved_database_url)
    hub: MemoryHub | PostgresHub
    if url.get_backend_name() == "postgresql":
        hub = PostgresHub(url.set(drivername="postgresql").render_as_string(hide_password=False))
        await hub.start()
    else:
        hub = MemoryHub()
    app[HUB] = hub
    try:
        yield
    finally:
        await hub.close()


async def database(app: web.Application) -> AsyncIterator[None]:
    """Engine, migrations, dossier store and crash recovery; the engine is disposed at exit."""
    settings = app[SETTINGS]
    engine = open_engine(settings)
    try:
        if settings.migrate_on_start:
            await upgrade_to_head(engine)
        store = make_store(settings, engine, app[CLOCK])
        app[ENGINE], app[DOSSIER_STORE] = engine, store
        try:
            current, head = await current_revision(engine), head_revision()
            if current == head:
                await recover(store)
                await policy_routes.start_policy(app)
            else:
                # Serve anyway so that /readyz can say what is wrong; no traffic comes meanwhile.
                log.warning("schema is at %s, not %s: run `balie db upgrade`", current, head)
                app[POLICY].use(load_policy(settings.policy_file), None)
            yield
        finally:
            await store.audit.close()
    finally:
        await engine.dispose()
