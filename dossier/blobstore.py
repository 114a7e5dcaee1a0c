"""Where sealed document bytes live: a small interface and a local-directory implementation.

A blob is written under a temporary name, fsynced, renamed into place and the directory
fsynced; only then may the database mark its document complete. While a writer works it holds
an exclusive `flock` on the file (across the rename, until its database commit is done), so
clean-up after a crash can tell a dead writer's leftovers from another process's upload in
progress: a file nobody holds a lock on is a leftover.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import io
import logging
import os
import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Protocol

from dossier.crypto.stream import ByteReader
from dossier.errors import InvalidInput
from dossier.fsutil import fsync_dir

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore"]

log = logging.getLogger(__name__)

_BLOB_REF = re.compile(r"[0-9a-f]{32}")  # always used with fullmatch


class BlobWriter(Protocol):
    """One blob being written. Use as an async context manager."""

    async def write_all(self, chunks: AsyncIterable[bytes | memoryview]) -> int:
        """Write every chunk, then make the blob durable under its final name; returns size.

        A chunk is written in full before the chunk after it is requested, so a producer
        may alternate between two buffers.
        """
        ...

    async def __aenter__(self) -> BlobWriter: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the blob; if the block failed, remove whatever was written."""
        ...


class BlobStore(Protocol):
    """Storage for sealed blobs, addressed by server-generated references."""

    def writer(self, blob_ref: str) -> BlobWriter:
        """A writer for a new blob `blob_ref` (which must not exist yet)."""
        ...

    def reader(self, blob_ref: str) -> AbstractAsyncContextManager[ByteReader]:
        """The blob opened for reading into caller buffers; FileNotFoundError if absent."""
        ...

    async def delete(self, blob_ref: str) -> None:
        """Remove the blob and any partial write of it (idempotent)."""
        ...

    def is_being_written(self, blob_ref: str) -> bool:
        """True while a live writer (in any process) holds the blob."""
        ...

    def has_data(self, blob_ref: str) -> bool:
        """True if the blob, whole or partly written, exists."""
        ...

    async def remove_leftovers(self) -> int:
        """Delete partial writes whose writer is gone; returns how many were removed."""
        ...


def _check_ref(blob_ref: str) -> None:
    if not _BLOB_REF.fullmatch(blob_ref):
        raise InvalidInput(f"not a blob reference: {blob_ref!r}")


def _locked_by_someone(path: Path) -> bool:
    """Whether another open file description holds an exclusive flock on `path`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class _LocalWriter:
    def __init__(self, store: LocalBlobStore, blob_ref: str) -> None:
        self._final = store.path(blob_ref)
        self._tmp = store.temp_path(blob_ref)
        self._fd: int | None = None
        self._renamed = False

    async def __aenter__(self) -> _LocalWriter:
        fan_out = self._final.parent
        if not fan_out.is_dir():
            fan_out.mkdir(parents=True, exist_ok=True, mode=0o700)
            # A new directory is durable only once its parent is synced; otherwise a crash
            # could lose it with every blob later renamed into it.
            await asyncio.to_thread(fsync_dir, fan_out.parent)
        if self._final.exists():
            raise InvalidInput(f"blob {self._final.name} exists already")
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    async def write_all(self, chunks: AsyncIterable[bytes | memoryview]) -> int:
        fd = self._fd
        if fd is None:
            raise RuntimeError("writer is not open")
        loop = asyncio.get_running_loop()
        total = 0
        # Chunk i is written in a worker thread (so a slow disk does not stall the event loop)
        # while chunk i+1 is produced; writes stay in order because each waits for the last.
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(None, _write_fully, fd, chunk)
                total += len(chunk)
            if pending is not None:
                await pending
                pending = None
        finally:
            if pending is not None:  # the producer failed: the last write must end first
                await asyncio.gather(pending, return_exceptions=True)
        await asyncio.to_thread(self._make_durable, fd)
        return total

    def _make_durable(self, fd: int) -> None:
        os.fsync(fd)
        os.rename(self._tmp, self._final)
        self._renamed = True
        fsync_dir(self._final.parent)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None:
                # A failed or cancelled write leaves nothing behind, renamed or not.
                for path in (self._tmp, self._final) if self._renamed else (self._tmp,):
                    path.unlink(missing_ok=True)
        finally:
            if self._fd is not None:
                os.close(self._fd)  # releases the flock only now, after the caller's commit
                self._fd = None


class _FileReader:
    def __init__(self, handle: io.FileIO) -> None:
        self._handle = handle

    async def readinto(self, buffer: memoryview) -> int:
        return await asyncio.to_thread(self._fill, buffer)

    def _fill(self, buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            got = self._handle.readinto(buffer[filled:])
            if not got:
                break
            filled += got
        return filled


def _write_fully(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LocalBlobStore:
    """Blobs as files under `root/ab/abcdef...`, temporaries as `root/ab/.abcdef....tmp`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, blob_ref: str) -> Path:
        _check_ref(blob_ref)
        return self.root / blob_ref[:2] / blob_ref

    def temp_path(self, blob_ref: str) -> Path:
        _check_ref(blob_ref)
        return self.root / blob_ref[:2] / f".{blob_ref}.tmp"

    def writer(self, blob_ref: str) -> _LocalWriter:
        return _LocalWriter(self, blob_ref)

    @asynccontextmanager
    async def reader(self, blob_ref: str) -> AsyncIterator[ByteReader]:
        handle = await asyncio.to_thread(self.path(blob_ref).open, "rb", buffering=0)
        try:
            yield _FileReader(handle)
        finally:
            handle.close()

    async def delete(self, blob_ref: str) -> None:
        final, tmp = self.path(blob_ref), self.temp_path(blob_ref)
        removed = False
        for path in (final, tmp):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        if removed:
            await asyncio.to_thread(fsync_dir, final.parent)

    def is_being_written(self, blob_ref: str) -> bool:
        return _locked_by_someone(self.temp_path(blob_ref)) or _locked_by_someone(
            self.path(blob_ref)
        )

    def has_data(self, blob_ref: str) -> bool:
        return self.path(blob_ref).exists() or self.temp_path(blob_ref).exists()

    async def remove_leftovers(self) -> int:
        def sweep() -> int:
            removed = 0
            if not self.root.is_dir():
                return 0
            for tmp in self.root.glob("*/.*.tmp"):
                if not _locked_by_someone(tmp):
                    tmp.unlink(missing_ok=True)
                    removed += 1
            return removed

        removed = await asyncio.to_thread(sweep)
        if removed:
            log.info("removed %d partial blob writes left by a crashed process", removed)
        return removed
