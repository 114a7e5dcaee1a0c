"""The pre-call check: a synthetic resident sends camera and microphone and gets them back.

All media runs on loopback between two aiortc peers; neither side is given a STUN server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

from identity.sessions import Principal
from retention.audit import Actor
from server.app import MAX_JSON_BODY
from server.appkeys import SETTINGS
from server.middlewares import error_middleware
from server.precall import PrecallBusy, PrecallEcho, PrecallInvalidOffer, public_candidates
from server.precall_routes import MAX_SDP_CHARS, PRECALL, add_routes, precall_context
from server.security import PRINCIPAL
from server.settings import Settings

# Not aiortc's default 640x480, so a frame of this size can only be our own, echoed.
WIDTH, HEIGHT = 320, 240
MEDIA_TIMEOUT = 10.0


class SmallVideo(VideoStreamTrack):
    """aiortc's test pattern at WIDTH x HEIGHT."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = pts, time_base
        return frame


class Resident:
    """A synthetic resident's browser: camera and microphone out, whatever comes back in."""

    def __init__(self) -> None:
        # No STUN: the machine has no outside network, and loopback host candidates suffice.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(SmallVideo())
        self.pc.addTrack(AudioStreamTrack())
        self.received: dict[str, MediaStreamTrack] = {}
        self.pc.on("track", lambda track: self.received.__setitem__(track.kind, track))

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}

    async def accept(self, answer: dict[str, str]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer))

    async def frames(self, kind: str, count: int) -> list[VideoFrame | AudioFrame]:
        track = self.received[kind]
        return [await asyncio.wait_for(track.recv(), MEDIA_TIMEOUT) for _ in range(count)]


@contextlib.asynccontextmanager
async def resident() -> AsyncIterator[Resident]:
    peer = Resident()
    try:
        yield peer
    finally:
        await peer.pc.close()


async def connect(peer: Resident, echo: PrecallEcho) -> None:
    offer = await peer.offer()
    sdp, kind = await echo.answer(offer["sdp"], offer["type"])
    await peer.accept({"sdp": sdp, "type": kind})


async def eventually(condition: Callable[[], bool], timeout: float = MEDIA_TIMEOUT) -> None:
    """Wait, bounded, for something that happens on the network side (not a deadline)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


class ManualTimer:
    """Stands in for asyncio.sleep: a session's time is up when the test says so."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self._up = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        await self._up.wait()

    def expire(self) -> None:
        self._up.set()


@web.middleware
async def as_resident(request: web.Request, handler):
    """Stands in for the session middleware: the caller is a resident with an appointment."""
    request[PRINCIPAL] = Principal(
        session_hash="0" * 64, kind="resident", role="resident",
        actor=Actor("resident", "p"), csrf_token="t",
    )  # fmt: skip
    return await handler(request)


@pytest.fixture
def precall_settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", data_dir=tmp_path / "var")


@pytest.fixture
def make_client(aiohttp_client, precall_settings) -> Callable[..., Awaitable]:
    """An HTTP client for a minimal app with the pre-call check; settings overrides as kwargs."""

    async def make(*, signed_in: bool = True, **overrides: object):
        middlewares = [error_middleware, as_resident] if signed_in else [error_middleware]
        app = web.Application(middlewares=middlewares, client_max_size=MAX_JSON_BODY)
        app[SETTINGS] = precall_settings.model_copy(update=overrides)
        app.cleanup_ctx.append(precall_context)
        add_routes(app.router)
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def echo() -> AsyncIterator[PrecallEcho]:
    service = PrecallEcho(ice_servers=[], public_candidates_only=False, max_sessions=4)
    try:
        yield service
    finally:
        await service.close()


async def test_resident_sees_and_hears_themselves(make_client):
    client = await make_client()
    async with resident() as peer:
        response = await client.post("/api/precall/offer", json=await peer.offer())
        answer = await response.json()
        assert response.status == 200, answer
        assert answer["type"] == "answer"
        assert "a=candidate:" in answer["sdp"]  # gathered before answering: no trickle needed
        await peer.accept(answer)
        assert set(peer.received) == {"audio", "video"}

        video = await peer.frames("video", 5)
        assert [(f.width, f.height) for f in video] == [(WIDTH, HEIGHT)] * 5
        audio = await peer.frames("audio", 5)
        assert all(isinstance(f, AudioFrame) and f.samples > 0 for f in audio)
        assert client.app[PRECALL].active == 1


async def test_second_resident_is_refused_while_busy(make_client):
    client = await make_client(precall_max_sessions=1)
    async with resident() as first, resident() as second:
        response = await client.post("/api/precall/offer", json=await first.offer())
        assert response.status == 200
        await first.accept(await response.json())

        refused = await client.post("/api/precall/offer", json=await second.offer())
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "5"
        assert (await refused.json())["code"] == "precall_busy"

        # The first resident is unaffected.
        assert len(await first.frames("video", 2)) == 2


async def test_leaving_frees_the_slot(make_client):
    client = await make_client(precall_max_sessions=1)
    async with resident() as first:
        response = await client.post("/api/precall/offer", json=await first.offer())
        await first.accept(await response.json())
        await first.frames("video", 1)
    # The first resident closed their connection; the server notices and frees the slot.
    await eventually(lambda: client.app[PRECALL].active == 0)
    async with resident() as second:
        response = await client.post("/api/precall/offer", json=await second.offer())
        assert response.status == 200


async def test_concurrent_offers_cannot_overbook():
    echo = PrecallEcho(ice_servers=[], public_candidates_only=False, max_sessions=1)
    try:
        async with resident() as first, resident() as second:
            offers = [await first.offer(), await second.offer()]
            results = await asyncio.gather(
                *(echo.answer(offer["sdp"], offer["type"]) for offer in offers),
                return_exceptions=True,
            )
            assert sorted(type(r).__name__ for r in results) == ["PrecallBusy", "tuple"]
            assert echo.active == 1
    finally:
        await echo.close()


async def test_session_ends_when_its_time_is_up():
    timer = ManualTimer()
    echo = PrecallEcho(
        ice_servers=[],
        public_candidates_only=False,
        max_sessions=1,
        max_seconds=60,
        sleep=timer.sleep,
    )
    try:
        async with resident() as peer:
            await connect(peer, echo)
            await peer.frames("video", 1)
            assert timer.requested == [60]

            timer.expire()
            await eventually(lambda: echo.active == 0)
            # The resident notices: their echoed video ends.
            with pytest.raises(MediaStreamError):
                await peer.frames("video", 100)
    finally:
        await echo.close()


async def test_duration_limit_from_settings(make_client):
    client = await make_client(precall_max_seconds=0.5)
    async with resident() as peer:
        response = await client.post("/api/precall/offer", json=await peer.offer())
        await peer.accept(await response.json())
        assert client.app[PRECALL].active == 1
        await eventually(lambda: client.app[PRECALL].active == 0, timeout=5)


async def test_close_ends_every_session_and_is_idempotent():
    echo = PrecallEcho(ice_servers=[], public_candidates_only=False, max_sessions=2)
    async with resident() as first, resident() as second:
        await connect(first, echo)
        await connect(second, echo)
        await first.frames("video", 1)
        assert echo.active == 2

        await echo.close()
        assert echo.active == 0
        await echo.close()
        with pytest.raises(MediaStreamError):
            await second.frames("video", 100)
    async with resident() as late:
        with pytest.raises(PrecallBusy, match="shutting down"):
            await echo.answer((await late.offer())["sdp"])


async def test_malformed_json_is_422(make_client):
    client = await make_client()
    response = await client.post(
        "/api/precall/offer", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 422
    assert (await response.json())["message"] == "body is not JSON"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"sdp": "v=0\r\n"}, "type: Field required"),
        ({"sdp": "v=0\r\n", "type": "answer"}, "type: Input should be 'offer'"),
        ({"sdp": "", "type": "offer"}, "sdp: String should have at least 1 character"),
        ({"sdp": "v=0\r\n", "type": "offer", "extra": 1}, "extra: Extra inputs"),
        (["v=0"], "body: Input should be a valid dictionary"),
    ],
)
async def test_malformed_request_is_422_naming_the_field(make_client, body, problem):
    client = await make_client()
    response = await client.post("/api/precall/offer", json=body)
    assert response.status == 422
    assert problem in (await response.json())["message"]


async def test_oversized_sdp_is_refused(make_client):
    client = await make_client()
    sdp = "v=0\r\n" + "a=x\r\n" * (MAX_SDP_CHARS // 5)
    response = await client.post("/api/precall/offer", json={"sdp": sdp, "type": "offer"})
    assert response.status == 422
    assert "sdp: String should have at most 16384 characters" in (await response.json())["message"]

    huge = {"sdp": "v=0\r\n" + "a=x\r\n" * (MAX_JSON_BODY // 5), "type": "offer"}
    response = await client.post("/api/precall/offer", json=huge)
    assert response.status == 413
    assert client.app[PRECALL].active == 0


def _strip(sdp: str, prefix: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix))


UNUSABLE_CODEC = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=rtcp-mux\r\na=rtpmap:96 NOSUCH/90000\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
)


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda sdp: "hello", "must start with 'v=0'"),
        (lambda sdp: "v=0\r\nm=video 9 X 96\r\na=setup:foo\r\n", "at line 3 ('a=setup:foo')"),
        (lambda sdp: "v=0\r\nm=audio\r\n", "cannot be parsed at line 2"),
        (lambda sdp: "v=0\r\ns=-\r\n", "sends no audio or video"),
        (lambda sdp: _strip(sdp, "a=fingerprint"), "video section lacks a=fingerprint"),
        (lambda sdp: _strip(sdp, "a=ice-pwd"), "section lacks a=ice-ufrag or a=ice-pwd"),
        (lambda sdp: _strip(sdp, "a=rtcp-mux"), "section lacks a=rtcp-mux"),
        (lambda sdp: sdp.replace("a=sendrecv", "a=recvonly"), "sends no audio or video"),
        (lambda sdp: sdp + sdp[sdp.index("m=video") :], "2 audio sections; at most one"),
        (lambda sdp: UNUSABLE_CODEC, "cannot be used: OperationError"),
    ],
)
async def test_unusable_sdp_is_422_naming_the_problem(make_client, mangle, problem):
    client = await make_client()
    async with resident() as peer:
        offer = await peer.offer()
    response = await client.post(
        "/api/precall/offer", json={"sdp": mangle(offer["sdp"]), "type": "offer"}
    )
    body = await response.json()
    assert response.status == 422, body
    assert body["code"] == "precall_invalid_offer"
    assert problem in body["message"]
    assert "Traceback" not in body["message"]
    assert client.app[PRECALL].active == 0


async def test_data_channel_is_not_echoed(echo):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.createDataChannel("chat")
        await pc.setLocalDescription(await pc.createOffer())
        with pytest.raises(PrecallInvalidOffer, match="'application' section"):
            await echo.answer(pc.localDescription.sdp)
    finally:
        await pc.close()
    assert echo.active == 0


async def test_the_echo_is_for_signed_in_callers_only(make_client):
    client = await make_client(signed_in=False)
    response = await client.post("/api/precall/offer", json={"sdp": "v=0", "type": "offer"})
    assert response.status == 401


OFFER_WITH = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n{candidates}a=rtcp-mux\r\n"
)


def test_production_echo_ignores_candidates_at_private_addresses():
    """The echo must not become a UDP probe into the municipality's own network."""
    lines = [
        "a=candidate:1 1 udp 2122260223 10.1.2.3 50000 typ host",
        "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host",
        "a=candidate:3 1 udp 2122260223 fe80::1 50002 typ host",
        "a=candidate:4 1 udp 2122260223 9f2c1a3e-0000-4000-8000-000000000000.local 50003 typ host",
        "a=candidate:5 1 udp 1686052607 192.168.1.20 50004 typ host",
        "a=candidate:6 1 udp 1686052607 145.12.1.20 50005 typ srflx raddr 10.1.2.3 rport 50000",
    ]
    offer = OFFER_WITH.format(candidates="".join(f"{line}\r\n" for line in lines))
    kept = public_candidates(offer)
    assert [line for line in kept.splitlines() if line.startswith("a=candidate")] == [lines[5]]
    assert "a=rtcp-mux" in kept  # everything else stays

    only_private = OFFER_WITH.format(candidates="".join(f"{line}\r\n" for line in lines[:5]))
    with pytest.raises(PrecallInvalidOffer, match="none of the offer's 5 ICE candidates"):
        public_candidates(only_private)
