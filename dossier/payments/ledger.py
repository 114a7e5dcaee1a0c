"""Recording what a provider reported about a payment, inside the caller's transaction.

Every report becomes a `PaymentEvent`; the payment's status moves only where the table in
`states` allows it. Each change, and each report that is ignored for a reason worth knowing
(stale, backward, wrong amount), is an audit event of the dossier in the same transaction.
The callers (`service`, `reconcile`) lock the payment row first, so two processes that
report the same thing at once apply it once and record the other as a repeat.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.lookup import record_dossier_event
from dossier.models import Payment, PaymentEvent, Refund
from dossier.payments.errors import InvalidProviderResponse
from dossier.payments.info import PaymentInfo, payment_info
from dossier.payments.providers import ProviderPayment
from dossier.payments.states import PaymentStatus, can_move
from retention.audit import Actor, record_event

__all__ = [
    "Source",
    "attach_provider_payment",
    "audit_payment",
    "info_with_refunds",
    "locked",
    "record_report",
]

log = logging.getLogger(__name__)

Source = Literal["create", "webhook", "reconcile"]


async def locked(session: AsyncSession, payment_id: uuid.UUID) -> Payment | None:
    """The payment row, locked for the rest of the transaction (PostgreSQL `FOR UPDATE`;
    SQLite transactions already hold the database's write lock from their start)."""
    query = select(Payment).where(col(Payment.id) == payment_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def info_with_refunds(session: AsyncSession, payment: Payment) -> PaymentInfo:
    """The public view of `payment` with its refunds loaded."""
    query = select(Refund).where(col(Refund.payment_id) == payment.id)
    return payment_info(payment, (await session.execute(query)).scalars())


async def attach_provider_payment(
    session: AsyncSession,
    *,
    payment: Payment,
    reported: ProviderPayment,
    source: Source,
    actor: Actor,
    now: dt.datetime,
) -> bool:
    """Store the provider's id and checkout URL of a just-created payment, then its status.

    A second creation with the same idempotency key (a retry, a concurrent reconcile) gives
    the same id again, which is harmless. Returns whether the status changed. Raises
    InvalidProviderResponse if the provider names a different payment than before: its
    idempotency promise was broken, and nothing is stored.
    """
    if payment.provider_payment_id is None:
        payment.provider_payment_id = reported.id
        payment.checkout_url = reported.checkout_url
        payment.updated_at = now
        await record_dossier_event(
            session,
            at=now,
            actor=actor,
            action="payment.created_at_provider",
            dossier_id=payment.dossier_id,
            detail={
                "payment": str(payment.id),
                "provider": payment.provider,
                "provider_payment": reported.id,
                "source": source,
            },
        )
    elif payment.provider_payment_id != reported.id:
        log.error(
            "provider %s answered idempotency key of payment %s with another payment",
            payment.provider,
            payment.id,
        )
        raise InvalidProviderResponse(
            f"{payment.provider} returned payment {reported.id[:64]} for a request that had "
            f"created {payment.provider_payment_id} before",
            provider=payment.provider,
        )
    return await record_report(
        session, payment=payment, reported=reported, source=source, actor=actor, now=now
    )


async def record_report(
    session: AsyncSession,
    *,
    payment: Payment,
    reported: ProviderPayment,
    source: Source,
    actor: Actor,
    now: dt.datetime,
) -> bool:
    """Record one report about the (locked) payment and apply it if the table allows.

    A report whose amount differs from the payment's is never applied: the payment fails
    (when it still can) so that no resident is sent to pay a wrong amount. Returns whether
    the payment's status changed.
    """
    previous = PaymentStatus(payment.status)
    note: str | None = None
    if reported.amount_cents != payment.amount_cents:
        note = "amount_mismatch"
        log.error(
            "provider %s reports %d cents for payment %s of %d cents",
            payment.provider,
            reported.amount_cents,
            payment.id,
            payment.amount_cents,
        )
        changed = _move(payment, PaymentStatus.FAILED, now)
        await audit_payment(
            session, payment, actor, now, "payment.amount_mismatch", "amount_mismatch",
            {"reported_cents": reported.amount_cents, "status": payment.status,
             "source": source},
        )  # fmt: skip
    elif can_move(previous, reported.status):
        changed = _move(payment, reported.status, now)
        await audit_payment(
            session, payment, actor, now, "payment.status_changed", "ok",
            {"from": previous.value, "to": reported.status.value, "source": source},
        )  # fmt: skip
    else:
        changed = False
        note = "repeated" if reported.status == previous else "stale"
        # A repeat found by the reconcile job is routine polling, not an event worth an audit
        # line; a repeated webhook, or any stale report, is.
        if note == "stale" or source != "reconcile":
            await audit_payment(
                session, payment, actor, now, "payment.update_ignored", note,
                {"status": previous.value, "reported": reported.status.value,
                 "source": source},
            )  # fmt: skip
    session.add(
        PaymentEvent(
            payment_id=payment.id,
            dossier_id=payment.dossier_id,
            at=now,
            source=source,
            reported_status=reported.status.value,
            previous_status=previous.value,
            applied=note is None,
            note=note,
        )
    )
    return changed


def _move(payment: Payment, status: PaymentStatus, now: dt.datetime) -> bool:
    if not can_move(PaymentStatus(payment.status), status):
        return False
    payment.status, payment.updated_at = status.value, now
    if status is PaymentStatus.PAID:
        payment.paid_at = now
    return True


async def audit_payment(
    session: AsyncSession,
    payment: Payment,
    actor: Actor,
    now: dt.datetime,
    action: str,
    result: str,
    detail: dict[str, object],
) -> None:
    """Audit a step of `payment` as an event of its dossier, inside the caller's transaction."""
    await record_event(
        session,
        at=now,
        actor=actor,
        action=action,
        object_type="dossier",
        object_ref=str(payment.dossier_id),
        result=result,
        detail={"payment": str(payment.id), **detail},
    )
