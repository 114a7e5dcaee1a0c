"""The reconcile job: bring every payment that is not final up to date with its provider.

Webhooks get lost (Balie down, the network, a provider's bad day) and a process can die
between creating a payment at the provider and storing its id. The job repairs both:

* a payment without a provider id is created again under its own idempotency key, which
  returns the payment the provider made the first time (if it did), never a second one;
* every other payment that is not final has its status fetched and applied like a webhook.

It is safe to run in several processes at once, and at the same time as webhooks: the
provider's idempotency makes a double creation return one payment, and each update locks the
payment row and re-checks the transition table, so a second, identical update is recorded
as a repeat and changes nothing. Payments of destroyed dossiers are gone with their rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlmodel import col

from dossier.db import read_session
from dossier.models import Payment, PaymentEvent
from dossier.payments.errors import ProviderError
from dossier.payments.info import PaymentUpdate
from dossier.payments.ledger import (
    attach_provider_payment,
    audit_payment,
    info_with_refunds,
    locked,
)
from dossier.payments.providers import PaymentProvider
from dossier.payments.service import (
    apply_provider_update,
    create_at_provider,
    record_provider_failure,
)
from dossier.payments.states import FINAL, PaymentStatus, can_move
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["CREATE_GRACE", "CREATE_WINDOW", "RECONCILE_ACTOR", "reconcile_payments"]

log = logging.getLogger(__name__)

RECONCILE_ACTOR = Actor.system("payment-reconcile")
# A `created` row this young may belong to a request still waiting for the provider (whose
# timeout is shorter than this); the job leaves it to that request.
CREATE_GRACE = dt.timedelta(minutes=2)
# Providers keep idempotency keys for a limited time only, and this window must stay well
# inside it. A payment that has not reached the provider within the window is given up
# (`expired`) rather than created again under a key the provider may have forgotten. The
# resident never saw a checkout URL for it, so nothing is lost; the clerk asks again.
CREATE_WINDOW = dt.timedelta(minutes=30)


async def reconcile_payments(
    store: DossierStore,
    *,
    providers: Mapping[str, PaymentProvider],
    limit: int = 100,
) -> list[PaymentUpdate]:
    """Reconcile up to `limit` payments that are not final, the longest unchecked first.

    Returns an update per payment that was brought up to date (`changed` tells which moved).
    A provider error for one payment is audited and logged and does not stop the others.
    """
    async with read_session(store.sessions) as session:
        now = await store.clock.now(session)
        query = (
            select(Payment)
            .where(col(Payment.status).not_in([status.value for status in FINAL]))
            # A provider taken out of the configuration: its payments wait until it returns.
            .where(col(Payment.provider).in_(list(providers)))
            .order_by(col(Payment.checked_at), col(Payment.id))
            .limit(limit)
        )
        payments = list((await session.execute(query)).scalars())
    updates = []
    for payment in payments:
        provider = providers[payment.provider]
        try:
            if payment.provider_payment_id is not None:
                update = await apply_provider_update(
                    store,
                    provider=provider,
                    provider_payment_id=payment.provider_payment_id,
                    source="reconcile",
                )
            else:
                update = await _create_again(store, provider=provider, payment=payment, now=now)
        except ProviderError as exc:  # already audited where it happened
            log.warning("payment %s not reconciled: %s", payment.id, exc.code)
            continue
        if update is not None:
            updates.append(update)
    return updates


async def _create_again(
    store: DossierStore, *, provider: PaymentProvider, payment: Payment, now: dt.datetime
) -> PaymentUpdate | None:
    age = now - payment.created_at
    if age < CREATE_GRACE:
        return None
    if age > CREATE_WINDOW:
        return await _give_up(store, payment)
    try:
        reported = await create_at_provider(provider, payment)
    except ProviderError as exc:
        await record_provider_failure(
            store,
            payment_id=payment.id,
            actor=RECONCILE_ACTOR,
            error=exc,
            step="create",
            source="reconcile",
        )
        raise
    async with store.sessions() as session, session.begin():
        row = await locked(session, payment.id)
        if row is None:  # destroyed meanwhile
            return None
        row.checked_at = await store.clock.now(session)
        changed = await attach_provider_payment(
            session,
            payment=row,
            reported=reported,
            source="reconcile",
            actor=RECONCILE_ACTOR,
            now=row.checked_at,
        )
        log.info("payment %s reached %s on a retry", payment.id, provider.id)
        return PaymentUpdate(await info_with_refunds(session, row), changed)


async def _give_up(store: DossierStore, payment: Payment) -> PaymentUpdate | None:
    async with store.sessions() as session, session.begin():
        row = await locked(session, payment.id)
        if row is None or row.provider_payment_id is not None:  # destroyed, or reached meanwhile
            return None
        previous = PaymentStatus(row.status)
        if not can_move(previous, PaymentStatus.EXPIRED):
            return None
        now = await store.clock.now(session)
        row.status, row.updated_at, row.checked_at = PaymentStatus.EXPIRED.value, now, now
        session.add(
            PaymentEvent(
                payment_id=row.id,
                dossier_id=row.dossier_id,
                at=now,
                source="reconcile",
                reported_status=PaymentStatus.EXPIRED.value,
                previous_status=previous.value,
                applied=True,
                note="abandoned",
            )
        )
        await audit_payment(
            session,
            row,
            RECONCILE_ACTOR,
            now,
            "payment.abandoned",
            "ok",
            {"provider": row.provider, "reason": "not created at the provider in time"},
        )
        log.warning("payment %s never reached %s; given up", row.id, row.provider)
        return PaymentUpdate(await info_with_refunds(session, row), True)
