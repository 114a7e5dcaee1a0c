"""LocalBlobStore: atomic writes, visible writers, leftover clean-up, validated references."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from dossier.blobstore import LocalBlobStore
from dossier.errors import InvalidInput

REF = "0123456789abcdef0123456789abcdef"
OTHER_REF = "fedcba9876543210fedcba9876543210"
THIRD_REF = "01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


class Boom(Exception):
    pass


async def _chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _failing(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    raise Boom("upload interrupted")


async def read_all(store: LocalBlobStore, ref: str) -> bytes:
    parts = []
    async with store.reader(ref) as reader:
        buffer = bytearray(1000)
        while got := await reader.readinto(memoryview(buffer)):
            parts.append(bytes(buffer[:got]))
    return b"".join(parts)


def all_files(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def locked_elsewhere(path: Path) -> bool:
    """Try an exclusive flock through a fresh open file description, as another process would."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


async def write_blob(store: LocalBlobStore, ref: str, data: bytes) -> int:
    async with store.writer(ref) as writer:
        return await writer.write_all(
            _chunks([data[: len(data) // 3], b"", data[len(data) // 3 :]])
        )


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 1 << 20, 2 * (1 << 20) + 5])
async def test_write_all_then_read_round_trip(store: LocalBlobStore, size: int) -> None:
    data = os.urandom(size)
    assert await write_blob(store, REF, data) == size
    assert await read_all(store, REF) == data
    assert store.has_data(REF)
    assert not store.is_being_written(REF)
    assert all_files(store.root) == [f"01/{REF}"]  # final name only, no temporary left
    assert stat.S_IMODE(store.path(REF).stat().st_mode) == 0o600


async def test_reader_fills_whole_buffers_until_the_end(store: LocalBlobStore) -> None:
    await write_blob(store, REF, b"x" * 2500)
    async with store.reader(REF) as reader:
        sizes = [await reader.readinto(memoryview(bytearray(1000))) for _ in range(4)]
    assert sizes == [1000, 1000, 500, 0]


async def test_read_of_a_missing_blob_raises_file_not_found(store: LocalBlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        await read_all(store, REF)


async def test_failure_inside_the_chunk_iterator_leaves_nothing(store: LocalBlobStore) -> None:
    with pytest.raises(Boom):
        async with store.writer(REF) as writer:
            await writer.write_all(_failing([b"a" * 1000, b"b" * 1000]))

    assert not store.path(REF).exists()
    assert not store.temp_path(REF).exists()
    assert not store.has_data(REF)
    assert not store.is_being_written(REF)
    assert all_files(store.root) == []


async def test_failure_after_the_blob_was_made_durable_leaves_nothing(
    store: LocalBlobStore,
) -> None:
    # E.g. the database commit that marks the document complete fails.
    with pytest.raises(Boom):
        async with store.writer(REF) as writer:
            await writer.write_all(_chunks([b"sealed bytes"]))
            assert store.path(REF).exists()
            raise Boom("commit failed")

    assert not store.has_data(REF)
    assert all_files(store.root) == []


async def test_after_a_failure_the_same_ref_can_be_written(store: LocalBlobStore) -> None:
    with pytest.raises(Boom):
        async with store.writer(REF) as writer:
            await writer.write_all(_failing([b"partial"]))
    await write_blob(store, REF, b"complete")
    assert await read_all(store, REF) == b"complete"


async def test_writer_is_visible_to_other_processes_until_it_exits(
    store: LocalBlobStore,
) -> None:
    assert not store.is_being_written(REF)
    async with store.writer(REF) as writer:
        # Before any data: the temporary file is held.
        assert store.is_being_written(REF)
        assert locked_elsewhere(store.temp_path(REF))

        await writer.write_all(_chunks([b"sealed bytes"]))

        # Renamed into place but still held until the caller's commit is done.
        assert not store.temp_path(REF).exists()
        assert store.is_being_written(REF)
        assert locked_elsewhere(store.path(REF))

    assert not store.is_being_written(REF)
    assert not locked_elsewhere(store.path(REF))
    assert await read_all(store, REF) == b"sealed bytes"


async def test_is_being_written_is_per_blob(store: LocalBlobStore) -> None:
    await write_blob(store, OTHER_REF, b"done")
    async with store.writer(REF):
        assert store.is_being_written(REF)
        assert not store.is_being_written(OTHER_REF)
        assert not store.is_being_written(THIRD_REF)


async def test_remove_leftovers_removes_unheld_temporaries_only(store: LocalBlobStore) -> None:
    await write_blob(store, THIRD_REF, b"complete blob")
    # A temporary file left by a writer that crashed: nobody holds it.
    leftover = store.temp_path(OTHER_REF)
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half an upload")

    async with store.writer(REF) as writer:
        live = store.temp_path(REF)
        assert live.exists()

        assert await store.remove_leftovers() == 1

        assert not leftover.exists()
        assert live.exists(), "a live writer's temporary file was removed"
        assert await read_all(store, THIRD_REF) == b"complete blob"
        # The live writer can still finish its blob.
        await writer.write_all(_chunks([b"still uploading"]))

    assert await read_all(store, REF) == b"still uploading"
    assert await store.remove_leftovers() == 0
    assert all_files(store.root) == [f"01/{REF}", f"01/{THIRD_REF}"]


async def test_remove_leftovers_without_a_root_is_a_no_op(store: LocalBlobStore) -> None:
    assert await store.remove_leftovers() == 0


async def test_writing_an_existing_blob_ref_is_refused(store: LocalBlobStore) -> None:
    await write_blob(store, REF, b"original")
    with pytest.raises(InvalidInput):
        async with store.writer(REF) as writer:
            await writer.write_all(_chunks([b"replacement"]))
    assert await read_all(store, REF) == b"original"
    assert all_files(store.root) == [f"01/{REF}"]


async def test_delete_removes_the_blob_and_is_idempotent(store: LocalBlobStore) -> None:
    await write_blob(store, REF, b"data")
    await write_blob(store, OTHER_REF, b"other data")

    await store.delete(REF)
    assert not store.has_data(REF)
    with pytest.raises(FileNotFoundError):
        await read_all(store, REF)
    await store.delete(REF)
    await store.delete(THIRD_REF)  # never written

    assert await read_all(store, OTHER_REF) == b"other data"


async def test_delete_removes_a_partial_write(store: LocalBlobStore) -> None:
    partial = store.temp_path(REF)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    assert store.has_data(REF)
    await store.delete(REF)
    assert not store.has_data(REF)


BAD_REFS = [
    "",
    "0123456789abcdef0123456789abcde",  # 31
    "0123456789abcdef0123456789abcdef0",  # 33
    "0123456789ABCDEF0123456789ABCDEF",
    "0123456789abcdef0123456789abcdeg",
    "../23456789abcdef0123456789abcdef",
    "01/3456789abcdef0123456789abcdef",
    ".0123456789abcdef0123456789abcde",
    "0123456789abcdef 123456789abcdef",
]


@pytest.mark.parametrize("ref", BAD_REFS)
async def test_malformed_blob_refs_are_rejected(store: LocalBlobStore, ref: str) -> None:
    for call in (store.path, store.temp_path, store.writer, store.is_being_written, store.has_data):
        with pytest.raises(InvalidInput):
            call(ref)
    with pytest.raises(InvalidInput):
        await read_all(store, ref)
    with pytest.raises(InvalidInput):
        await store.delete(ref)
    assert all_files(store.root) == []


async def test_blob_ref_with_trailing_newline_is_rejected(store: LocalBlobStore) -> None:
    # The reference pattern ends in `$`, which also matches before a final newline.
    with pytest.raises(InvalidInput):
        store.path(REF + "\n")
