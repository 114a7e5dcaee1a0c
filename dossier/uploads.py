"""Accepting an upload into a dossier: decide its type, check it, scan it, seal it.

    head = first bytes  ->  sniff + check_declared           (415 for anything else)
    PDF, JPEG, PNG      ->  read whole (<= limit), inspect: re-encode images without metadata,
                            refuse active PDFs; scan; store
    other allowed types ->  stream straight into the store, scanned on the way (the store
                            discards the document if the scan does not say clean)

The limit is enforced while reading: the body is never read further than the limit plus one
chunk. Nothing is stored unless every check passed; the original file name is sealed by the
store. CPU-bound inspection runs in a worker thread, at most `inspect_slots` at a time, so a
few large photos cannot starve the event loop or the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Protocol

from dossier.documents import DocumentInfo, store_document
from dossier.errors import DocumentTooLarge
from dossier.inspection import INSPECTED_TYPES, SNIFF_BYTES, check_declared, inspect, sniff
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["Scanner", "UploadRules", "accept_upload"]


class Scanner(Protocol):
    """A virus scanner (clamd): raises unless the stream is clean."""

    async def scan(self, content: AsyncIterable[bytes]) -> None: ...


@dataclass(frozen=True)
class UploadRules:
    """What an installation accepts (from settings)."""

    max_bytes: int
    allowed: Collection[str]
    max_pixels: int
    inspect: bool = True
    scanner: Scanner | None = None
    inspect_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))


async def _head(source: AsyncIterator[bytes], size: int) -> bytes:
    head = b""
    async for chunk in source:
        head += chunk
        if len(head) >= size:
            break
    return head


async def _rest(head: bytes, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in source:
        yield chunk


async def _read_all(content: AsyncIterator[bytes], limit: int) -> bytes:
    buffer = bytearray()
    async for chunk in content:
        buffer += chunk
        if len(buffer) > limit:
            raise DocumentTooLarge(f"document is larger than the limit of {limit} bytes")
    return bytes(buffer)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _scanned(content: AsyncIterator[bytes], scanner: Scanner) -> AsyncIterator[bytes]:
    """`content`, passed on while the scanner reads the same bytes; at the end the scanner's
    verdict is awaited, and anything but "clean" is raised before the last byte is handed on
    (so the store discards the document)."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)

    async def feed() -> AsyncIterator[bytes]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    scan = asyncio.create_task(scanner.scan(feed()))

    async def put(item: bytes | None) -> None:
        # A scanner that fails early stops reading; do not wait on a queue nobody empties.
        putting = asyncio.ensure_future(queue.put(item))
        await asyncio.wait({putting, scan}, return_when=asyncio.FIRST_COMPLETED)
        if not putting.done():
            putting.cancel()
            await scan  # raises the scanner's error
            raise RuntimeError("the virus scanner stopped without a verdict")

    try:
        async for chunk in content:
            await put(chunk)
            yield chunk
        await put(None)
        await scan
    finally:
        if not scan.done():
            scan.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scan


async def accept_upload(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    filename: str,
    declared_type: str | None,
    content: AsyncIterator[bytes],
    rules: UploadRules,
) -> DocumentInfo:
    """Check the upload and seal it into the dossier; returns the stored document.

    Raises UnsupportedType (the content is not an allowed type, or disagrees with the declared
    type or the name), UnsafeDocument (an active PDF, an unreadable or oversized image),
    DocumentTooLarge (past `rules.max_bytes`), VirusFound or ScanFailed (the scanner did not
    say clean), and what `store_document` raises. Nothing is stored on any error.
    """
    head = await _head(content, SNIFF_BYTES)
    media_type = check_declared(
        sniff(head), declared_type=declared_type, filename=filename, allowed=rules.allowed
    )
    stream = _rest(head, content)
    limit: int | None = rules.max_bytes
    if rules.inspect and media_type in INSPECTED_TYPES:
        data = await _read_all(stream, rules.max_bytes)
        async with rules.inspect_slots:
            cleaned = await asyncio.to_thread(
                inspect, data, media_type, max_pixels=rules.max_pixels
            )
        if rules.scanner is not None:
            # The upload as it came, not only what is kept: refuse what tried to get in.
            await rules.scanner.scan(_once(data))
        stream, limit = _once(cleaned), None  # the limit was for what came in
    elif rules.scanner is not None:
        stream = _scanned(stream, rules.scanner)
    return await store_document(
        store,
        actor=actor,
        dossier_id=dossier_id,
        name=filename,
        media_type=media_type,
        content=stream,
        max_size=limit,
    )
