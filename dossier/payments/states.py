"""A payment's status and the explicit table of the moves it may make.

    created ──► open ──► pending ──► paid
       │         │          │
       │         │          ├──────► failed
       │         ├──────────┼──────► canceled
       └─────────┴──────────┴──────► expired
       (created and open may also jump straight to any later status)

`created` is Balie's own: the row exists, the provider may not know the payment yet. Every
other status is the provider's word for it. Paid, failed, canceled and expired are final: a
provider never leaves them (a refund is a separate record, never a status of the payment).

An update that the table does not allow (a repeat, a late "open" after "paid", a "pending"
after "open" has already become "expired") is recorded and ignored, so webhooks that arrive
twice or out of order cannot move a payment backwards.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ALLOWED", "FINAL", "PaymentStatus", "RefundStatus", "can_move"]


class PaymentStatus(enum.StrEnum):
    CREATED = "created"
    OPEN = "open"
    PENDING = "pending"  # the resident finished at the bank; the money is on its way
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


class RefundStatus(enum.StrEnum):
    """A refund's status, in Mollie's words (the demo provider uses the same)."""

    QUEUED = "queued"
    PENDING = "pending"
    PROCESSING = "processing"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELED = "canceled"


_S = PaymentStatus

FINAL: frozenset[PaymentStatus] = frozenset({_S.PAID, _S.FAILED, _S.CANCELED, _S.EXPIRED})

ALLOWED: Mapping[PaymentStatus, frozenset[PaymentStatus]] = MappingProxyType(
    {
        # The provider may report anything once it knows the payment: a reconcile after a
        # crash can find it already paid.
        _S.CREATED: frozenset({_S.OPEN, _S.PENDING, _S.PAID, _S.FAILED, _S.CANCELED, _S.EXPIRED}),
        _S.OPEN: frozenset({_S.PENDING, _S.PAID, _S.FAILED, _S.CANCELED, _S.EXPIRED}),
        # No way back to open: a provider that says "open" after "pending" is answering from a
        # stale replica, and the final word comes anyway.
        _S.PENDING: frozenset({_S.PAID, _S.FAILED, _S.CANCELED, _S.EXPIRED}),
        _S.PAID: frozenset(),
        _S.FAILED: frozenset(),
        _S.CANCELED: frozenset(),
        _S.EXPIRED: frozenset(),
    }
)


def can_move(current: PaymentStatus, reported: PaymentStatus) -> bool:
    """Whether a payment in `current` may take `reported` as its new status.

    False for a repeat of the current status, for any move backwards and for any move out of
    a final status.
    """
    return reported in ALLOWED[current]
