"""The HTTP surface: health endpoints and the JSON error contract, through the real app."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp import web

from dossier.errors import DossierDestroyed, DossierNotFound, IntegrityError, InvalidInput
from server.app import create_app
from server.middlewares import error_middleware
from server.settings import Settings


async def test_healthz(aiohttp_client, settings, clock):
    client = await aiohttp_client(create_app(settings, clock=clock))
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_reports_every_check(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert body["checks"]["keyring"] == "ok"
    assert body["checks"]["current_kek"].startswith("kek-")
    assert body["checks"]["identity:local"] == "ok"
    assert body["checks"]["identity:digid"] == "ok"


async def test_readyz_503_when_schema_is_behind(aiohttp_client, settings):
    behind = settings.model_copy(update={"migrate_on_start": False})
    client = await aiohttp_client(create_app(behind))
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["migrations"].startswith("at None, head is ")


async def test_readyz_503_without_the_months_key_in_production(aiohttp_client, settings, tmp_path):
    production = Settings(
        environment="production",
        data_dir=settings.data_dir,
        database_url=settings.resolved_database_url,
        key_dir=tmp_path / "empty-keyring",
        pseudonym_key="p" * 40,
        secret_key="s" * 40,
    )
    client = await aiohttp_client(create_app(production))
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert "not in the keyring" in body["checks"]["keyring"]
    # Nor the export signing key: exports wait until an operator installs it.
    assert "export-signing.key" in body["checks"]["export_key"]
    assert (await client.get("/api/export-key")).status == 503
    assert not (tmp_path / "empty-keyring").exists()  # production never mints keys itself


async def test_unknown_path_is_json_404(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/nergens")
    assert response.status == 404
    body = await response.json()
    assert body["code"] == "not_found"


async def test_wrong_method_is_json_405(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    response = await client.post("/healthz", data=b"x", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status == 405
    assert (await response.json())["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (DossierNotFound("no dossier with id 42"), 404, "dossier_not_found"),
        (DossierDestroyed("dossier 42 has been destroyed"), 410, "dossier_destroyed"),
        (InvalidInput("retention_days for 'x' is 60"), 422, "invalid_input"),
        (IntegrityError("record 7 does not authenticate"), 500, "integrity_error"),
    ],
)
async def test_domain_errors_become_json_with_stable_codes(aiohttp_client, error, status, code):
    async def handler(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/boom", handler)
    client = await aiohttp_client(app)
    response = await client.get("/boom")
    assert response.status == status
    assert await response.json() == {"code": code, "message": str(error)}


def test_production_refuses_placeholder_secret(isolated_env):
    with pytest.raises(ValueError, match="BALIE_PSEUDONYM_KEY"):
        Settings(environment="production", database_url="postgresql+asyncpg://db/balie")


def test_production_needs_an_explicit_database(isolated_env):
    with pytest.raises(ValueError, match="BALIE_DATABASE_URL"):
        Settings(environment="production", pseudonym_key="k" * 40, secret_key="s" * 40)


def test_settings_come_from_the_environment(isolated_env, monkeypatch, tmp_path):
    monkeypatch.setenv("BALIE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BALIE_PORT", "9123")
    settings = Settings()
    assert settings.port == 9123
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'balie.db'}"
    assert settings.resolved_key_dir == tmp_path / "keys"
    assert "dev-only" not in repr(settings)  # secrets never print


def test_unknown_setting_is_refused(isolated_env, monkeypatch):
    monkeypatch.setenv("BALIE_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_production_refuses_placeholder_secret_key(isolated_env):
    with pytest.raises(ValueError, match="BALIE_SECRET_KEY"):
        Settings(
            environment="production",
            database_url="postgresql+asyncpg://db/balie",
            pseudonym_key="k" * 40,
        )


def test_oidc_role_mapping_comes_from_json(isolated_env, monkeypatch):
    monkeypatch.setenv("BALIE_OIDC_ROLE_MAPPING", '{"balie-medewerkers": "clerk"}')
    assert Settings().oidc_role_mapping == {"balie-medewerkers": "clerk"}


async def test_readyz_names_an_expired_digid_certificate(aiohttp_client, settings, clock):
    client = await aiohttp_client(create_app(settings, clock=clock))
    clock.advance(dt.timedelta(days=3651))  # past the test certificates' ten years
    response = await client.get("/readyz")
    assert response.status == 503
    assert "certificate expired" in (await response.json())["checks"]["identity:digid"]
