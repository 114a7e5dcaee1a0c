"""Retention notices through the service functions: warnings at T-14, T-7 and T-1 days and the
escalation at T-7 for dossiers that must be archived, moved there with the manual clock; and
their e-mail to a fake SMTP server on 127.0.0.1, including one that fails and is retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlmodel import col

from dossier.appointments import ensure_service_type
from dossier.models import Dossier, DossierState, ServiceType
from retention.audit import Actor
from retention.holds import approve_hold, request_hold
from retention.mail import send_pending_notices
from retention.models import AuditEvent, RetentionNotice
from retention.notices import acknowledge_notice, issue_notices
from server.resources import make_store

from fake_smtp import FakeSmtp
from support import BSN, CLERK, book, engine_of, free_port

SECOND = dt.timedelta(seconds=1)
IM = Actor("information_manager", "emp-im")


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


async def add_services(store) -> None:
    """`uittreksel`: nothing to archive; `afwijkend`: nothing to archive but the rule says
    escalate first."""
    async with store.sessions() as session, session.begin():
        await ensure_service_type(session, code="uittreksel", label="Uittreksel BRP",
                                  archive_mode="none")  # fmt: skip
        special = await ensure_service_type(session, code="afwijkend", label="Afwijkend",
                                            archive_mode="none")  # fmt: skip
        special.on_deadline = "escalate_then_destroy"


async def kinds(store) -> set[tuple[str, str]]:
    """(service type, kind) of every notice."""
    async with store.sessions() as session:
        rows = await session.execute(
            select(col(RetentionNotice.service_type), col(RetentionNotice.kind))
        )
        return {(service, kind) for service, kind in rows}


async def notice_events(store) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = (
            select(AuditEvent)
            .where(col(AuditEvent.action).in_(["retention.warning", "retention.escalated"]))
            .order_by(col(AuditEvent.seq))
        )
        return list((await session.execute(query)).scalars())


async def test_warnings_at_14_7_1_days_and_escalation_for_export_required_only(store, clock):
    await add_services(store)
    required = await book(store, clock)  # geboorteaangifte: export required
    optional = await book(store, clock, service="uittreksel")
    special = await book(store, clock, service="afwijkend")
    deadline = required.dossier.deadline
    assert optional.dossier.deadline == deadline == special.dossier.deadline

    async def at(moment: dt.datetime) -> set[tuple[str, str]]:
        clock.current = moment
        return {(n.service_type, n.kind) for n in await issue_notices(store, now=moment)}

    every = ("geboorteaangifte", "uittreksel", "afwijkend")
    assert await at(deadline - days(14) - SECOND) == set()
    assert await at(deadline - days(14)) == {(s, "warning_14") for s in every}
    assert await at(deadline - days(14)) == set()  # once
    assert await at(deadline - days(7) - SECOND) == set()
    assert await at(deadline - days(7)) == {(s, "warning_7") for s in every} | {
        ("geboorteaangifte", "escalation"),
        ("afwijkend", "escalation"),
    }
    assert await at(deadline - days(1) - SECOND) == set()
    assert await at(deadline - days(1)) == {(s, "warning_1") for s in every}
    assert await at(deadline - SECOND) == set()

    events = await notice_events(store)
    assert len(events) == 11
    escalated = [e for e in events if e.action == "retention.escalated"]
    assert {e.object_ref for e in escalated} == {str(required.dossier.id), str(special.dossier.id)}
    first = json.loads(events[0].detail)
    assert first["kind"] == "warning_14"
    assert first["deadline"] == deadline.isoformat()
    assert all(e.actor == "system:retention-notices" and e.object_type == "dossier" for e in events)


async def test_a_late_run_issues_only_the_most_urgent_warning(store, clock):
    booked = await book(store, clock)
    moment = booked.dossier.deadline - dt.timedelta(hours=12)
    created = await issue_notices(store, now=moment)
    assert sorted(n.kind for n in created) == ["escalation", "warning_1"]
    # Earlier thresholds are not filled in afterwards either.
    assert await issue_notices(store, now=moment + dt.timedelta(hours=1)) == []


async def test_held_destroying_and_past_dossiers_get_no_warning(store, clock):
    held, destroying = await book(store, clock), await book(store, clock)
    hold = await request_hold(store, dossier_id=held.dossier.id, ground="court",
                              reason="Rechtszaak, rolnummer C/10/123", ends_at=clock.current
                              + days(90), actor=CLERK)  # fmt: skip
    await approve_hold(store, hold_id=hold.id, actor=IM)
    async with store.sessions() as session, session.begin():
        await session.execute(
            update(Dossier)
            .where(col(Dossier.id) == destroying.dossier.id)
            .values(state=DossierState.DESTROYING)
        )
    moment = held.dossier.deadline - days(3)
    assert await issue_notices(store, now=moment) == []
    # A requested (not approved) hold does not stop the warnings.
    other = await book(store, clock)
    await request_hold(
        store, dossier_id=other.dossier.id, ground="woo", reason="Woo-verzoek 2026-17 loopt nog",
        ends_at=clock.current + days(90), actor=CLERK,
    )  # fmt: skip
    assert {n.kind for n in await issue_notices(store, now=moment)} == {"warning_7", "escalation"}


async def test_two_processes_issue_each_notice_once(store, clock, settings):
    for _ in range(5):
        await book(store, clock)
    second = make_store(settings, engine_of(store), clock)
    moment = clock.current + dt.timedelta(days=50)
    try:
        one, two = await asyncio.gather(
            issue_notices(store, now=moment), issue_notices(second, now=moment)
        )
    finally:
        await second.audit.close()
    assert len(one) + len(two) == 10  # 5 x (warning_7 + escalation), whoever made them
    async with store.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(RetentionNotice))).scalar()
    assert count == 10
    assert len(await notice_events(store)) == 10


async def test_acknowledging_is_audited_once(store, clock):
    booked = await book(store, clock)
    [notice] = await issue_notices(store, now=booked.dossier.deadline - days(10))
    first = await acknowledge_notice(store, notice_id=notice.id, actor=IM)
    clock.advance(dt.timedelta(hours=1))
    again = await acknowledge_notice(store, notice_id=notice.id, actor=Actor("clerk", "x"))
    assert first.acknowledged_by == again.acknowledged_by == "information_manager:emp-im"
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "retention.notice_acknowledged")
        events = list((await session.execute(query)).scalars())
    assert [e.object_ref for e in events] == [str(booked.dossier.id)]


# --- e-mail -----------------------------------------------------------------------------------


def mail_settings(settings, port: int):
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_starttls": False,
            "smtp_username": "balie",
            "smtp_password": SecretStr("smtp-secret"),
            "smtp_from": "balie@gemeente.example",
            "smtp_timeout": 5.0,
            "public_url": "https://balie.gemeente.example",
            "notify_departments": {"burgerzaken": "burgerzaken@gemeente.example"},
            "notify_information_managers": ["ib@gemeente.example", "ib2@gemeente.example"],
        }
    )


async def stored_notices(store) -> dict[str, RetentionNotice]:
    async with store.sessions() as session:
        return {n.kind: n for n in (await session.execute(select(RetentionNotice))).scalars()}


async def test_notices_are_emailed_once_without_personal_data(store, clock, settings):
    booked = await book(store, clock, resident_pseudonym="pseudo-" + "b" * 16)
    moment = booked.dossier.deadline - days(7)
    await issue_notices(store, now=moment)
    async with FakeSmtp() as smtp:
        configured = mail_settings(settings, smtp.port)
        assert await send_pending_notices(store, configured, now=moment) == 2
        assert await send_pending_notices(store, configured, now=moment) == 0  # once
    assert smtp.logins == [("balie", "smtp-secret")] * 2  # one connection per notice
    by_kind = {
        "warning" if "wordt" in m.message["Subject"] else "escalation": m for m in smtp.received
    }
    warning, escalation = by_kind["warning"], by_kind["escalation"]
    assert warning.rcpt_to == ["burgerzaken@gemeente.example"]
    assert escalation.rcpt_to == ["ib@gemeente.example", "ib2@gemeente.example"]
    local_deadline = "27-04-2026 12:00"  # starts 10:00 UTC, + 56 days, in summer time (CEST)
    for mail in (warning, escalation):
        body = mail.body
        assert "Geboorteaangifte" in body
        assert str(booked.dossier.id) in body
        assert local_deadline in body
        assert mail.mail_from == "balie@gemeente.example"
        for secret in (BSN, "pseudo-", str(booked.appointment.id)):
            assert secret not in body
            assert secret not in str(mail.message)
    assert "https://balie.gemeente.example/balie" in warning.body
    assert "https://balie.gemeente.example/beheer/meldingen" in escalation.body
    assert "morgen" not in warning.message["Subject"]
    assert "over 7 dagen" in warning.message["Subject"]
    stored = await stored_notices(store)
    assert all(n.emailed_at == moment and n.email_error is None for n in stored.values())


async def test_a_failing_server_leaves_the_error_and_is_retried(store, clock, settings):
    booked = await book(store, clock)
    moment = booked.dossier.deadline - days(14)
    await issue_notices(store, now=moment)
    async with FakeSmtp() as smtp:
        configured = mail_settings(settings, smtp.port)
        smtp.failing = True
        assert await send_pending_notices(store, configured, now=moment) == 0
        [notice] = (await stored_notices(store)).values()
        assert notice.emailed_at is None
        assert notice.email_error is not None
        assert "451" in notice.email_error
        assert smtp.received == []

        smtp.failing = False
        later = moment + dt.timedelta(minutes=5)
        assert await send_pending_notices(store, configured, now=later) == 1
    [notice] = (await stored_notices(store)).values()
    assert notice.emailed_at == later
    assert notice.email_error is None
    assert len(smtp.received) == 1


async def test_unreachable_server_and_missing_address_are_recorded(store, clock, settings):
    booked = await book(store, clock)
    moment = booked.dossier.deadline - days(7)
    await issue_notices(store, now=moment)
    nowhere = mail_settings(settings, free_port())
    assert await send_pending_notices(store, nowhere, now=moment) == 0
    stored = await stored_notices(store)
    assert all("ConnectionRefusedError" in (n.email_error or "") for n in stored.values())

    async with FakeSmtp() as smtp:
        unaddressed = mail_settings(settings, smtp.port).model_copy(
            update={"notify_departments": {}}
        )
        assert await send_pending_notices(store, unaddressed, now=moment) == 1  # escalation
    stored = await stored_notices(store)
    assert stored["warning_7"].email_error == "no e-mail address configured for burgerzaken"
    assert stored["escalation"].emailed_at == moment


async def test_no_smtp_host_sends_nothing(store, clock, settings):
    booked = await book(store, clock)
    await issue_notices(store, now=booked.dossier.deadline - days(7))
    assert await send_pending_notices(store, settings, now=clock.current) == 0
    stored = await stored_notices(store)
    assert all(n.emailed_at is None and n.email_error is None for n in stored.values())


async def test_service_label_change_does_not_break_mail(store, clock, settings):
    # The notice names its service type by code; the label comes from the table at send time.
    booked = await book(store, clock)
    moment = booked.dossier.deadline - days(1)
    await issue_notices(store, now=moment)
    async with store.sessions() as session, session.begin():
        await session.execute(
            update(ServiceType)
            .where(col(ServiceType.code) == "geboorteaangifte")
            .values(label="Aangifte geboorte")
        )
    async with FakeSmtp() as smtp:
        assert (
            await send_pending_notices(store, mail_settings(settings, smtp.port), now=moment) == 2
        )
    assert all("Aangifte geboorte" in m.body for m in smtp.received)
    assert any("morgen" in m.message["Subject"] for m in smtp.received)
