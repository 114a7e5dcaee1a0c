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

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dossier.export.errors import ExportConfigError
from dossier.fsutil import fsync_dir

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
    path = export_key_path(key_dir)
    if create and not path.exists():
        _create(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportConfigError(
            f"{path}: the export signing key is missing; create it with "
            "`balie keys create-export-key`"
        ) from None
    except OSError as exc:
        raise ExportConfigError(f"{path}: cannot read the export signing key ({exc})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ExportConfigError(
            f"{path}: not an unencrypted PEM private key (expected Ed25519, PKCS#8)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ExportConfigError(f"{path}: the key is not an Ed25519 key")
    return key


def _create(path: Path) -> None:
    # Same pattern as FileKeyring.create: write under a temporary name with mode 0600 from the
    # start, fsync, then link into place so nobody ever reads half a key.
    pem = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race: its key stands
    finally:
        tmp.unlink()
    fsync_dir(path.parent)


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), the form an archive imports."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def load_public_key_pem(data: bytes, *, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; raises ExportConfigError naming `source` otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ExportConfigError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ExportConfigError(f"{source}: the public key is not an Ed25519 key")
    return key


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key.

    Plain hex on purpose: an archivist can reproduce it from the PEM with standard tools
    (`openssl pkey -pubin -in key.pem -outform DER | tail -c 32 | sha256sum`).
    """
    raw = public_key.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()
