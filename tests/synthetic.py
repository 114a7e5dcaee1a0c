"""A synthetic call participant: aiortc media and Balie's signaling protocol, as a browser
would speak it. Tests and the call-setup benchmark use it; it talks to loopback only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

SESSION_COOKIE = "__Host-balie"


class SyntheticParticipant:
    """One participant: a WebSocket to the call and a peer connection with test tracks.

    `auto_admit` makes a clerk admit whoever knocks, as the benchmark needs.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        origin: str,
        dossier_id: str,
        session_token: str,
        auto_admit: bool = False,
    ) -> None:
        self._http = http
        self._url = f"{base_url}/ws/calls/{dossier_id}"
        self._origin = origin
        self._token = session_token
        self._auto_admit = auto_admit
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.me = ""
        self.role = ""
        # iceServers given explicitly and empty: host candidates on loopback, no STUN lookups.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(VideoStreamTrack())
        self.pc.addTrack(AudioStreamTrack())
        self.remote_video: asyncio.Future[MediaStreamTrack] = (
            asyncio.get_running_loop().create_future()
        )
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.admitted = asyncio.Event()
        self.peers: dict[str, str] = {}
        self._reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not self.remote_video.done():
                self.remote_video.set_result(track)

    async def connect(self) -> dict[str, Any]:
        """Open the WebSocket; returns the server's hello."""
        self.ws = await self._http.ws_connect(
            self._url,
            headers={"Cookie": f"{SESSION_COOKIE}={self._token}", "Origin": self._origin},
        )
        hello = await self.ws.receive_json()
        self.me, self.role = hello["you"], hello["role"]
        self._reader = asyncio.create_task(self._read())
        return dict(hello)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = frame.json()
            kind = message["type"]
            if kind == "participant":
                if message["status"] == "left":
                    self.peers.pop(message["id"], None)
                else:
                    self.peers[message["id"]] = message["role"]
                if self._auto_admit and message["status"] == "waiting":
                    await self.send({"type": "admit", "participant": message["id"]})
            elif kind == "admitted":
                self.admitted.set()
            elif kind == "offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.send(
                    {"type": "answer", "to": message["from"], "sdp": self.pc.localDescription.sdp}
                )
            elif kind == "answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            await self.events.put(message)

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next event of `kind`, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event["type"] == kind:
                    return event

    async def call(self, peer: str) -> None:
        """Offer to `peer` (aiortc gathers all candidates first: no trickle needed)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "offer", "to": peer, "sdp": self.pc.localDescription.sdp})

    async def first_remote_frame(self, timeout: float = 10.0) -> Any:
        """The first decoded video frame from the other side."""
        async with asyncio.timeout(timeout):
            track = await self.remote_video
            return await track.recv()

    async def close(self) -> None:
        """Leave the call and release everything (idempotent)."""
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.send({"type": "leave"})
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.pc.close()
