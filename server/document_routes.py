"""Documents over HTTP, for the resident of the appointment and the clerk of the department.

    POST /api/dossiers/{dossier_id}/documents             multipart/form-data, field "file"
    GET  /api/dossiers/{dossier_id}/documents             the list
    GET  /api/dossiers/{dossier_id}/documents/{document_id}  download (attachment)

An upload streams through `dossier.uploads.accept_upload`: past the size limit the answer is
413 at once and the handler reads no further. (aiohttp then drains what the client still
sends, so that the client can read the 413, for at most `server.app.LINGERING_SECONDS`.)
When a document is stored, everyone in the call (but the interpreter) is told over signaling
and sees it appear.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import BodyPartReader, hdrs, web

from dossier.documents import DocumentInfo, list_documents, open_document
from dossier.errors import DocumentTooLarge
from dossier.inspection import ClamdScanner
from dossier.uploads import UploadRules, accept_upload
from identity.authz import Action
from server.appkeys import DOSSIER_STORE
from server.ratelimit import RateLimiter
from server.requests import allowed_in_dossier
from server.settings import Settings
from server.signaling.room import HUB, notify_call

__all__ = ["UPLOAD_LIMITER", "UPLOAD_RULES", "add_routes", "document_json", "upload_rules"]

UPLOAD_RULES = web.AppKey("upload_rules", UploadRules)
UPLOAD_LIMITER = web.AppKey("upload_limiter", RateLimiter)
CHUNK = 64 * 1024
# A multipart body carries a little more than the file: boundaries and part headers.
MULTIPART_OVERHEAD = 16 * 1024
DOWNLOAD_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/dossiers/{dossier_id}/documents", upload)
    router.add_get("/api/dossiers/{dossier_id}/documents", documents)
    router.add_get("/api/dossiers/{dossier_id}/documents/{document_id}", download)


def _uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(text=f"{name} is not an id") from None


def document_json(info: DocumentInfo) -> dict[str, object]:
    """A document as the pages and the API show it."""
    return {
        "id": str(info.document_id),
        "name": info.name,
        "media_type": info.media_type,
        "size": info.size,
        "from": info.uploaded_by_role,
        "created_at": info.created_at.isoformat(),
        "url": f"/api/dossiers/{info.dossier_id}/documents/{info.document_id}",
    }


async def upload(request: web.Request) -> web.Response:
    """POST .../documents: store the file in part "file"; 201 with the document."""
    principal, dossier_id = await allowed_in_dossier(request, Action.ADD_DOCUMENT)
    limited = request.app[UPLOAD_LIMITER].refuse(f"upload:{principal.session_hash}")
    if limited is not None:
        return limited
    rules = request.app[UPLOAD_RULES]
    length = request.content_length
    if length is not None and length > rules.max_bytes + MULTIPART_OVERHEAD:
        raise DocumentTooLarge(f"document is larger than the limit of {rules.max_bytes} bytes")
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPUnsupportedMediaType(text="send the file as multipart/form-data")
    try:
        reader = await request.multipart()
        part = await reader.next()
    except ValueError as exc:  # aiohttp's word for broken multipart framing
        raise web.HTTPBadRequest(text=f"the multipart body cannot be read: {exc}") from None
    if not isinstance(part, BodyPartReader) or part.name != "file" or not part.filename:
        raise web.HTTPUnprocessableEntity(text="the first part must be the file, named 'file'")

    async def content() -> AsyncIterator[bytes]:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk

    info = await accept_upload(
        request.app[DOSSIER_STORE],
        actor=principal.actor,
        dossier_id=dossier_id,
        filename=part.filename,
        declared_type=part.headers.get(hdrs.CONTENT_TYPE),
        content=content(),
        rules=rules,
    )
    body = document_json(info)
    await notify_call(request.app[HUB], dossier_id, {"type": "document", **body})
    return web.json_response(body, status=201)


async def documents(request: web.Request) -> web.Response:
    """GET .../documents: the dossier's documents, oldest first."""
    principal, dossier_id = await allowed_in_dossier(request, Action.READ_CONTENT)
    store = request.app[DOSSIER_STORE]
    infos = await list_documents(store, actor=principal.actor, dossier_id=dossier_id)
    return web.json_response({"documents": [document_json(i) for i in infos]})


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the exact name as RFC 6266 / 5987 `filename*`."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def download(request: web.Request) -> web.StreamResponse:
    """GET .../documents/{id}: the document as an attachment that no browser will render."""
    principal, dossier_id = await allowed_in_dossier(request, Action.READ_CONTENT)
    document_id = _uuid(request, "document_id")
    opened = await open_document(
        request.app[DOSSIER_STORE],
        actor=principal.actor,
        dossier_id=dossier_id,
        document_id=document_id,
    )
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: opened.info.media_type,
            hdrs.CONTENT_DISPOSITION: content_disposition(opened.info.name),
            hdrs.CONTENT_SECURITY_POLICY: DOWNLOAD_CSP,
            hdrs.CACHE_CONTROL: "no-store",
        }
    )
    response.content_length = opened.info.size
    await response.prepare(request)
    async for piece in opened.content:
        await response.write(piece)
    await response.write_eof()
    return response


def upload_rules(settings: Settings) -> UploadRules:
    """The upload rules from settings, with the clamd scanner if one is configured."""
    scanner = None
    if settings.clamd_socket is not None:
        scanner = ClamdScanner(
            unix_socket=str(settings.clamd_socket), timeout=settings.clamd_timeout
        )
    elif settings.clamd_host:
        scanner = ClamdScanner(
            host=settings.clamd_host, port=settings.clamd_port, timeout=settings.clamd_timeout
        )
    return UploadRules(
        max_bytes=settings.document_max_bytes,
        allowed=frozenset(settings.document_types),
        max_pixels=settings.document_max_pixels,
        inspect=settings.document_inspection,
        scanner=scanner,
    )
