"""Checking an id token: which key, which algorithm, whose signature, which claims.

Pure functions over an already fetched key set, so that every refusal can be tested without a
network. The order matters: nothing in the payload is trusted before the signature is.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

from identity.oidc.errors import OidcIdTokenInvalid, OidcProviderUnavailable

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "IdToken",
    "check_claims",
    "parse_id_token",
    "parse_key_set",
    "select_key",
    "verify_signature",
]

# Asymmetric only. "none" needs no key at all, and HS256 would be verified with whatever key we
# hold, which for us is the provider's *public* key: anyone could sign with it.
ACCEPTED_ALGORITHMS: Final = ("RS256", "ES256")


@dataclass(frozen=True, slots=True)
class IdToken:
    """A parsed, not yet verified id token: its JWS structure and the two header fields we use."""

    compact: jws.CompactSignature
    alg: str
    kid: str | None


def parse_key_set(body: object, url: str) -> KeySet:
    """The signature keys of a JWKS document; raises OidcProviderUnavailable if it has none."""
    if not isinstance(body, Mapping) or not isinstance(body.get("keys"), list):
        raise OidcProviderUnavailable(f"the key set at {url} is not a JWKS document")
    # Keys marked for encryption are not ours to verify with; unknown key types are skipped.
    usable = [
        dict(k) for k in body["keys"] if isinstance(k, Mapping) and k.get("use", "sig") == "sig"
    ]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcProviderUnavailable(
            f"the key set at {url} holds no usable signature key ({type(exc).__name__})"
        ) from exc


def parse_id_token(raw: str) -> IdToken:
    """Split the compact JWS and read its header.

    Raises OidcIdTokenInvalid with reason "malformed", or "algorithm" for anything but
    RS256/ES256 (including "none" and every HS*).
    """
    try:
        compact = jws.extract_compact(raw.encode("ascii"))
    except (JoseError, ValueError, TypeError):
        raise OidcIdTokenInvalid("the id token is not a signed JWT", reason="malformed") from None
    header = compact.headers()
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGORITHMS:
        raise OidcIdTokenInvalid(
            f"the id token is signed with algorithm {str(alg)[:20]!r}; "
            f"only {', '.join(ACCEPTED_ALGORITHMS)} are accepted",
            reason="algorithm",
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise OidcIdTokenInvalid("the id token's key id is not a string", reason="malformed")
    return IdToken(compact=compact, alg=alg, kid=kid)


def _fits(key: Key, alg: str) -> bool:
    if key.get("use", "sig") != "sig" or key.alg not in (None, alg):
        return False
    if alg == "RS256":
        return isinstance(key, RSAKey)
    return isinstance(key, ECKey) and key.get("crv") == "P-256"


def select_key(keys: KeySet, token: IdToken) -> Key | None:
    """The key that should have signed `token`, or None if the key set has no such key.

    Without a `kid` the token is only accepted when exactly one key could have signed it;
    guessing among several would make the choice of key the attacker's.
    """
    candidates = [k for k in keys if _fits(k, token.alg)]
    if token.kid is None:
        return candidates[0] if len(candidates) == 1 else None
    for key in candidates:
        if key.kid == token.kid:
            return key
    return None


def verify_signature(token: IdToken, key: Key) -> dict[str, object]:
    """The claims of `token` once its signature checks out with `key`.

    Raises OidcIdTokenInvalid with reason "signature", or "malformed" for a payload that is
    not a JSON object.
    """
    try:
        valid = jws.validate_compact(token.compact, key, algorithms=[token.alg])
    except JoseError:
        valid = False
    if not valid:
        raise OidcIdTokenInvalid(
            f"the id token's signature does not verify with the provider's key {token.kid!r}",
            reason="signature",
        )
    try:
        claims = json.loads(token.compact.payload)
    except ValueError:
        claims = None
    if not isinstance(claims, dict):
        raise OidcIdTokenInvalid("the id token's payload is not a JSON object", reason="malformed")
    return claims


def _time_claim(claims: Mapping[str, object], name: str) -> dt.datetime:
    value = claims.get(name)
    # bool is an int subclass; `"exp": true` is not a time.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OidcIdTokenInvalid(
            f"the id token's {name!r} claim is missing or not a number", reason="malformed"
        )
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise OidcIdTokenInvalid(
            f"the id token's {name!r} claim is out of range", reason="malformed"
        ) from None


def check_claims(
    claims: Mapping[str, object],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: dt.datetime,
    skew: dt.timedelta,
) -> None:
    """Apply the id token checks of OpenID Connect Core 1.0, section 3.1.3.7.

    `iss` exactly `issuer`; `aud` contains `client_id` and, with several audiences, `azp` names
    us; `exp`, `iat` and `nbf` hold at `now` give or take `skew`; `nonce` equals the one of this
    login; `sub` is present. Raises OidcIdTokenInvalid whose `reason` names the failed check.
    """
    if claims.get("iss") != issuer:
        raise OidcIdTokenInvalid(
            f"the id token was issued by {str(claims.get('iss'))[:200]!r}, not by {issuer!r}",
            reason="issuer",
        )

    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise OidcIdTokenInvalid(
            f"the id token is not meant for client {client_id!r}", reason="audience"
        )
    azp = claims.get("azp")
    # With several audiences another client could have been the one the token was issued to
    # and then replayed it to us; `azp` says which one.
    if len(audiences) > 1 and azp is None:
        raise OidcIdTokenInvalid(
            f"the id token is meant for several audiences ({len(audiences)}) and does not "
            "say which of them it was issued to (no 'azp' claim)",
            reason="audience",
        )
    if azp is not None and azp != client_id:
        raise OidcIdTokenInvalid(
            f"the id token was issued to party {str(azp)[:200]!r}, not to {client_id!r}",
            reason="audience",
        )

    expires = _time_claim(claims, "exp")
    issued = _time_claim(claims, "iat")
    not_before = _time_claim(claims, "nbf") if "nbf" in claims else None
    if now >= expires + skew:
        raise OidcIdTokenInvalid(
            f"the id token expired at {expires.isoformat()} (now {now.isoformat()})",
            reason="expired",
        )
    if issued > now + skew:
        raise OidcIdTokenInvalid(
            f"the id token claims to be issued at {issued.isoformat()}, after now "
            f"({now.isoformat()}); check the clocks",
            reason="issued_in_future",
        )
    if not_before is not None and not_before > now + skew:
        raise OidcIdTokenInvalid(
            f"the id token is not valid before {not_before.isoformat()}", reason="not_yet_valid"
        )

    token_nonce = claims.get("nonce")
    # Constant time: the nonce is what binds this token to the browser session that asked.
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode("utf-8", "surrogatepass"), nonce.encode("utf-8", "surrogatepass")
    ):
        raise OidcIdTokenInvalid(
            "the id token's nonce does not match this sign-in attempt", reason="nonce"
        )

    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise OidcIdTokenInvalid("the id token names no subject", reason="subject")
