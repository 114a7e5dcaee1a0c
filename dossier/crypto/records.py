"""Small records (chat messages, file names, payment notes): one AES-GCM call each.

Format: `version (1) || nonce (12) || ciphertext+tag`. The associated data binds the dossier
id, the record id and the kind, so a record moved to another dossier or row, or relabelled as
another kind, fails to decrypt.
"""

from __future__ import annotations

import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dossier.crypto.envelope import derive_subkey
from dossier.errors import IntegrityError

__all__ = ["RecordCipher"]

_VERSION = b"\x01"
_NONCE = 12


class RecordCipher:
    """Seals and opens the small records of one dossier with a subkey of its DEK."""

    def __init__(self, dek: bytes, dossier_id: uuid.UUID) -> None:
        self._aead = AESGCM(derive_subkey(dek, purpose="record", context=dossier_id.bytes))
        self._dossier_id = dossier_id

    def _ad(self, record_id: uuid.UUID, kind: str) -> bytes:
        return b"balie/record/v1|" + self._dossier_id.bytes + record_id.bytes + kind.encode("utf-8")

    def seal(self, *, record_id: uuid.UUID, kind: str, plaintext: bytes) -> bytes:
        """Encrypt `plaintext` as record `record_id` of `kind`."""
        # Random 96-bit nonces: a dossier holds at most a few thousand records, far from the
        # 2^32 messages per key at which random nonces would become a concern.
        nonce = secrets.token_bytes(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, self._ad(record_id, kind))

    def open(self, *, record_id: uuid.UUID, kind: str, sealed: bytes) -> bytes:
        """Decrypt a record; raises IntegrityError if anything about it is not as sealed."""
        if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
            raise IntegrityError(f"record {record_id} is malformed")
        nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, body, self._ad(record_id, kind))
        except InvalidTag:
            raise IntegrityError(f"record {record_id} does not authenticate") from None
