"""A fake of Mollie's REST API v2 on 127.0.0.1, with controls for the tests.

    POST /v2/payments        checks the Bearer key and the body; honours Idempotency-Key
                             (same key and body: the first answer again, never a second
                             payment; same key, other body: 422)
    GET  /v2/payments/{id}   the payment's current state; 404 for an unknown id
    GET  /v2/methods         200 for the right key (what check_config asks)

Controls: `fail_next` (answer the next N requests with an error, doing nothing),
`hang_next` (do the next N requests, then hold the answer until `release()`: the client
times out although the payment was made), `set_status` (the resident paid, gave up, ...;
records the webhook Mollie would call), `set_amount`. `created` counts payments made, so a
test can assert "exactly one payment at the provider". The fake calls no webhook itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import string
from collections import deque
from typing import Any

from aiohttp import web

from support import free_port

API_KEY = "test_" + "F" * 30
_VALUE = re.compile(r"\d{1,10}\.\d{2}")
_HAL = "application/hal+json"


def _error(status: int, title: str, detail: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"status": status, "title": title, "detail": detail}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, content_type=_HAL)


class FakeMollie:
    """Start with `async with FakeMollie() as mollie:`; point MollieProvider at `base_url`."""

    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.payments: dict[str, dict[str, Any]] = {}
        self.created = 0  # payments made; idempotent replays do not count
        self.replays = 0
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, idempotency key
        self.webhook_calls: list[tuple[str, str]] = []  # (webhook URL, payment id)
        self.payment_created = asyncio.Event()
        self._by_key: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._failures: deque[int] = deque()
        self._hangs = 0
        self._release = asyncio.Event()
        self._port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v2"

    async def __aenter__(self) -> FakeMollie:
        app = web.Application()
        app.router.add_post("/v2/payments", self._create)
        app.router.add_get("/v2/payments/{id}", self._get)
        app.router.add_get("/v2/methods", self._methods)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        assert self._runner is not None
        await self._runner.cleanup()

    # Controls

    def fail_next(self, count: int = 1, *, status: int = 503) -> None:
        """Answer the next `count` requests with `status`, without doing them."""
        self._failures.extend([status] * count)

    def hang_next(self, count: int = 1) -> None:
        """Do the next `count` requests, then hold their answers until `release()`."""
        self._hangs += count
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def set_status(self, payment_id: str, status: str) -> None:
        """The payment moved at Mollie; Mollie would now call its webhook with the id."""
        payment = self.payments[payment_id]
        payment["status"] = status
        if status != "open":
            payment["_links"].pop("checkout", None)
        if payment.get("webhookUrl"):
            self.webhook_calls.append((payment["webhookUrl"], payment_id))

    def set_amount(self, payment_id: str, value: str) -> None:
        self.payments[payment_id]["amount"]["value"] = value

    def payment_ids(self) -> list[str]:
        return list(self.payments)

    # The API

    async def _gate(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path, request.headers.get("Idempotency-Key")))
        if self._failures:
            status = self._failures.popleft()
            return _error(status, "Injected failure", f"the fake answers {status} this time")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "Unauthorized Request", "Missing authentication, or failed to authenticate"
            )
        return None

    async def _answer(self, response: web.Response) -> web.Response:
        if self._hangs:
            self._hangs -= 1
            await self._release.wait()
        return response

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Bad Request", "The request body is not valid JSON")
        if (invalid := self._validate(body)) is not None:
            return invalid
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self._by_key:
            first_body, first_answer = self._by_key[key]
            if first_body != body:
                return _error(
                    422, "Unprocessable Entity", "The idempotency key was used for another request"
                )
            self.replays += 1
            return await self._answer(
                web.json_response(first_answer, status=201, content_type=_HAL)
            )
        payment = self._new_payment(body)
        self.payments[payment["id"]] = payment
        self.created += 1
        answer = json.loads(json.dumps(payment))  # the answer as it was, not as it will be
        if key is not None:
            self._by_key[key] = (body, answer)
        self.payment_created.set()
        return await self._answer(web.json_response(answer, status=201, content_type=_HAL))

    async def _get(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        payment = self.payments.get(request.match_info["id"])
        if payment is None:
            detail = f"No payment exists with token {request.match_info['id']}."
            return _error(404, "Not Found", detail)
        return await self._answer(web.json_response(payment, content_type=_HAL))

    async def _methods(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        methods = [{"resource": "method", "id": "ideal", "description": "iDEAL"}]
        return web.json_response({"count": 1, "_embedded": {"methods": methods}}, content_type=_HAL)

    @staticmethod
    def _validate(body: Any) -> web.Response | None:
        def bad(detail: str, field: str) -> web.Response:
            return _error(422, "Unprocessable Entity", detail, field)

        if not isinstance(body, dict):
            return bad("The request body must be an object", "body")
        amount = body.get("amount")
        if not isinstance(amount, dict) or amount.get("currency") != "EUR":
            return bad("The amount currency is invalid", "amount.currency")
        value = amount.get("value")
        if not isinstance(value, str) or not _VALUE.fullmatch(value) or value == "0.00":
            return bad("The amount value is invalid", "amount.value")
        description = body.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 255:
            return bad("The description is invalid", "description")
        if not str(body.get("redirectUrl", "")).startswith(("http://", "https://")):
            return bad("The redirect URL is invalid", "redirectUrl")
        if "webhookUrl" in body and not isinstance(body["webhookUrl"], str):
            return bad("The webhook URL is invalid", "webhookUrl")
        return None

    def _new_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        alphabet = string.ascii_letters + string.digits
        payment_id = "tr_" + "".join(secrets.choice(alphabet) for _ in range(10))
        return {
            "resource": "payment",
            "id": payment_id,
            "mode": "test",
            "createdAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "status": "open",
            "amount": dict(body["amount"]),
            "description": body["description"],
            "method": None,
            "metadata": body.get("metadata"),
            "redirectUrl": body["redirectUrl"],
            "webhookUrl": body.get("webhookUrl"),
            "profileId": "pfl_fake",
            "_links": {
                "self": {"href": f"{self.base_url}/payments/{payment_id}", "type": _HAL},
                "checkout": {"href": f"{self.origin}/checkout/{payment_id}", "type": "text/html"},
            },
        }
