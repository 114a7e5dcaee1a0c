"""Small helpers every handler needs: a JSON body checked against a model, who an
unauthenticated caller is for the audit log, and an authorisation decision that is audited."""

from __future__ import annotations

import uuid
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dossier.queries import dossier_owner
from identity.authz import Action, Target, decide
from identity.errors import Forbidden, NotAuthenticated
from identity.sessions import Principal
from retention.audit import Actor
from server.appkeys import DOSSIER_STORE
from server.security import principal_of

__all__ = ["allowed_in_dossier", "anonymous_actor", "parse_json", "refused"]

M = TypeVar("M", bound=BaseModel)


async def parse_json(request: web.Request, model: type[M]) -> M:
    """The body as `model`; 422 naming every field that is wrong, or that it is not JSON."""
    try:
        return model.model_validate(await request.json())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise web.HTTPUnprocessableEntity(text=problems) from None
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for a body that is not UTF-8
        raise web.HTTPUnprocessableEntity(text="body is not JSON") from None


def anonymous_actor(request: web.Request) -> Actor:
    """Someone not signed in, known to the audit log by the address they came from."""
    return Actor("anonymous", request.remote or "unknown")


async def refused(request: web.Request, action: Action, target: Target, ref: str) -> str | None:
    """None if the caller may do `action` on `target`; else the reason, after auditing it."""
    principal = principal_of(request)
    reason = decide(principal, action, target)
    if reason is None:
        return None
    store = request.app[DOSSIER_STORE]
    await store.audit.append(
        at=await store.now(),
        actor=principal.actor if principal else anonymous_actor(request),
        action="access.denied",
        object_type="request",
        object_ref=ref,
        result="denied",
        detail={"action": action.value, "reason": reason},
    )
    return reason


async def allowed_in_dossier(request: web.Request, action: Action) -> tuple[Principal, uuid.UUID]:
    """(principal, dossier id of the path) if the caller may do `action` in that dossier.

    Raises 404 for a malformed id, DossierNotFound/DossierDestroyed (to anyone signed in: ids
    are random, nothing to guess), NotAuthenticated or Forbidden (audited by `refused`).
    """
    try:
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
    except ValueError:
        raise web.HTTPNotFound(text="dossier_id is not an id") from None
    target = Target()
    if principal_of(request) is not None:
        async with request.app[DOSSIER_STORE].sessions() as session:
            target = Target(*await dossier_owner(session, dossier_id))
    reason = await refused(request, action, target, str(dossier_id))
    principal = principal_of(request)
    if reason is None and principal is not None:
        return principal, dossier_id
    if principal is None:
        raise NotAuthenticated("sign in first")
    raise Forbidden(f"not allowed: {reason}")
