"""HTTP entry to the pre-call check: POST an SDP offer, get the echo peer's answer.

The whole exchange is one request, because aiortc puts every ICE candidate in the answer; no
WebSocket is needed. Who may use it is decided elsewhere (the handler does not look).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web
from aiortc import RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri
from pydantic import BaseModel, ConfigDict, Field

from server.appkeys import SETTINGS
from server.middlewares import error_response
from server.precall import PrecallBusy, PrecallEcho, PrecallInvalidOffer
from server.requests import parse_json
from server.security import principal_of

__all__ = ["MAX_SDP_CHARS", "PRECALL", "add_routes", "precall_context"]

PRECALL = web.AppKey("precall", PrecallEcho)

# A browser's offer for one camera and one microphone is 3-6 KiB; 16 KiB leaves room for many
# candidates while bounding what the SDP parser has to chew on.
MAX_SDP_CHARS = 16 * 1024

# A slot frees up when a resident finishes (at most max_seconds); a few seconds is a fair retry.
RETRY_AFTER_SECONDS = 5


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: Literal["offer"]


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount the pre-call check under /api/precall; needs `precall_context` in cleanup_ctx."""
    router.add_post("/api/precall/offer", offer)


async def precall_context(app: web.Application) -> AsyncIterator[None]:
    """One `PrecallEcho` for the app, under `PRECALL`; all its sessions are closed at exit."""
    settings = app[SETTINGS]
    echo = PrecallEcho(
        ice_servers=_ice_servers(list(settings.stun_urls)),
        max_sessions=settings.precall_max_sessions,
        max_seconds=settings.precall_max_seconds,
        # Development and tests run on loopback; production talks to public addresses only.
        public_candidates_only=not settings.is_development,
    )
    app[PRECALL] = echo
    try:
        yield
    finally:
        await echo.close()


async def offer(request: web.Request) -> web.Response:
    """POST /api/precall/offer {sdp, type: "offer"} -> {sdp, type: "answer"} of the echo peer.

    429 with Retry-After when all slots are taken; 422 naming the problem for a bad offer.
    Only someone with a call to prepare for may use it: a resident, an interpreter or staff;
    the echo costs server CPU, so it is not open to anyone on the internet.
    """
    principal = principal_of(request)
    if principal is None or principal.kind not in ("resident", "guest", "staff"):
        return error_response(401, "not_authenticated", "open your invitation link first")
    body = await parse_json(request, OfferIn)
    try:
        sdp, kind = await request.app[PRECALL].answer(body.sdp, body.type)
    except PrecallBusy as exc:
        response = error_response(429, exc.code, str(exc))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    except PrecallInvalidOffer as exc:
        return error_response(422, exc.code, str(exc))
    return web.json_response({"sdp": sdp, "type": kind})


def _ice_servers(urls: list[str]) -> list[RTCIceServer]:
    """The STUN servers among `urls`, for the echo peer to learn its public address.

    TURN URLs are left out: TURN needs per-user credentials, and it is the resident's browser
    that relays through TURN when it must; the echo peer then answers the relayed candidates.
    Raises ValueError for a malformed STUN URL, at start rather than at a resident's offer.
    """
    stun = [url for url in urls if url.startswith("stun:")]  # aiortc ignores stuns:
    for url in stun:
        parse_stun_turn_uri(url)
    return [RTCIceServer(urls=stun)] if stun else []
