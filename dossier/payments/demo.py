"""The demo payment provider: a hosted checkout page served by Balie itself.

It behaves like Mollie where it matters, so that development, `make demo` and the browser tests
run the code path production runs: creating a payment is idempotent by key, the checkout page
(pay / fail / cancel) changes the provider's status, the webhook carries only the payment id,
and Balie then asks the provider for the status. An open checkout expires after
`DEMO_EXPIRY`, as an iDEAL payment does.

Its state is the `demo_checkouts` table, so it works across processes and restarts. The HTTP
layer serves the page with `demo_checkout` and handles a button with `demo_decide`, then POSTs
the webhook (form field `id`) to Balie's own webhook URL and redirects the resident.
Settings refuse this provider in production: anyone could "pay" with a click.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.models import DemoCheckout
from dossier.payments.errors import (
    DemoCheckoutNotFound,
    ProviderConfigError,
    UnknownProviderPayment,
)
from dossier.payments.providers import ProviderPayment
from dossier.payments.states import PaymentStatus
from dossier.store import DossierStore

__all__ = [
    "DEMO_EXPIRY",
    "DemoCheckoutView",
    "DemoDecision",
    "DemoOutcome",
    "DemoProvider",
    "demo_checkout",
    "demo_decide",
]

log = logging.getLogger(__name__)

DEMO_EXPIRY = dt.timedelta(minutes=15)
_ID = re.compile(r"tr_demo_[0-9a-f]{20}")

DemoOutcome = Literal["paid", "failed", "canceled"]


@dataclass(frozen=True, slots=True)
class DemoCheckoutView:
    """What the demo checkout page shows. Amount in euro cents."""

    checkout_id: str
    amount_cents: int
    description: str
    status: PaymentStatus
    redirect_url: str


@dataclass(frozen=True, slots=True)
class DemoDecision:
    """What the HTTP layer needs after a button: where to POST `id=<provider_payment_id>`
    (the webhook) and where to send the resident. `changed` is false when the checkout had
    been decided (or had expired) before; posting the webhook again is harmless."""

    provider_payment_id: str
    status: PaymentStatus
    webhook_url: str
    redirect_url: str
    changed: bool


def _status(row: DemoCheckout, now: dt.datetime) -> PaymentStatus:
    status = PaymentStatus(row.status)
    if status is PaymentStatus.OPEN and now - row.created_at >= DEMO_EXPIRY:
        return PaymentStatus.EXPIRED
    return status


class DemoProvider:
    """The demo provider over Balie's own database; checkout URLs point at `public_origin`."""

    id = "demo"

    def __init__(self, store: DossierStore, *, public_origin: str) -> None:
        self._store = store
        self._origin = public_origin.rstrip("/")

    def __repr__(self) -> str:
        return f"DemoProvider(public_origin={self._origin!r})"

    def _provider_payment(self, row: DemoCheckout, now: dt.datetime) -> ProviderPayment:
        status = _status(row, now)
        return ProviderPayment(
            id=row.id,
            status=status,
            checkout_url=(
                f"{self._origin}/demo-betaling/{row.id}" if status is PaymentStatus.OPEN else None
            ),
            amount_cents=row.amount_cents,
        )

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
        """Create an open checkout, or return the one made before under `idempotency_key`."""
        try:
            async with self._store.sessions() as session, session.begin():
                now = await self._store.clock.now(session)
                existing = await self._by_key(session, idempotency_key)
                if existing is not None:
                    return self._provider_payment(existing, now)
                row = DemoCheckout(
                    id=f"tr_demo_{secrets.token_hex(10)}",
                    idempotency_key=idempotency_key,
                    reference=reference,
                    amount_cents=amount_cents,
                    description=description,
                    status=PaymentStatus.OPEN.value,
                    redirect_url=redirect_url,
                    webhook_url=webhook_url,
                    created_at=now,
                )
                session.add(row)
        except DatabaseIntegrityError:
            # Another process created it under the same key meanwhile (PostgreSQL): return that.
            async with self._store.sessions() as session:
                now = await self._store.clock.now(session)
                existing = await self._by_key(session, idempotency_key)
            if existing is None:
                raise
            return self._provider_payment(existing, now)
        log.info("demo checkout %s created", row.id)
        return self._provider_payment(row, now)

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        """The checkout's status. Raises UnknownProviderPayment for an id it never issued."""
        async with self._store.sessions() as session:
            row = await session.get(DemoCheckout, provider_payment_id)
            now = await self._store.clock.now(session)
        if row is None:
            raise UnknownProviderPayment(
                f"the demo provider has no payment {provider_payment_id[:64]!r}", provider=self.id
            )
        return self._provider_payment(row, now)

    async def check_config(self) -> None:
        """Raises ProviderConfigError unless the public origin is an http(s) URL."""
        if not self._origin.startswith(("https://", "http://")):
            raise ProviderConfigError(
                f"the demo checkout needs an http(s) public origin, got {self._origin!r}",
                provider=self.id,
            )

    @staticmethod
    async def _by_key(session: AsyncSession, idempotency_key: str) -> DemoCheckout | None:
        query = select(DemoCheckout).where(col(DemoCheckout.idempotency_key) == idempotency_key)
        return (await session.execute(query)).scalar_one_or_none()


async def demo_checkout(store: DossierStore, *, checkout_id: str) -> DemoCheckoutView | None:
    """The demo checkout page's content, or None for an id the demo never issued."""
    if not _ID.fullmatch(checkout_id):
        return None
    async with store.sessions() as session:
        row = await session.get(DemoCheckout, checkout_id)
        now = await store.clock.now(session)
    if row is None:
        return None
    return DemoCheckoutView(
        checkout_id=row.id,
        amount_cents=row.amount_cents,
        description=row.description,
        status=_status(row, now),
        redirect_url=row.redirect_url,
    )


async def demo_decide(
    store: DossierStore, *, checkout_id: str, outcome: DemoOutcome
) -> DemoDecision:
    """The resident pressed pay, fail or cancel: set the demo status, if it is still open.

    A decided or expired checkout keeps its status (`changed` is false). Raises
    DemoCheckoutNotFound for an id the demo never issued, ValueError for another outcome.
    """
    status = PaymentStatus(outcome)
    if status not in (PaymentStatus.PAID, PaymentStatus.FAILED, PaymentStatus.CANCELED):
        raise ValueError(f"a demo checkout cannot be decided as {outcome!r}")
    if not _ID.fullmatch(checkout_id):
        raise DemoCheckoutNotFound(f"no demo checkout {checkout_id[:64]!r}")
    async with store.sessions() as session, session.begin():
        row = await session.get(DemoCheckout, checkout_id, with_for_update=True)
        if row is None:
            raise DemoCheckoutNotFound(f"no demo checkout {checkout_id!r}")
        now = await store.clock.now(session)
        current = _status(row, now)
        changed = current is PaymentStatus.OPEN
        if changed:
            current = status
        if current.value != row.status:
            row.status, row.decided_at = current.value, now
    log.info("demo checkout %s is %s", checkout_id, current.value)
    return DemoDecision(
        provider_payment_id=row.id,
        status=current,
        webhook_url=row.webhook_url,
        redirect_url=row.redirect_url,
        changed=changed,
    )
