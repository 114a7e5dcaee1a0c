"""Payment providers behind one small interface, registered by id (STYLE rule 8).

    demo    — a checkout page served by Balie itself (development, tests, `make demo`)
    mollie  — Mollie's REST API v2

A provider creates a payment (idempotently: the same key gives the same payment, never a
second one), tells its current status, and says whether its configuration works. It never
decides anything about the dossier: `dossier.payments.service` does that with what the
provider reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from dossier.payments.errors import InvalidProviderResponse, ProviderError, UnknownProvider
from dossier.payments.states import PaymentStatus

__all__ = ["PaymentProvider", "ProviderPayment", "check_all", "provider_for", "registry"]


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    """A payment as the provider sees it right now. Amounts in euro cents."""

    id: str
    status: PaymentStatus
    checkout_url: str | None
    amount_cents: int

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidProviderResponse("a provider payment needs an id")
        if type(self.amount_cents) is not int or self.amount_cents <= 0:
            raise InvalidProviderResponse(
                f"a provider payment's amount must be a positive number of cents, "
                f"got {self.amount_cents!r}"
            )


class PaymentProvider(Protocol):
    """One way for a resident to pay. Implementations must make `create_payment` idempotent."""

    id: str

    async def create_payment(
        self,
        *,
        idempotency_key: str,
        amount_cents: int,
        description: str,
        redirect_url: str,
        webhook_url: str,
        reference: str,
    ) -> ProviderPayment:
        """Create the payment, or return the one created before under `idempotency_key`.

        Raises ProviderUnavailable when the outcome is unknown (it may have been created: ask
        again with the same key) and ProviderRejected when the provider refused it.
        """
        ...

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        """The payment's current state. Raises UnknownProviderPayment or ProviderUnavailable."""
        ...

    async def check_config(self) -> None:
        """Return if the provider accepts our configuration.

        Raises ProviderConfigError for a configuration it refuses, ProviderUnavailable when it
        cannot be asked right now.
        """
        ...


def registry(*providers: PaymentProvider) -> Mapping[str, PaymentProvider]:
    """The providers by id, read-only. Raises ValueError for two providers with one id."""
    by_id: dict[str, PaymentProvider] = {}
    for provider in providers:
        if provider.id in by_id:
            raise ValueError(f"two payment providers are registered as {provider.id!r}")
        by_id[provider.id] = provider
    return MappingProxyType(by_id)


def provider_for(providers: Mapping[str, PaymentProvider], provider_id: str) -> PaymentProvider:
    """The provider registered as `provider_id`; raises UnknownProvider otherwise."""
    provider = providers.get(provider_id)
    if provider is None:
        raise UnknownProvider(f"no payment provider is registered as {provider_id[:32]!r}")
    return provider


async def check_all(providers: Iterable[PaymentProvider]) -> dict[str, str]:
    """Per provider id: "ok", or the error code and message that `check_config` raised."""
    result = {}
    for provider in providers:
        try:
            await provider.check_config()
        except ProviderError as exc:
            result[provider.id] = f"{exc.code}: {exc}"
        else:
            result[provider.id] = "ok"
    return result
