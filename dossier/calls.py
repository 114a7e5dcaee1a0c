"""The call's steps as the dossier records them: SCHEDULED -> WAITING -> IN_CALL -> ENDED.

A denied knock goes back to SCHEDULED (the resident may knock again). Each step is an audit
event in the transaction that makes it. Who may take a step is decided before these are called.
"""

from __future__ import annotations

import uuid

from dossier.errors import InvalidState
from dossier.lookup import get_live_dossier, record_dossier_event
from dossier.models import Dossier, DossierState
from dossier.store import DossierStore
from retention.audit import Actor

__all__ = ["admit", "deny", "end_call", "knock"]


async def _step(
    store: DossierStore,
    *,
    actor: Actor,
    dossier_id: uuid.UUID,
    allowed_from: tuple[DossierState, ...],
    to: DossierState,
    action: str,
) -> Dossier:
    async with store.sessions() as session, session.begin():
        dossier = await get_live_dossier(session, dossier_id)
        if dossier.state == to:
            return dossier  # a repeated step (two clerks, a reconnect) changes nothing
        if dossier.state not in allowed_from:
            raise InvalidState(f"the call cannot go from {dossier.state} to {to.value}")
        now = await store.clock.now(session)
        dossier.state, dossier.state_changed_at = to, now
        if to is DossierState.ENDED:
            dossier.ended_at = now
        await record_dossier_event(
            session, at=now, actor=actor, action=action, dossier_id=dossier_id,
            detail={"state": to.value},
        )  # fmt: skip
        return dossier


async def knock(store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID) -> Dossier:
    """The resident is in the waiting room (also while a call runs: a rejoin after a drop)."""
    async with store.sessions() as session:
        state = (await get_live_dossier(session, dossier_id)).state
    if state == DossierState.IN_CALL:
        async with store.sessions() as session:
            return await get_live_dossier(session, dossier_id)
    return await _step(
        store, actor=actor, dossier_id=dossier_id, allowed_from=(DossierState.SCHEDULED,),
        to=DossierState.WAITING, action="call.knocked",
    )  # fmt: skip


async def admit(store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID) -> Dossier:
    """The clerk lets the resident in: the call begins."""
    return await _step(
        store, actor=actor, dossier_id=dossier_id, allowed_from=(DossierState.WAITING,),
        to=DossierState.IN_CALL, action="call.admitted",
    )  # fmt: skip


async def deny(store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID) -> Dossier:
    """The clerk sends the resident back; they may knock again."""
    return await _step(
        store, actor=actor, dossier_id=dossier_id, allowed_from=(DossierState.WAITING,),
        to=DossierState.SCHEDULED, action="call.denied",
    )  # fmt: skip


async def end_call(store: DossierStore, *, actor: Actor, dossier_id: uuid.UUID) -> Dossier:
    """The clerk ends the conversation; the dossier waits for export or its deadline."""
    return await _step(
        store, actor=actor, dossier_id=dossier_id,
        allowed_from=(DossierState.IN_CALL, DossierState.WAITING, DossierState.SCHEDULED),
        to=DossierState.ENDED, action="call.ended",
    )  # fmt: skip
