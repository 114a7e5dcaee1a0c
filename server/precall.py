"""The pre-call check: an aiortc peer that sends a resident's camera and microphone straight back.

The resident sees and hears themselves through the network path the call will use, before they
knock. Each session is limited in time and the number of sessions at once is limited; a resident
who comes when all slots are taken is asked to try again (`PrecallBusy`).

Errors::

    PrecallError              base; `code` is the stable machine-readable code
    ├── PrecallBusy           all slots taken, or the service is shutting down
    └── PrecallInvalidOffer   the SDP offer is malformed or asks for something we do not echo
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.contrib.media import MediaRelay
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError

__all__ = [
    "PrecallBusy",
    "PrecallEcho",
    "PrecallError",
    "PrecallInvalidOffer",
    "public_candidates",
]

log = logging.getLogger(__name__)

# aiortc's SDP parser reports bad input with whatever the failing line raises, including plain
# `assert`s; negotiation adds its own exception classes. All of them mean "unusable offer".
_UNUSABLE_OFFER: tuple[type[Exception], ...] = (
    AssertionError,
    AttributeError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)

# A camera and a microphone: each further section would cost ICE sockets and an encoder.
_MEDIA_KINDS = ("audio", "video")
_SENDING = ("sendrecv", "sendonly")


class PrecallError(Exception):
    """Base of the pre-call check's errors."""

    code = "precall_error"


class PrecallBusy(PrecallError):
    """No slot is free (or the service is closing); the client may try again shortly."""

    code = "precall_busy"


class PrecallInvalidOffer(PrecallError):
    """The SDP offer cannot be parsed or asks for something the echo does not do."""

    code = "precall_invalid_offer"


@dataclass(eq=False)
class _Session:
    pc: RTCPeerConnection
    # One relay per session, so nothing outlives the session's peer connection.
    relay: MediaRelay = field(default_factory=MediaRelay)
    watcher: asyncio.Task[None] | None = None
    ending: bool = False


class PrecallEcho:
    """Echo peers for the pre-call check, one per resident, at most `max_sessions` at once.

    Every session ends after `max_seconds`, when its connection fails or closes, or at `close()`.
    With `public_candidates_only` (production), the echo peer never sends connectivity checks
    to private, loopback, link-local or mDNS addresses named in an offer: otherwise anyone
    with a session could make the server probe the municipality's internal network over UDP.
    `sleep` is the timer (`asyncio.sleep`); tests pass their own to decide when time is up.
    """

    def __init__(
        self,
        *,
        ice_servers: list[RTCIceServer],
        max_sessions: int,
        max_seconds: float = 60.0,
        public_candidates_only: bool = True,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if max_sessions < 0:
            raise ValueError(f"max_sessions must be 0 or more, not {max_sessions}")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, not {max_seconds}")
        self._ice_servers = list(ice_servers)
        self._max_sessions = max_sessions
        self._max_seconds = max_seconds
        self._public_only = public_candidates_only
        self._sleep = sleep
        self._sessions: set[_Session] = set()
        self._closed = False

    @property
    def active(self) -> int:
        """How many sessions are live (answered or being answered)."""
        return len(self._sessions)

    async def answer(self, offer_sdp: str, offer_type: str = "offer") -> tuple[str, str]:
        """Answer an SDP offer with a peer that echoes every track it receives.

        Returns the answer's (sdp, type), with all ICE candidates in it. Raises `PrecallBusy`
        when no slot is free and `PrecallInvalidOffer` when the offer is unusable.
        """
        if self._closed:
            raise PrecallBusy("the pre-call check is shutting down; try again shortly")
        if len(self._sessions) >= self._max_sessions:
            raise PrecallBusy("all pre-call checks are in use; try again shortly")
        _check_offer(offer_sdp, offer_type)
        if self._public_only:
            offer_sdp = public_candidates(offer_sdp)
        # Take the slot before the first await, so that concurrent offers cannot overbook.
        session = self._open_session()
        try:
            local = await self._negotiate(session, RTCSessionDescription(offer_sdp, offer_type))
        except _UNUSABLE_OFFER as exc:
            stopped_meanwhile = session.ending
            await self._end(session)
            if stopped_meanwhile:
                raise PrecallBusy("the pre-call check stopped while answering; try again") from None
            log.info("pre-call offer refused by aiortc: %s", type(exc).__name__)
            raise PrecallInvalidOffer(f"the offer cannot be used: {_describe(exc)}") from None
        except BaseException:
            # E.g. the request was cancelled: the watcher closes the connection, close() reaps it.
            self._stop(session)
            raise
        if session.ending:
            raise PrecallBusy("the pre-call check stopped while answering; try again")
        log.info("pre-call session started (%d active)", len(self._sessions))
        return local.sdp, local.type

    async def close(self) -> None:
        """End every session and refuse new ones. Safe to call more than once."""
        self._closed = True
        sessions = list(self._sessions)
        for session in sessions:
            self._stop(session)
        watchers = [s.watcher for s in sessions if s.watcher is not None]
        for result in await asyncio.gather(*watchers, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("closing a pre-call session failed: %r", result)
        # A watcher cancelled before its first step never ran its `finally`.
        for session in sessions:
            await self._release(session)

    def _open_session(self) -> _Session:
        # Always pass iceServers: without them aiortc would ask public STUN servers.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice_servers)))
        session = _Session(pc=pc)

        @pc.on("track")
        def echo(track: MediaStreamTrack) -> None:
            # Unbuffered: the relay keeps only the newest frame, so a slow encoder drops frames
            # instead of queueing them without bound (and the echo stays close to real time).
            pc.addTrack(session.relay.subscribe(track, buffered=False))

        @pc.on("connectionstatechange")
        def ended() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._stop(session)

        self._sessions.add(session)
        session.watcher = asyncio.create_task(self._watch(session))
        return session

    async def _negotiate(
        self, session: _Session, offer: RTCSessionDescription
    ) -> RTCSessionDescription:
        pc = session.pc
        await pc.setRemoteDescription(offer)
        # aiortc finishes ICE gathering inside setLocalDescription: the answer has all candidates.
        await pc.setLocalDescription(await pc.createAnswer())
        local = pc.localDescription
        if local is None:  # only if the connection was closed meanwhile
            raise InvalidStateError("no local description")
        return local

    async def _watch(self, session: _Session) -> None:
        """The session's lifetime: its time limit, unless `_stop` cancels it sooner."""
        try:
            await self._sleep(self._max_seconds)
        finally:
            await self._release(session)

    def _stop(self, session: _Session) -> None:
        """Ask the session's watcher to end it now (it closes the connection itself)."""
        if session.ending:
            return
        session.ending = True
        if session.watcher is not None:
            session.watcher.cancel()

    async def _end(self, session: _Session) -> None:
        """Stop the session and wait until its connection is closed."""
        self._stop(session)
        if session.watcher is not None:
            await asyncio.wait([session.watcher])
        await self._release(session)

    async def _release(self, session: _Session) -> None:
        """Close the connection and free the slot; idempotent, as is aiortc's close()."""
        # Set first: closing emits "closed", which must not cancel the task doing the closing.
        session.ending = True
        try:
            await session.pc.close()
        finally:
            if session in self._sessions:
                self._sessions.discard(session)
                log.info("pre-call session ended (%d active)", len(self._sessions))


def _check_offer(offer_sdp: str, offer_type: str) -> None:
    """Refuse what aiortc would choke on or what we will not echo, with a message saying why."""
    if offer_type != "offer":
        raise PrecallInvalidOffer(f"expected a description of type 'offer', not {offer_type!r:.40}")
    if not offer_sdp.startswith("v=0"):
        raise PrecallInvalidOffer("not an SDP offer: it must start with 'v=0'")
    try:
        description = aiortc_sdp.SessionDescription.parse(offer_sdp)
    except _UNUSABLE_OFFER as exc:
        where = _where(offer_sdp)
        raise PrecallInvalidOffer(f"the SDP cannot be parsed{where}: {_describe(exc)}") from None
    kinds = [media.kind for media in description.media]
    for kind in _MEDIA_KINDS:
        if kinds.count(kind) > 1:
            raise PrecallInvalidOffer(
                f"the offer has {kinds.count(kind)} {kind} sections; at most one is echoed"
            )
    for media in description.media:
        if media.kind not in _MEDIA_KINDS:
            raise PrecallInvalidOffer(
                f"the offer has a {media.kind!r:.40} section; only audio and video are echoed"
            )
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise PrecallInvalidOffer(f"the {media.kind} section lacks a=ice-ufrag or a=ice-pwd")
        if media.dtls is None or not media.dtls.fingerprints:
            raise PrecallInvalidOffer(f"the {media.kind} section lacks a=fingerprint")
        if not media.rtcp_mux:
            raise PrecallInvalidOffer(f"the {media.kind} section lacks a=rtcp-mux")
    if not any(media.direction in _SENDING for media in description.media):
        raise PrecallInvalidOffer("the offer sends no audio or video (no sendrecv or sendonly)")


def public_candidates(offer_sdp: str) -> str:
    """The offer without ICE candidates at non-public addresses (or mDNS names).

    Raises PrecallInvalidOffer when no candidate is left: the echo could not reach the browser
    anyway, and the resident should hear that the test cannot run rather than wait for it.
    """
    kept: list[str] = []
    candidates = public = 0
    for line in offer_sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidates += 1
            fields = line.split()
            try:
                usable = len(fields) > 4 and ipaddress.ip_address(fields[4]).is_global
            except ValueError:  # a host name, such as an mDNS `….local`
                usable = False
            if not usable:
                continue
            public += 1
        kept.append(line)
    if candidates and not public:
        raise PrecallInvalidOffer(
            f"none of the offer's {candidates} ICE candidates has a public address; "
            "the echo test needs one (a STUN or TURN server gives the browser one)"
        )
    return "\r\n".join(kept) + "\r\n"


def _where(offer_sdp: str) -> str:
    """ " at line N ('...')" for the first line aiortc cannot parse; aiortc does not say."""
    lines = offer_sdp.splitlines()
    # Quadratic, but only on refusal and for offers the route has already capped at 16 KiB.
    for number in range(1, min(len(lines), 500) + 1):
        try:
            aiortc_sdp.SessionDescription.parse("\r\n".join(lines[:number]))
        except _UNUSABLE_OFFER:
            return f" at line {number} ({lines[number - 1]!r:.60})"
    return ""


def _describe(exc: Exception) -> str:
    """A short, single-line account of a parser or negotiation error, never a traceback."""
    detail = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
