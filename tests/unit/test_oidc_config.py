"""Staff sign-on settings refuse mistakes at start-up and never print the client secret."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp import ClientSession, web
from pydantic import SecretStr

from identity.oidc import AiohttpTransport, OidcConfig, OidcConfigError, OidcProviderUnavailable
from identity.oidc.transport import MAX_REPLY_BYTES

SECRET = "very-secret-client-secret-9b1"


def config(**changes: Any) -> OidcConfig:
    values: dict[str, Any] = {
        "issuer": "https://login.gemeente.example/realms/medewerkers",
        "client_id": "balie",
        "client_secret": SecretStr(SECRET),
        "redirect_uri": "https://balie.gemeente.example/auth/oidc/callback",
        "role_mapping": {"balie-medewerkers": "clerk"},
    }
    return OidcConfig(**{**values, **changes})


def test_defaults():
    default = config()
    assert default.scopes == "openid profile email"
    assert default.employee_id_claim == "preferred_username"
    assert default.token_endpoint_auth == "client_secret_basic"
    assert default.discovery_url == (
        "https://login.gemeente.example/realms/medewerkers/.well-known/openid-configuration"
    )


def test_client_secret_never_prints():
    shown = config()
    assert SECRET not in repr(shown)
    assert SECRET not in str(shown)
    assert shown.client_secret.get_secret_value() == SECRET


def test_plain_string_secret_is_refused():
    with pytest.raises(OidcConfigError, match="SecretStr"):
        config(client_secret=SECRET)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"issuer": "http://login.gemeente.example"}, "issuer must use https"),
        ({"issuer": "login.gemeente.example"}, "issuer must be an absolute URL"),
        ({"issuer": "https://login.gemeente.example/?tenant=1"}, "issuer must not have a query"),
        ({"redirect_uri": "http://balie.gemeente.example/cb"}, "redirect_uri must use https"),
        ({"client_id": " "}, "client_id"),
        ({"client_secret": SecretStr("")}, "client_secret"),
        ({"scopes": "profile email"}, "'openid'"),
        ({"role_mapping": {}}, "role_mapping is empty"),
        ({"role_mapping": {"balie-admins": "admin"}}, "role_mapping['balie-admins'] = 'admin'"),
        ({"clock_skew": dt.timedelta(minutes=10)}, "clock_skew"),
        ({"clock_skew": dt.timedelta(seconds=-1)}, "clock_skew"),
        ({"department_claim": ""}, "department_claim"),
        ({"token_endpoint_auth": "private_key_jwt"}, "token_endpoint_auth"),
    ],
)
def test_bad_setting_is_refused_by_name(changes, named):
    with pytest.raises(OidcConfigError) as refused:
        config(**changes)
    assert refused.value.code == "oidc_config_invalid"
    assert named in str(refused.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_only_on_loopback(host):
    assert config(issuer=f"http://{host}:8080/realms/test").issuer.startswith("http://")


def test_role_mapping_is_a_frozen_copy():
    mapping = {"balie-medewerkers": "clerk"}
    frozen = config(role_mapping=mapping)
    mapping["balie-medewerkers"] = "privacy_officer"
    assert frozen.role_mapping["balie-medewerkers"] == "clerk"
    with pytest.raises(TypeError):
        frozen.role_mapping["x"] = "clerk"  # type: ignore[index]


async def test_oversized_provider_answer_is_refused(aiohttp_server):
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b" " * (MAX_REPLY_BYTES + 1), content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks", huge)
    server = await aiohttp_server(app)
    async with ClientSession() as session:
        with pytest.raises(OidcProviderUnavailable, match="more than"):
            await AiohttpTransport(session).get(str(server.make_url("/jwks")))
