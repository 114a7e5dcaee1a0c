"""Payments of a dossier: fees the clerk asks for and the resident pays at a provider.

    states      the statuses and the explicit table of allowed moves
    providers   the provider interface, ProviderPayment, the registry by id
    demo        Balie's own checkout page (development, tests, `make demo`)
    mollie      Mollie's REST API v2
    service     request a payment, apply a provider's report, list payments
    reconcile   the scheduled job that finishes every payment that is not final
    refunds     refunds as records of their own

Amounts are whole euro cents everywhere. Payments belong to the dossier: they are listed for
export with it and their rows are deleted when it is destroyed (`dossier.shredding`).
"""

from __future__ import annotations

from dossier.payments.demo import (
    DemoCheckoutView,
    DemoDecision,
    DemoProvider,
    demo_checkout,
    demo_decide,
)
from dossier.payments.errors import (
    DemoCheckoutNotFound,
    InvalidProviderResponse,
    PaymentError,
    PaymentNotFound,
    ProviderConfigError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProvider,
    UnknownProviderPayment,
)
from dossier.payments.info import PaymentInfo, PaymentUpdate, RefundInfo
from dossier.payments.mollie import MollieProvider
from dossier.payments.providers import (
    PaymentProvider,
    ProviderPayment,
    check_all,
    provider_for,
    registry,
)
from dossier.payments.reconcile import reconcile_payments
from dossier.payments.refunds import record_refund
from dossier.payments.service import (
    apply_provider_update,
    list_payments,
    read_payment,
    request_payment,
)
from dossier.payments.states import FINAL, PaymentStatus, RefundStatus, can_move

__all__ = [
    "FINAL",
    "DemoCheckoutNotFound",
    "DemoCheckoutView",
    "DemoDecision",
    "DemoProvider",
    "InvalidProviderResponse",
    "MollieProvider",
    "PaymentError",
    "PaymentInfo",
    "PaymentNotFound",
    "PaymentProvider",
    "PaymentStatus",
    "PaymentUpdate",
    "ProviderConfigError",
    "ProviderError",
    "ProviderPayment",
    "ProviderRejected",
    "ProviderUnavailable",
    "RefundInfo",
    "RefundStatus",
    "UnknownProvider",
    "UnknownProviderPayment",
    "apply_provider_update",
    "can_move",
    "check_all",
    "demo_checkout",
    "demo_decide",
    "list_payments",
    "provider_for",
    "read_payment",
    "reconcile_payments",
    "record_refund",
    "registry",
    "request_payment",
]
