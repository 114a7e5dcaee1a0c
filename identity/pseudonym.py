"""Pseudonyms for BSNs: keyed, so that nine digits cannot be guessed back from a hash."""

from __future__ import annotations

import hashlib
import hmac

from identity.errors import InvalidBsn

__all__ = ["bsn_pseudonym", "is_valid_bsn", "pseudonyms_match"]


def is_valid_bsn(bsn: str) -> bool:
    """Nine digits passing the eleven-test (elfproef) used for Dutch citizen service numbers."""
    if len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(bsn[:8], range(9, 1, -1), strict=True))
    total -= int(bsn[8])
    return total % 11 == 0 and bsn != "000000000"


def bsn_pseudonym(key: bytes, bsn: str) -> str:
    """HMAC-SHA256(key, "bsn:" + bsn) as hex. Raises InvalidBsn for an invalid number.

    A plain SHA-256 of a nine-digit number is reversed by trying all 10^9 of them; a key
    kept outside the database makes that impossible.
    """
    if not is_valid_bsn(bsn):
        raise InvalidBsn("that is not a valid BSN (nine digits passing the eleven-test)")
    return hmac.new(key, b"bsn:" + bsn.encode("ascii"), hashlib.sha256).hexdigest()


def pseudonyms_match(a: str, b: str) -> bool:
    """Compare two pseudonyms in constant time."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
