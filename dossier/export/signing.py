"""The installation's Ed25519 export key: it signs the manifest of every package.

The private key lives next to the KEKs, as `export-signing.key` (PEM, PKCS#8, unencrypted,
mode 0600) in the key directory. An archive verifies packages with the public half, which
`balie keys status` prints together with a fingerprint that people can compare by eye.

As with KEKs, the key is made on first use only in dev and test. In production a missing key
is an error: a node that silently minted its own key would sign packages that no archive can
verify against the key it was given. An operator can create it ahead with
`balie keys create-export-key` (or `openssl genpkey -algorithm ed25519`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dossier.crypto.signing_keys import key_fingerprint, load_signing_key, public_key_pem
from dossier.export.errors import ExportConfigError

__all__ = [
    "EXPORT_KEY_FILE",
    "export_key_path",
    "key_fingerprint",
    "load_export_key",
    "load_public_key_pem",
    "public_key_pem",
]

EXPORT_KEY_FILE = "export-signing.key"


def export_key_path(key_dir: Path) -> Path:
    """Where the export key lives in `key_dir`."""
    return key_dir / EXPORT_KEY_FILE


def load_export_key(key_dir: Path, *, create: bool) -> Ed25519PrivateKey:
    """The installation's export signing key from `key_dir`.

    With `create` (dev and test) a missing key is generated and stored atomically first; two
    processes racing to create it end up with the same key (the first one linked wins).
    Raises ExportConfigError naming the file when it is missing (and not `create`), unreadable,
    or not an unencrypted Ed25519 private key in PEM.
    """
    return load_signing_key(
        export_key_path(key_dir),
        create=create,
        label="export signing key",
        create_hint="`balie keys create-export-key`",
        error=ExportConfigError,
    )


def load_public_key_pem(data: bytes, *, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; raises ExportConfigError naming `source` otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ExportConfigError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ExportConfigError(f"{source}: the public key is not an Ed25519 key")
    return key
