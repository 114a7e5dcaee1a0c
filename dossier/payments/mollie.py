"""Mollie's REST API v2 as a payment provider.

    POST /payments          with an Idempotency-Key: a retry returns the same payment
    GET  /payments/{id}     the status; Mollie's webhook carries only the id, so the status
                            is always fetched here, never taken from the webhook
    GET  /methods           to check that the API key is accepted

Amounts travel as strings with two decimals ("12.34") and are converted to and from euro
cents exactly, without floats. The API key is sent in the Authorization header only; it is
never logged, never put in an error message and never shown by `repr`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from dossier.payments.errors import (
    InvalidProviderResponse,
    ProviderConfigError,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProviderPayment,
)
from dossier.payments.providers import ProviderPayment
from dossier.payments.states import PaymentStatus

__all__ = ["MOLLIE_STATUSES", "MollieProvider", "cents_to_value", "parse_payment", "value_to_cents"]

log = logging.getLogger(__name__)

# Mollie's payment statuses. `authorized` (e.g. Klarna: approved, not yet captured) is
# money on its way, which is what `pending` means here.
MOLLIE_STATUSES: Mapping[str, PaymentStatus] = {
    "open": PaymentStatus.OPEN,
    "pending": PaymentStatus.PENDING,
    "authorized": PaymentStatus.PENDING,
    "paid": PaymentStatus.PAID,
    "failed": PaymentStatus.FAILED,
    "canceled": PaymentStatus.CANCELED,
    "expired": PaymentStatus.EXPIRED,
}
_PAYMENT_ID = re.compile(r"tr_[A-Za-z0-9]{1,60}")
_VALUE = re.compile(r"(\d{1,10})\.(\d{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def cents_to_value(cents: int) -> str:
    """Mollie's amount string for `cents`: 1234 -> "12.34"."""
    if cents < 0:
        raise ValueError(f"an amount cannot be negative, got {cents}")
    return f"{cents // 100}.{cents % 100:02d}"


def value_to_cents(value: object) -> int:
    """Euro cents from Mollie's amount string: "12.34" -> 1234, exactly.

    Raises InvalidProviderResponse for anything but digits, a dot and two decimals.
    """
    match = _VALUE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidProviderResponse(f"Mollie sent an amount that is not a euro value: {value!r}")
    return int(match[1]) * 100 + int(match[2])


def parse_payment(data: Mapping[str, Any]) -> ProviderPayment:
    """A Mollie payment resource as a ProviderPayment; InvalidProviderResponse if malformed."""
    payment_id, status = data.get("id"), data.get("status")
    if not isinstance(payment_id, str) or not _PAYMENT_ID.fullmatch(payment_id):
        raise InvalidProviderResponse(f"Mollie sent a payment id of unknown form: {payment_id!r}")
    if not isinstance(status, str) or status not in MOLLIE_STATUSES:
        raise InvalidProviderResponse(f"Mollie sent an unknown payment status: {status!r}")
    amount = data.get("amount")
    if not isinstance(amount, dict) or amount.get("currency") != "EUR":
        raise InvalidProviderResponse(f"Mollie sent an amount that is not in euro: {amount!r}")
    checkout_url = None
    links = data.get("_links")
    checkout = links.get("checkout") if isinstance(links, dict) else None
    if isinstance(checkout, dict) and isinstance(checkout.get("href"), str):
        checkout_url = checkout["href"]
    return ProviderPayment(
        id=payment_id,
        status=MOLLIE_STATUSES[status],
        checkout_url=checkout_url,
        amount_cents=value_to_cents(amount.get("value")),
    )


def _detail(body: Mapping[str, Any]) -> str:
    """Mollie's own explanation of an error, as one short printable line."""
    detail = body.get("detail") or body.get("title") or "no reason given"
    field = body.get("field")
    text = f"{detail} (field {field})" if isinstance(field, str) else str(detail)
    return _CONTROL.sub(" ", text)[:200]


class MollieProvider:
    """Mollie over the application's shared aiohttp session. `timeout` bounds each request."""

    id = "mollie"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.mollie.com/v2",
        timeout: float = 10.0,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"MollieProvider(base_url={self._base_url!r})"

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
        """POST /payments with the Idempotency-Key; the same key returns the same payment."""
        body = {
            "amount": {"currency": "EUR", "value": cents_to_value(amount_cents)},
            "description": description,
            "redirectUrl": redirect_url,
            "webhookUrl": webhook_url,
            "metadata": {"reference": reference},
        }
        data = await self._request("POST", "/payments", body=body, idempotency_key=idempotency_key)
        payment = parse_payment(data)
        log.info("Mollie payment %s created (%s)", payment.id, payment.status.value)
        return payment

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        """GET /payments/{id}. An id that is not of Mollie's form is not even asked for."""
        if not _PAYMENT_ID.fullmatch(provider_payment_id):
            raise UnknownProviderPayment(
                f"{provider_payment_id[:64]!r} is not a Mollie payment id", provider=self.id
            )
        return parse_payment(await self._request("GET", f"/payments/{provider_payment_id}"))

    async def check_config(self) -> None:
        """Ask Mollie for the enabled payment methods: that succeeds only with a valid key."""
        if not self._api_key.startswith(("live_", "test_")):
            raise ProviderConfigError(
                "the Mollie API key must start with live_ or test_", provider=self.id
            )
        await self._request("GET", "/methods")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Mapping[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/hal+json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        url = f"{self._base_url}{path}"
        try:
            async with self._http.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,  # never send the key anywhere but to the API itself
            ) as response:
                status, raw = response.status, await response.read()
        except TimeoutError as exc:
            raise ProviderUnavailable(
                f"Mollie did not answer {method} {path} in time", provider=self.id
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(
                f"Mollie could not be reached for {method} {path}: {type(exc).__name__}",
                provider=self.id,
            ) from exc
        data = _json_object(raw)
        if 200 <= status < 300:
            if data is None:
                raise InvalidProviderResponse(
                    f"Mollie answered {method} {path} with something other than a JSON object",
                    provider=self.id,
                )
            return data
        reason = _detail(data or {})
        log.warning("Mollie answered %s %s with HTTP %d", method, path, status)
        if status in (401, 403):
            raise ProviderConfigError(
                f"Mollie refused the API key (HTTP {status}): {reason}", provider=self.id
            )
        if status == 404:
            raise UnknownProviderPayment(f"Mollie does not know {path}: {reason}", provider=self.id)
        # 409: a request with this idempotency key is still being handled; 429: slow down.
        if status in (409, 429) or status >= 500:
            raise ProviderUnavailable(
                f"Mollie answered HTTP {status} to {method} {path}", provider=self.id
            )
        if 400 <= status < 500:
            raise ProviderRejected(f"Mollie refused the request: {reason}", provider=self.id)
        raise InvalidProviderResponse(
            f"Mollie answered HTTP {status} to {method} {path}", provider=self.id
        )


def _json_object(raw: bytes) -> Mapping[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None
    return data if isinstance(data, dict) else None
