"""Refunds: money returned on a paid payment, each a record of its own.

A payment's status never changes because of a refund (it stays `paid`); the refunds say how
much went back. This module records a refund that was made (at the provider's dashboard, or
by a future provider call); it does not ask the provider to make one.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlmodel import col

from dossier.errors import InvalidInput, InvalidState
from dossier.lookup import get_live_dossier
from dossier.models import Refund
from dossier.payments.errors import PaymentNotFound
from dossier.payments.info import RefundInfo, refund_info
from dossier.payments.ledger import audit_payment, locked
from dossier.payments.states import PaymentStatus, RefundStatus
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["record_refund"]

# A refund that failed or was canceled returned nothing, so it does not count against the
# amount still refundable.
_VOID = (RefundStatus.FAILED.value, RefundStatus.CANCELED.value)


async def record_refund(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    payment_id: uuid.UUID,
    amount_cents: int,
    status: RefundStatus = RefundStatus.QUEUED,
    provider_refund_id: str | None = None,
) -> RefundInfo:
    """Record a refund of `amount_cents` on a paid payment of the dossier (audited).

    Raises PaymentNotFound when the dossier has no such payment, InvalidState unless it is
    paid, InvalidInput when the amount is not positive or exceeds what was paid minus what
    was refunded before.
    """
    if provider_refund_id is not None and not 1 <= len(provider_refund_id) <= 64:
        raise InvalidInput("provider_refund_id must be 1 to 64 characters")
    async with store.sessions() as session, session.begin():
        await get_live_dossier(session, dossier_id)
        payment = await locked(session, payment_id)
        if payment is None or payment.dossier_id != dossier_id:
            raise PaymentNotFound(f"dossier {dossier_id} has no payment {payment_id}")
        if payment.status != PaymentStatus.PAID:
            raise InvalidState(f"only a paid payment can be refunded; this one is {payment.status}")
        query = select(Refund).where(col(Refund.payment_id) == payment_id)
        earlier = [r for r in (await session.execute(query)).scalars() if r.status not in _VOID]
        refundable = payment.amount_cents - sum(r.amount_cents for r in earlier)
        if type(amount_cents) is not int or not 1 <= amount_cents <= refundable:
            raise InvalidInput(
                f"a refund must be 1 to {refundable} cents on this payment, got {amount_cents!r}"
            )
        now = await store.clock.now(session)
        refund = Refund(
            payment_id=payment_id,
            dossier_id=dossier_id,
            amount_cents=amount_cents,
            status=RefundStatus(status).value,
            provider_refund_id=provider_refund_id,
            requested_by_role=actor.role,
            requested_by_ref=actor.ref,
            created_at=now,
        )
        session.add(refund)
        await audit_payment(
            session,
            payment,
            actor,
            now,
            "payment.refund_recorded",
            "ok",
            {"refund": str(refund.id), "amount_cents": amount_cents, "status": refund.status},
        )
    return refund_info(refund)
