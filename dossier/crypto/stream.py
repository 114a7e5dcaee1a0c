"""Segmented AES-GCM for documents: constant memory, any size, tamper-evident as a whole.

Layout of a sealed document::

    header  = "BLSD" | version (1) | segment size (u32) | dossier id (16) | document id (16)
              | key id length (1) | key id | salt (16) | nonce prefix (7)
    segment = AES-GCM(file key, nonce, plaintext, associated data = header)   (size + 16 tag)

    nonce    = nonce prefix (7) | segment index (u32, big endian) | last-segment flag (1)
    file key = HKDF-SHA256(DEK, salt, "balie/document/" + document id)

Every segment but the last holds exactly `segment size` plaintext bytes; the last holds 0 to
`segment size` bytes and carries the flag. So swapping segments breaks the index, dropping the
tail leaves a final segment without the flag, appending data follows a flagged segment, and a
segment from another document was sealed under another key. The header is authenticated as
associated data of every segment, and the file key is derived from the document id the caller
expects, so a blob moved under another document or dossier does not open.

Plaintext is released one authenticated segment at a time: a reader may receive the first
segments of a document whose later segment turns out damaged, but never a byte that failed to
authenticate. Callers that must have all or nothing read the stream to the end first.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dossier.crypto.envelope import derive_subkey
from dossier.errors import IntegrityError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "TAG_BYTES",
    "ByteReader",
    "IterableReader",
    "StreamHeader",
    "decrypt_stream",
    "encrypt_stream",
    "sealed_size",
]

MAGIC = b"BLSD"
VERSION = 1
DEFAULT_SEGMENT_SIZE = 1 << 20
MAX_SEGMENT_SIZE = 16 << 20
TAG_BYTES = 16
# Segments moved per read or write: fewer hops to the I/O thread, memory still a few MiB.
IO_BATCH_SEGMENTS = 4
_SALT = 16
_PREFIX = 7
_FIXED = struct.Struct(">4sBI16s16sB")


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """The authenticated header of a sealed document."""

    segment_size: int
    dossier_id: uuid.UUID
    document_id: uuid.UUID
    key_id: str
    salt: bytes
    nonce_prefix: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size {self.segment_size} out of range")
        if len(self.salt) != _SALT or len(self.nonce_prefix) != _PREFIX:
            raise ValueError("salt or nonce prefix has the wrong length")
        if not 0 < len(self.key_id.encode("ascii")) < 256:
            raise ValueError("key id must be 1 to 255 ASCII characters")

    @classmethod
    def new(
        cls, *, dossier_id: uuid.UUID, document_id: uuid.UUID, key_id: str, segment_size: int
    ) -> StreamHeader:
        """A header with fresh random salt and nonce prefix."""
        return cls(
            segment_size=segment_size,
            dossier_id=dossier_id,
            document_id=document_id,
            key_id=key_id,
            salt=secrets.token_bytes(_SALT),
            nonce_prefix=secrets.token_bytes(_PREFIX),
        )

    def encode(self) -> bytes:
        """The header's bytes, exactly as stored and authenticated."""
        key_id = self.key_id.encode("ascii")
        fixed = _FIXED.pack(
            MAGIC,
            VERSION,
            self.segment_size,
            self.dossier_id.bytes,
            self.document_id.bytes,
            len(key_id),
        )
        return fixed + key_id + self.salt + self.nonce_prefix

    @classmethod
    def decode_from(cls, buffer: bytes | bytearray) -> tuple[StreamHeader, int] | None:
        """Parse a header at the start of `buffer`: (header, length), or None if incomplete.

        Raises IntegrityError for anything that is not a header this version can read.
        """
        if len(buffer) < _FIXED.size:
            return None
        magic, version, segment_size, dossier, document, key_len = _FIXED.unpack_from(buffer)
        if magic != MAGIC:
            raise IntegrityError("document blob does not start with a Balie header")
        if version != VERSION:
            raise IntegrityError(f"document blob has unknown format version {version}")
        end = _FIXED.size + key_len + _SALT + _PREFIX
        if len(buffer) < end:
            return None
        pos = _FIXED.size
        try:
            key_id = bytes(buffer[pos : pos + key_len]).decode("ascii")
            header = cls(
                segment_size=segment_size,
                dossier_id=uuid.UUID(bytes=dossier),
                document_id=uuid.UUID(bytes=document),
                key_id=key_id,
                salt=bytes(buffer[pos + key_len : pos + key_len + _SALT]),
                nonce_prefix=bytes(buffer[pos + key_len + _SALT : end]),
            )
        except ValueError as exc:
            raise IntegrityError(f"document header is malformed: {exc}") from None
        return header, end


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 1 << 32:
        raise IntegrityError("document has too many segments")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _file_aead(dek: bytes, header: StreamHeader, document_id: uuid.UUID) -> AESGCM:
    key = derive_subkey(dek, purpose="document", context=document_id.bytes, salt=header.salt)
    return AESGCM(key)


def sealed_size(plaintext_size: int, header: StreamHeader) -> int:
    """Bytes a document of `plaintext_size` occupies once sealed under `header`."""
    segments = max(1, -(-plaintext_size // header.segment_size))
    return len(header.encode()) + plaintext_size + segments * TAG_BYTES


@runtime_checkable
class ByteReader(Protocol):
    """A source read into caller-owned buffers (a blob file, say): no allocation per read."""

    async def readinto(self, buffer: memoryview) -> int:
        """Fill `buffer`; fewer bytes only at the end of the data, 0 once it is exhausted."""
        ...


class IterableReader:
    """Adapts an async iterable of chunks of any size to `ByteReader`."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._iterator = aiter(source)
        self._pending = memoryview(b"")

    async def readinto(self, buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            if not self._pending:
                try:
                    self._pending = memoryview(await anext(self._iterator))
                except StopAsyncIteration:
                    break
            n = min(len(buffer) - filled, len(self._pending))
            buffer[filled : filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
        return filled


async def encrypt_stream(
    source: AsyncIterable[bytes],
    *,
    dek: bytes,
    header: StreamHeader,
    reuse_output: bool = False,
) -> AsyncIterator[bytes | memoryview]:
    """Yield the header, then one sealed segment at a time, for the plaintext in `source`.

    Memory stays bounded by a few segments plus one incoming chunk, whatever the size: a chunk
    that holds a whole segment is sealed in place, smaller ones are gathered in one buffer.
    Without `reuse_output` each sealed segment is a fresh `bytes`. With it, up to
    IO_BATCH_SEGMENTS sealed segments are gathered in one of two buffers used in turn, so a
    yielded view stays valid only until the consumer asks for the item after next: enough for
    a blob writer to write one batch while the next is being sealed, with a quarter of the
    hops to its I/O thread.
    """
    aead = _file_aead(dek, header, header.document_id)
    ad = header.encode()
    size, prefix = header.segment_size, header.nonce_prefix
    batch_bytes = IO_BATCH_SEGMENTS * (size + TAG_BYTES) if reuse_output else 0
    outs = (memoryview(bytearray(batch_bytes)), memoryview(bytearray(batch_bytes)))
    out: memoryview | None = outs[0] if reuse_output else None
    used = 0
    index = 0

    def seal(segment: memoryview, last: bool) -> bytes | None:
        """The sealed segment, or None when it went into `out` (and `used` grew)."""
        nonce = _nonce(prefix, index, last)
        if out is None:
            return aead.encrypt(nonce, segment, ad)
        nonlocal used
        end = used + len(segment) + TAG_BYTES
        aead.encrypt_into(nonce, segment, ad, out[used:end])
        used = end
        return None

    def flush(force: bool) -> memoryview | None:
        """The gathered batch if it is full (or `force`), emptying it."""
        nonlocal used, out
        if out is None or used == 0 or (not force and used + size + TAG_BYTES <= len(out)):
            return None
        batch, used = out[:used], 0
        out = outs[1] if out is outs[0] else outs[0]
        return batch

    yield ad
    staging = bytearray(size)
    filled = 0
    # A full segment is sealed only once a further byte shows it is not the last one.
    held: memoryview | None = None
    async for chunk in source:
        view = memoryview(chunk)
        while view:
            if held is not None:
                sealed = seal(held, False)
                index += 1
                held = None
                ready = sealed if sealed is not None else flush(False)
                if ready is not None:
                    yield ready
            if filled == 0 and len(view) >= size:
                held, view = view[:size], view[size:]  # sealed straight from the chunk
                continue
            n = min(size - filled, len(view))
            staging[filled : filled + n] = view[:n]
            filled, view = filled + n, view[n:]
            if filled == size:
                held, filled = memoryview(staging), 0
    sealed = seal(held if held is not None else memoryview(staging)[:filled], True)
    ready = sealed if sealed is not None else flush(True)
    assert ready is not None
    yield ready


async def decrypt_stream(
    source: ByteReader | AsyncIterable[bytes],
    *,
    dek: bytes,
    dossier_id: uuid.UUID,
    document_id: uuid.UUID,
) -> AsyncIterator[bytes]:
    """Yield the plaintext of a sealed document, one authenticated segment at a time.

    Raises IntegrityError on any damage, on a header that names another dossier or document,
    and on a missing or extra tail. Never yields a byte that failed to authenticate. Reads
    into two alternating buffers, so memory stays at two sealed segments.
    """
    reader: ByteReader = source if isinstance(source, ByteReader) else IterableReader(source)
    fixed = bytearray(_FIXED.size)
    if await reader.readinto(memoryview(fixed)) < _FIXED.size:
        raise IntegrityError(f"document {document_id} is truncated before its header ends")
    rest = bytearray(fixed[-1] + _SALT + _PREFIX)
    if await reader.readinto(memoryview(rest)) < len(rest):
        raise IntegrityError(f"document {document_id} is truncated before its header ends")
    parsed = StreamHeader.decode_from(fixed + rest)
    assert parsed is not None  # both parts were read in full
    header, _ = parsed
    if header.dossier_id != dossier_id or header.document_id != document_id:
        raise IntegrityError(f"document {document_id} is not stored under this dossier and id")
    ad = bytes(fixed + rest)
    aead = _file_aead(dek, header, document_id)
    sealed = header.segment_size + TAG_BYTES
    batch = IO_BATCH_SEGMENTS * sealed
    buffers = (bytearray(batch), bytearray(batch))
    index, current = 0, 0

    def open_segment(segment: memoryview, last: bool) -> bytes:
        try:
            return aead.decrypt(_nonce(header.nonce_prefix, index, last), segment, ad)
        except InvalidTag:
            raise IntegrityError(
                f"document {document_id} segment {index} does not authenticate"
            ) from None

    got = await reader.readinto(memoryview(buffers[current]))
    prefetch: asyncio.Future[int] | None = None
    try:
        while True:
            data = memoryview(buffers[current])[:got]
            if got == batch:
                # Read the next batch while this one is decrypted (AES-GCM releases the GIL).
                following = memoryview(buffers[1 - current])
                prefetch = asyncio.ensure_future(reader.readinto(following))
                await asyncio.sleep(0)  # let it start now, not when the consumer next waits
            starts = range(0, got, sealed)
            for start in starts[:-1]:
                yield open_segment(data[start : start + sealed], False)
                index += 1
            tail = data[starts[-1] :] if starts else data
            if len(tail) < TAG_BYTES:
                raise IntegrityError(f"document {document_id} is truncated")
            if prefetch is None:
                yield open_segment(tail, True)  # a short read: the data ended in this batch
                return
            got, prefetch = await prefetch, None
            yield open_segment(tail, got == 0)
            if got == 0:
                return
            index, current = index + 1, 1 - current
    finally:
        if prefetch is not None:  # the consumer stopped early: let the read finish first
            await asyncio.gather(prefetch, return_exceptions=True)
