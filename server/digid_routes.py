"""The resident's way in: invitation link -> DigiD -> their appointment page.

    GET /i/{token}      redeem the invitation, send an AuthnRequest at the service's LoA
    GET /digid/acs      resolve the artifact, validate, check replay and identity, sign in
    GET /digid/metadata the SP metadata

Every refusal is an audit event and creates no resident session. The BSN exists only inside
the ACS handler: it becomes a keyed pseudonym at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.models import Appointment, ServiceType
from dossier.queries import appointment_owner
from dossier.residents import record_resident_bsn
from identity.digid import DigidServiceProvider, LevelOfAssurance
from identity.digid.errors import (
    DigidCancelled,
    DigidError,
    DigidLoaTooLow,
    DigidLoginNotCompleted,
)
from identity.errors import InvitationInvalid
from identity.invitations import redeem_invitation
from identity.models import SamlRequest, UsedAssertion
from identity.pseudonym import bsn_pseudonym, pseudonyms_match
from identity.sessions import create_session
from retention.audit import Actor
from server.appkeys import CLOCK, DOSSIER_STORE, SETTINGS
from server.pages import message_page
from server.ratelimit import RateLimiter
from server.security import principal_of, session_cookie

__all__ = ["DIGID", "DigidWiring", "add_routes"]


@dataclass(frozen=True, slots=True)
class DigidWiring:
    """The SP, how it reaches the IdP's artifact resolution service, and the page renderer."""

    sp: DigidServiceProvider
    transport: Callable[[str, bytes], Awaitable[bytes]]
    limiter: RateLimiter
    test_idp: object | None = None  # the in-process test IdP, in dev/test


DIGID = web.AppKey("digid", DigidWiring)


_message = message_page


async def _audit(request: web.Request, *, actor: Actor, result: str, ref: str) -> None:
    store = request.app[DOSSIER_STORE]
    await store.audit.append(
        at=await store.now(), actor=actor, action="digid.login", object_type="appointment",
        object_ref=ref, result=result,
    )  # fmt: skip


async def _redeemed(
    session: AsyncSession, *, token: str, kind: str, now: dt.datetime
) -> Appointment | None:
    """The appointment behind a live invitation link of `kind`, or None for any bad link."""
    try:
        invite = await redeem_invitation(session, token=token, now=now)
    except InvitationInvalid:
        return None
    if invite.kind != kind:
        return None
    return await session.get(Appointment, invite.appointment_id)


async def invitation(request: web.Request) -> web.StreamResponse:
    """GET /i/{token}: start DigiD at the level the appointment's service requires."""
    wiring = request.app[DIGID]
    store = request.app[DOSSIER_STORE]
    previous = principal_of(request)
    async with store.sessions() as session, session.begin():
        now = await request.app[CLOCK].now(session)
        token = request.match_info["token"]
        appointment = await _redeemed(session, token=token, kind="resident", now=now)
        if appointment is None:
            return _message(
                request, 404, "Deze link werkt niet",
                "Deze link is niet (meer) geldig. Kijk in de uitnodiging van de gemeente of "
                "bel de gemeente.", "This link is not valid (any more).",
            )  # fmt: skip
        service = await session.get(ServiceType, appointment.service_type_id)
        assert service is not None  # foreign key
        loa = LevelOfAssurance.parse(service.level_of_assurance)
        info = wiring.sp.authn_request(loa=loa, relay_state=appointment.id.hex)
        token, row = await create_session(
            session,
            now=now,
            kind="anonymous",
            pending={"appointment_id": str(appointment.id)},
            replaces=previous.session_hash if previous else None,
        )
        session.add(
            SamlRequest(
                request_id=info.request_id,
                session_hash=row.id_hash,
                level_of_assurance=loa.value,
                created_at=now,
            )
        )
    response = web.HTTPSeeOther(info.redirect_url)
    session_cookie(response, token)
    raise response


async def guest(request: web.Request) -> web.StreamResponse:
    """GET /g/{token}: an interpreter's one-time link; no DigiD, video and chat only."""
    store = request.app[DOSSIER_STORE]
    previous = principal_of(request)
    async with store.sessions() as session, session.begin():
        now = await request.app[CLOCK].now(session)
        token = request.match_info["token"]
        appointment = await _redeemed(session, token=token, kind="guest", now=now)
        if appointment is None:
            return _message(
                request, 404, "Deze link werkt niet",
                "Deze link is niet (meer) geldig. Een tolklink werkt maar één keer.",
                "This link is not valid (any more); an interpreter link works once.",
            )  # fmt: skip
        token, row = await create_session(
            session,
            now=now,
            kind="guest",
            role="guest",
            appointment_id=appointment.id,
            department_id=appointment.department_id,
            replaces=previous.session_hash if previous else None,
        )
    await store.audit.append(
        at=now, actor=f"guest:{row.id_hash[:16]}", action="call.guest_joined",
        object_type="appointment", object_ref=str(appointment.id),
    )  # fmt: skip
    response = web.HTTPSeeOther(f"/tolk/{appointment.id}")
    session_cookie(response, token)
    raise response


async def acs(request: web.Request) -> web.StreamResponse:
    """GET /digid/acs?SAMLart=...: finish the DigiD login."""
    wiring = request.app[DIGID]
    store = request.app[DOSSIER_STORE]
    limited = wiring.limiter.refuse(f"acs:{request.remote}")
    if limited is not None:
        return limited
    principal = principal_of(request)
    pending = (principal.pending or {}) if principal else {}
    anonymous = Actor("anonymous", request.remote or "unknown")
    if principal is None or principal.kind != "anonymous" or "appointment_id" not in pending:
        await _audit(request, actor=anonymous, result="no_pending_login", ref="unknown")
        return _message(
            request, 400, "Inloggen is niet gelukt",
            "Wij weten niet bij welke afspraak dit inloggen hoort. Open de link uit uw "
            "uitnodiging opnieuw.", "We do not know which appointment this login is for.",
        )  # fmt: skip
    appointment_id = uuid.UUID(pending["appointment_id"])
    ref = str(appointment_id)
    artifact = request.query.get("SAMLart", "")
    async with store.sessions() as session:
        now = await request.app[CLOCK].now(session)
        query = select(SamlRequest).where(
            col(SamlRequest.session_hash) == principal.session_hash,
            col(SamlRequest.consumed_at).is_(None),
        )
        issued = {
            row.request_id: LevelOfAssurance.parse(row.level_of_assurance)
            for row in (await session.execute(query)).scalars()
        }
    try:
        xml = await wiring.sp.resolve_artifact(artifact, transport=wiring.transport)
        assertion = wiring.sp.validate_response(xml, request_id_lookup=issued.get, now=now)
    except DigidCancelled:
        await _audit(request, actor=anonymous, result="cancelled", ref=ref)
        return _message(
            request, 401, "U heeft het inloggen afgebroken",
            "U bent niet ingelogd. Open de link uit uw uitnodiging opnieuw als u toch wilt "
            "inloggen.", "You cancelled the DigiD login.",
        )  # fmt: skip
    except DigidLoaTooLow as exc:
        required, given = getattr(exc.required, "value", "?"), getattr(exc.given, "value", "?")
        await _audit(request, actor=anonymous, result="loa_too_low", ref=ref)
        return _message(
            request, 403, "Inloggen met een hoger niveau nodig",
            f"Voor deze afspraak moet u inloggen met DigiD {required}. U logde in "
            f"met {given}. Log opnieuw in, bijvoorbeeld met de DigiD app en uw "
            "identiteitsbewijs.", f"This appointment needs DigiD {required}.",
        )  # fmt: skip
    except DigidLoginNotCompleted:
        await _audit(request, actor=anonymous, result="not_completed", ref=ref)
        return _message(
            request, 401, "Inloggen is niet gelukt", "DigiD meldt dat het inloggen niet is gelukt."
        )
    except DigidError as exc:
        await _audit(request, actor=anonymous, result=exc.code, ref=ref)
        return _message(
            request, 400, "Inloggen is niet gelukt",
            "Het antwoord van DigiD kon niet worden gecontroleerd. Probeer het opnieuw.",
            "The answer from DigiD could not be verified.",
        )  # fmt: skip
    key = request.app[SETTINGS].pseudonym_key.get_secret_value().encode()
    pseudonym = bsn_pseudonym(key, assertion.bsn)
    resident = Actor("resident", pseudonym)
    refused: str | None = None
    try:
        async with store.sessions() as session, session.begin():
            # The replay store: an assertion id is accepted once, kept until it expires.
            session.add(
                UsedAssertion(
                    assertion_id=assertion.assertion_id,
                    used_at=now,
                    expires_at=assertion.replay_until,
                )
            )
            await session.flush()
            request_row = await session.get(SamlRequest, assertion.in_response_to)
            assert request_row is not None  # validate_response checked it was issued
            request_row.consumed_at = now
            appointment = await session.get(Appointment, appointment_id)
            if appointment is None:
                refused = "appointment_gone"
            elif appointment.resident_pseudonym is not None and not pseudonyms_match(
                appointment.resident_pseudonym, pseudonym
            ):
                refused = "other_person"
            else:
                service = await session.get(ServiceType, appointment.service_type_id)
                needs_bsn = service is not None and service.needs_bsn
                token, _ = await create_session(
                    session,
                    now=now,
                    kind="resident",
                    role="resident",
                    appointment_id=appointment_id,
                    department_id=appointment.department_id,
                    resident_pseudonym=pseudonym,
                    level_of_assurance=assertion.loa.value,
                    replaces=principal.session_hash,
                )
    except DatabaseIntegrityError:
        refused = "replayed"
    if refused is not None:
        await _audit(request, actor=resident, result=refused, ref=ref)
        if refused == "other_person":
            return _message(
                request, 403, "Deze afspraak is voor iemand anders",
                "U bent ingelogd met een ander DigiD dan waarvoor deze afspraak is gemaakt. "
                "Is de afspraak wel voor u? Bel dan de gemeente.",
                "This appointment was made for someone else.",
            )  # fmt: skip
        return _message(
            request, 400, "Inloggen is niet gelukt", "Open de link uit uw uitnodiging opnieuw."
        )
    if needs_bsn:
        # The one place the BSN is kept: sealed under the dossier's own key.
        async with store.sessions() as session:
            owner = await appointment_owner(session, appointment_id)
        if owner is not None:
            await record_resident_bsn(
                store,
                actor=resident,
                dossier_id=owner[1],
                bsn=assertion.bsn,
                level_of_assurance=assertion.loa.value,
            )
    await _audit(request, actor=resident, result="ok", ref=ref)
    response = web.HTTPSeeOther(f"/afspraak/{appointment_id}")
    session_cookie(response, token)
    raise response


async def metadata(request: web.Request) -> web.Response:
    """GET /digid/metadata: what DigiD (or the test IdP) needs to know about this SP."""
    xml = request.app[DIGID].sp.metadata()
    return web.Response(text=xml, content_type="application/samlmetadata+xml")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/i/{token}", invitation)
    router.add_get("/g/{token}", guest)
    router.add_get("/digid/acs", acs)
    router.add_get("/digid/metadata", metadata)
