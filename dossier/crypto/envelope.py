"""Per-dossier data keys (DEKs), wrapped by a KEK, and HKDF subkeys derived from them.

A wrapped DEK is `nonce (12) || AES-256-GCM(KEK, DEK)` with associated data binding the KEK id
and the dossier id: a wrapped key copied onto another dossier's row does not unwrap.
"""

from __future__ import annotations

import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dossier.errors import IntegrityError

__all__ = ["DEK_BYTES", "derive_subkey", "new_data_key", "unwrap_data_key", "wrap_data_key"]

DEK_BYTES = 32
NONCE_BYTES = 12
_WRAP_TAG = b"balie/dek-wrap/v1"


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return secrets.token_bytes(DEK_BYTES)


def _wrap_ad(kek_id: str, dossier_id: uuid.UUID) -> bytes:
    return b"|".join((_WRAP_TAG, kek_id.encode("ascii"), dossier_id.bytes))


def wrap_data_key(*, kek: bytes, kek_id: str, dossier_id: uuid.UUID, dek: bytes) -> bytes:
    """Seal `dek` under `kek`, bound to `kek_id` and `dossier_id`."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, dek, _wrap_ad(kek_id, dossier_id))


def unwrap_data_key(*, kek: bytes, kek_id: str, dossier_id: uuid.UUID, wrapped: bytes) -> bytes:
    """Open a wrapped DEK; raises IntegrityError if it was altered or belongs elsewhere."""
    nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    try:
        dek = AESGCM(kek).decrypt(nonce, sealed, _wrap_ad(kek_id, dossier_id))
    except (InvalidTag, ValueError):
        raise IntegrityError(f"data key of dossier {dossier_id} does not authenticate") from None
    if len(dek) != DEK_BYTES:
        raise IntegrityError(f"data key of dossier {dossier_id} has the wrong length")
    return dek


def derive_subkey(
    dek: bytes, *, purpose: str, context: bytes = b"", salt: bytes | None = None
) -> bytes:
    """A 256-bit key for one purpose (and one object, via `context`) from the dossier's DEK.

    Distinct purposes never share a key, so a ciphertext made for one use cannot be presented
    as another (a chat record as a document segment, say).
    """
    # Length-prefixed purpose: ("a", b"b/c") and ("a/b", b"c") must not give the same info.
    name = purpose.encode("ascii")
    info = b"balie/v1/" + len(name).to_bytes(2, "big") + name + context
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)
