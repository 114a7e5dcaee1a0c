"""Payments over HTTP: the clerk asks, the resident pays at the provider, the webhook tells.

    POST /api/dossiers/{dossier_id}/payments   clerk: {fee_code} or {amount_cents, description}
    GET  /api/dossiers/{dossier_id}/payments   clerk and resident: the dossier's payments
    POST /api/payments/webhook/{provider}      the provider: form field `id` (nothing else read)
    GET  /demo-betaling/{checkout_id}          the demo provider's checkout page (dev/test)
    POST /demo-betaling/{checkout_id}          pay / fail / cancel: then the same webhook
    GET  /betaling/klaar                       where the provider sends the resident back

A status change reaches both call pages over signaling at once; the scheduled reconcile job
(`server.scheduler`) finishes whatever a lost webhook left open.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from dossier.models import Appointment, Dossier, ServiceType
from dossier.payments import (
    DemoProvider,
    MollieProvider,
    PaymentInfo,
    PaymentProvider,
    apply_provider_update,
    check_all,
    demo_checkout,
    demo_decide,
    list_payments,
    provider_for,
    request_payment,
)
from identity.authz import Action
from server.appkeys import DOSSIER_STORE, POLICY, SETTINGS
from server.pages import message_page, page
from server.ratelimit import RateLimiter
from server.requests import allowed_in_dossier, parse_json
from server.signaling.room import HUB, notify_call
from server.texts import texts

__all__ = [
    "PAYMENTS",
    "WEBHOOK_LIMITER",
    "WEBHOOK_PREFIX",
    "PaymentWiring",
    "add_routes",
    "notify_payment",
    "payment_json",
    "payments_context",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaymentWiring:
    """The providers whose webhooks Balie answers, and the one new payments go to (None: this
    installation takes no payments)."""

    providers: Mapping[str, PaymentProvider]
    active: str | None
    # /readyz asks the providers at most every few minutes: each check is a call to Mollie.
    checked: dict[str, tuple[float, str]] = field(default_factory=dict)

    async def readiness(self, *, now: float, ttl: float = 300.0) -> dict[str, str]:
        """Per provider id: "ok" or what `check_config` said, cached for `ttl` seconds."""
        stale = [
            provider
            for provider_id, provider in self.providers.items()
            if provider_id not in self.checked or now - self.checked[provider_id][0] > ttl
        ]
        for provider_id, verdict in (await check_all(stale)).items():
            self.checked[provider_id] = (now, verdict)
        return {provider_id: self.checked[provider_id][1] for provider_id in self.providers}


PAYMENTS = web.AppKey("payments", PaymentWiring)
WEBHOOK_LIMITER = web.AppKey("webhook_limiter", RateLimiter)
WEBHOOK_PREFIX = "/api/payments/webhook/"


class PaymentRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fee_code: str | None = Field(default=None, min_length=1, max_length=64)
    # Strict: JSON `true` or "1500" is not an amount of money.
    amount_cents: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    description: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_way(self) -> PaymentRequestIn:
        if (self.fee_code is None) == (self.amount_cents is None):
            raise ValueError("give either fee_code, or amount_cents with a description")
        if self.amount_cents is not None and not self.description:
            raise ValueError("an amount needs a description")
        if self.fee_code is not None and self.description is not None:
            raise ValueError("a fee has its description in the policy; give none with it")
        return self


async def payments_context(app: web.Application) -> AsyncIterator[None]:
    """The payment providers: the demo in dev/test, Mollie when configured; its HTTP client
    session is closed at exit. Refuses to start when the chosen provider is not available."""
    settings = app[SETTINGS]
    providers: dict[str, PaymentProvider] = {}
    async with contextlib.AsyncExitStack() as stack:
        if settings.is_development:
            providers["demo"] = DemoProvider(
                app[DOSSIER_STORE], public_origin=settings.public_origin
            )
        if settings.payment_provider == "mollie" or settings.mollie_api_key.get_secret_value():
            http = await stack.enter_async_context(aiohttp.ClientSession())
            providers["mollie"] = MollieProvider(
                http,
                api_key=settings.mollie_api_key.get_secret_value(),
                base_url=settings.mollie_base_url,
            )
        active = settings.resolved_payment_provider
        if active is not None and active not in providers:
            raise ValueError(
                f"BALIE_PAYMENT_PROVIDER={active!r} is not available here "
                f"(available: {', '.join(sorted(providers)) or 'none'})"
            )
        app[PAYMENTS] = PaymentWiring(providers=providers, active=active)
        yield


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/dossiers/{dossier_id}/payments", request)
    router.add_get("/api/dossiers/{dossier_id}/payments", payments)
    router.add_post(WEBHOOK_PREFIX + "{provider}", webhook)
    router.add_get("/demo-betaling/{checkout_id}", demo_page)
    router.add_post("/demo-betaling/{checkout_id}", demo_submit)
    router.add_get("/betaling/klaar", returned)


def payment_json(info: PaymentInfo) -> dict[str, Any]:
    """A payment as the pages show it (never the idempotency key)."""
    return {
        "id": str(info.payment_id),
        "amount_cents": info.amount_cents,
        "description": info.description,
        "fee_code": info.fee_code,
        "status": info.status.value,
        "checkout_url": info.checkout_url,
        "created_at": info.created_at.isoformat(),
        "paid_at": info.paid_at.isoformat() if info.paid_at else None,
    }


async def notify_payment(app: web.Application, info: PaymentInfo) -> None:
    """Both call pages show the payment's new status at once."""
    await notify_call(app[HUB], info.dossier_id, {"type": "payment", **payment_json(info)})


async def _service_code(app: web.Application, dossier_id: uuid.UUID) -> str:
    async with app[DOSSIER_STORE].sessions() as session:
        dossier = await session.get_one(Dossier, dossier_id)
        appointment = await session.get_one(Appointment, dossier.appointment_id)
        return (await session.get_one(ServiceType, appointment.service_type_id)).code


async def request(request: web.Request) -> web.Response:
    """POST .../payments: the clerk asks for a fee of the service type, or another amount."""
    principal, dossier_id = await allowed_in_dossier(request, Action.REQUEST_PAYMENT)
    body = await parse_json(request, PaymentRequestIn)
    app = request.app
    provider_id = app[PAYMENTS].active
    if provider_id is None:
        raise web.HTTPServiceUnavailable(text="this installation takes no payments")
    if body.fee_code is not None:
        rule = app[POLICY].policy.rule(await _service_code(app, dossier_id))
        fee = rule.fee(body.fee_code)
        amount, description = fee.amount_cents, fee.description
    else:
        assert body.amount_cents is not None  # the model allows no other combination
        assert body.description is not None
        amount, description = body.amount_cents, body.description
    origin = app[SETTINGS].public_origin
    info = await request_payment(
        app[DOSSIER_STORE],
        actor=principal.actor,
        dossier_id=dossier_id,
        amount_cents=amount,
        description=description,
        provider=provider_for(app[PAYMENTS].providers, provider_id),
        redirect_url=f"{origin}/betaling/klaar",
        webhook_url=f"{origin}{WEBHOOK_PREFIX}{provider_id}",
        fee_code=body.fee_code,
    )
    await notify_payment(app, info)
    return web.json_response(payment_json(info), status=201)


async def payments(request: web.Request) -> web.Response:
    """GET .../payments: the dossier's payments, oldest first."""
    principal, dossier_id = await allowed_in_dossier(request, Action.READ_CONTENT)
    infos = await list_payments(
        request.app[DOSSIER_STORE], actor=principal.actor, dossier_id=dossier_id
    )
    return web.json_response({"payments": [payment_json(i) for i in infos]})


async def webhook(request: web.Request) -> web.Response:
    """POST /api/payments/webhook/{provider}: the provider says a payment changed.

    Only the id is read; the status is fetched from the provider. Unknown ids answer 200 like
    known ones, so the endpoint tells nobody which ids exist; 503 makes the provider retry.
    """
    limited = request.app[WEBHOOK_LIMITER].refuse(f"webhook:{request.remote}")
    if limited is not None:
        return limited
    providers = request.app[PAYMENTS].providers
    provider = provider_for(providers, request.match_info["provider"])  # 404 if unknown
    form = await request.post()
    payment_id = form.get("id")
    if not isinstance(payment_id, str) or not 1 <= len(payment_id) <= 64:
        raise web.HTTPUnprocessableEntity(text="the webhook needs a form field 'id'")
    update = await apply_provider_update(
        request.app[DOSSIER_STORE],
        provider=provider,
        provider_payment_id=payment_id,
        source="webhook",
    )
    if update is not None and update.changed:
        await notify_payment(request.app, update.payment)
    return web.Response(text="ok")


async def demo_page(request: web.Request) -> web.Response:
    """GET /demo-betaling/{id}: the demo provider's hosted checkout (pay, fail, cancel)."""
    view = await demo_checkout(
        request.app[DOSSIER_STORE], checkout_id=request.match_info["checkout_id"]
    )
    if view is None:
        return message_page(request, 404, "Betaling niet gevonden", "Deze betaling bestaat niet.")
    t = texts("nl")
    return page(
        request,
        "payments/demo_checkout.html",
        title="Demo-betaling",
        checkout_id=view.checkout_id,
        amount=f"€ {view.amount_cents // 100},{view.amount_cents % 100:02d}",
        description=view.description,
        status_text=t.get(f"js.pay.status.{view.status.value}", view.status.value),
        open=view.status.value == "open",
    )


async def demo_submit(request: web.Request) -> web.StreamResponse:
    """POST /demo-betaling/{id} (outcome=paid|failed|canceled): decide, call the webhook as a
    real provider would, and send the resident back."""
    form = await request.post()
    outcome = form.get("outcome")
    if outcome not in ("paid", "failed", "canceled"):
        raise web.HTTPUnprocessableEntity(text="outcome must be paid, failed or canceled")
    chosen: Literal["paid", "failed", "canceled"] = outcome  # type: ignore[assignment]
    decision = await demo_decide(
        request.app[DOSSIER_STORE], checkout_id=request.match_info["checkout_id"], outcome=chosen
    )
    # Over HTTP, to Balie's own public address: the same path Mollie's webhook takes.
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(decision.webhook_url, data={"id": decision.provider_payment_id}) as answer,
        ):
            if answer.status != 200:
                log.warning("demo webhook answered %s", answer.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The reconcile job will pick the payment up, as it would after a lost Mollie webhook.
        log.warning("demo webhook failed: %s", type(exc).__name__)
    raise web.HTTPSeeOther(decision.redirect_url)


async def returned(request: web.Request) -> web.Response:
    """GET /betaling/klaar: back from the provider's page, in the tab that was opened for it."""
    return message_page(
        request, 200, "U bent terug van de betaalpagina",
        "U kunt dit venster sluiten. In het gesprek ziet u of de betaling gelukt is.",
        "You can close this window. The conversation shows whether the payment succeeded.",
    )  # fmt: skip
