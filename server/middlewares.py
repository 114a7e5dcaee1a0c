"""One place where domain errors become HTTP responses: `{"code": ..., "message": ...}`."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from dossier import errors as dossier_errors
from dossier.inspection.errors import InspectionError
from dossier.payments import errors as payment_errors
from identity import errors as identity_errors
from retention import errors as retention_errors

__all__ = ["error_middleware", "error_response", "status_for"]

log = logging.getLogger(__name__)

# Most specific class first: the first isinstance match decides the status.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (payment_errors.UnknownProvider, 404),
    (payment_errors.ProviderUnavailable, 503),
    (payment_errors.ProviderRejected, 502),
    (dossier_errors.DossierNotFound, 404),
    (dossier_errors.DossierDestroyed, 410),
    (dossier_errors.InvalidState, 409),
    (dossier_errors.DocumentTooLarge, 413),
    (dossier_errors.InvalidInput, 422),
    (dossier_errors.KeyUnavailable, 503),
    (dossier_errors.IntegrityError, 500),
    (identity_errors.Forbidden, 403),
    (identity_errors.InvalidAccount, 422),
    (identity_errors.InvalidBsn, 422),
    (identity_errors.InvitationInvalid, 404),
    (identity_errors.IdentityError, 401),
    (retention_errors.InvalidAuditEvent, 422),
    (retention_errors.UnknownFee, 422),
    (retention_errors.UnknownService, 422),
    (retention_errors.PolicyError, 422),
    (retention_errors.PolicyRefused, 409),
    (retention_errors.PolicyNotFound, 404),
    (retention_errors.CheckpointError, 503),
)


def status_for(exc: Exception) -> int:
    """The HTTP status for a domain error."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(status: int, code: str, message: str) -> web.Response:
    """The JSON error body every endpoint uses."""
    return web.json_response({"code": code, "message": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and aiohttp's HTTP errors into JSON with a stable code."""
    try:
        return await handler(request)
    except (
        dossier_errors.DossierError,
        identity_errors.IdentityError,
        retention_errors.RetentionError,
    ) as exc:
        status = status_for(exc)
        if status >= 500:
            log.error("%s on %s %s: %s", exc.code, request.method, request.path, exc)
        return error_response(status, exc.code, str(exc))
    except InspectionError as exc:
        # An upload refused for what it is: 415 (type), 422 (unsafe), 503 (scanner down).
        return error_response(exc.status, exc.code, str(exc))
    except web.HTTPException as exc:
        # A page a handler rendered for its refusal (an HTML 403) is shown as it is.
        if exc.empty_body or exc.status < 400 or exc.content_type == "text/html":
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.text or exc.reason)
