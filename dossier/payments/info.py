"""What crosses the payments API: payments and refunds as participants and exporters see them.

Never the idempotency key, the redirect or webhook URLs, or who at the provider did what:
those stay in the table.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from dossier.models import Payment, Refund
from dossier.payments.states import FINAL, PaymentStatus, RefundStatus

__all__ = ["PaymentInfo", "PaymentUpdate", "RefundInfo", "payment_info", "refund_info"]


@dataclass(frozen=True, slots=True)
class RefundInfo:
    """A refund on a paid payment. Amounts in euro cents."""

    refund_id: uuid.UUID
    payment_id: uuid.UUID
    amount_cents: int
    status: RefundStatus
    provider_refund_id: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PaymentInfo:
    """A payment of the dossier. `checkout_url` is where to send the resident; it is set only
    while the payment is open (after that the provider's page has nothing left to do)."""

    payment_id: uuid.UUID
    dossier_id: uuid.UUID
    provider: str
    # The provider's id of the payment (Mollie's `tr_...`), for the finance department.
    provider_reference: str | None
    amount_cents: int
    currency: str
    description: str
    fee_code: str | None
    status: PaymentStatus
    checkout_url: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    paid_at: dt.datetime | None
    refunds: tuple[RefundInfo, ...] = ()

    @property
    def is_final(self) -> bool:
        """Whether the status can no longer change."""
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    """The payment after a provider's report, and whether the report changed its status.

    Callers notify the call's participants only when `changed` is true, so a repeated or
    stale webhook notifies nobody.
    """

    payment: PaymentInfo
    changed: bool


def refund_info(row: Refund) -> RefundInfo:
    """The public view of a refund row."""
    return RefundInfo(
        refund_id=row.id,
        payment_id=row.payment_id,
        amount_cents=row.amount_cents,
        status=RefundStatus(row.status),
        provider_refund_id=row.provider_refund_id,
        created_at=row.created_at,
    )


def payment_info(row: Payment, refunds: Iterable[Refund] = ()) -> PaymentInfo:
    """The public view of a payment row and its refunds (oldest first)."""
    status = PaymentStatus(row.status)
    return PaymentInfo(
        payment_id=row.id,
        dossier_id=row.dossier_id,
        provider=row.provider,
        provider_reference=row.provider_payment_id,
        amount_cents=row.amount_cents,
        currency=row.currency,
        description=row.description,
        fee_code=row.fee_code,
        status=status,
        checkout_url=row.checkout_url if status is PaymentStatus.OPEN else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        paid_at=row.paid_at,
        refunds=tuple(
            refund_info(refund)
            for refund in sorted(refunds, key=lambda refund: (refund.created_at, str(refund.id)))
        ),
    )
