"""Export over HTTP: the clerk hands an ended dossier over; it runs in the background.

    POST /api/dossiers/{dossier_id}/exports   {target, zaak?} -> 202 with the export
    GET  /api/exports/{export_id}             state, progress, error, references
    POST /api/exports/{export_id}/retry       a failed export again, from its last step
    GET  /api/exports/{export_id}/package     the signed package (target "package")
    GET  /api/export-key                      the public key packages are signed with
    GET  /balie/export/nieuw/{dossier_id}     the clerk's export form
    GET  /balie/export/{export_id}            the clerk's view of one export

Exports are only for the clerk of the dossier's own department. The work runs in a task of
this process; a job left behind by a crash is taken up again by the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from dossier.export.base import Exporter
from dossier.export.errors import ExportConfigError
from dossier.export.flow import (
    ExportJobInfo,
    claim_export,
    export_job,
    pending_exports,
    request_export,
    retry_export,
    run_export,
)
from dossier.export.package import PackageExporter, transcript_layout_pool
from dossier.export.signing import load_export_key, public_key_pem
from dossier.export.zgw import ZgwExporter
from dossier.models import Appointment, Dossier, ServiceType
from identity.authz import Action, Target
from identity.errors import Forbidden, NotAuthenticated
from identity.sessions import Principal
from server.appkeys import DOSSIER_STORE, POLICY, SETTINGS
from server.pages import message_page, page
from server.requests import allowed_in_dossier, parse_json, refused
from server.security import principal_of
from server.texts import texts

__all__ = ["EXPORTS", "ExportWiring", "add_routes", "export_context", "resume_exports"]

log = logging.getLogger(__name__)


@dataclass
class ExportWiring:
    """The configured exporters and the export tasks running in this process."""

    exporters: dict[str, Exporter]
    public_key_pem: str
    problem: str | None = None  # why exporting cannot work (for /readyz), e.g. no signing key
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


EXPORTS = web.AppKey("exports", ExportWiring)


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Literal["package", "zgw"]
    zaak: str | None = Field(default=None, min_length=1, max_length=500)


async def export_context(app: web.Application) -> AsyncIterator[None]:
    """The exporters (the package always; ZGW when configured), and at exit: wait a little
    for running exports, whose finished steps are kept anyway."""
    settings = app[SETTINGS]
    exporters: dict[str, Exporter] = {}
    problem, pem = None, ""
    layout: ProcessPoolExecutor | None = None
    try:
        key = load_export_key(settings.resolved_key_dir, create=settings.is_development)
    except ExportConfigError as exc:
        # Serve anyway, like a missing KEK: /readyz says what to do, nothing else stops.
        problem = str(exc)
    else:
        layout = transcript_layout_pool()
        exporters["package"] = PackageExporter(
            output_dir=settings.resolved_export_dir, signing_key=key, layout=layout
        )
        pem = public_key_pem(key)
    async with contextlib.AsyncExitStack() as stack:
        if settings.zgw_documenten_url:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            exporters["zgw"] = ZgwExporter(
                http,
                documenten_url=settings.zgw_documenten_url,
                zaken_url=settings.zgw_zaken_url,
                client_id=settings.zgw_client_id,
                secret=settings.zgw_secret.get_secret_value(),
                informatieobjecttype=settings.zgw_informatieobjecttype,
                bronorganisatie=settings.zgw_bronorganisatie,
            )
        wiring = ExportWiring(exporters=exporters, public_key_pem=pem, problem=problem)
        app[EXPORTS] = wiring
        try:
            yield
        finally:
            if wiring.tasks:
                await asyncio.wait(wiring.tasks, timeout=10)
            for task in wiring.tasks:
                task.cancel()
            if layout is not None:  # its worker process, if an export started it
                await asyncio.to_thread(layout.shutdown, wait=True, cancel_futures=True)


def start_in_background(app: web.Application, export_id: uuid.UUID) -> None:
    """Claim the export and run it in a task of this process (if no other process has it)."""

    async def work() -> None:
        store = app[DOSSIER_STORE]
        if await claim_export(store, export_id):
            info = await run_export(
                store,
                export_id=export_id,
                exporters=app[EXPORTS].exporters,
                policy=app[POLICY].policy,
            )
            log.info("export %s ended %s", export_id, info.state)

    wiring = app[EXPORTS]
    task = asyncio.create_task(work())
    wiring.tasks.add(task)
    task.add_done_callback(wiring.tasks.discard)


async def resume_exports(app: web.Application) -> int:
    """Scheduler job: take up exports that wait (queued, or left running by a dead process)."""
    waiting = await pending_exports(app[DOSSIER_STORE])
    for export_id in waiting:
        start_in_background(app, export_id)
    return len(waiting)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/dossiers/{dossier_id}/exports", start)
    router.add_get("/api/exports/{export_id}", status)
    router.add_post("/api/exports/{export_id}/retry", retry)
    router.add_get("/api/exports/{export_id}/package", package)
    router.add_get("/api/export-key", export_key)
    router.add_get("/balie/export/nieuw/{dossier_id}", form_page)
    router.add_get("/balie/export/{export_id}", job_page)


def export_json(info: ExportJobInfo) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(info.export_id),
        "dossier_id": str(info.dossier_id),
        "target": info.target,
        "state": info.state,
        "progress": info.progress,
        "progress_text": info.progress_text,
        "error": info.error,
        "references": dict(info.references),
        "manifest_sha256": info.manifest_sha256,
        "created_at": info.created_at.isoformat(),
        "finished_at": info.finished_at.isoformat() if info.finished_at else None,
    }
    if info.target == "package" and info.state == "done":
        body["download_url"] = f"/api/exports/{info.export_id}/package"
    return body


async def start(request: web.Request) -> web.Response:
    """POST .../exports: queue the export and start it; 202 with where to follow it."""
    principal, dossier_id = await allowed_in_dossier(request, Action.EXPORT)
    body = await parse_json(request, ExportIn)
    wiring = request.app[EXPORTS]
    if body.target not in wiring.exporters:
        raise web.HTTPUnprocessableEntity(text=f"export target {body.target!r} is not configured")
    if body.target == "zgw" and not body.zaak:
        raise web.HTTPUnprocessableEntity(text="an export to the zaak system needs a zaak")
    assert principal.department_id is not None  # a clerk of the department was allowed
    info = await request_export(
        request.app[DOSSIER_STORE],
        actor=principal.actor,
        dossier_id=dossier_id,
        department_id=principal.department_id,
        target=body.target,
        options={"zaak": body.zaak} if body.zaak else {},
    )
    start_in_background(request.app, info.export_id)
    return web.json_response(export_json(info), status=202)


async def _own_export(request: web.Request) -> tuple[Principal, ExportJobInfo]:
    """The export of the path, if the caller is a clerk of its department (else 401/403/404)."""
    try:
        export_id = uuid.UUID(request.match_info["export_id"])
    except ValueError:
        raise web.HTTPNotFound(text="export_id is not an id") from None
    info = await export_job(request.app[DOSSIER_STORE], export_id)
    target = Target(info.department_id if info else None)
    reason = await refused(request, Action.EXPORT, target, str(export_id))
    principal = principal_of(request)
    if principal is None:
        raise NotAuthenticated("sign in first")
    if reason is not None:
        raise Forbidden(f"not allowed: {reason}")
    if info is None:
        raise web.HTTPNotFound(text=f"no export {export_id}")
    return principal, info


async def status(request: web.Request) -> web.Response:
    """GET /api/exports/{id}: how far it is."""
    _, info = await _own_export(request)
    return web.json_response(export_json(info))


async def retry(request: web.Request) -> web.Response:
    """POST /api/exports/{id}/retry: a failed export again; finished steps are not repeated."""
    principal, info = await _own_export(request)
    again = await retry_export(
        request.app[DOSSIER_STORE], actor=principal.actor, export_id=info.export_id
    )
    start_in_background(request.app, again.export_id)
    return web.json_response(export_json(again), status=202)


async def package(request: web.Request) -> web.StreamResponse:
    """GET /api/exports/{id}/package: the ZIP, while it is kept (see BALIE_EXPORT_PACKAGE_HOURS)."""
    _, info = await _own_export(request)
    name = info.references.get("package")
    if info.target != "package" or info.state != "done" or not name:
        raise web.HTTPNotFound(text="this export has no package to download")
    path = request.app[SETTINGS].resolved_export_dir / name
    if not path.is_file():
        raise web.HTTPGone(text="the package is no longer kept here; it was handed over")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{path.name}"',
            "Cache-Control": "no-store",
        },
    )


async def export_key(request: web.Request) -> web.Response:
    """GET /api/export-key: the Ed25519 public key that signs every package's manifest."""
    if not request.app[EXPORTS].public_key_pem:
        raise web.HTTPServiceUnavailable(text="no export signing key is installed")
    return web.Response(text=request.app[EXPORTS].public_key_pem, content_type="text/plain")


async def form_page(request: web.Request) -> web.Response:
    """GET /balie/export/nieuw/{dossier_id}: choose where the ended dossier goes."""
    if principal_of(request) is None:
        raise web.HTTPSeeOther("/balie/inloggen")
    try:
        principal, dossier_id = await allowed_in_dossier(request, Action.EXPORT)
    except (Forbidden, web.HTTPNotFound):
        return message_page(request, 403, "Geen toegang", "Dit dossier is niet van uw afdeling.")
    store = request.app[DOSSIER_STORE]
    async with store.sessions() as session:
        dossier = await session.get_one(Dossier, dossier_id)
        appointment = await session.get_one(Appointment, dossier.appointment_id)
        service = await session.get_one(ServiceType, appointment.service_type_id)
    t = texts("nl")
    return page(
        request,
        "staff/export.html",
        title=t["export.title"],
        dossier_id=str(dossier_id),
        service=service.label,
        state=dossier.state,
        targets=sorted(request.app[EXPORTS].exporters),
        csrf=principal.csrf_token,
    )


async def job_page(request: web.Request) -> web.Response:
    """GET /balie/export/{export_id}: progress, the result, a retry after a failure."""
    if principal_of(request) is None:
        raise web.HTTPSeeOther("/balie/inloggen")
    try:
        principal, info = await _own_export(request)
    except (Forbidden, web.HTTPNotFound):
        return message_page(request, 403, "Geen toegang", "Deze export is niet van uw afdeling.")
    t = texts("nl")
    return page(
        request,
        "staff/export_job.html",
        title=t["export.job.title"],
        export=export_json(info),
        csrf=principal.csrf_token,
        texts_json=json.dumps(
            {state: t[f"export.state.{state}"] for state in ("queued", "running", "failed", "done")}
        ),
    )
