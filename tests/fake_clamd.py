"""A fake clamd for tests: INSTREAM and PING on 127.0.0.1 (or a Unix socket), and misbehaviour.

    async with FakeClamd() as clamd:
        scanner = ClamdScanner(port=clamd.port)

It finds the EICAR test string anywhere in a stream, answers like clamd when a stream passes
`size_limit` (the error line, then it hangs up), and on request answers nonsense, an error,
never, too early, or hangs up without answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Literal

from fake_server import LoopbackServer

__all__ = ["EICAR", "Behaviour", "FakeClamd"]

# Built from pieces so that no file in the repository is itself a test virus to scanners.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-" + b"ANTIVIRUS-TEST-FILE!$H+H*"

Behaviour = Literal["normal", "garbage", "error", "hang", "close", "early_ok"]


class FakeClamd(LoopbackServer):
    """Records every stream it received in full, in `received`."""

    def __init__(
        self,
        *,
        behaviour: Behaviour = "normal",
        size_limit: int = 25 * 1024 * 1024,
        unix_socket: str | None = None,
    ) -> None:
        super().__init__(unix_socket=unix_socket)
        self.behaviour = behaviour
        self.size_limit = size_limit
        self.received: list[bytes] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            command = await reader.readuntil(b"\0")
            if command == b"zPING\0":
                await self._answer(writer, b"PONG")
            elif command == b"zINSTREAM\0":
                await self._instream(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away; so does this connection

    async def _instream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.behaviour == "early_ok":
            await self._answer(writer, b"stream: OK")
            await asyncio.Event().wait()  # keep the connection until the test ends
        stream = bytearray()
        while length := struct.unpack(">I", await reader.readexactly(4))[0]:
            if len(stream) + length > self.size_limit:
                # clamd answers and hangs up at once, with the rest of the stream unread.
                writer.write(b"INSTREAM size limit exceeded. ERROR\0")
                await writer.drain()
                return
            stream += await reader.readexactly(length)
            if self.behaviour == "close":
                return
        self.received.append(bytes(stream))
        verdict = b"stream: Eicar-Test-Signature FOUND" if EICAR in stream else b"stream: OK"
        await self._answer(writer, verdict)

    async def _answer(self, writer: asyncio.StreamWriter, answer: bytes) -> None:
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        elif self.behaviour == "garbage":
            answer = b"\x01\x02I am not clamd"
        elif self.behaviour == "error":
            answer = b"Can't allocate memory ERROR"
        writer.write(answer + b"\0")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
