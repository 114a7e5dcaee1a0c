"""MollieProvider against the fake Mollie API on 127.0.0.1: requests, answers, errors."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dossier.payments import (
    InvalidProviderResponse,
    MollieProvider,
    PaymentStatus,
    ProviderConfigError,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderPayment,
    check_all,
)
from dossier.payments.mollie import cents_to_value, parse_payment, value_to_cents

from fake_mollie import API_KEY, FakeMollie

CREATE = {
    "amount_cents": 1234,
    "description": "Leges geboorteaangifte",
    "redirect_url": "https://balie.example/betaling/terug",
    "webhook_url": "https://balie.example/betalingen/webhook/mollie",
    "reference": "pay-1",
}


@pytest.fixture
async def mollie():
    async with FakeMollie() as fake:
        yield fake


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def provider(http, mollie):
    return MollieProvider(http, api_key=API_KEY, base_url=mollie.base_url, timeout=0.5)


async def test_create_sends_amount_key_and_idempotency_key(provider, mollie):
    payment = await provider.create_payment(idempotency_key="k-1", **CREATE)

    assert payment.status is PaymentStatus.OPEN
    assert payment.amount_cents == 1234
    assert payment.checkout_url == f"{mollie.origin}/checkout/{payment.id}"
    stored = mollie.payments[payment.id]
    assert stored["amount"] == {"currency": "EUR", "value": "12.34"}
    assert stored["metadata"] == {"reference": "pay-1"}
    assert stored["webhookUrl"] == CREATE["webhook_url"]
    assert mollie.requests == [("POST", "/v2/payments", "k-1")]


async def test_the_same_idempotency_key_never_makes_a_second_payment(provider, mollie):
    first = await provider.create_payment(idempotency_key="k-1", **CREATE)
    again = await provider.create_payment(idempotency_key="k-1", **CREATE)
    other = await provider.create_payment(idempotency_key="k-2", **CREATE)

    assert again.id == first.id
    assert other.id != first.id
    assert (mollie.created, mollie.replays) == (2, 1)


@pytest.mark.parametrize(
    ("mollie_status", "status"),
    [
        ("open", PaymentStatus.OPEN),
        ("pending", PaymentStatus.PENDING),
        ("authorized", PaymentStatus.PENDING),
        ("paid", PaymentStatus.PAID),
        ("failed", PaymentStatus.FAILED),
        ("canceled", PaymentStatus.CANCELED),
        ("expired", PaymentStatus.EXPIRED),
    ],
)
async def test_get_maps_mollie_statuses(provider, mollie, mollie_status, status):
    created = await provider.create_payment(idempotency_key="k-1", **CREATE)
    mollie.set_status(created.id, mollie_status)

    fetched = await provider.get_payment(created.id)

    assert fetched.status is status
    assert (fetched.checkout_url is not None) == (status is PaymentStatus.OPEN)


async def test_unknown_and_malformed_ids(provider, mollie):
    with pytest.raises(UnknownProviderPayment):
        await provider.get_payment("tr_doesnotexist")
    # Not of Mollie's form: not even asked (no path games such as "../methods").
    for forged in ("../methods", "tr_demo_0123", "", "tr_" + "a" * 100):
        with pytest.raises(UnknownProviderPayment):
            await provider.get_payment(forged)
    assert [path for _, path, _ in mollie.requests] == ["/v2/payments/tr_doesnotexist"]


async def test_server_errors_and_timeouts_are_unavailable(provider, mollie):
    mollie.fail_next(1, status=503)
    with pytest.raises(ProviderUnavailable):
        await provider.create_payment(idempotency_key="k-1", **CREATE)
    mollie.fail_next(1, status=429)
    with pytest.raises(ProviderUnavailable):
        await provider.create_payment(idempotency_key="k-1", **CREATE)
    assert mollie.created == 0

    mollie.hang_next(1)
    with pytest.raises(ProviderUnavailable, match="in time"):
        await provider.create_payment(idempotency_key="k-1", **CREATE)
    # The timed-out request was done at Mollie; the retry with its key finds that payment.
    assert mollie.created == 1
    mollie.release()
    again = await provider.create_payment(idempotency_key="k-1", **CREATE)
    assert (mollie.created, again.id) == (1, mollie.payment_ids()[0])


async def test_unreachable_is_unavailable(http):
    closed = MollieProvider(http, api_key=API_KEY, base_url="http://127.0.0.1:9/v2", timeout=0.5)
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await closed.get_payment("tr_abc")


async def test_refusals_carry_mollie_s_reason(provider, mollie):
    mollie.fail_next(1, status=422)
    with pytest.raises(ProviderRejected, match="the fake answers 422") as refused:
        await provider.create_payment(idempotency_key="k-1", **CREATE)
    assert not isinstance(refused.value, ProviderUnavailable)
    # Same key, other body: Mollie's idempotency refuses instead of making a second payment.
    await provider.create_payment(idempotency_key="k-2", **CREATE)
    with pytest.raises(ProviderRejected, match="idempotency key"):
        await provider.create_payment(idempotency_key="k-2", **{**CREATE, "amount_cents": 999})
    assert mollie.created == 1


async def test_check_config(provider, http, mollie):
    await provider.check_config()
    wrong = MollieProvider(http, api_key="test_wrong", base_url=mollie.base_url)
    with pytest.raises(ProviderConfigError, match="refused the API key"):
        await wrong.check_config()
    with pytest.raises(ProviderConfigError, match="live_ or test_"):
        await MollieProvider(http, api_key="", base_url=mollie.base_url).check_config()
    assert await check_all([provider]) == {"mollie": "ok"}
    assert (await check_all([wrong]))["mollie"].startswith("provider_config: ")


async def test_the_api_key_is_never_shown(http, mollie, caplog):
    secret = "test_" + "S3cr3t" * 5
    provider = MollieProvider(http, api_key=secret, base_url=mollie.base_url)
    caplog.set_level(logging.DEBUG)
    errors = []
    for call in (provider.check_config(), provider.get_payment("tr_x")):
        try:
            await call
        except ProviderConfigError as exc:
            errors.append(str(exc))
    assert len(errors) == 2
    assert secret not in repr(provider)
    assert all(secret not in text for text in [*errors, caplog.text])


@pytest.mark.parametrize(
    "resource",
    [
        {"id": "tr_a", "status": "open", "amount": {"currency": "USD", "value": "1.00"}},
        {"id": "tr_a", "status": "open", "amount": {"currency": "EUR", "value": "1.5"}},
        {"id": "tr_a", "status": "open", "amount": {"currency": "EUR", "value": 1.5}},
        {"id": "tr_a", "status": "open", "amount": {"currency": "EUR", "value": "-1.00"}},
        {"id": "tr_a", "status": "open", "amount": {"currency": "EUR", "value": "0.00"}},
        {"id": "tr_a", "status": "refunded", "amount": {"currency": "EUR", "value": "1.00"}},
        {"id": "pay_a", "status": "open", "amount": {"currency": "EUR", "value": "1.00"}},
        {"status": "open", "amount": {"currency": "EUR", "value": "1.00"}},
    ],
)
def test_malformed_resources_are_refused(resource):
    with pytest.raises(InvalidProviderResponse):
        parse_payment(resource)


@given(st.integers(min_value=0, max_value=10**11 - 1))
def test_cents_round_trip_exactly(cents):
    value = cents_to_value(cents)
    assert value_to_cents(value) == cents
    assert value.count(".") == 1
    assert len(value.split(".")[1]) == 2


def test_known_values():
    assert cents_to_value(1) == "0.01"
    assert cents_to_value(1234) == "12.34"
    assert cents_to_value(100000) == "1000.00"
    assert value_to_cents("0.10") == 10
    # 0.29 * 100 is 28.999999999999996 in floating point; the conversion never uses floats.
    assert value_to_cents("0.29") == 29
