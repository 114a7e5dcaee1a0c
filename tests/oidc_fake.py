"""A fake OpenID Connect provider for the tests: discovery, JWKS and a token endpoint that
signs real JWTs, and `authorize` standing in for the user at the provider's login page."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, Key

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
CLIENT_ID = "balie-digitale-balie"
CLIENT_SECRET = "test-only-client-secret-4c1f"
REDIRECT_URI = "https://balie.example.nl/auth/oidc/callback"
REALM = "/realms/gemeente"
TOKEN_LIFETIME = dt.timedelta(minutes=5)
SKEW = dt.timedelta(seconds=60)
ROLE_MAPPING = {
    "balie-medewerkers": "clerk",
    "balie-informatiebeheer": "information_manager",
    "balie-fg": "privacy_officer",
}
CLERK = {
    "sub": "7d1e5c1a-2f0b-4c36-9a57-0d7f1d2e8b11",
    "preferred_username": "m.devries",
    "name": "Marleen de Vries",
    "groups": ["intranet-gebruikers", "balie-medewerkers"],
    "afdeling": "Burgerzaken",
}


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS assembled by hand, the way an attacker would, bypassing any library."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"


@dataclass
class IssuedCode:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    claims: dict[str, Any]


@dataclass
class FakeProvider:
    """Discovery, JWKS and token endpoint of an OpenID Connect provider, in one aiohttp app."""

    keys: dict[str, Key]
    clock: Clock
    issuer: str = ""
    published: list[str] = field(default_factory=lambda: ["key-1"])
    signing_kid: str = "key-1"
    advertised_issuer: str | None = None  # what discovery claims, when a test wants it wrong
    # Replaces the signing step for tests that hand Balie a forged token.
    mint: Callable[[dict[str, Any]], str] | None = None
    codes: dict[str, IssuedCode] = field(default_factory=dict)
    token_requests: list[str] = field(default_factory=list)  # "basic"/"post" per request
    refusals: list[str] = field(default_factory=list)
    jwks_requests: int = 0
    minted: list[str] = field(default_factory=list)
    redirect_uri: str = REDIRECT_URI  # where Balie's callback lives

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"{REALM}/.well-known/openid-configuration", self.discovery)
        app.router.add_get(f"{REALM}/protocol/certs", self.jwks)
        app.router.add_post(f"{REALM}/protocol/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.advertised_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/protocol/auth",
                "token_endpoint": f"{self.issuer}/protocol/token",
                "jwks_uri": f"{self.issuer}/protocol/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        keys = [self.keys[kid].as_dict(private=False) for kid in self.published]
        return web.json_response({"keys": keys})

    def authorize(self, login: Any, **claims: Any) -> dict[str, str]:
        """The user signs in at the provider: returns the query of the redirect back to Balie."""
        url = urlsplit(login.authorization_url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{self.issuer}/protocol/auth"
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["redirect_uri"] == self.redirect_uri
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(32)
        self.codes[code] = IssuedCode(
            client_id=query["client_id"],
            redirect_uri=query["redirect_uri"],
            nonce=query["nonce"],
            code_challenge=query["code_challenge"],
            claims={**CLERK, **claims},
        )
        return {"code": code, "state": query["state"]}

    def _refuse(self, status: int, error: str, why: str) -> web.Response:
        self.refusals.append(why)
        return web.json_response({"error": error, "error_description": why}, status=status)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            pair = base64.b64decode(authorization.removeprefix("Basic ")).decode()
            client_id, _, client_secret = (unquote_plus(p) for p in pair.partition(":"))
            self.token_requests.append("basic")
        else:
            client_id, client_secret = str(form.get("client_id")), str(form.get("client_secret"))
            self.token_requests.append("post")
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return self._refuse(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != "authorization_code":
            return self._refuse(400, "unsupported_grant_type", "grant type")
        issued = self.codes.pop(str(form.get("code")), None)  # a code works once
        if issued is None:
            return self._refuse(400, "invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != issued.redirect_uri or client_id != issued.client_id:
            return self._refuse(400, "invalid_grant", "redirect_uri or client differs")
        verifier = str(form.get("code_verifier", ""))
        challenge = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        if challenge != issued.code_challenge:
            return self._refuse(400, "invalid_grant", "PKCE verification failed")
        now = int(self.clock().timestamp())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + int(TOKEN_LIFETIME.total_seconds()),
            "nonce": issued.nonce,
            **issued.claims,
        }
        claims = {k: v for k, v in claims.items() if v is not None}  # None: leave the claim out
        id_token = self.mint(claims) if self.mint else self.sign(claims)
        self.minted.append(id_token)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(32),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        key = self.keys[kid or self.signing_kid]
        alg = "ES256" if isinstance(key, ECKey) else "RS256"
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])
