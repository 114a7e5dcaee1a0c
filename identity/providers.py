"""The identity providers behind one small interface, registered by id (STYLE rule 8).

    local  — staff accounts with password and TOTP (always present)
    oidc   — the municipality's single sign-on for staff (when configured)
    digid  — residents (the test IdP in dev/test, DigiD in production)

Each says whether its configuration works; `/readyz` asks all of them.
"""

from __future__ import annotations

import datetime as dt
import time
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
    """Checks the provider at most once per RECHECK seconds: `/readyz` is polled every few
    seconds, and each check fetches the provider's metadata and keys afresh."""

    id = "oidc"
    RECHECK = 300.0

    def __init__(
        self, client: OidcClient, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._monotonic = monotonic
        self._last: tuple[float, list[str]] | None = None

    async def check_config(self) -> list[str]:
        if self._last is not None and self._monotonic() - self._last[0] < self.RECHECK:
            return self._last[1]
        try:
            await self._client.check_config()
        except OidcError as exc:
            problems = [f"{exc.code}: {exc}"]
        else:
            problems = []
        self._last = (self._monotonic(), problems)
        return problems


class DigidProvider:
    id = "digid"

    def __init__(self, sp: DigidServiceProvider, *, now: Callable[[], dt.datetime]) -> None:
        self._now = now
        # The certificates do not change while the server runs: read their end dates once.
        self._expiry = {
            "SP": load_certificate(sp.config.sp_cert_pem).not_valid_after_utc,
            "IdP": load_certificate(sp.config.idp_cert_pem).not_valid_after_utc,
        }

    async def check_config(self) -> list[str]:
        now = self._now()
        return [
            f"the {name} certificate expired on {expires.date().isoformat()}"
            for name, expires in self._expiry.items()
            if expires <= now
        ]


async def check_all(providers: Mapping[str, IdentityProvider]) -> dict[str, str]:
    """Per provider id: "ok" or its problems joined."""
    result = {}
    for provider_id, provider in providers.items():
        problems = await provider.check_config()
        result[provider_id] = "ok" if not problems else "; ".join(problems)
    return result
