"""Staff sign-on (OIDC, code flow + PKCE) against a fake provider that signs real JWTs.

The fake serves discovery, JWKS and the token endpoint over HTTP on a local port; the user's
visit to the authorization endpoint is simulated by `FakeProvider.authorize`, which reads the
authorization URL Balie built and issues a code bound to its nonce and PKCE challenge, as a real
provider would. Clocks are moved, never slept on.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc.jwk import ECKey, Key, RSAKey
from pydantic import SecretStr

from identity.errors import IdentityError
from identity.oidc import (
    AiohttpTransport,
    OidcClaimMissing,
    OidcClient,
    OidcConfig,
    OidcConfigError,
    OidcError,
    OidcIdTokenInvalid,
    OidcLoginRefused,
    OidcNoRole,
    OidcProviderUnavailable,
    OidcStateMismatch,
    OidcTokenRequestFailed,
    StaffIdentity,
)

from oidc_fake import (
    CLERK,
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    REDIRECT_URI,
    ROLE_MAPPING,
    SKEW,
    T0,
    TOKEN_LIFETIME,
    Clock,
    FakeProvider,
    b64url,
    forge,
)


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    # Generated once per module: RSA key generation is the slowest step of these tests.
    rsa = {kid: RSAKey.generate_key(2048, {"kid": kid}) for kid in ("key-1", "key-2", "key-3")}
    return {**rsa, "ec-1": ECKey.generate_key("P-256", {"kid": "ec-1"})}


@pytest.fixture
async def provider(aiohttp_server, keys) -> FakeProvider:
    fake = FakeProvider(keys=keys, clock=Clock(T0))
    server = await aiohttp_server(fake.app())
    fake.issuer = str(server.make_url(REALM))
    return fake


@pytest.fixture
def client_clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_client(provider, http, clock, **settings: Any) -> OidcClient:
    config = OidcConfig(
        **{
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": SecretStr(CLIENT_SECRET),
            "redirect_uri": REDIRECT_URI,
            "role_mapping": ROLE_MAPPING,
            "role_claim": "groups",
            "department_claim": "afdeling",
            "clock_skew": SKEW,
            **settings,
        }
    )
    return OidcClient(config, transport=AiohttpTransport(http), clock=clock)


@pytest.fixture
def client(provider, http, client_clock) -> OidcClient:
    return make_client(provider, http, client_clock)


async def sign_in(client: OidcClient, provider: FakeProvider, **claims: Any) -> StaffIdentity:
    """The whole round trip: begin, the user at the provider, the callback."""
    login = await client.begin_login()
    callback = provider.authorize(login, **claims)
    return await client.complete_login(
        code=callback["code"],
        returned_state=callback["state"],
        expected_state=login.state,
        nonce=login.nonce,
        code_verifier=login.code_verifier,
    )


# --- the happy path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "seen"), [("client_secret_basic", "basic"), ("client_secret_post", "post")]
)
async def test_clerk_signs_in_with_role_and_department(provider, http, client_clock, method, seen):
    client = make_client(provider, http, client_clock, token_endpoint_auth=method)
    identity = await sign_in(client, provider)
    assert identity == StaffIdentity(
        subject=CLERK["sub"],
        employee_id="m.devries",
        display_name="Marleen de Vries",
        roles=frozenset({"clerk"}),
        department="Burgerzaken",
    )
    assert provider.token_requests == [seen]
    assert provider.refusals == []


async def test_several_groups_map_to_several_roles_and_no_department_is_none(client, provider):
    identity = await sign_in(
        client,
        provider,
        groups=["balie-informatiebeheer", "balie-fg", "intranet-gebruikers"],
        afdeling=None,
        name=None,
    )
    assert identity.roles == frozenset({"information_manager", "privacy_officer"})
    assert identity.department is None
    assert identity.display_name == "m.devries"  # no name claim: the employee id stands in


async def test_es256_provider_is_accepted(client, provider):
    provider.published, provider.signing_kid = ["ec-1"], "ec-1"
    identity = await sign_in(client, provider)
    assert identity.roles == frozenset({"clerk"})
    assert (
        json.loads(base64.urlsafe_b64decode(provider.minted[0].split(".")[0] + "=="))["alg"]
        == "ES256"
    )


async def test_authorization_url_carries_pkce_state_and_nonce(client, provider):
    first, second = await client.begin_login(), await client.begin_login()
    query = {k: v[0] for k, v in parse_qs(urlsplit(first.authorization_url).query).items()}
    assert query["scope"] == "openid profile email"
    assert query["state"] == first.state
    assert query["nonce"] == first.nonce
    assert query["code_challenge"] == b64url(hashlib.sha256(first.code_verifier.encode()).digest())
    assert first.code_verifier not in first.authorization_url
    # 43 characters of [A-Za-z0-9] are 256 bits; fresh values for every attempt.
    assert min(len(first.state), len(first.nonce), len(first.code_verifier)) >= 43
    assert {first.state, first.nonce, first.code_verifier}.isdisjoint(
        {second.state, second.nonce, second.code_verifier}
    )
    assert first.code_verifier not in repr(first)


# --- the callback --------------------------------------------------------------------------


@pytest.mark.parametrize("returned", ["another-state", None, "", "stäte", "\ud800"])
async def test_wrong_state_is_refused_and_the_code_is_not_spent(client, provider, returned):
    login = await client.begin_login()
    callback = provider.authorize(login)
    with pytest.raises(OidcStateMismatch) as refused:
        await client.complete_login(
            code=callback["code"],
            returned_state=returned,
            expected_state=login.state,
            nonce=login.nonce,
            code_verifier=login.code_verifier,
        )
    assert refused.value.code == "oidc_state_mismatch"
    assert "start again" in str(refused.value)
    assert provider.token_requests == []  # nothing reached the provider
    identity = await client.complete_login(
        code=callback["code"],
        returned_state=callback["state"],
        expected_state=login.state,
        nonce=login.nonce,
        code_verifier=login.code_verifier,
    )
    assert identity.employee_id == "m.devries"


async def test_session_without_stored_state_never_matches(client, provider):
    with pytest.raises(OidcStateMismatch):
        await client.complete_login(
            code="some-code", returned_state="", expected_state="", nonce="n", code_verifier="v"
        )


async def test_provider_error_on_the_callback_is_a_refused_login(client, provider):
    login = await client.begin_login()
    with pytest.raises(OidcLoginRefused) as refused:
        await client.complete_login(
            code=None,
            returned_state=login.state,
            expected_state=login.state,
            nonce=login.nonce,
            code_verifier=login.code_verifier,
            error="access_denied",
        )
    assert refused.value.code == "oidc_login_refused"
    assert refused.value.provider_error == "access_denied"
    assert "access_denied" in str(refused.value)
    assert provider.token_requests == []


async def test_provider_error_text_is_not_echoed(client, provider):
    login = await client.begin_login()
    with pytest.raises(OidcLoginRefused) as refused:
        await client.complete_login(
            code=None,
            returned_state=login.state,
            expected_state=login.state,
            nonce=login.nonce,
            code_verifier=login.code_verifier,
            error="<script>alert(1)</script>",
        )
    assert refused.value.provider_error == "unknown_error"
    assert "<script>" not in str(refused.value)


async def test_pkce_verifier_mismatch_is_refused_by_the_provider(client, provider):
    login, other = await client.begin_login(), await client.begin_login()
    callback = provider.authorize(login)
    with pytest.raises(OidcTokenRequestFailed) as refused:
        await client.complete_login(
            code=callback["code"],
            returned_state=callback["state"],
            expected_state=login.state,
            nonce=login.nonce,
            code_verifier=other.code_verifier,  # e.g. a code stolen into another session
        )
    assert refused.value.code == "oidc_token_request_failed"
    assert refused.value.provider_error == "invalid_grant"
    assert provider.refusals == ["PKCE verification failed"]


async def test_code_works_only_once(client, provider):
    login = await client.begin_login()
    callback = provider.authorize(login)
    arguments = {
        "code": callback["code"],
        "returned_state": callback["state"],
        "expected_state": login.state,
        "nonce": login.nonce,
        "code_verifier": login.code_verifier,
    }
    await client.complete_login(**arguments)
    with pytest.raises(OidcTokenRequestFailed) as refused:
        await client.complete_login(**arguments)
    assert refused.value.provider_error == "invalid_grant"


async def test_wrong_client_secret_is_reported_as_refused_token_request(
    provider, http, client_clock
):
    client = make_client(provider, http, client_clock, client_secret=SecretStr("not-the-secret"))
    with pytest.raises(OidcTokenRequestFailed) as refused:
        await sign_in(client, provider)
    assert refused.value.provider_error == "invalid_client"
    assert "not-the-secret" not in str(refused.value)


# --- the id token --------------------------------------------------------------------------


def _hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(key, message, hashlib.sha256).digest()


def _rsa_sha256(key: Key) -> Callable[[bytes], bytes]:
    private = key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    return lambda message: private.sign(message, padding.PKCS1v15(), hashes.SHA256())


async def test_token_signed_with_another_key_is_refused(client, provider, keys):
    header = {"alg": "RS256", "kid": "key-1"}
    # The hand-made token is accepted when signed by the real key-1, so the refusal below is
    # about the key and nothing else.
    provider.mint = lambda claims: forge(header, claims, _rsa_sha256(keys["key-1"]))
    assert (await sign_in(client, provider)).employee_id == "m.devries"
    provider.mint = lambda claims: forge(header, claims, _rsa_sha256(keys["key-2"]))
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider)
    assert refused.value.code == "oidc_id_token_invalid"
    assert refused.value.reason == "signature"
    assert "signature does not verify" in str(refused.value)


async def test_alg_none_is_refused(client, provider):
    provider.mint = lambda claims: forge({"alg": "none", "kid": "key-1"}, claims, lambda _: b"")
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider)
    assert refused.value.reason == "algorithm"
    assert "'none'" in str(refused.value)


async def test_hs256_signed_with_the_public_key_is_refused(client, provider, keys):
    public_pem = keys["key-1"].as_pem(private=False)
    public_jwk = json.dumps(keys["key-1"].as_dict(private=False)).encode()
    for secret in (public_pem, public_jwk):
        provider.mint = lambda claims, secret=secret: forge(
            {"alg": "HS256", "kid": "key-1"}, claims, _hmac_sha256(secret)
        )
        with pytest.raises(OidcIdTokenInvalid) as refused:
            await sign_in(client, provider)
        assert refused.value.reason == "algorithm"
        assert "HS256" in str(refused.value)


@pytest.mark.parametrize(
    ("claims", "reason", "named"),
    [
        ({"iss": "https://login.evil.example/realms/gemeente"}, "issuer", "evil.example"),
        ({"aud": "another-app"}, "audience", CLIENT_ID),
        ({"aud": [CLIENT_ID, "another-app"]}, "audience", "'azp'"),
        ({"aud": [CLIENT_ID, "another-app"], "azp": "another-app"}, "audience", "another-app"),
        ({"sub": ""}, "subject", "subject"),
        ({"exp": "tomorrow"}, "malformed", "'exp'"),
        ({"exp": None}, "malformed", "'exp'"),
        ({"iat": None}, "malformed", "'iat'"),
    ],
)
async def test_token_with_wrong_claims_is_refused(client, provider, claims, reason, named):
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider, **claims)
    assert refused.value.reason == reason
    assert named in str(refused.value)


async def test_several_audiences_with_azp_naming_us_are_accepted(client, provider):
    identity = await sign_in(client, provider, aud=[CLIENT_ID, "another-app"], azp=CLIENT_ID)
    assert identity.roles == frozenset({"clerk"})


async def test_expired_token_is_refused_but_clock_skew_is_allowed(client, provider, client_clock):
    # The provider mints at T0 with a 5-minute lifetime; Balie's clock runs ahead.
    client_clock.advance(TOKEN_LIFETIME + SKEW - dt.timedelta(seconds=1))
    assert (await sign_in(client, provider)).employee_id == "m.devries"
    client_clock.advance(dt.timedelta(seconds=1))
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider)
    assert refused.value.reason == "expired"
    assert "expired" in str(refused.value)


async def test_token_from_the_future_is_refused(client, provider):
    provider.clock.advance(SKEW + dt.timedelta(seconds=1))
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider)
    assert refused.value.reason == "issued_in_future"


async def test_token_not_yet_valid_is_refused(client, provider):
    nbf = int((T0 + SKEW + dt.timedelta(seconds=5)).timestamp())
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider, nbf=nbf)
    assert refused.value.reason == "not_yet_valid"


async def test_nonce_of_another_login_is_refused(client, provider):
    login, other = await client.begin_login(), await client.begin_login()
    callback = provider.authorize(login)
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await client.complete_login(
            code=callback["code"],
            returned_state=callback["state"],
            expected_state=login.state,
            nonce=other.nonce,
            code_verifier=login.code_verifier,
        )
    assert refused.value.reason == "nonce"
    assert "nonce" in str(refused.value)


# --- keys ----------------------------------------------------------------------------------


async def test_key_rotation_refetches_the_key_set_once(client, provider):
    await sign_in(client, provider)
    await sign_in(client, provider)
    assert provider.jwks_requests == 1  # cached between sign-ins
    provider.published, provider.signing_kid = ["key-1", "key-2"], "key-2"
    identity = await sign_in(client, provider)
    assert identity.roles == frozenset({"clerk"})
    assert provider.jwks_requests == 2


async def test_key_the_provider_never_published_is_refused_after_one_refetch(client, provider):
    await sign_in(client, provider)
    provider.signing_kid = "key-3"
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider)
    assert refused.value.reason == "unknown_key"
    assert "key-3" in str(refused.value)
    assert provider.jwks_requests == 2


async def test_withdrawn_key_stops_verifying_within_an_hour(client, provider, client_clock):
    await sign_in(client, provider)
    # The provider withdraws key-1 (say it leaked); a token signed with it must stop working.
    provider.published = ["key-2"]
    hour = dt.timedelta(hours=1, seconds=1)
    provider.clock.advance(hour)
    client_clock.advance(hour)
    with pytest.raises(OidcIdTokenInvalid) as refused:
        await sign_in(client, provider)
    assert refused.value.reason == "unknown_key"


# --- roles and claims ----------------------------------------------------------------------


async def test_user_without_mapped_role_is_refused(client, provider):
    with pytest.raises(OidcNoRole) as refused:
        await sign_in(client, provider, groups=["intranet-gebruikers", "vergunningen"])
    assert refused.value.code == "oidc_no_role"
    assert refused.value.subject == CLERK["sub"]
    assert "no Balie role" in str(refused.value)
    assert "'groups'" in str(refused.value)
    assert "m.devries" not in str(refused.value)  # error messages end up in logs


async def test_missing_employee_id_claim_is_named(client, provider):
    with pytest.raises(OidcClaimMissing) as refused:
        await sign_in(client, provider, preferred_username=None)
    assert "'preferred_username'" in str(refused.value)


# --- configuration and provider ------------------------------------------------------------


async def test_check_config_passes_against_a_matching_provider(client, provider):
    await client.check_config()
    assert provider.jwks_requests == 1


async def test_check_config_refuses_a_provider_with_another_issuer(client, provider):
    provider.advertised_issuer = provider.issuer + "/"
    with pytest.raises(OidcConfigError) as refused:
        await client.check_config()
    assert refused.value.code == "oidc_config_invalid"
    assert repr(provider.issuer + "/") in str(refused.value)
    assert repr(provider.issuer) in str(refused.value)
    with pytest.raises(OidcConfigError):
        await client.begin_login()  # and nobody is sent to that provider


async def test_unreachable_provider_is_reported(http, client_clock, unused_tcp_port):
    port = unused_tcp_port
    config = OidcConfig(
        issuer=f"http://127.0.0.1:{port}/realms/gemeente",
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        redirect_uri=REDIRECT_URI,
        role_mapping=ROLE_MAPPING,
    )
    client = OidcClient(config, transport=AiohttpTransport(http), clock=client_clock)
    with pytest.raises(OidcProviderUnavailable) as refused:
        await client.check_config()
    assert refused.value.code == "oidc_provider_unavailable"
    assert f"127.0.0.1:{port}" in str(refused.value)


def test_errors_belong_to_the_identity_hierarchy():
    for error in (OidcStateMismatch, OidcNoRole, OidcIdTokenInvalid, OidcConfigError):
        assert issubclass(error, OidcError)
        assert issubclass(error, IdentityError)


async def test_no_token_code_or_secret_reaches_the_logs(client, provider, caplog):
    caplog.set_level(logging.DEBUG)
    login = await client.begin_login()
    callback = provider.authorize(login)
    await client.complete_login(
        code=callback["code"],
        returned_state=callback["state"],
        expected_state=login.state,
        nonce=login.nonce,
        code_verifier=login.code_verifier,
    )
    provider.signing_kid = "key-3"  # and a failure, which logs more
    with pytest.raises(OidcIdTokenInvalid):
        await sign_in(client, provider)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # the client does log; it just must not log these
    for value in [*provider.minted, callback["code"], login.code_verifier, CLIENT_SECRET]:
        assert value not in logged
