"""A client for clamd's INSTREAM command that fails closed.

The protocol: send `zINSTREAM\\0`, then the content as chunks each preceded by its length
(4 bytes, big-endian), then a chunk of length zero; clamd answers with one NUL-terminated line:

    stream: OK                                  clean
    stream: Eicar-Test-Signature FOUND          a signature matched
    INSTREAM size limit exceeded. ERROR         more than clamd's StreamMaxLength
    <anything else> ERROR                       clamd could not scan

Only `stream: OK` after the whole content was sent lets a file through. Everything else is
VirusFound (a signature matched) or ScanFailed: an error or size-limit answer, no connection,
a timeout, a connection closed before the answer, an answer we do not understand.

`timeout` bounds each wait on clamd (connecting, handing over each chunk, the verdict), not the
time spent waiting for `content`: an upload may arrive slowly. clamd has its own idle limit
(ReadTimeout, 120 s by default) for a stream that stalls.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from types import TracebackType

from dossier.inspection.errors import ScanFailed, VirusFound

__all__ = ["ClamdScanner", "StreamingScan"]

log = logging.getLogger(__name__)

_MAX_REPLY = 4096  # clamd's answers are one short line
# Writes what is to be sent, given the connection and the answer that may come early; returns
# whether all of it was written.
_Sender = Callable[[asyncio.StreamWriter, "asyncio.Future[str]"], Awaitable[bool]]


def _failed(reason: str, detail: object = None) -> ScanFailed:
    """The error for the uploader; `detail` (addresses, clamd's words) goes to the log only."""
    log.warning("virus scan failed: %s (%s)", reason, detail)
    return ScanFailed(reason)


class ClamdScanner:
    """Talks to one clamd over TCP (`host`, `port`) or a Unix socket (`unix_socket`).

    Holds no connection: each scan and ping opens its own, as clamd expects.
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        unix_socket: str | None = None,
        timeout: float = 30.0,
        chunk_size: int = 64 * 1024,
    ) -> None:
        if (port is None) == (unix_socket is None) or (unix_socket is not None and host):
            raise ValueError("give either a port (and optionally a host) or a unix socket")
        if timeout <= 0 or chunk_size <= 0:
            raise ValueError("timeout and chunk_size must be positive")
        self._host = host or "127.0.0.1"
        self._port = port
        self._unix_socket = unix_socket
        self._timeout = timeout
        self._chunk_size = chunk_size

    def __repr__(self) -> str:
        where = self._unix_socket or f"{self._host}:{self._port}"
        return f"ClamdScanner({where})"

    async def ping(self) -> None:
        """Return if clamd answers PING with PONG; raise ScanFailed otherwise (for readiness)."""

        async def send(writer: asyncio.StreamWriter, reply: asyncio.Future[str]) -> bool:
            return await self._write(writer, b"zPING\0")

        answer, _ = await self._converse(send)
        if answer != "PONG":
            raise _failed("the virus scanner gave an unexpected answer", answer)

    async def scan_bytes(self, data: bytes) -> None:
        """Scan content that is already in memory; see `scan`."""

        async def single() -> AsyncIterator[bytes]:
            yield data

        await self.scan(single())

    def streaming(self, *, buffered_chunks: int = 8) -> StreamingScan:
        """A scan to feed chunk by chunk while they also go elsewhere; see StreamingScan."""
        return StreamingScan(self, buffered_chunks=buffered_chunks)

    async def scan(self, content: AsyncIterable[bytes]) -> None:
        """Return if clamd finds `content` clean; raise VirusFound or ScanFailed otherwise.

        Errors raised while iterating `content` propagate unchanged (and end the scan).
        """

        async def send(writer: asyncio.StreamWriter, reply: asyncio.Future[str]) -> bool:
            if not await self._write(writer, b"zINSTREAM\0"):
                return False
            async for chunk in content:
                view = memoryview(chunk)
                for start in range(0, len(view), self._chunk_size):
                    piece = view[start : start + self._chunk_size]
                    length = struct.pack(">I", len(piece))
                    if reply.done() or not await self._write(writer, length, piece):
                        return False  # clamd answered or hung up before the end
            return await self._write(writer, b"\0\0\0\0")

        answer, complete = await self._converse(send)
        _judge(answer, complete=complete)

    async def _converse(self, send: _Sender) -> tuple[str, bool]:
        """clamd's answer to what `send` writes, and whether `send` could write all of it."""
        reader, writer = await self._connect()
        # Read concurrently: clamd answers early (and hangs up) when a stream passes its size
        # limit, and that answer must not be lost to the error of our next write.
        reply = asyncio.ensure_future(_read_reply(reader))
        try:
            complete = await send(writer, reply)
            answer = await self._await_reply(reply)
        except BaseException:
            _abandon(reply)
            writer.transport.abort()
            raise
        await self._close(writer)
        return answer, complete

    async def _write(self, writer: asyncio.StreamWriter, *parts: bytes | memoryview) -> bool:
        """False if the connection is gone (the reply, or its absence, then says why)."""
        try:
            for part in parts:
                writer.write(part)
            await self._drain(writer)
        except OSError:
            return False
        return True

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self._timeout):
                if self._unix_socket is not None:
                    return await asyncio.open_unix_connection(self._unix_socket)
                return await asyncio.open_connection(self._host, self._port)
        except TimeoutError:
            raise _failed("the virus scanner is not reachable", f"{self!r}: timeout") from None
        except OSError as exc:
            raise _failed("the virus scanner is not reachable", f"{self!r}: {exc}") from exc

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await writer.drain()
        except TimeoutError:
            raise _failed(
                f"the virus scanner took more than {self._timeout} s to take data"
            ) from None

    async def _await_reply(self, reply: asyncio.Future[str]) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                return await reply
        except TimeoutError:
            raise _failed(f"the virus scanner did not answer within {self._timeout} s") from None

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            async with asyncio.timeout(self._timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()  # the verdict is in; how the connection ends does not matter


def _abandon(reply: asyncio.Future[str]) -> None:
    """Stop waiting for a reply, marking any error it had as seen (it is not the news)."""
    if reply.done():
        if not reply.cancelled():
            reply.exception()
    else:
        reply.cancel()


async def _read_reply(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\0")
    except asyncio.IncompleteReadError as exc:
        what = "a complete answer" if exc.partial else "an answer"
        raise _failed(f"the virus scanner closed the connection without {what}") from None
    except ConnectionError:
        raise _failed("the virus scanner closed the connection without an answer") from None
    except asyncio.LimitOverrunError:
        raise _failed("the virus scanner gave an unexpected answer") from None
    except OSError as exc:
        raise _failed("the connection to the virus scanner broke", exc) from exc
    if len(raw) > _MAX_REPLY:
        raise _failed("the virus scanner gave an unexpected answer")
    return raw[:-1].decode("utf-8", "replace").strip()


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _judge(answer: str, *, complete: bool) -> None:
    printable = _printable(answer)
    if answer.endswith(" FOUND"):
        signature = _printable(answer.removeprefix("stream:").removesuffix(" FOUND").strip())
        log.warning("virus scanner found %s", signature)
        raise VirusFound(f"the virus scanner found {signature or 'a known threat'} in the file")
    if answer.endswith("ERROR"):
        if "size limit" in answer:
            raise _failed("the file is larger than the virus scanner accepts", printable)
        raise _failed("the virus scanner reported an error", printable)
    if answer != "stream: OK":
        raise _failed("the virus scanner gave an unexpected answer", printable)
    if not complete:
        raise _failed("the virus scanner answered before it had the whole file")


class StreamingScan:
    """A scan fed chunk by chunk, for an upload that streams to the store at the same time.

        async with scanner.streaming() as scan:
            async for chunk in upload:
                await scan.feed(chunk)      # waits while clamd is behind; may raise early
                await writer.write(chunk)
            await scan.finish()             # the verdict: returns if clean, raises otherwise

    Only `finish` returning means the file is clean. Leaving the block without it abandons the
    scan (the connection is closed). `feed` raises the scan's error as soon as it is known,
    so a dead scanner stops the upload instead of letting it run to the end.
    """

    def __init__(self, scanner: ClamdScanner, *, buffered_chunks: int = 8) -> None:
        self._scanner = scanner
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffered_chunks)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StreamingScan:
        self._task = asyncio.create_task(self._scanner.scan(self._chunks()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task = self._running()
        if not task.done():
            task.cancel()
        # Wait for the connection to close; an error here was raised by feed/finish already,
        # or nobody asked for the verdict.
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    def _running(self) -> asyncio.Task[None]:
        if self._task is None:
            raise RuntimeError("use StreamingScan as `async with scanner.streaming() as scan`")
        return self._task

    async def feed(self, chunk: bytes) -> None:
        """Hand the next chunk to the scanner; raises VirusFound or ScanFailed if the scan ended."""
        await self._put(chunk)

    async def finish(self) -> None:
        """Mark the end of the content and wait for the verdict.

        Returns if clamd found the content clean; raises VirusFound or ScanFailed otherwise.
        """
        await self._put(None)
        await self._running()

    async def _put(self, item: bytes | None) -> None:
        task = self._running()
        if not task.done():
            if not self._queue.full():
                self._queue.put_nowait(item)
                return
            putting = asyncio.ensure_future(self._queue.put(item))
            try:
                await asyncio.wait({putting, task}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                putting.cancel()
                raise
            if putting.done():
                return
            putting.cancel()
        # The scan ended before taking everything: its error is the answer.
        await task
        raise _failed("the virus scanner answered before it had the whole file")
