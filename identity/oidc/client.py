"""Staff sign-in with the municipality's OpenID Connect provider: authorization code + PKCE.

Two steps, with the browser in between:

1. `begin_login()` gives the URL to redirect to, plus `state`, `nonce` and `code_verifier`, which
   the caller keeps in the server-side session (never in a cookie or a URL of its own).
2. The provider redirects back; `complete_login(...)` checks `state`, redeems the code at the
   token endpoint with the verifier, verifies the id token and maps its claims to a
   StaffIdentity.

Tokens are used once and dropped: nothing here stores or logs them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import quote_plus, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.jwk import KeySet
from yarl import URL

from identity.oidc.config import OidcConfig
from identity.oidc.errors import (
    OidcIdTokenInvalid,
    OidcLoginRefused,
    OidcProviderUnavailable,
    OidcStateMismatch,
    OidcTokenRequestFailed,
)
from identity.oidc.id_token import (
    check_claims,
    parse_id_token,
    parse_key_set,
    select_key,
    verify_signature,
)
from identity.oidc.metadata import ProviderMetadata
from identity.oidc.staff import StaffIdentity, staff_identity_from_claims
from identity.oidc.transport import OidcTransport

__all__ = ["Clock", "LoginStart", "OidcClient", "utc_now"]

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
_T = TypeVar("_T")

# 43 characters from 62 give 256 bits; RFC 7636 wants a verifier of 43 to 128 characters.
_STATE_LENGTH = 43
_VERIFIER_LENGTH = 64
# Keys the provider has withdrawn (compromised, retired) must stop verifying tokens without a
# restart; endpoints practically never move, but a day-old copy costs one request to renew.
_JWKS_MAX_AGE = dt.timedelta(hours=1)
_METADATA_MAX_AGE = dt.timedelta(days=1)
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def _utf8(text: str) -> bytes:
    # surrogatepass: a forged query string may hold lone surrogates, which must compare
    # unequal rather than crash the comparison.
    return text.encode("utf-8", "surrogatepass")


def _error_code(value: object) -> str:
    # An OAuth error code is a short token (RFC 6749 section 5.2); anything else the provider,
    # or whoever forged the callback URL, put there is not repeated in our messages.
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else "unknown_error"


@dataclass(frozen=True, slots=True)
class LoginStart:
    """Where to send the browser, and the three values to keep server-side until the callback."""

    authorization_url: str
    state: str
    nonce: str
    # The only one of the three that is not in the URL, and what makes a stolen code useless.
    code_verifier: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Cached(Generic[_T]):
    value: _T
    fetched_at: dt.datetime


class OidcClient:
    """The staff OpenID Connect client for one provider; one instance per application.

    Discovery metadata and the provider's keys are cached in the instance, so the instance
    should live as long as the application (it holds no connection; the transport does).
    """

    def __init__(
        self, config: OidcConfig, *, transport: OidcTransport, clock: Clock = utc_now
    ) -> None:
        self.config = config
        self._transport = transport
        self._clock = clock
        self._metadata: _Cached[ProviderMetadata] | None = None
        self._keys: _Cached[KeySet] | None = None
        # One fetch at a time: a burst of sign-ins after a restart makes one discovery request.
        self._lock = asyncio.Lock()

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now

    async def discover(self, *, refresh: bool = False) -> ProviderMetadata:
        """The provider's metadata, fetched on first use (or with `refresh`) and then cached.

        Raises OidcConfigError when the provider is not the configured issuer or lacks what
        Balie needs, OidcProviderUnavailable when it cannot be fetched.
        """
        async with self._lock:
            now = self._now()
            cached = self._metadata
            if cached is None or refresh or now - cached.fetched_at > _METADATA_MAX_AGE:
                url = self.config.discovery_url
                reply = await self._transport.get(url)
                if reply.status != 200:
                    raise OidcProviderUnavailable(f"{url} answered HTTP {reply.status}")
                metadata = ProviderMetadata.from_document(reply.body, self.config)
                logger.info("loaded OpenID Connect metadata from %s", urlsplit(url).netloc)
                cached = self._metadata = _Cached(metadata, now)
            return cached.value

    async def _key_set(self, *, refresh: bool) -> KeySet:
        metadata = await self.discover()
        async with self._lock:
            now = self._now()
            cached = self._keys
            if cached is None or refresh or now - cached.fetched_at > _JWKS_MAX_AGE:
                reply = await self._transport.get(metadata.jwks_uri)
                if reply.status != 200:
                    raise OidcProviderUnavailable(
                        f"{metadata.jwks_uri} answered HTTP {reply.status}"
                    )
                cached = self._keys = _Cached(parse_key_set(reply.body, metadata.jwks_uri), now)
            return cached.value

    async def check_config(self) -> None:
        """Fetch the provider's metadata and keys afresh and check them against the config.

        Raises OidcConfigError for a mismatch (e.g. the provider's issuer differs from the
        configured one) and OidcProviderUnavailable when the provider cannot be reached.
        """
        await self.discover(refresh=True)
        await self._key_set(refresh=True)

    async def begin_login(self) -> LoginStart:
        """A fresh authorization request: 256-bit random state and nonce, PKCE S256.

        Raises what `discover()` raises, because the URL needs the authorization endpoint.
        """
        metadata = await self.discover()
        state = generate_token(_STATE_LENGTH)
        nonce = generate_token(_STATE_LENGTH)
        verifier = generate_token(_VERIFIER_LENGTH)
        url = URL(metadata.authorization_endpoint).extend_query(
            response_type="code",
            client_id=self.config.client_id,
            redirect_uri=self.config.redirect_uri,
            scope=self.config.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return LoginStart(
            authorization_url=str(url), state=state, nonce=nonce, code_verifier=verifier
        )

    async def complete_login(
        self,
        *,
        code: str | None,
        returned_state: str | None,
        expected_state: str,
        nonce: str,
        code_verifier: str,
        error: str | None = None,
    ) -> StaffIdentity:
        """Finish the sign-in that `begin_login()` started; pass the callback's `code`,
        `state` (as `returned_state`) and `error` query parameters, and the three values kept
        in the session.

        Raises, in the order checked: OidcStateMismatch (callback not for this session),
        OidcLoginRefused (provider sent `error`, or no code), OidcTokenRequestFailed (code
        refused, e.g. a wrong PKCE verifier), OidcProviderUnavailable, OidcIdTokenInvalid
        (signature, issuer, audience, times, nonce), OidcClaimMissing and OidcNoRole.
        """
        # First, before anything from the callback is believed: a forged or stale callback
        # (login CSRF) must not reach the provider or show the provider's error to the user.
        if (
            not expected_state
            or returned_state is None
            or not hmac.compare_digest(_utf8(returned_state), _utf8(expected_state))
        ):
            raise OidcStateMismatch(
                "this sign-in response does not belong to the sign-in started in this browser; "
                "please start again"
            )
        if error is not None:
            provider_error = _error_code(error)
            raise OidcLoginRefused(
                f"the identity provider did not sign you in ({provider_error})",
                provider_error=provider_error,
            )
        if not code:
            raise OidcLoginRefused(
                "the identity provider sent neither a code nor an error",
                provider_error="invalid_response",
            )
        metadata = await self.discover()
        raw_token = await self._redeem(metadata, code=code, code_verifier=code_verifier)
        claims = await self._verified_claims(raw_token, nonce=nonce)
        return staff_identity_from_claims(claims, self.config)

    async def _redeem(self, metadata: ProviderMetadata, *, code: str, code_verifier: str) -> str:
        """Exchange the code (and PKCE verifier) for tokens; return the raw id token."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": code_verifier,
        }
        secret = self.config.client_secret.get_secret_value()
        headers: dict[str, str] = {}
        if self.config.token_endpoint_auth == "client_secret_post":  # noqa: S105 - a method name
            form |= {"client_id": self.config.client_id, "client_secret": secret}
        else:
            # RFC 6749 section 2.3.1: form-encode both parts before joining them.
            pair = f"{quote_plus(self.config.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        reply = await self._transport.post_form(metadata.token_endpoint, form, headers)
        body = reply.body if isinstance(reply.body, Mapping) else {}
        if reply.status >= 500:
            raise OidcProviderUnavailable(
                f"the token endpoint {metadata.token_endpoint} answered HTTP {reply.status}"
            )
        if reply.status != 200:
            provider_error = _error_code(body.get("error"))
            logger.warning(
                "token endpoint refused the code: HTTP %s, %s", reply.status, provider_error
            )
            raise OidcTokenRequestFailed(
                f"the identity provider refused to complete the sign-in ({provider_error})",
                provider_error=provider_error,
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise OidcTokenRequestFailed(
                "the identity provider's token response holds no id token",
                provider_error="missing_id_token",
            )
        return id_token

    async def _verified_claims(self, raw_token: str, *, nonce: str) -> dict[str, object]:
        token = parse_id_token(raw_token)
        key = select_key(await self._key_set(refresh=False), token)
        if key is None:
            # Providers rotate keys by publishing a new one and signing with it shortly after;
            # one refetch per sign-in is enough, and the id token came from the provider over
            # TLS, so nobody outside can make us refetch in a loop.
            logger.info("id token signed with unknown key %r; refetching the key set", token.kid)
            key = select_key(await self._key_set(refresh=True), token)
        if key is None:
            raise OidcIdTokenInvalid(
                f"the id token is signed with key {str(token.kid)[:100]!r}, which the provider "
                "does not publish",
                reason="unknown_key",
            )
        claims = verify_signature(token, key)
        check_claims(
            claims,
            issuer=self.config.issuer,
            client_id=self.config.client_id,
            nonce=nonce,
            now=self._now(),
            skew=self.config.clock_skew,
        )
        return claims
