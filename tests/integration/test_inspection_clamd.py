"""The clamd client against a fake clamd over real sockets: it lets a file through only when
the scanner said so after seeing all of it, and fails closed in every other case."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from dossier.inspection import ClamdScanner, ScanFailed, VirusFound

from fake_clamd import EICAR, FakeClamd

CONTENT = bytes((i * 7 + 3) % 251 for i in range(200_000))


async def chunks(data: bytes, sizes: Iterable[int]) -> AsyncIterator[bytes]:
    """`data` in pieces of the given sizes (cycled), as an upload arrives."""
    pos, cycle = 0, list(sizes)
    while pos < len(data):
        size = cycle[0]
        cycle = cycle[1:] + cycle[:1]
        yield data[pos : pos + size]
        pos += size


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_clean_stream_passes_and_reaches_clamd_intact() -> None:
    async with FakeClamd() as clamd:
        scanner = ClamdScanner(port=clamd.port, chunk_size=4096)
        await scanner.scan(chunks(CONTENT, [1, 10_000, 70_000, 333]))
    assert clamd.received == [CONTENT]


async def test_empty_stream_passes() -> None:
    async with FakeClamd() as clamd:
        await ClamdScanner(port=clamd.port).scan_bytes(b"")
    assert clamd.received == [b""]


async def test_eicar_is_found_and_named() -> None:
    async with FakeClamd() as clamd:
        scanner = ClamdScanner(port=clamd.port)
        with pytest.raises(VirusFound) as caught:
            await scanner.scan_bytes(b"%PDF-1.4\n" + EICAR + b"\n")
    assert caught.value.code == "virus_found"
    assert caught.value.status == 422
    assert "Eicar-Test-Signature" in str(caught.value)


async def test_eicar_split_over_chunks_is_found() -> None:
    data = CONTENT[:1000] + EICAR + CONTENT[:1000]
    async with FakeClamd() as clamd:
        with pytest.raises(VirusFound, match="Eicar"):
            await ClamdScanner(port=clamd.port, chunk_size=7).scan(chunks(data, [13, 5]))
    assert clamd.received == [data]


async def test_size_limit_fails_closed() -> None:
    # clamd answers mid-stream and hangs up; the answer must not be lost to a broken pipe.
    async with FakeClamd(size_limit=64 * 1024) as clamd:
        scanner = ClamdScanner(port=clamd.port, chunk_size=16 * 1024)
        with pytest.raises(ScanFailed) as caught:
            await scanner.scan(chunks(CONTENT * 20, [50_000]))
    assert caught.value.code == "scan_failed"
    assert caught.value.status == 503
    assert "larger than the virus scanner accepts" in str(caught.value)


async def test_no_scanner_listening_fails_closed() -> None:
    port = free_port()
    scanner = ClamdScanner(port=port, timeout=5)
    with pytest.raises(ScanFailed) as caught:
        await scanner.scan_bytes(CONTENT)
    assert str(caught.value) == "the virus scanner is not reachable"  # no address for users
    with pytest.raises(ScanFailed, match="not reachable"):
        await scanner.ping()


async def test_garbage_answer_fails_closed() -> None:
    async with FakeClamd(behaviour="garbage") as clamd:
        scanner = ClamdScanner(port=clamd.port)
        with pytest.raises(ScanFailed, match="unexpected answer"):
            await scanner.scan_bytes(CONTENT)
        with pytest.raises(ScanFailed, match="unexpected answer"):
            await scanner.ping()


async def test_error_answer_fails_closed_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeClamd(behaviour="error") as clamd:
        with pytest.raises(ScanFailed) as caught:
            await ClamdScanner(port=clamd.port).scan_bytes(CONTENT)
    assert str(caught.value) == "the virus scanner reported an error"
    assert "Can't allocate memory ERROR" in caplog.text  # for the operator, not the uploader


async def test_silent_scanner_fails_closed_after_the_timeout() -> None:
    async with FakeClamd(behaviour="hang") as clamd:
        scanner = ClamdScanner(port=clamd.port, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(ScanFailed, match=r"did not answer within 0\.2 s"):
            await scanner.scan_bytes(CONTENT)
        assert time.monotonic() - started < 2
        with pytest.raises(ScanFailed, match="did not answer"):
            await scanner.ping()


async def test_connection_closed_midway_fails_closed() -> None:
    async with FakeClamd(behaviour="close") as clamd:
        scanner = ClamdScanner(port=clamd.port, chunk_size=1024, timeout=5)
        with pytest.raises(ScanFailed, match="closed the connection without an answer"):
            await scanner.scan(chunks(CONTENT, [1024]))
    assert clamd.received == []


async def test_ok_before_the_end_of_the_stream_is_not_believed() -> None:
    async with FakeClamd(behaviour="early_ok") as clamd:
        scanner = ClamdScanner(port=clamd.port, chunk_size=1024, timeout=5)

        async def slow() -> AsyncIterator[bytes]:
            for piece in range(50):
                await asyncio.sleep(0.001)  # give the early answer time to arrive
                yield bytes([piece]) * 1024

        with pytest.raises(ScanFailed, match="answered before it had the whole file"):
            await scanner.scan(slow())


async def test_an_error_of_the_upload_itself_propagates_unchanged() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield CONTENT[:1000]
        raise ConnectionResetError("the resident's connection dropped")

    async with FakeClamd() as clamd:
        with pytest.raises(ConnectionResetError, match="resident's connection"):
            await ClamdScanner(port=clamd.port).scan(broken())
    assert clamd.received == []


async def test_ping() -> None:
    async with FakeClamd() as clamd:
        await ClamdScanner(port=clamd.port).ping()
    assert clamd.connections == 1


async def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "clamd.sock")
    async with FakeClamd(unix_socket=path) as clamd:
        scanner = ClamdScanner(unix_socket=path)
        await scanner.ping()
        await scanner.scan_bytes(CONTENT)
        with pytest.raises(VirusFound):
            await scanner.scan_bytes(EICAR)
    assert clamd.received == [CONTENT, EICAR]


def test_scanner_needs_exactly_one_address() -> None:
    with pytest.raises(ValueError, match="either a port"):
        ClamdScanner()
    with pytest.raises(ValueError, match="either a port"):
        ClamdScanner(port=3310, unix_socket="/run/clamd.sock")


async def test_streaming_scan_alongside_another_consumer() -> None:
    stored = bytearray()
    async with FakeClamd() as clamd:
        scanner = ClamdScanner(port=clamd.port)
        async with scanner.streaming(buffered_chunks=2) as scan:
            async for chunk in chunks(CONTENT, [3000, 17]):
                await scan.feed(chunk)
                stored += chunk
            await scan.finish()
    assert bytes(stored) == CONTENT
    assert clamd.received == [CONTENT]


async def test_streaming_scan_finds_eicar_at_finish() -> None:
    async with FakeClamd() as clamd, ClamdScanner(port=clamd.port).streaming() as scan:
        await scan.feed(CONTENT[:500] + EICAR[:20])
        await scan.feed(EICAR[20:])
        with pytest.raises(VirusFound, match="Eicar"):
            await scan.finish()


async def test_streaming_scan_stops_the_upload_when_the_scanner_is_gone() -> None:
    fed = 0
    async with ClamdScanner(port=free_port(), timeout=5).streaming(buffered_chunks=1) as scan:
        with pytest.raises(ScanFailed, match="not reachable"):
            async with asyncio.timeout(5):  # feed must not wait forever on a dead scan
                for _ in range(1000):
                    await scan.feed(b"x" * 1024)
                    fed += 1
    assert fed < 1000


async def test_streaming_scan_abandoned_without_finish() -> None:
    async with FakeClamd() as clamd:
        async with ClamdScanner(port=clamd.port).streaming(buffered_chunks=1) as scan:
            for _ in range(3):  # more than the buffer: the scan is under way
                await scan.feed(CONTENT[:1000])
        async with asyncio.timeout(5):
            await clamd.idle()  # the abandoned scan hung up
    assert clamd.connections == 1
    assert clamd.received == []
