"""Small filesystem helpers for crash-safe writes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["create_once", "fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside `directory` durable (POSIX needs the directory synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_once(path: Path, data: bytes, *, mode: int) -> bool:
    """Create `path` holding `data` with `mode`, unless it exists; True if created now.

    Never overwrites and never shows half a file: the data is written and fsynced under a
    temporary name (with `mode` from the start, so a key is never readable by others), then
    linked into place (a link, unlike a rename, fails when the name is taken: whoever was
    first stands) and the directory is synced. Raises OSError if the write fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return created
