"""Requesting payments, taking in what providers report, and showing them to participants.

A payment request is two transactions around one provider call:

    1. the row is committed as `created`, with a fresh idempotency key   (audited)
    2. the provider creates the payment under that key
    3. the provider's id, checkout URL and status are stored              (audited)

A crash or an unreachable provider between 1 and 3 leaves a `created` row without a provider
id; `reconcile_payments` repeats step 2 with the same key, which gives the same payment at
the provider, never a second one. Webhooks carry only the provider's payment id: the status
is always fetched from the provider, so a forged webhook can at most make Balie ask.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections import defaultdict
from typing import Literal

from sqlalchemy import select
from sqlmodel import col

from dossier.db import read_session
from dossier.errors import DossierDestroyed, InvalidInput, InvalidState
from dossier.lookup import audit_access, get_live_dossier, record_dossier_event
from dossier.models import DossierState, Payment, PaymentEvent, Refund
from dossier.payments.errors import (
    InvalidProviderResponse,
    PaymentNotFound,
    ProviderError,
    ProviderRejected,
)
from dossier.payments.info import PaymentInfo, PaymentUpdate, payment_info
from dossier.payments.ledger import (
    Source,
    attach_provider_payment,
    audit_payment,
    info_with_refunds,
    locked,
    record_report,
)
from dossier.payments.providers import PaymentProvider, ProviderPayment
from dossier.payments.states import PaymentStatus, can_move
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = [
    "MAX_AMOUNT_CENTS",
    "MAX_DESCRIPTION_CHARS",
    "PAYABLE_STATES",
    "apply_provider_update",
    "create_at_provider",
    "list_payments",
    "read_payment",
    "record_provider_failure",
    "request_payment",
]

log = logging.getLogger(__name__)

MAX_AMOUNT_CENTS = 1_000_000  # EUR 10,000: far above any municipal fee, far below a typo's reach
MAX_DESCRIPTION_CHARS = 255  # Mollie's limit; the description shows on the bank statement
MAX_URL_CHARS = 2048
# A fee is asked for during the call or after it (the clerk may finish the paperwork later);
# before the resident is admitted there is nobody to pay.
PAYABLE_STATES = (DossierState.IN_CALL, DossierState.ENDED)
_PROVIDER_PAYMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FEE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _validate(
    *, amount_cents: int, description: str, fee_code: str | None, urls: dict[str, str]
) -> None:
    if type(amount_cents) is not int or not 1 <= amount_cents <= MAX_AMOUNT_CENTS:
        raise InvalidInput(
            f"amount_cents must be a whole number of cents from 1 to {MAX_AMOUNT_CENTS}, "
            f"got {amount_cents!r}"
        )
    if (
        not description.strip()
        or len(description) > MAX_DESCRIPTION_CHARS
        or not description.isprintable()
    ):
        raise InvalidInput(
            f"a payment description must be 1 to {MAX_DESCRIPTION_CHARS} printable characters"
        )
    if fee_code is not None and not _FEE_CODE.fullmatch(fee_code):
        raise InvalidInput(f"fee_code must be 1 to 64 letters, digits, '_', '.', '-': {fee_code!r}")
    for name, url in urls.items():
        if (
            not url.startswith(("https://", "http://"))
            or len(url) > MAX_URL_CHARS
            or not url.isprintable()
            or " " in url
        ):
            raise InvalidInput(f"{name} must be an http(s) URL of at most {MAX_URL_CHARS} chars")


async def create_at_provider(provider: PaymentProvider, payment: Payment) -> ProviderPayment:
    """Ask `provider` to create `payment`: always the same request for the same row, so a
    retry under its idempotency key returns the same provider payment."""
    return await provider.create_payment(
        idempotency_key=payment.idempotency_key,
        amount_cents=payment.amount_cents,
        description=payment.description,
        redirect_url=payment.redirect_url,
        webhook_url=payment.webhook_url,
        reference=str(payment.id),
    )


async def request_payment(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    amount_cents: int,
    description: str,
    provider: PaymentProvider,
    redirect_url: str,
    webhook_url: str,
    fee_code: str | None = None,
) -> PaymentInfo:
    """Ask the resident to pay `amount_cents`; returns the payment with its checkout URL.

    Raises InvalidInput for a bad amount, description, fee code or URL; InvalidState unless
    the dossier is in a call or ended; DossierDestroyed or DossierNotFound as
    `get_live_dossier` does. Raises ProviderUnavailable when the provider could not be
    reached: the payment then stays `created` and the reconcile job creates it later under the
    same idempotency key. Raises ProviderRejected when the provider refused: the payment is
    then `failed`.
    """
    _validate(
        amount_cents=amount_cents,
        description=description,
        fee_code=fee_code,
        urls={"redirect_url": redirect_url, "webhook_url": webhook_url},
    )
    async with store.sessions() as session, session.begin():
        dossier = await get_live_dossier(session, dossier_id)
        if dossier.state not in PAYABLE_STATES:
            raise InvalidState(
                f"a payment cannot be requested while the dossier is {dossier.state}"
            )
        now = await store.clock.now(session)
        payment = Payment(
            dossier_id=dossier_id,
            provider=provider.id,
            idempotency_key=secrets.token_hex(16),
            amount_cents=amount_cents,
            description=description,
            fee_code=fee_code,
            status=PaymentStatus.CREATED.value,
            redirect_url=redirect_url,
            webhook_url=webhook_url,
            requested_by_role=actor.role,
            requested_by_ref=actor.ref,
            created_at=now,
            updated_at=now,
            checked_at=now,
        )
        session.add(payment)
        await record_dossier_event(
            session, at=now, actor=actor, action="payment.requested", dossier_id=dossier_id,
            detail={"payment": str(payment.id), "provider": provider.id,
                    "amount_cents": amount_cents, "fee_code": fee_code},
        )  # fmt: skip
    # Committed: from here on a crash is repaired by the reconcile job.
    try:
        reported = await create_at_provider(provider, payment)
    except ProviderError as exc:
        await record_provider_failure(
            store, payment_id=payment.id, actor=actor, error=exc, step="create", source="create"
        )
        raise
    async with store.sessions() as session, session.begin():
        row = await locked(session, payment.id)
        if row is None:
            raise DossierDestroyed(f"dossier {dossier_id} was destroyed during the payment")
        await attach_provider_payment(
            session, payment=row, reported=reported, source="create", actor=actor,
            now=await store.clock.now(session),
        )  # fmt: skip
        return await info_with_refunds(session, row)


async def record_provider_failure(
    store: DossierStore,
    *,
    payment_id: uuid.UUID,
    actor: Actor,
    error: ProviderError,
    step: Literal["create", "fetch"],
    source: Source,
) -> None:
    """Audit a provider call that failed; a refusal of a creation also fails the payment.

    An unavailable provider changes nothing but the time the reconcile job last looked.
    """
    async with store.sessions() as session, session.begin():
        row = await locked(session, payment_id)
        if row is None:  # the dossier was destroyed meanwhile
            return
        now = await store.clock.now(session)
        if source == "reconcile":
            row.checked_at = now
        previous = PaymentStatus(row.status)
        refused = step == "create" and isinstance(error, ProviderRejected)
        if refused and can_move(previous, PaymentStatus.FAILED):
            row.status, row.updated_at = PaymentStatus.FAILED.value, now
            session.add(
                PaymentEvent(
                    payment_id=row.id, dossier_id=row.dossier_id, at=now, source=source,
                    reported_status=PaymentStatus.FAILED.value, previous_status=previous.value,
                    applied=True, note="rejected",
                )
            )  # fmt: skip
        action = "payment.rejected" if refused else f"payment.{step}_failed"
        # Only the error's code: a provider's message may quote what was sent.
        await audit_payment(
            session, row, actor, now, action, error.code,
            {"provider": row.provider, "source": source, "status": row.status},
        )  # fmt: skip
    log.warning("payment %s: %s at %s failed: %s", payment_id, step, error.provider, error.code)


async def apply_provider_update(
    store: DossierStore,
    *,
    provider: PaymentProvider,
    provider_payment_id: str,
    source: Literal["webhook", "reconcile"],
) -> PaymentUpdate | None:
    """Take in a provider's word that a payment changed: fetch its status and apply it.

    The webhook's claim is never trusted: the status comes from `provider.get_payment`. An id
    that no payment of this provider has (forged, malformed, another provider's) is audited
    and changes nothing: returns None without asking the provider. Stale, backward and
    repeated reports are recorded and ignored (`changed` is false). Raises ProviderError
    (audited; nothing changed) when the provider cannot tell.
    """
    actor = Actor.system(f"payment-{source}")
    payment = None
    well_formed = bool(_PROVIDER_PAYMENT_ID.fullmatch(provider_payment_id))
    if well_formed:
        async with read_session(store.sessions) as session:
            query = select(Payment).where(
                col(Payment.provider) == provider.id,
                col(Payment.provider_payment_id) == provider_payment_id,
            )
            payment = (await session.execute(query)).scalar_one_or_none()
    if payment is None:
        await store.audit.append(
            at=await store.now(), actor=actor, action="payment.update_unknown",
            object_type="payment_provider", object_ref=provider.id, result="unknown_payment",
            detail={"provider_payment": provider_payment_id if well_formed else "(malformed)",
                    "source": source},
        )  # fmt: skip
        log.warning("%s update from %s for an unknown payment ignored", source, provider.id)
        return None
    try:
        reported = await provider.get_payment(provider_payment_id)
        if reported.id != provider_payment_id:
            raise InvalidProviderResponse(
                f"asked for {provider_payment_id}, {provider.id} answered with {reported.id[:64]}",
                provider=provider.id,
            )
    except ProviderError as exc:
        await record_provider_failure(
            store, payment_id=payment.id, actor=actor, error=exc, step="fetch", source=source
        )
        raise
    async with store.sessions() as session, session.begin():
        row = await locked(session, payment.id)
        if row is None:  # destroyed since we looked
            return None
        now = await store.clock.now(session)
        if source == "reconcile":
            row.checked_at = now
        changed = await record_report(
            session, payment=row, reported=reported, source=source, actor=actor, now=now
        )
        return PaymentUpdate(await info_with_refunds(session, row), changed)


async def list_payments(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID
) -> list[PaymentInfo]:
    """The dossier's payments with their refunds, oldest first; the read is audited."""
    async with read_session(store.sessions) as session:
        await get_live_dossier(session, dossier_id)
        query = (
            select(Payment)
            .where(col(Payment.dossier_id) == dossier_id)
            .order_by(col(Payment.created_at), col(Payment.id))
        )
        payments = list((await session.execute(query)).scalars())
        refunds: defaultdict[uuid.UUID, list[Refund]] = defaultdict(list)
        for refund in (
            await session.execute(select(Refund).where(col(Refund.dossier_id) == dossier_id))
        ).scalars():
            refunds[refund.payment_id].append(refund)
        now = await store.clock.now(session)
    infos = [payment_info(payment, refunds[payment.id]) for payment in payments]
    await audit_access(
        store, at=now, actor=actor, action="payment.listed", dossier_id=dossier_id,
        detail={"payments": len(infos)},
    )  # fmt: skip
    return infos


async def read_payment(
    store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID, payment_id: uuid.UUID
) -> PaymentInfo:
    """One payment of the dossier (e.g. for the page the resident returns to); audited.

    Raises PaymentNotFound when the dossier has no such payment.
    """
    async with read_session(store.sessions) as session:
        await get_live_dossier(session, dossier_id)
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.dossier_id != dossier_id:
            raise PaymentNotFound(f"dossier {dossier_id} has no payment {payment_id}")
        info = await info_with_refunds(session, payment)
        now = await store.clock.now(session)
    await audit_access(
        store, at=now, actor=actor, action="payment.read", dossier_id=dossier_id,
        detail={"payment": str(payment_id)},
    )  # fmt: skip
    return info
