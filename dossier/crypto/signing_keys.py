"""Ed25519 signing keys kept in PEM files outside the database.

Two keys of an installation live this way: the export key (it signs package manifests) and
the audit checkpoint key (it signs the audit chain's head). Both are PKCS#8 PEM, unencrypted,
mode 0600; both are made on first use only in dev and test, because a production node that
silently minted its own key would sign what nobody can verify against the key they were given.
The key id people compare by eye is the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dossier.fsutil import create_once

__all__ = ["key_fingerprint", "load_signing_key", "public_key_pem"]


def load_signing_key(
    path: Path,
    *,
    create: bool,
    label: str,
    create_hint: str,
    error: Callable[[str], Exception],
) -> Ed25519PrivateKey:
    """The Ed25519 private key in `path`; with `create`, a missing key is generated first.

    Two processes racing to create it end up with the same key (the first one linked wins).
    Raises `error(message)` naming the file when the key is missing (and not `create`; the
    message tells to run `create_hint`), unreadable, or not an unencrypted Ed25519 PEM key.
    `label` says which key it is in those messages, e.g. "export signing key".
    """
    if create and not path.exists():
        _create(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: the {label} is missing; create it with {create_hint}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {label} ({exc})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise error(
            f"{path}: not an unencrypted PEM private key (expected Ed25519, PKCS#8)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise error(f"{path}: the key is not an Ed25519 key")
    return key


def _create(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    create_once(path, pem, mode=0o600)  # if another process won the race, its key stands


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), the form a verifier imports."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key.

    Plain hex on purpose: anyone can reproduce it from the PEM with standard tools
    (`openssl pkey -pubin -in key.pem -outform DER | tail -c 32 | sha256sum`).
    """
    raw = public_key.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()
