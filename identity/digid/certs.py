"""Signing keys and certificates for SAML: generated for dev/test, loaded from PEM otherwise.

Development and test installations generate a self-signed pair into the data directory at
first start (so no key is ever committed); production uses the PKIoverheid certificate the
municipality registered with Logius and only loads it.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from identity.digid.errors import DigidConfigError

__all__ = [
    "KeyPair",
    "check_key_pair",
    "ensure_key_pair",
    "generate_key_pair",
    "load_certificate",
    "load_key_pair",
]

_MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A PEM private key and the PEM certificate of its public key. Never prints the key."""

    key_pem: str = field(repr=False)
    cert_pem: str

    def __post_init__(self) -> None:
        check_key_pair(self.key_pem, self.cert_pem)


def check_key_pair(key_pem: str, cert_pem: str) -> None:
    """Raise DigidConfigError unless both parse, the key is RSA >= 2048 bits and they match."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise DigidConfigError("the private key is not an unencrypted PEM private key") from None
    public = load_certificate(cert_pem).public_key()
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _MIN_RSA_BITS:
        raise DigidConfigError(f"the private key must be RSA of at least {_MIN_RSA_BITS} bits")
    if not isinstance(public, rsa.RSAPublicKey) or (
        key.public_key().public_numbers() != public.public_numbers()
    ):
        raise DigidConfigError("the certificate does not belong to the private key")


def load_certificate(cert_pem: str) -> x509.Certificate:
    """Parse one PEM certificate; raises DigidConfigError if it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise DigidConfigError("the certificate is not a PEM X.509 certificate") from None
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise DigidConfigError("the certificate does not hold an RSA public key")
    return cert


def generate_key_pair(
    *, common_name: str, now: dt.datetime, valid_for: dt.timedelta, key_size: int = 3072
) -> KeyPair:
    """A fresh RSA key and a self-signed certificate valid from `now` (minus a day of slack)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        # A day of slack so that a peer whose clock lags still accepts the certificate.
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return KeyPair(key_pem=key_pem, cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode())


def load_key_pair(key_path: Path, cert_path: Path) -> KeyPair:
    """Read a PEM key and certificate; raises DigidConfigError if unreadable or unmatched."""
    try:
        key_pem = key_path.read_text("ascii")
        cert_pem = cert_path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise DigidConfigError(f"cannot read key pair {key_path.name}/{cert_path.name}") from err
    return KeyPair(key_pem=key_pem, cert_pem=cert_pem)


def ensure_key_pair(
    directory: Path,
    *,
    name: str,
    common_name: str,
    now: dt.datetime,
    valid_for: dt.timedelta = dt.timedelta(days=3650),
    key_size: int = 3072,
) -> KeyPair:
    """Load `<name>.key.pem` and `<name>.cert.pem` from `directory`, generating them if absent.

    For development and tests only. Files are created with mode 0600. A half-written pair
    (one of the two files missing) is replaced by a fresh one. Raises DigidConfigError if an
    existing pair is unusable.
    """
    key_path = directory / f"{name}.key.pem"
    cert_path = directory / f"{name}.cert.pem"
    if key_path.exists() and cert_path.exists():
        return load_key_pair(key_path, cert_path)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = generate_key_pair(
        common_name=common_name, now=now, valid_for=valid_for, key_size=key_size
    )
    # A crash between the two writes leaves one file; the next start then makes a fresh pair.
    _write_private(cert_path, pair.cert_pem)
    _write_private(key_path, pair.key_pem)
    return pair


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
