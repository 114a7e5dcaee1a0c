"""The identity providers behind one small interface, registered by id (STYLE rule 8).

    local  — staff accounts with password and TOTP (always present)
    oidc   — the municipality's single sign-on for staff (when configured)
    digid  — residents (the test IdP in dev/test, DigiD in production)

Each says whether its configuration works; `/readyz` asks all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Protocol

from identity.digid import DigidServiceProvider
from identity.digid.certs import load_certificate
from identity.oidc import OidcClient, OidcError

__all__ = ["DigidProvider", "IdentityProvider", "LocalAccounts", "OidcProvider", "check_all"]


class IdentityProvider(Protocol):
    """One way to prove who someone is."""

    id: str

    async def check_config(self) -> list[str]:
        """What is wrong with this provider's configuration; empty when it is ready."""
        ...


class LocalAccounts:
    """Local staff accounts need nothing outside Balie: the sealing key comes from settings."""

    id = "local"

    async def check_config(self) -> list[str]:
        return []


class OidcProvider:
    id = "oidc"

    def __init__(self, client: OidcClient) -> None:
        self._client = client

    async def check_config(self) -> list[str]:
        try:
            await self._client.check_config()
        except OidcError as exc:
            return [f"{exc.code}: {exc}"]
        return []


class DigidProvider:
    id = "digid"

    def __init__(self, sp: DigidServiceProvider, *, now: Callable[[], dt.datetime]) -> None:
        self._sp = sp
        self._now = now

    async def check_config(self) -> list[str]:
        problems = []
        now = self._now()
        for name, pem in (
            ("SP", self._sp.config.sp_cert_pem),
            ("IdP", self._sp.config.idp_cert_pem),
        ):
            expires = load_certificate(pem).not_valid_after_utc
            if expires <= now:
                problems.append(f"the {name} certificate expired on {expires.date().isoformat()}")
        return problems


async def check_all(providers: Mapping[str, IdentityProvider]) -> dict[str, str]:
    """Per provider id: "ok" or its problems joined."""
    result = {}
    for provider_id, provider in providers.items():
        problems = await provider.check_config()
        result[provider_id] = "ok" if not problems else "; ".join(problems)
    return result
