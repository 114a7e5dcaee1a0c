"""Payments through the service functions, against a real database and the fake Mollie API."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from dossier.calls import admit, knock
from dossier.errors import DossierDestroyed, InvalidInput, InvalidState
from dossier.models import DemoCheckout, Payment, PaymentEvent, Refund, TombstoneOutcome
from dossier.payments import (
    DemoProvider,
    MollieProvider,
    PaymentNotFound,
    PaymentStatus,
    ProviderRejected,
    ProviderUnavailable,
    RefundStatus,
    apply_provider_update,
    demo_checkout,
    demo_decide,
    list_payments,
    read_payment,
    reconcile_payments,
    record_refund,
    registry,
    request_payment,
)
from dossier.shredding import destroy_dossier
from retention.audit import verify_chain
from retention.models import AuditEvent

from fake_mollie import API_KEY, FakeMollie
from support import CLERK, RESIDENT, book, engine_of

REDIRECT = "https://balie.example/afspraak/terug"
WEBHOOK = "https://balie.example/betalingen/webhook/mollie"
S = PaymentStatus


@pytest.fixture
async def mollie():
    async with FakeMollie() as fake:
        yield fake


@pytest.fixture
async def provider(mollie):
    async with aiohttp.ClientSession() as http:
        yield MollieProvider(http, api_key=API_KEY, base_url=mollie.base_url, timeout=0.5)


@pytest.fixture
def demo(store):
    return DemoProvider(store, public_origin="http://127.0.0.1:8080")


async def in_call(store, clock):
    booked = await book(store, clock)
    await knock(store, actor=RESIDENT, dossier_id=booked.dossier.id)
    await admit(store, actor=CLERK, dossier_id=booked.dossier.id)
    return booked.dossier.id


@pytest.fixture
async def dossier_id(store, clock):
    return await in_call(store, clock)


async def pay(store, dossier_id, provider, amount_cents=1234, **overrides):
    return await request_payment(
        store,
        actor=CLERK,
        dossier_id=dossier_id,
        amount_cents=amount_cents,
        description=overrides.pop("description", "Leges geboorteaangifte"),
        provider=provider,
        redirect_url=overrides.pop("redirect_url", REDIRECT),
        webhook_url=overrides.pop("webhook_url", WEBHOOK),
        fee_code=overrides.pop("fee_code", "geboorteaangifte"),
    )


async def only_payment(store) -> Payment:
    async with store.sessions() as session:
        return (await session.execute(select(Payment))).scalar_one()


async def events_of(store, payment_id) -> list[PaymentEvent]:
    async with store.sessions() as session:
        query = (
            select(PaymentEvent)
            .where(col(PaymentEvent.payment_id) == payment_id)
            .order_by(col(PaymentEvent.id))
        )
        return list((await session.execute(query)).scalars())


async def audit(store, action=None) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).order_by(col(AuditEvent.seq))
        if action is not None:
            query = query.where(col(AuditEvent.action) == action)
        return list((await session.execute(query)).scalars())


async def count(store, model) -> int:
    async with store.sessions() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def webhook(store, provider, provider_payment_id):
    return await apply_provider_update(
        store, provider=provider, provider_payment_id=provider_payment_id, source="webhook"
    )


# The Mollie flow


async def test_mollie_flow_from_request_to_paid(store, provider, mollie, dossier_id):
    info = await pay(store, dossier_id, provider)

    assert info.status is S.OPEN
    assert info.amount_cents == 1234
    assert info.checkout_url == f"{mollie.origin}/checkout/{info.provider_reference}"
    assert mollie.created == 1
    assert not hasattr(info, "idempotency_key")
    row = await only_payment(store)
    assert mollie.requests == [("POST", "/v2/payments", row.idempotency_key)]
    assert mollie.payments[row.provider_payment_id]["metadata"] == {"reference": str(row.id)}

    mollie.set_status(info.provider_reference, "paid")
    assert mollie.webhook_calls == [(WEBHOOK, info.provider_reference)]
    update = await webhook(store, provider, info.provider_reference)

    assert update is not None
    assert update.changed
    assert update.payment.status is S.PAID
    assert update.payment.paid_at is not None
    assert update.payment.checkout_url is None  # nothing left to do at the provider
    assert [e.action for e in await audit(store) if e.action.startswith("payment.")] == [
        "payment.requested",
        "payment.created_at_provider",
        "payment.status_changed",
        "payment.status_changed",
    ]
    assert [(e.source, e.previous_status, e.reported_status, e.applied) for e in
            await events_of(store, info.payment_id)] == [
        ("create", "created", "open", True),
        ("webhook", "open", "paid", True),
    ]  # fmt: skip
    assert (await verify_chain(engine_of(store))).ok


async def test_the_webhook_body_is_never_trusted(store, provider, mollie, dossier_id):
    """The webhook says only "look at tr_x"; Balie asks Mollie, which still says open."""
    info = await pay(store, dossier_id, provider)

    update = await webhook(store, provider, info.provider_reference)

    assert update is not None
    assert not update.changed
    assert update.payment.status is S.OPEN
    assert mollie.requests[-1][:2] == ("GET", f"/v2/payments/{info.provider_reference}")


@pytest.mark.parametrize(
    "forged",
    ["tr_unknown123", "tr_demo_0123456789abcdef0123", "../methods", "x" * 500, "tr_\n", ""],
)
async def test_a_forged_webhook_changes_nothing(store, provider, mollie, dossier_id, forged):
    info = await pay(store, dossier_id, provider)
    requests_before = len(mollie.requests)
    events_before = await events_of(store, info.payment_id)

    assert await webhook(store, provider, forged) is None

    assert len(mollie.requests) == requests_before  # not even asked
    assert (await only_payment(store)).status == S.OPEN
    assert await events_of(store, info.payment_id) == events_before
    [event] = await audit(store, "payment.update_unknown")
    assert (event.object_type, event.object_ref, event.result) == (
        "payment_provider",
        "mollie",
        "unknown_payment",
    )
    expected = forged if forged.startswith("tr_") and forged.isidentifier() else "(malformed)"
    assert json.loads(event.detail)["provider_payment"] == expected
    assert (await verify_chain(engine_of(store))).ok


async def test_another_provider_s_id_is_unknown(store, provider, demo, mollie, dossier_id):
    at_mollie = await pay(store, dossier_id, provider)
    at_demo = await pay(store, dossier_id, demo)

    assert await webhook(store, provider, at_demo.provider_reference) is None
    assert await webhook(store, demo, at_mollie.provider_reference) is None
    assert [p.status for p in await list_payments(store, actor=CLERK, dossier_id=dossier_id)] == [
        S.OPEN,
        S.OPEN,
    ]


async def test_duplicate_webhooks_are_harmless(store, provider, mollie, dossier_id):
    info = await pay(store, dossier_id, provider)
    mollie.set_status(info.provider_reference, "paid")

    first = await webhook(store, provider, info.provider_reference)
    second = await webhook(store, provider, info.provider_reference)
    concurrent = await asyncio.gather(
        *(webhook(store, provider, info.provider_reference) for _ in range(3))
    )

    assert first is not None
    assert first.changed
    assert second is not None
    assert not second.changed
    assert not any(update.changed for update in concurrent if update is not None)
    assert len(await audit(store, "payment.status_changed")) == 2  # open, then paid: once
    events = await events_of(store, info.payment_id)
    assert [e.applied for e in events] == [True, True, False, False, False, False]
    assert {e.note for e in events if not e.applied} == {"repeated"}


async def test_out_of_order_reports_never_move_backwards(store, provider, mollie, dossier_id):
    info = await pay(store, dossier_id, provider)
    mollie.set_status(info.provider_reference, "paid")
    await webhook(store, provider, info.provider_reference)
    # A stale answer (a replica behind, a delayed retry) claims it is open or pending again.
    for stale in ("open", "pending", "expired"):
        mollie.set_status(info.provider_reference, stale)
        update = await webhook(store, provider, info.provider_reference)
        assert update is not None
        assert not update.changed
        assert update.payment.status is S.PAID

    assert [(e.reported_status, e.note) for e in await events_of(store, info.payment_id)][2:] == [
        ("open", "stale"),
        ("pending", "stale"),
        ("expired", "stale"),
    ]
    assert len(await audit(store, "payment.update_ignored")) == 3


async def test_pending_then_paid_and_not_back(store, provider, mollie, dossier_id):
    info = await pay(store, dossier_id, provider)
    mollie.set_status(info.provider_reference, "authorized")
    assert (await webhook(store, provider, info.provider_reference)).payment.status is S.PENDING
    mollie.set_status(info.provider_reference, "open")
    assert (await webhook(store, provider, info.provider_reference)).payment.status is S.PENDING
    mollie.set_status(info.provider_reference, "paid")
    assert (await webhook(store, provider, info.provider_reference)).payment.status is S.PAID


async def test_a_wrong_amount_is_never_applied(store, provider, mollie, dossier_id):
    info = await pay(store, dossier_id, provider)
    mollie.set_amount(info.provider_reference, "0.01")
    mollie.set_status(info.provider_reference, "paid")

    update = await webhook(store, provider, info.provider_reference)

    assert update is not None
    assert update.payment.status is S.FAILED
    assert (await events_of(store, info.payment_id))[-1].note == "amount_mismatch"
    assert len(await audit(store, "payment.amount_mismatch")) == 1


# Provider errors, timeouts and the reconcile job


async def test_provider_down_at_request_then_reconcile_creates_it(
    store, provider, mollie, dossier_id, clock
):
    mollie.fail_next(1, status=503)
    with pytest.raises(ProviderUnavailable):
        await pay(store, dossier_id, provider)
    row = await only_payment(store)
    assert (row.status, row.provider_payment_id, mollie.created) == ("created", None, 0)
    [failure] = await audit(store, "payment.create_failed")
    assert failure.result == "provider_unavailable"

    providers = registry(provider)
    assert await reconcile_payments(store, providers=providers) == []  # still within grace
    clock.advance(dt.timedelta(minutes=3))
    [update] = await reconcile_payments(store, providers=providers)

    assert update.changed
    assert update.payment.status is S.OPEN
    assert update.payment.checkout_url is not None
    assert mollie.created == 1
    keys = {key for method, _, key in mollie.requests if method == "POST"}
    assert keys == {row.idempotency_key}  # the retry used the same key


async def test_timeout_after_mollie_created_it_makes_no_second_payment(
    store, provider, mollie, dossier_id, clock
):
    mollie.hang_next(1)  # Mollie makes the payment; its answer never arrives in time
    with pytest.raises(ProviderUnavailable):
        await pay(store, dossier_id, provider)
    mollie.release()
    assert mollie.created == 1
    assert (await only_payment(store)).provider_payment_id is None

    clock.advance(dt.timedelta(minutes=3))
    [update] = await reconcile_payments(store, providers=registry(provider))

    assert (mollie.created, mollie.replays) == (1, 1)
    assert update.payment.provider_reference == mollie.payment_ids()[0]


async def test_webhook_while_mollie_is_down_leaves_it_for_reconcile(
    store, provider, mollie, dossier_id, clock
):
    info = await pay(store, dossier_id, provider)
    mollie.set_status(info.provider_reference, "paid")
    mollie.fail_next(1, status=502)

    with pytest.raises(ProviderUnavailable):
        await webhook(store, provider, info.provider_reference)
    assert (await only_payment(store)).status == "open"
    mollie.hang_next(1)
    with pytest.raises(ProviderUnavailable):
        await webhook(store, provider, info.provider_reference)
    mollie.release()
    assert (await only_payment(store)).status == "open"
    assert len(await audit(store, "payment.fetch_failed")) == 2

    clock.advance(dt.timedelta(minutes=5))
    [update] = await reconcile_payments(store, providers=registry(provider))
    assert update.changed
    assert update.payment.status is S.PAID
    assert await reconcile_payments(store, providers=registry(provider)) == []  # final: left alone


async def test_one_failing_payment_does_not_stop_the_others(
    store, provider, mollie, dossier_id, clock
):
    first = await pay(store, dossier_id, provider)
    clock.advance(dt.timedelta(seconds=1))
    second = await pay(store, dossier_id, provider)
    for info in (first, second):
        mollie.set_status(info.provider_reference, "paid")
    mollie.fail_next(1, status=500)  # the first one asked gets it

    updates = await reconcile_payments(store, providers=registry(provider))

    assert [u.payment.payment_id for u in updates] == [second.payment_id]
    # The failed one was checked last, so the next run starts with it.
    updates = await reconcile_payments(store, providers=registry(provider), limit=1)
    assert [(u.payment.payment_id, u.payment.status) for u in updates] == [
        (first.payment_id, S.PAID)
    ]


async def test_two_reconcile_jobs_at_once_create_one_payment(
    store, provider, mollie, dossier_id, clock
):
    mollie.fail_next(1, status=503)
    with pytest.raises(ProviderUnavailable):
        await pay(store, dossier_id, provider)
    clock.advance(dt.timedelta(minutes=3))

    runs = await asyncio.gather(
        *(reconcile_payments(store, providers=registry(provider)) for _ in range(3))
    )

    assert mollie.created == 1
    assert sum(1 for run in runs for update in run if update.changed) == 1
    assert len(await audit(store, "payment.created_at_provider")) == 1
    assert (await only_payment(store)).provider_payment_id == mollie.payment_ids()[0]
    assert (await verify_chain(engine_of(store))).ok


async def test_a_payment_that_never_reached_the_provider_is_given_up(
    store, provider, mollie, dossier_id, clock
):
    mollie.fail_next(1, status=503)
    with pytest.raises(ProviderUnavailable):
        await pay(store, dossier_id, provider)
    clock.advance(dt.timedelta(minutes=31))

    [update] = await reconcile_payments(store, providers=registry(provider))

    assert update.payment.status is S.EXPIRED
    assert mollie.created == 0  # its key may be forgotten at Mollie: never sent again
    assert (await events_of(store, update.payment.payment_id))[-1].note == "abandoned"


async def test_a_refusal_fails_the_payment(store, provider, mollie, dossier_id, clock):
    mollie.fail_next(1, status=422)
    with pytest.raises(ProviderRejected):
        await pay(store, dossier_id, provider)

    row = await only_payment(store)
    assert row.status == "failed"
    [event] = await audit(store, "payment.rejected")
    assert event.result == "provider_rejected"
    clock.advance(dt.timedelta(minutes=3))
    assert await reconcile_payments(store, providers=registry(provider)) == []
    assert mollie.created == 0


# Input, state and reading


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_cents", 0),
        ("amount_cents", -100),
        ("amount_cents", 1_000_001),
        ("amount_cents", 12.5),
        ("amount_cents", True),
        ("description", ""),
        ("description", "   "),
        ("description", "x" * 256),
        ("description", "Leges\nextra"),
        ("fee_code", "geen spaties"),
        ("redirect_url", "javascript:alert(1)"),
        ("webhook_url", "ftp://balie.example/hook"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_stored(
    store, provider, mollie, dossier_id, field, value
):
    with pytest.raises(InvalidInput, match=field.split("_")[0]):
        await pay(store, dossier_id, provider, **{field: value})
    assert await count(store, Payment) == 0
    assert mollie.requests == []


async def test_payments_only_during_or_after_the_call(store, provider, clock, mollie):
    booked = await book(store, clock)
    with pytest.raises(InvalidState):
        await pay(store, booked.dossier.id, provider)
    await knock(store, actor=RESIDENT, dossier_id=booked.dossier.id)
    with pytest.raises(InvalidState):
        await pay(store, booked.dossier.id, provider)
    await admit(store, actor=CLERK, dossier_id=booked.dossier.id)
    await pay(store, booked.dossier.id, provider)
    assert mollie.created == 1


async def test_list_and_read_are_audited_and_scoped(store, provider, dossier_id, clock):
    info = await pay(store, dossier_id, provider)
    other = await in_call(store, clock)

    [listed] = await list_payments(store, actor=RESIDENT, dossier_id=dossier_id)
    assert listed == info
    assert await list_payments(store, actor=RESIDENT, dossier_id=other) == []
    assert (
        await read_payment(store, actor=RESIDENT, dossier_id=dossier_id, payment_id=info.payment_id)
        == info
    )
    with pytest.raises(PaymentNotFound):
        await read_payment(store, actor=RESIDENT, dossier_id=other, payment_id=info.payment_id)
    assert [e.action for e in await audit(store) if e.action in ("payment.listed", "payment.read")
            ] == ["payment.listed", "payment.listed", "payment.read"]  # fmt: skip
    detail = [json.loads(e.detail) for e in await audit(store, "payment.listed")]
    assert detail == [{"payments": 1}, {"payments": 0}]


async def test_refunds_are_records_of_their_own(store, provider, mollie, dossier_id, clock):
    info = await pay(store, dossier_id, provider, amount_cents=5000)
    with pytest.raises(InvalidState):
        await record_refund(
            store, actor=CLERK, dossier_id=dossier_id, payment_id=info.payment_id,
            amount_cents=100,
        )  # fmt: skip
    mollie.set_status(info.provider_reference, "paid")
    await webhook(store, provider, info.provider_reference)

    refund = await record_refund(
        store, actor=CLERK, dossier_id=dossier_id, payment_id=info.payment_id, amount_cents=3000,
        provider_refund_id="re_abc",
    )  # fmt: skip
    clock.advance(dt.timedelta(seconds=1))
    await record_refund(
        store, actor=CLERK, dossier_id=dossier_id, payment_id=info.payment_id, amount_cents=2000,
        status=RefundStatus.FAILED,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="1 to 2000"):
        await record_refund(
            store, actor=CLERK, dossier_id=dossier_id, payment_id=info.payment_id,
            amount_cents=2001,
        )  # fmt: skip

    [listed] = await list_payments(store, actor=CLERK, dossier_id=dossier_id)
    assert listed.status is S.PAID  # a refund is not a status of the payment
    assert [r.amount_cents for r in listed.refunds] == [3000, 2000]
    assert listed.refunds[0] == refund
    assert len(await audit(store, "payment.refund_recorded")) == 2


# The demo provider


async def test_demo_flow_drives_the_same_webhook_path(store, demo, dossier_id):
    info = await pay(store, dossier_id, demo, amount_cents=2550)
    checkout_id = info.provider_reference
    assert info.checkout_url == f"http://127.0.0.1:8080/demo-betaling/{checkout_id}"
    view = await demo_checkout(store, checkout_id=checkout_id)
    assert (view.amount_cents, view.status, view.redirect_url) == (2550, S.OPEN, REDIRECT)

    decision = await demo_decide(store, checkout_id=checkout_id, outcome="paid")
    assert (decision.webhook_url, decision.redirect_url, decision.changed) == (
        WEBHOOK,
        REDIRECT,
        True,
    )
    update = await webhook(store, demo, decision.provider_payment_id)
    assert update.changed
    assert update.payment.status is S.PAID

    again = await demo_decide(store, checkout_id=checkout_id, outcome="canceled")
    assert (again.status, again.changed) == (S.PAID, False)
    assert not (await webhook(store, demo, again.provider_payment_id)).changed
    assert await demo_checkout(store, checkout_id="tr_demo_" + "0" * 20) is None
    assert await demo_checkout(store, checkout_id="../../etc") is None


async def test_demo_checkout_is_idempotent_and_expires(store, demo, dossier_id, clock):
    kwargs = dict(
        amount_cents=100, description="d", redirect_url=REDIRECT, webhook_url=WEBHOOK,
        reference="r",
    )  # fmt: skip
    first = await demo.create_payment(idempotency_key="k", **kwargs)
    assert (await demo.create_payment(idempotency_key="k", **kwargs)).id == first.id
    assert await count(store, DemoCheckout) == 1

    info = await pay(store, dossier_id, demo)
    clock.advance(dt.timedelta(minutes=16))
    [update] = await reconcile_payments(store, providers=registry(demo))
    assert (update.payment.payment_id, update.payment.status) == (info.payment_id, S.EXPIRED)


# Destruction


async def test_destroying_a_dossier_leaves_no_payment_behind(
    store, provider, demo, mollie, dossier_id, clock
):
    paid = await pay(store, dossier_id, provider)
    mollie.set_status(paid.provider_reference, "paid")
    await webhook(store, provider, paid.provider_reference)
    await record_refund(
        store, actor=CLERK, dossier_id=dossier_id, payment_id=paid.payment_id, amount_cents=1
    )
    await pay(store, dossier_id, demo)
    other = await in_call(store, clock)
    kept = await pay(store, other, demo)

    await destroy_dossier(
        store, actor=CLERK, dossier_id=dossier_id, outcome=TombstoneOutcome.DESTROYED_BY_OPERATOR
    )

    async with store.sessions() as session:
        assert list((await session.execute(select(col(Payment.id)))).scalars()) == [kept.payment_id]
        assert {e.dossier_id for e in (await session.execute(select(PaymentEvent))).scalars()} == {
            other
        }
        checkouts = list((await session.execute(select(DemoCheckout))).scalars())
        assert [c.reference for c in checkouts] == [str(kept.payment_id)]
    assert await count(store, Refund) == 0
    with pytest.raises(DossierDestroyed):
        await list_payments(store, actor=CLERK, dossier_id=dossier_id)
    # A late webhook for a destroyed dossier's payment finds nothing to change.
    assert await webhook(store, provider, paid.provider_reference) is None
    assert (await verify_chain(engine_of(store))).ok
