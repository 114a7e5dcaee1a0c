"""The part the fake network servers of the tests share (FakeSmtp, FakeClamd).

A server on 127.0.0.1 (a free port) or on a Unix socket that keeps track of its connections,
so that leaving `async with` ends every one of them; a subclass says what a connection does
in `serve`. The connection is closed after `serve` returns, after what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

__all__ = ["LoopbackServer"]


class LoopbackServer:
    def __init__(self, *, unix_socket: str | None = None) -> None:
        self.unix_socket = unix_socket
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        if self.unix_socket is not None:
            self._server = await asyncio.start_unix_server(self._handle, path=self.unix_socket)
        else:
            self._server = await asyncio.start_server(self._handle, host="127.0.0.1", port=0)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def idle(self) -> None:
        """Return once every connection open now has ended."""
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.serve(reader, writer)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
