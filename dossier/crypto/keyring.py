"""Key-encryption keys (KEKs): one 256-bit key per calendar month, named `kek-YYYYMM`.

The keyring lives outside the database so that a database backup alone reveals nothing. The
current month's KEK wraps new data keys; older KEKs stay available to unwrap until an operator
destroys them (which shreds every dossier they wrapped).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dossier.errors import KeyUnavailable
from dossier.fsutil import create_once, fsync_dir

__all__ = ["KEK_BYTES", "FileKeyring", "KeyInfo", "Keyring", "kek_id_for"]

KEK_BYTES = 32
_KEK_ID = re.compile(r"kek-(\d{4})(0[1-9]|1[0-2])")  # always used with fullmatch


def kek_id_for(moment: dt.datetime) -> str:
    """The id of the KEK for the calendar month (UTC) of `moment`."""
    moment = moment.astimezone(dt.UTC)
    return f"kek-{moment.year:04d}{moment.month:02d}"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an operator may know about a KEK: its id and where it lives, never its bytes."""

    key_id: str
    location: str


class Keyring(Protocol):
    """Source of KEKs. A KMS or Vault implementation fits behind the same five methods."""

    def key_for_wrapping(self, moment: dt.datetime) -> tuple[str, bytes]:
        """The id and bytes of the KEK that wraps new data keys at `moment`.

        Raises KeyUnavailable when that month's key does not exist and may not be created.
        """
        ...

    def get(self, key_id: str) -> bytes:
        """The KEK `key_id`; raises KeyUnavailable if it is unknown or destroyed."""
        ...

    def list_keys(self) -> list[KeyInfo]:
        """Every KEK present, oldest first."""
        ...

    def create(self, key_id: str) -> bool:
        """Create KEK `key_id` unless it exists; True if it was created now."""
        ...

    def destroy(self, key_id: str) -> None:
        """Destroy KEK `key_id` for good (idempotent)."""
        ...


def _validate_id(key_id: str) -> None:
    if not _KEK_ID.fullmatch(key_id):
        raise KeyUnavailable(f"not a key id: {key_id!r} (expected kek-YYYYMM)")


class FileKeyring:
    """KEKs as files `kek-YYYYMM.key` (32 raw bytes, mode 0600) in one directory.

    With `create_missing` (dev and test) the month's key is made on first use; in production
    the operator creates keys ahead with `balie keys create` and a missing key is an error,
    because silently minting keys on one node of several would split the keyring.
    """

    def __init__(self, directory: Path, *, create_missing: bool) -> None:
        self.directory = directory
        self.create_missing = create_missing

    def _path(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.key"

    def key_for_wrapping(self, moment: dt.datetime) -> tuple[str, bytes]:
        key_id = kek_id_for(moment)
        if self.create_missing:
            self.create(key_id)
        return key_id, self.get(key_id)

    def get(self, key_id: str) -> bytes:
        # Read from disk every time (32 bytes, page-cached): no process may keep using a
        # key that an operator destroyed through another process.
        _validate_id(key_id)
        try:
            data = self._path(key_id).read_bytes()
        except FileNotFoundError:
            raise KeyUnavailable(
                f"key {key_id} is not in the keyring at {self.directory}"
            ) from None
        if len(data) != KEK_BYTES:
            raise KeyUnavailable(
                f"key file for {key_id} has {len(data)} bytes, expected {KEK_BYTES}"
            )
        return data

    def create(self, key_id: str) -> bool:
        """Create KEK `key_id` unless it exists; True if it was created now.

        Safe against a concurrent creator (see `create_once`): nobody ever reads a
        half-written key, and of two racing creators the first one's key stands.
        """
        _validate_id(key_id)
        path = self._path(key_id)
        if path.exists():
            return False
        return create_once(path, secrets.token_bytes(KEK_BYTES), mode=0o600)

    def list_keys(self) -> list[KeyInfo]:
        if not self.directory.is_dir():
            return []
        ids = sorted(p.stem for p in self.directory.glob("kek-*.key") if _KEK_ID.fullmatch(p.stem))
        return [KeyInfo(key_id=i, location=str(self._path(i))) for i in ids]

    def destroy(self, key_id: str) -> None:
        _validate_id(key_id)
        path = self._path(key_id)
        try:
            # Overwrite before unlinking; on copy-on-write or journaling filesystems this is
            # best effort, which is why backups of the key directory need their own rotation.
            with path.open("r+b") as handle:
                handle.write(b"\0" * KEK_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.directory)
