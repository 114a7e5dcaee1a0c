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

import secrets
import struct
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dossier.crypto.envelope import derive_subkey
from dossier.errors import IntegrityError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "TAG_BYTES",
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


async def encrypt_stream(
    source: AsyncIterable[bytes], *, dek: bytes, header: StreamHeader
) -> AsyncIterator[bytes]:
    """Yield the header, then one sealed segment at a time, for the plaintext in `source`.

    Memory stays bounded by a few segments plus one incoming chunk, whatever the size.
    """
    aead = _file_aead(dek, header, header.document_id)
    header_bytes = header.encode()
    size = header.segment_size
    yield header_bytes
    buffer = bytearray()
    index = 0
    async for chunk in source:
        buffer += chunk
        # Only a segment known to be followed by more data may go out without the last flag.
        while len(buffer) > size:
            segment = bytes(buffer[:size])
            del buffer[:size]
            yield aead.encrypt(_nonce(header.nonce_prefix, index, False), segment, header_bytes)
            index += 1
    yield aead.encrypt(_nonce(header.nonce_prefix, index, True), bytes(buffer), header_bytes)


async def decrypt_stream(
    source: AsyncIterable[bytes],
    *,
    dek: bytes,
    dossier_id: uuid.UUID,
    document_id: uuid.UUID,
) -> AsyncIterator[bytes]:
    """Yield the plaintext of a sealed document, one authenticated segment at a time.

    Raises IntegrityError on any damage, on a header that names another dossier or document,
    and on a missing or extra tail. Never yields a byte that failed to authenticate.
    """
    buffer = bytearray()
    iterator = aiter(source)
    header: StreamHeader | None = None
    header_bytes = b""
    async for chunk in iterator:
        buffer += chunk
        parsed = StreamHeader.decode_from(buffer)
        if parsed is not None:
            header, length = parsed
            header_bytes = bytes(buffer[:length])
            del buffer[:length]
            break
    if header is None:
        raise IntegrityError(f"document {document_id} is truncated before its header ends")
    if header.dossier_id != dossier_id or header.document_id != document_id:
        raise IntegrityError(f"document {document_id} is not stored under this dossier and id")
    aead = _file_aead(dek, header, document_id)
    sealed = header.segment_size + TAG_BYTES
    index = 0

    def open_segment(segment: bytes, last: bool) -> bytes:
        try:
            return aead.decrypt(_nonce(header.nonce_prefix, index, last), segment, header_bytes)
        except InvalidTag:
            raise IntegrityError(
                f"document {document_id} segment {index} does not authenticate"
            ) from None

    while True:
        # Only a segment known to be followed by more data may be opened as "not last".
        while len(buffer) > sealed:
            segment = bytes(buffer[:sealed])
            del buffer[:sealed]
            yield open_segment(segment, False)
            index += 1
        try:
            buffer += await anext(iterator)
        except StopAsyncIteration:
            break
    if len(buffer) < TAG_BYTES:
        raise IntegrityError(f"document {document_id} is truncated")
    yield open_segment(bytes(buffer), True)
