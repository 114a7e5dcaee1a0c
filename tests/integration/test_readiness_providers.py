"""/readyz also speaks for the outside services uploads and payments depend on: the virus
scanner (uploads fail closed without it) and the payment provider (checked at most every few
minutes, since each check is a call to Mollie)."""

from __future__ import annotations

from pydantic import SecretStr

from server.app import create_app

from fake_clamd import FakeClamd
from fake_mollie import API_KEY, FakeMollie
from support import free_port


async def test_readiness_names_an_unreachable_virus_scanner(aiohttp_client, settings, clock):
    async with FakeClamd() as clamd:
        up = await aiohttp_client(
            create_app(
                settings.model_copy(update={"clamd_host": "127.0.0.1", "clamd_port": clamd.port}),
                clock=clock,
            )
        )
        response = await up.get("/readyz")
        assert response.status == 200
        assert (await response.json())["checks"]["virus_scanner"] == "ok"
    down = await aiohttp_client(
        create_app(
            settings.model_copy(update={"clamd_host": "127.0.0.1", "clamd_port": free_port()}),
            clock=clock,
        )
    )
    response = await down.get("/readyz")
    assert response.status == 503
    assert "not reachable" in (await response.json())["checks"]["virus_scanner"]


async def test_readiness_checks_the_payment_provider_once_in_a_while(
    aiohttp_client, settings, clock
):
    async with FakeMollie() as mollie:

        def with_key(key: str):
            changes = {
                "payment_provider": "mollie",
                "mollie_base_url": mollie.base_url,
                "mollie_api_key": SecretStr(key),
            }
            return create_app(settings.model_copy(update=changes), clock=clock)

        good = await aiohttp_client(with_key(API_KEY))
        first = await (await good.get("/readyz")).json()
        assert first["checks"]["payments:mollie"] == "ok"
        assert first["checks"]["payments:demo"] == "ok"
        calls = len(mollie.requests)
        await good.get("/readyz")
        assert len(mollie.requests) == calls  # cached: Mollie was not asked again

        wrong = await aiohttp_client(with_key("test_" + "x" * 30))
        response = await wrong.get("/readyz")
        assert response.status == 503
        assert (await response.json())["checks"]["payments:mollie"] != "ok"
