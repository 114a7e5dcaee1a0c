"""Errors of the payments package.

Payments are part of the dossier, so every payment error is a `DossierError` and the one error
middleware already turns it into JSON with a stable `code`. Bad input and a dossier in the
wrong state raise the dossier package's own `InvalidInput` and `InvalidState`.

    DossierError (dossier.errors)
    └── PaymentError                  base of this package; `code` is stable
        ├── PaymentNotFound           no payment with that id in that dossier (also DossierNotFound)
        │   └── DemoCheckoutNotFound  the demo checkout page has no payment with that id
        ├── UnknownProvider           no payment provider is registered under that id
        └── ProviderError             the payment provider did not do what was asked
            ├── ProviderUnavailable   timeout, connection error, 5xx, 429 or an answer that
            │   │                     cannot be read: nothing changed here, try again later
            │   │                     (the reconcile job does)
            │   └── InvalidProviderResponse   the answer came but does not parse
            └── ProviderRejected      4xx: the provider refused the request; message included
                ├── UnknownProviderPayment    404: the provider has no payment with that id
                └── ProviderConfigError       the provider refuses our credentials (401/403)
                                              or the configuration is unusable

Messages name the offending value but never contain an API key or personal data.
"""

from __future__ import annotations

from dossier.errors import DossierError, DossierNotFound

__all__ = [
    "DemoCheckoutNotFound",
    "InvalidProviderResponse",
    "PaymentError",
    "PaymentNotFound",
    "ProviderConfigError",
    "ProviderError",
    "ProviderRejected",
    "ProviderUnavailable",
    "UnknownProvider",
    "UnknownProviderPayment",
]


class PaymentError(DossierError):
    """Base class of every error the payments package raises on purpose."""

    code = "payment_error"


class PaymentNotFound(PaymentError, DossierNotFound):
    code = "payment_not_found"


class DemoCheckoutNotFound(PaymentNotFound):
    code = "demo_checkout_not_found"


class UnknownProvider(PaymentError):
    code = "unknown_payment_provider"


class ProviderError(PaymentError):
    """The provider failed or refused; `provider` names it (an id, never a credential)."""

    code = "provider_error"

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class InvalidProviderResponse(ProviderUnavailable):
    code = "provider_invalid_response"


class ProviderRejected(ProviderError):
    code = "provider_rejected"


class UnknownProviderPayment(ProviderRejected):
    code = "provider_unknown_payment"


class ProviderConfigError(ProviderRejected):
    code = "provider_config"
