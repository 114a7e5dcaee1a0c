"""Segmented AES-GCM for documents: round trips, tamper evidence and constant memory."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dossier.crypto.stream import (
    DEFAULT_SEGMENT_SIZE,
    TAG_BYTES,
    StreamHeader,
    decrypt_stream,
    encrypt_stream,
    sealed_size,
)
from dossier.errors import IntegrityError

DEK = bytes(range(32))
OTHER_DEK = bytes(range(100, 132))
DOSSIER = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_DOSSIER = uuid.UUID("22222222-2222-4222-8222-222222222222")
DOCUMENT = uuid.UUID("33333333-3333-4333-8333-333333333333")
OTHER_DOCUMENT = uuid.UUID("44444444-4444-4444-8444-444444444444")
KEY_ID = "kek-202401"

# The tamper tests use small segments: five full ones and a short last one of 7 bytes.
SEG = 32
SEALED_SEG = SEG + TAG_BYTES
PLAINTEXT = bytes((i * 37 + 11) % 256 for i in range(5 * SEG + 7))
N_SEGMENTS = 6
SHORT = bytes(range(20))  # a single-segment document


def fixed_header(
    segment_size: int,
    *,
    dossier_id: uuid.UUID = DOSSIER,
    document_id: uuid.UUID = DOCUMENT,
    salt: bytes = b"s" * 16,
    nonce_prefix: bytes = b"p" * 7,
) -> StreamHeader:
    """A header without randomness, so that hypothesis examples are reproducible."""
    return StreamHeader(
        segment_size=segment_size,
        dossier_id=dossier_id,
        document_id=document_id,
        key_id=KEY_ID,
        salt=salt,
        nonce_prefix=nonce_prefix,
    )


async def _aiter(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given offsets (repeated offsets give empty chunks)."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def fixed_chunks(data: bytes, size: int | None) -> list[bytes]:
    if size is None:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def seal(
    plaintext_chunks: Iterable[bytes], header: StreamHeader, *, dek: bytes = DEK
) -> bytes:
    pieces = [p async for p in encrypt_stream(_aiter(plaintext_chunks), dek=dek, header=header)]
    return b"".join(pieces)


async def unseal(
    sealed_chunks: Iterable[bytes],
    *,
    dek: bytes = DEK,
    dossier_id: uuid.UUID = DOSSIER,
    document_id: uuid.UUID = DOCUMENT,
) -> bytes:
    stream = decrypt_stream(
        _aiter(sealed_chunks), dek=dek, dossier_id=dossier_id, document_id=document_id
    )
    return b"".join([piece async for piece in stream])


async def released_before_failure(
    sealed_chunks: Iterable[bytes],
    *,
    dek: bytes = DEK,
    dossier_id: uuid.UUID = DOSSIER,
    document_id: uuid.UUID = DOCUMENT,
) -> list[bytes]:
    """Everything decrypt_stream yields before it raises; fails the test if it does not raise."""
    released: list[bytes] = []
    stream = decrypt_stream(
        _aiter(sealed_chunks), dek=dek, dossier_id=dossier_id, document_id=document_id
    )
    with pytest.raises(IntegrityError):
        async for piece in stream:
            released.append(piece)
    return released


def assert_only_authentic_prefix(
    released: list[bytes], plaintext: bytes, *, damaged_index: int, segment_size: int = SEG
) -> None:
    """What was released is whole segments of the plaintext, all before the damaged one."""
    offset = 0
    for piece in released:
        assert piece == plaintext[offset : offset + len(piece)]
        offset += len(piece)
        assert offset % segment_size == 0, "a partial segment was released"
    assert offset <= damaged_index * segment_size, "bytes of the damaged segment were released"


def segments_of(sealed: bytes, header: StreamHeader) -> tuple[bytes, list[bytes]]:
    """Split a sealed blob into its header bytes and its sealed segments."""
    header_len = len(header.encode())
    body = sealed[header_len:]
    step = header.segment_size + TAG_BYTES
    return sealed[:header_len], [body[i : i + step] for i in range(0, len(body), step)]


@pytest.fixture
def header() -> StreamHeader:
    return StreamHeader.new(
        dossier_id=DOSSIER, document_id=DOCUMENT, key_id=KEY_ID, segment_size=SEG
    )


@pytest.fixture
async def sealed(header: StreamHeader) -> bytes:
    data = await seal([PLAINTEXT], header)
    assert len(segments_of(data, header)[1]) == N_SEGMENTS
    return data


@pytest.fixture
async def sealed_short(header: StreamHeader) -> bytes:
    return await seal([SHORT], header)


FEEDS = pytest.mark.parametrize("feed", [None, 1, 13], ids=["whole", "bytewise", "by13"])


# --- round trips ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data())
def test_round_trip_for_any_size_segment_size_and_chunking(data: st.DataObject) -> None:
    seg = data.draw(st.integers(16, 64), label="segment size")
    size = data.draw(
        st.one_of(
            st.integers(0, 6 * seg),
            # sizes on and next to segment boundaries
            st.builds(lambda k, d: max(0, k * seg + d), st.integers(0, 6), st.integers(-1, 1)),
        ),
        label="size",
    )
    plaintext = data.draw(st.binary(min_size=size, max_size=size), label="plaintext")
    in_cuts = data.draw(st.lists(st.integers(0, size), max_size=10), label="input cuts")
    header = fixed_header(seg)

    sealed = asyncio.run(seal(split_at(plaintext, in_cuts), header))
    assert len(sealed) == sealed_size(size, header)

    out_cuts = data.draw(st.lists(st.integers(0, len(sealed)), max_size=20), label="sealed cuts")
    assert asyncio.run(unseal(split_at(sealed, out_cuts))) == plaintext


@pytest.mark.parametrize(
    "size",
    [0, 1, DEFAULT_SEGMENT_SIZE, DEFAULT_SEGMENT_SIZE + 1, 3 * DEFAULT_SEGMENT_SIZE + 17],
    ids=["empty", "one-byte", "one-segment", "one-segment-plus-one", "3MiB-plus-17"],
)
async def test_round_trip_with_default_segment_size(size: int) -> None:
    plaintext = os.urandom(size)
    header = StreamHeader.new(
        dossier_id=DOSSIER,
        document_id=DOCUMENT,
        key_id=KEY_ID,
        segment_size=DEFAULT_SEGMENT_SIZE,
    )
    sealed = await seal(fixed_chunks(plaintext, 65536 + 3), header)

    assert len(sealed) == sealed_size(size, header)
    expected_segments = max(1, -(-size // DEFAULT_SEGMENT_SIZE))
    assert len(sealed) == len(header.encode()) + size + expected_segments * TAG_BYTES
    assert await unseal([sealed]) == plaintext
    assert await unseal(fixed_chunks(sealed, 100_003)) == plaintext


async def test_sealed_blob_does_not_contain_the_plaintext(header: StreamHeader) -> None:
    plaintext = b"BSN 999993653 " * 10
    sealed = await seal([plaintext], header)
    assert b"999993653" not in sealed


def test_sealed_size_counts_header_data_and_one_tag_per_segment() -> None:
    header = fixed_header(SEG)
    header_len = len(header.encode())
    assert sealed_size(0, header) == header_len + TAG_BYTES
    assert sealed_size(1, header) == header_len + 1 + TAG_BYTES
    assert sealed_size(SEG, header) == header_len + SEG + TAG_BYTES
    assert sealed_size(SEG + 1, header) == header_len + SEG + 1 + 2 * TAG_BYTES
    assert sealed_size(3 * SEG, header) == header_len + 3 * SEG + 3 * TAG_BYTES


def test_header_encodes_and_decodes() -> None:
    header = StreamHeader.new(
        dossier_id=DOSSIER, document_id=DOCUMENT, key_id=KEY_ID, segment_size=SEG
    )
    encoded = header.encode()
    assert StreamHeader.decode_from(encoded + b"rest") == (header, len(encoded))
    assert StreamHeader.decode_from(encoded[:-1]) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"segment_size": 0},
        {"segment_size": (16 << 20) + 1},
        {"salt": b"s" * 15},
        {"nonce_prefix": b"p" * 8},
        {"key_id": ""},
        {"key_id": "k" * 256},
    ],
)
def test_header_rejects_invalid_fields(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"segment size|salt or nonce prefix|key id"):
        dataclasses.replace(fixed_header(SEG), **changes)


# --- tampering ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_any_flipped_byte_is_detected_and_no_damaged_byte_released(data: st.DataObject) -> None:
    header = fixed_header(SEG)
    sealed = asyncio.run(seal([PLAINTEXT], header))
    header_len = len(header.encode())
    position = data.draw(
        st.one_of(st.integers(0, header_len - 1), st.integers(header_len, len(sealed) - 1)),
        label="position",
    )
    mask = data.draw(st.integers(1, 255), label="xor mask")
    damaged = bytearray(sealed)
    damaged[position] ^= mask
    cuts = data.draw(st.lists(st.integers(0, len(sealed)), max_size=10), label="cuts")

    released = asyncio.run(released_before_failure(split_at(bytes(damaged), cuts)))

    damaged_index = 0 if position < header_len else (position - header_len) // SEALED_SEG
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=damaged_index)


@settings(max_examples=100, deadline=None, database=None)
@given(position=st.integers(0, 10_000), mask=st.integers(1, 255))
def test_flipped_byte_in_single_segment_document_releases_nothing(position: int, mask: int) -> None:
    sealed = asyncio.run(seal([SHORT], fixed_header(SEG)))
    damaged = bytearray(sealed)
    damaged[position % len(sealed)] ^= mask
    assert asyncio.run(released_before_failure([bytes(damaged)])) == []


@FEEDS
@pytest.mark.parametrize(("a", "b"), [(0, 1), (2, 3), (1, 4), (4, 5)])
async def test_swapped_segments_are_detected(
    sealed: bytes, header: StreamHeader, feed: int | None, a: int, b: int
) -> None:
    head, segments = segments_of(sealed, header)
    segments[a], segments[b] = segments[b], segments[a]
    released = await released_before_failure(fixed_chunks(head + b"".join(segments), feed))
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=a)


@FEEDS
async def test_dropped_last_segment_is_detected(
    sealed: bytes, header: StreamHeader, feed: int | None
) -> None:
    head, segments = segments_of(sealed, header)
    released = await released_before_failure(fixed_chunks(head + b"".join(segments[:-1]), feed))
    # Segment 4 now comes last but was not sealed as the last one.
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=N_SEGMENTS - 2)


async def test_dropped_last_full_segment_is_detected() -> None:
    # A document of exactly three full segments, cut back to two whole segments.
    plaintext = bytes(range(3 * SEG))
    header = fixed_header(SEG)
    head, segments = segments_of(await seal([plaintext], header), header)
    assert len(segments) == 3
    released = await released_before_failure([head + segments[0] + segments[1]])
    assert_only_authentic_prefix(released, plaintext, damaged_index=1)


@FEEDS
@pytest.mark.parametrize("dropped", [0, 2, 4])
async def test_dropped_middle_segment_is_detected(
    sealed: bytes, header: StreamHeader, feed: int | None, dropped: int
) -> None:
    head, segments = segments_of(sealed, header)
    del segments[dropped]
    released = await released_before_failure(fixed_chunks(head + b"".join(segments), feed))
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=dropped)


@FEEDS
@pytest.mark.parametrize("cut", [1, 3, 16, 22, 23, 24, SEALED_SEG + 23])
async def test_truncated_blob_is_detected(sealed: bytes, feed: int | None, cut: int) -> None:
    released = await released_before_failure(fixed_chunks(sealed[:-cut], feed))
    # The last sealed segment is 7 + 16 = 23 bytes; any cut damages segment 5 or earlier.
    damaged_index = N_SEGMENTS - 1 if cut < 23 else N_SEGMENTS - 2 - (cut - 23) // SEALED_SEG
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=damaged_index)


@pytest.mark.parametrize("keep", [0, 1, 10, 40])
async def test_blob_cut_inside_header_is_detected(sealed: bytes, keep: int) -> None:
    assert await released_before_failure([sealed[:keep]]) == []


@pytest.mark.parametrize("after_header", [0, 15, TAG_BYTES, SEALED_SEG])
async def test_blob_cut_inside_first_segment_is_detected(
    sealed: bytes, header: StreamHeader, after_header: int
) -> None:
    cut = sealed[: len(header.encode()) + after_header]
    assert await released_before_failure([cut]) == []


@FEEDS
@pytest.mark.parametrize(
    "extra", [b"\x00", b"x" * 15, b"x" * 16, b"x" * 30, b"x" * 100], ids=lambda e: f"{len(e)}B"
)
async def test_extra_bytes_appended_are_detected(
    sealed: bytes, feed: int | None, extra: bytes
) -> None:
    released = await released_before_failure(fixed_chunks(sealed + extra, feed))
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=N_SEGMENTS - 1)


async def test_duplicated_last_segment_appended_is_detected(
    sealed: bytes, header: StreamHeader
) -> None:
    head, segments = segments_of(sealed, header)
    released = await released_before_failure([head + b"".join(segments) + segments[-1]])
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=N_SEGMENTS - 1)


async def test_extra_bytes_after_full_last_segment_are_detected() -> None:
    plaintext = bytes(range(2 * SEG))  # the last segment is full, sealed with the last flag
    header = fixed_header(SEG)
    sealed = await seal([plaintext], header)
    for extra in (b"\x00", b"y" * TAG_BYTES, b"y" * (SEALED_SEG + 5)):
        released = await released_before_failure([sealed + extra])
        assert_only_authentic_prefix(released, plaintext, damaged_index=1)


@FEEDS
async def test_single_segment_document_truncated_or_extended_releases_nothing(
    sealed_short: bytes, feed: int | None
) -> None:
    assert await released_before_failure(fixed_chunks(sealed_short[:-1], feed)) == []
    assert await released_before_failure(fixed_chunks(sealed_short + b"\x00", feed)) == []


@FEEDS
@pytest.mark.parametrize("index", [0, 2, N_SEGMENTS - 1])
async def test_segment_spliced_from_another_document_of_the_same_dossier_is_detected(
    sealed: bytes, header: StreamHeader, feed: int | None, index: int
) -> None:
    other_plaintext = bytes(255 - b for b in PLAINTEXT)
    other_header = StreamHeader.new(
        dossier_id=DOSSIER, document_id=OTHER_DOCUMENT, key_id=KEY_ID, segment_size=SEG
    )
    other = await seal([other_plaintext], other_header)  # same DEK: same dossier
    head, segments = segments_of(sealed, header)
    _, other_segments = segments_of(other, other_header)
    assert len(other_segments[index]) == len(segments[index])
    segments[index] = other_segments[index]

    released = await released_before_failure(fixed_chunks(head + b"".join(segments), feed))
    assert_only_authentic_prefix(released, PLAINTEXT, damaged_index=index)


async def test_blob_presented_under_another_document_id_releases_nothing(
    sealed: bytes,
) -> None:
    assert await released_before_failure([sealed], document_id=OTHER_DOCUMENT) == []


async def test_blob_presented_under_another_dossier_id_releases_nothing(sealed: bytes) -> None:
    assert await released_before_failure([sealed], dossier_id=OTHER_DOSSIER) == []


async def test_blob_presented_under_another_dossier_and_dek_releases_nothing(
    sealed: bytes,
) -> None:
    released = await released_before_failure([sealed], dek=OTHER_DEK, dossier_id=OTHER_DOSSIER)
    assert released == []


@pytest.mark.parametrize(
    "rename",
    [
        {"document_id": OTHER_DOCUMENT},
        {"dossier_id": OTHER_DOSSIER},
        {"dossier_id": OTHER_DOSSIER, "document_id": OTHER_DOCUMENT},
    ],
    ids=["document", "dossier", "both"],
)
async def test_header_rewritten_to_name_another_document_releases_nothing(
    sealed: bytes, header: StreamHeader, rename: dict[str, uuid.UUID]
) -> None:
    forged = dataclasses.replace(header, **rename)
    head = header.encode()
    assert sealed.startswith(head)
    rewritten = forged.encode() + sealed[len(head) :]

    released = await released_before_failure(
        [rewritten], dossier_id=forged.dossier_id, document_id=forged.document_id
    )
    assert released == []


async def test_header_rewritten_with_another_key_id_is_detected(
    sealed: bytes, header: StreamHeader
) -> None:
    forged = dataclasses.replace(header, key_id="kek-202402")
    rewritten = forged.encode() + sealed[len(header.encode()) :]
    assert await released_before_failure([rewritten]) == []


@FEEDS
async def test_wrong_dek_releases_nothing(sealed: bytes, feed: int | None) -> None:
    assert await released_before_failure(fixed_chunks(sealed, feed), dek=OTHER_DEK) == []


async def test_empty_blob_is_detected() -> None:
    assert await released_before_failure([]) == []
    assert await released_before_failure([b""]) == []


# --- memory ---------------------------------------------------------------------------------

MiB = 1 << 20
BLOCK = os.urandom(MiB)  # one block, reused: the streams below are generated lazily


async def _blocks(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield bytes(bytearray(BLOCK))  # a fresh object each time, as a network reader gives


def _default_header() -> StreamHeader:
    return StreamHeader.new(
        dossier_id=DOSSIER,
        document_id=DOCUMENT,
        key_id=KEY_ID,
        segment_size=DEFAULT_SEGMENT_SIZE,
    )


async def _encrypt_peak(mebibytes: int) -> int:
    header = _default_header()
    sealed_bytes = 0
    tracemalloc.start()
    try:
        async for piece in encrypt_stream(_blocks(mebibytes), dek=DEK, header=header):
            sealed_bytes += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sealed_bytes == sealed_size(mebibytes * MiB, header)
    return peak


async def _round_trip_peak(mebibytes: int) -> int:
    """Peak traced memory of sealing and opening a stream, piped without storing it."""
    header = _default_header()
    expected = hashlib.sha256()
    for _ in range(mebibytes):
        expected.update(BLOCK)
    digest = hashlib.sha256()
    received = 0
    tracemalloc.start()
    try:
        sealed = encrypt_stream(_blocks(mebibytes), dek=DEK, header=header)
        async for piece in decrypt_stream(
            sealed, dek=DEK, dossier_id=DOSSIER, document_id=DOCUMENT
        ):
            digest.update(piece)
            received += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == mebibytes * MiB
    assert digest.digest() == expected.digest()
    return peak


# Measured with CPython 3.11: about 7 MiB to encrypt and 14 MiB to encrypt and decrypt (two
# read-ahead batches of 4 segments), the same for 16 MiB as for 128 MiB. The bounds leave room
# for other interpreter versions; what matters is that the peak is a few segments, not the
# stream, and does not grow with it.


async def test_encrypting_a_large_stream_keeps_memory_small() -> None:
    small = await _encrypt_peak(8)
    large = await _encrypt_peak(64)
    assert large < 12 * MiB, f"peak {large / MiB:.1f} MiB to encrypt a 64 MiB stream"
    assert large < small + MiB, f"peak grew from {small / MiB:.1f} to {large / MiB:.1f} MiB"


async def test_memory_does_not_grow_with_stream_size() -> None:
    # 16 MiB is past the warm-up: decryption reads ahead one batch of 4 segments.
    small = await _round_trip_peak(16)
    large = await _round_trip_peak(64)
    # Sealing and opening together hold a few segments at a time, never the stream.
    assert large < 16 * MiB, f"peak {large / MiB:.1f} MiB to seal and open a 64 MiB stream"
    assert large < small + MiB, f"peak grew from {small / MiB:.1f} to {large / MiB:.1f} MiB"
