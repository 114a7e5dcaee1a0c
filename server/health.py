"""Liveness and readiness, for the load balancer and for operators."""

from __future__ import annotations

import datetime as dt
import logging
import time

from aiohttp import web
from sqlalchemy import text

from dossier.errors import DossierError
from dossier.inspection import ClamdScanner, ScanFailed
from identity.providers import check_all
from server.appkeys import DOSSIER_STORE, ENGINE, IDENTITY_PROVIDERS, SETTINGS
from server.audit_routes import audit_key_problem
from server.digid_routes import DIGID
from server.document_routes import UPLOAD_RULES
from server.export_routes import EXPORTS
from server.migrate import current_revision, head_revision
from server.payment_routes import PAYMENTS

__all__ = ["add_routes"]

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving; says nothing about its dependencies."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: database reachable, keyring usable, schema at head. 503 otherwise."""
    checks: dict[str, str] = {}
    engine = request.app[ENGINE]
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = await current_revision(engine), head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except Exception as exc:  # any failure here means "not ready", reported, never raised
        log.warning("readiness: database check failed: %s", exc)
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    store = request.app[DOSSIER_STORE]
    try:
        async with store.sessions() as session:
            now = await store.clock.now(session)
    except Exception:  # the database check above has already reported why
        now = dt.datetime.now(dt.UTC)
    try:
        key_id, _ = store.keyring.key_for_wrapping(now)
        checks["keyring"] = "ok"
        checks["current_kek"] = key_id
    except DossierError as exc:
        checks["keyring"] = str(exc)
    # Residents cannot get in without DigiD: a server without it is not ready to serve them.
    checks["digid"] = "ok" if DIGID in request.app else "not configured (BALIE_DIGID_*)"
    providers = request.app[IDENTITY_PROVIDERS]
    for provider_id, verdict in (await check_all(providers)).items():
        checks[f"identity:{provider_id}"] = verdict
    if PAYMENTS in request.app:
        payments = request.app[PAYMENTS]
        for provider_id, verdict in (await payments.readiness(now=time.monotonic())).items():
            checks[f"payments:{provider_id}"] = verdict
    if EXPORTS in request.app:
        checks["export_key"] = request.app[EXPORTS].problem or "ok"
    # Without its key the audit log goes unsigned: checkpoints stop, verification cannot run.
    checks["audit_key"] = audit_key_problem(request.app[SETTINGS]) or "ok"
    scanner = request.app[UPLOAD_RULES].scanner
    if isinstance(scanner, ClamdScanner):
        # Uploads fail closed without the scanner: not ready to take them.
        try:
            await scanner.ping()
            checks["virus_scanner"] = "ok"
        except ScanFailed as exc:
            checks["virus_scanner"] = str(exc)
    ready = all(v == "ok" for k, v in checks.items() if k != "current_kek")
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
