"""The audit log for the information manager: its last verification, and verifying it now.

Also the wiring the CLI and the scheduler share: the checkpoint key from settings (made on
demand only in dev and test), the checkpoint job, and "verify and record".
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.store import DossierStore
from identity.sessions import Principal
from retention.audit import Actor
from retention.audit_verify import (
    AuditReport,
    last_checkpoint,
    recent_verifications,
    record_verification,
    verify_audit,
)
from retention.checkpoints import CheckpointError, checkpoint, key_id_of, load_checkpoint_key
from retention.models import AuditCheckpoint
from server.appkeys import DOSSIER_STORE, ENGINE, SETTINGS
from server.oversight import oversight_page, require_oversight
from server.pages import language, page
from server.settings import Settings
from server.texts import texts

__all__ = [
    "add_routes",
    "audit_key_problem",
    "checkpoint_job",
    "checkpoint_key",
    "checkpoint_now",
    "verify_and_record",
]

log = logging.getLogger(__name__)

VERIFICATIONS_SHOWN = 10
CHECKPOINT_ACTOR = Actor.system("audit-checkpoint")


def checkpoint_key(settings: Settings) -> Ed25519PrivateKey:
    """The checkpoint signing key (made on demand in dev and test); raises CheckpointError."""
    return load_checkpoint_key(settings.resolved_audit_signing_key, create=settings.is_development)


def audit_key_problem(settings: Settings) -> str | None:
    """Why checkpoints cannot be signed (for /readyz), or None when the key is usable."""
    try:
        checkpoint_key(settings)
    except CheckpointError as exc:
        return str(exc)
    return None


async def checkpoint_now(
    store: DossierStore, settings: Settings, *, actor: Actor, force: bool = False
) -> AuditCheckpoint | None:
    """Sign the head if a checkpoint is due by the settings (or, with `force`, if any event
    followed the last one); returns the new checkpoint or None."""
    return await checkpoint(
        store.sessions,
        key=checkpoint_key(settings),
        witness_dir=settings.resolved_witness_dir,
        clock=store.clock,
        actor=actor,
        every_events=1 if force else settings.audit_checkpoint_events,
        every=None if force else dt.timedelta(minutes=settings.audit_checkpoint_minutes),
    )


async def checkpoint_job(app: web.Application) -> AuditCheckpoint | None:
    """Every minute: a checkpoint once BALIE_AUDIT_CHECKPOINT_EVENTS events followed the last
    one, or BALIE_AUDIT_CHECKPOINT_MINUTES passed and there is anything new."""
    try:
        made = await checkpoint_now(app[DOSSIER_STORE], app[SETTINGS], actor=CHECKPOINT_ACTOR)
    except CheckpointError as exc:
        # /readyz reports a missing key; a witness that cannot be written is retried next run.
        log.error("audit checkpoint not made: %s", exc)
        return None
    if made is not None:
        log.info("audit checkpoint at event %d", made.seq)
    return made


async def verify_and_record(
    store: DossierStore, engine: AsyncEngine, settings: Settings, *, actor: Actor | str
) -> AuditReport:
    """Verify chain, checkpoints and witnesses; record the outcome (row and event).

    Raises CheckpointError when the checkpoint key is missing (production) or unusable.
    """
    key = checkpoint_key(settings)
    report = await verify_audit(
        engine, public_key=key.public_key(), witness_dir=settings.resolved_witness_dir
    )
    await record_verification(store.sessions, report, actor=actor, clock=store.clock)
    return report


async def _render(
    request: web.Request,
    principal: Principal,
    *,
    result: AuditReport | None = None,
    status: int = 200,
) -> web.Response:
    settings = request.app[SETTINGS]
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        verifications = await recent_verifications(session, limit=VERIFICATIONS_SHOWN)
        newest = await last_checkpoint(session)
    context: dict[str, Any] = {"key_id": None, "key_problem": None}
    try:
        context["key_id"] = key_id_of(checkpoint_key(settings))
    except CheckpointError as exc:
        context["key_problem"] = str(exc)
    t = texts(language(request))
    return oversight_page(
        request,
        "oversight/audit.html",
        principal=principal,
        title=t["audit.title"],
        status=status,
        verifications=verifications,
        checkpoint=newest,
        result=result,
        may_verify=principal.role == "information_manager",
        when=_when,
        **context,
    )


def _when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def overview(request: web.Request) -> web.Response:
    """GET /beheer/audit: last verifications, last checkpoint, the key's fingerprint."""
    return await _render(request, require_oversight(request))


async def verify_now(request: web.Request) -> web.Response:
    """POST /beheer/audit/controle: an information manager verifies the log now."""
    principal = require_oversight(request)
    if principal.role != "information_manager":
        t = texts(language(request))
        refusal = page(request, "message.html", status=403, title=t["audit.title"],
                       message=t["audit.verify_forbidden"], english="")  # fmt: skip
        raise web.HTTPForbidden(
            text=refusal.text, content_type="text/html", headers={"Cache-Control": "no-store"}
        )
    app = request.app
    try:
        report = await verify_and_record(
            app[DOSSIER_STORE], app[ENGINE], app[SETTINGS], actor=principal.actor
        )
    except CheckpointError:
        # The page says why (key_problem); nothing was verified or recorded.
        return await _render(request, principal, status=503)
    return await _render(request, principal, result=report)


async def back_to_overview(request: web.Request) -> web.Response:
    """GET /beheer/audit/controle (the language link on a result page): to the overview."""
    lang = request.query.get("lang")
    raise web.HTTPSeeOther("/beheer/audit" + (f"?lang={lang}" if lang in ("nl", "en") else ""))


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount this module's pages."""
    router.add_get("/beheer/audit", overview)
    router.add_post("/beheer/audit/controle", verify_now)
    router.add_get("/beheer/audit/controle", back_to_overview)
