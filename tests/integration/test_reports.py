"""The reports of the information manager and privacy officer, as service functions.

A prepared set of dossiers has one of every outcome (exported, destroyed at the deadline, on
cancel and by an operator, live, on hold, escalated) and one of each violation made by hand in
the database; the reconciliation report must count every line right and list exactly those
violations, and the destruction statement must list exactly the destroyed dossiers.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import update
from sqlmodel import col

from dossier.appointments import ensure_service_type
from dossier.chat import append_chat_message
from dossier.db import ManualClock, read_session
from dossier.models import Dossier, Tombstone, TombstoneOutcome
from dossier.residents import record_resident_bsn
from dossier.shredding import ExportRecord, destroy_dossier
from dossier.store import DossierStore
from retention.audit import Actor
from retention.models import (
    AuditVerification,
    DestructionBatch,
    Hold,
    PolicyVersion,
    RetentionNotice,
)
from retention.reports import (
    Period,
    month_period,
    overview,
    reconciliation,
)
from retention.statements import (
    destruction_batches,
    destruction_months,
    statement_for_batch,
    statement_for_month,
)
from retention.trail import dossier_trail

from support import BSN, CLERK, RESIDENT, book

MARCH = Period(dt.date(2026, 3, 1), dt.date(2026, 3, 31))
OPERATOR = Actor.operator("root")
SWEEPER = Actor.system("sweeper")
IM = "information_manager:emp-im-1"
PO = "privacy_officer:emp-po-1"
BATCH = "sweep-20260320-0001"
# What must never appear in a report: the resident's BSN and name, the chat, staff names.
RESIDENT_NAME = "Sophie Jansen"
CHAT = f"Mijn dochter heet {RESIDENT_NAME}, mijn BSN is {BSN}. Geheim-7f3a."
CLERK_NAME = "Anna de Vries"
SECRETS = (BSN, RESIDENT_NAME, "Jansen", "Geheim-7f3a", CLERK_NAME)


@dataclass
class Prepared:
    """The ids of the prepared dossiers, by what happened to them."""

    exported: uuid.UUID
    at_deadline: uuid.UUID
    on_cancel: uuid.UUID
    by_operator: uuid.UUID
    february: uuid.UUID  # created in February, destroyed by an operator in March
    live: uuid.UUID
    on_hold: uuid.UUID  # past its deadline, with an active hold: no violation
    escalated: uuid.UUID
    past_deadline: uuid.UUID  # violation (a)
    exported_live: uuid.UUID  # violation (b): exported_at set, content still here
    exported_tombstone: uuid.UUID  # violation (b): tombstone "exported", data key still here
    unarchived: uuid.UUID  # violation (c): destroyed at deadline, export was required
    destroyed: set[uuid.UUID] = field(default_factory=set)


async def _talk(store: DossierStore, dossier_id: uuid.UUID) -> None:
    """Put personal data into the dossier: chat with a name and a BSN, and the sealed BSN."""
    await append_chat_message(store, actor=RESIDENT, dossier_id=dossier_id, text=CHAT)
    await append_chat_message(store, actor=CLERK, dossier_id=dossier_id, text=f"Dag {CLERK_NAME}")


async def prepare(store: DossierStore, clock: ManualClock) -> Prepared:
    """The prepared set. The clock ends at 25 March 2026, 09:00 UTC."""
    async with store.sessions() as session, session.begin():
        await ensure_service_type(session, code="informatie", label="Informatie",
                                  archive_mode="none")  # fmt: skip
    start = clock.current  # 2 March 2026, 09:00 UTC
    clock.current = dt.datetime(2026, 2, 25, 9, 0, tzinfo=dt.UTC)
    february = (await book(store, clock, service="informatie")).dossier.id
    clock.current = start
    ids = {}
    for name, service in (
        ("exported", "geboorteaangifte"),
        ("at_deadline", "informatie"),
        ("on_cancel", "geboorteaangifte"),
        ("by_operator", "informatie"),
        ("live", "kort"),
        ("on_hold", "geboorteaangifte"),
        ("escalated", "geboorteaangifte"),
        ("past_deadline", "kort"),
        ("exported_live", "geboorteaangifte"),
        ("exported_tombstone", "geboorteaangifte"),
        ("unarchived", "geboorteaangifte"),
    ):
        ids[name] = (await book(store, clock, service=service)).dossier.id
        await _talk(store, ids[name])
    await record_resident_bsn(store, actor=RESIDENT, dossier_id=ids["on_hold"], bsn=BSN,
                              level_of_assurance="substantieel")  # fmt: skip
    prepared = Prepared(february=february, **ids)

    clock.current = dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC)
    async with store.sessions() as session, session.begin():
        session.add(DestructionBatch(id=BATCH, started_at=clock.current, actor=str(SWEEPER),
                                     policy_version="builtin-1", dossiers=2))  # fmt: skip
        session.add(PolicyVersion(
            version="builtin-1", digest="0" * 64, text="", state="in_force",
            justification="first policy", proposed_by=IM, proposed_at=start,
            im_approved_by=IM, im_approved_at=start, po_approved_by=PO, po_approved_at=start,
            in_force_from=start,
        ))  # fmt: skip
    export = ExportRecord(target="package", references_json="{}", manifest_sha256="ab" * 32)
    await destroy_dossier(store, actor=CLERK, dossier_id=prepared.exported,
                          outcome=TombstoneOutcome.EXPORTED, export_reference="pkg-1",
                          export=export)  # fmt: skip
    for dossier_id, outcome, actor, batch in (
        (prepared.at_deadline, TombstoneOutcome.DESTROYED_AT_DEADLINE, SWEEPER, BATCH),
        (prepared.unarchived, TombstoneOutcome.DESTROYED_AT_DEADLINE, SWEEPER, BATCH),
        (prepared.on_cancel, TombstoneOutcome.DESTROYED_ON_CANCEL, CLERK, None),
        (prepared.by_operator, TombstoneOutcome.DESTROYED_BY_OPERATOR, OPERATOR, None),
        (prepared.february, TombstoneOutcome.DESTROYED_BY_OPERATOR, OPERATOR, None),
    ):
        await destroy_dossier(store, actor=actor, dossier_id=dossier_id, outcome=outcome,
                              destruction_batch=batch)  # fmt: skip
        prepared.destroyed.add(dossier_id)

    async with store.sessions() as session, session.begin():
        # (a) past its deadline, no hold; the held one is past its deadline too, but held.
        for dossier_id in (prepared.past_deadline, prepared.on_hold):
            await session.execute(
                update(Dossier)
                .where(col(Dossier.id) == dossier_id)
                .values(deadline=dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC))
            )
        held = await session.get(Dossier, prepared.on_hold)
        assert held is not None
        session.add(Hold(
            dossier_id=prepared.on_hold, department_id=uuid.uuid4(),
            service_type="geboorteaangifte", ground="complaint", reason="klacht",
            ends_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC), state="active",
            requested_by=str(CLERK), requested_at=dt.datetime(2026, 3, 5, tzinfo=dt.UTC),
            decided_by=IM, decided_at=dt.datetime(2026, 3, 6, tzinfo=dt.UTC),
        ))  # fmt: skip
        # A hold that ran out before March counts for nothing in March, and one only asked.
        session.add(Hold(
            dossier_id=prepared.live, department_id=uuid.uuid4(), service_type="kort",
            ground="woo", reason="woo", ends_at=dt.datetime(2026, 2, 20, tzinfo=dt.UTC),
            state="expired", requested_by=str(CLERK),
            requested_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), decided_by=IM,
            decided_at=dt.datetime(2026, 2, 2, tzinfo=dt.UTC),
            ended_at=dt.datetime(2026, 2, 20, tzinfo=dt.UTC),
        ))  # fmt: skip
        session.add(Hold(
            dossier_id=prepared.escalated, department_id=uuid.uuid4(),
            service_type="geboorteaangifte", ground="objection", reason="bezwaar",
            ends_at=dt.datetime(2026, 7, 1, tzinfo=dt.UTC), state="requested",
            requested_by=str(CLERK), requested_at=dt.datetime(2026, 3, 21, tzinfo=dt.UTC),
        ))  # fmt: skip
        escalated = await session.get(Dossier, prepared.escalated)
        assert escalated is not None
        session.add(RetentionNotice(
            dossier_id=prepared.escalated, department_id=uuid.uuid4(),
            service_type="geboorteaangifte", kind="escalation", deadline=escalated.deadline,
            created_at=dt.datetime(2026, 3, 22, tzinfo=dt.UTC),
        ))  # fmt: skip
        # A warning is no escalation.
        session.add(RetentionNotice(
            dossier_id=prepared.escalated, department_id=uuid.uuid4(),
            service_type="geboorteaangifte", kind="warning_14", deadline=escalated.deadline,
            created_at=dt.datetime(2026, 3, 22, tzinfo=dt.UTC),
        ))  # fmt: skip
        # (b) exported, yet everything is still here.
        await session.execute(
            update(Dossier)
            .where(col(Dossier.id) == prepared.exported_live)
            .values(exported_at=dt.datetime(2026, 3, 15, tzinfo=dt.UTC))
        )
        live = await session.get(Dossier, prepared.exported_tombstone)
        assert live is not None
        session.add(Tombstone(
            dossier_id=live.id, appointment_id=live.appointment_id,
            service_type="geboorteaangifte", department="burgerzaken",
            created_at=live.created_at, appointment_start=live.created_at,
            deadline=live.deadline, outcome=TombstoneOutcome.EXPORTED,
            removed_at=dt.datetime(2026, 3, 18, tzinfo=dt.UTC), policy_version="builtin-1",
            removed_by=str(CLERK), archive_mode="export_required",
        ))  # fmt: skip
    clock.current = dt.datetime(2026, 3, 25, 9, 0, tzinfo=dt.UTC)
    return prepared


# The reconciliation report for March: (created, exported, at deadline, on cancel, by
# operator, on hold, escalated) per service type.
EXPECTED_MARCH = {
    # exported, on_cancel, on_hold, escalated, exported_live, exported_tombstone, unarchived
    "geboorteaangifte": (7, 2, 1, 1, 0, 1, 1),
    # at_deadline, by_operator (february was created in February)
    "informatie": (2, 0, 1, 0, 2, 0, 0),
    "kort": (2, 0, 0, 0, 0, 0, 0),  # live, past_deadline
}
EXPECTED_TOTAL = (11, 2, 2, 1, 2, 1, 1)


def expected_violations(p: Prepared) -> set[tuple[uuid.UUID, str, str]]:
    return {
        (p.past_deadline, "AVG", "past_deadline"),
        (p.exported_live, "AVG", "exported_not_shredded"),
        (p.exported_tombstone, "AVG", "exported_not_shredded"),
        (p.unarchived, "Archiefwet", "destroyed_without_export"),
    }


async def test_reconciliation_counts_every_line_and_lists_every_violation(store, clock):
    prepared = await prepare(store, clock)
    async with read_session(store.sessions) as session:
        report = await reconciliation(session, period=MARCH, now=clock.current)
    assert {line.service_type: line.counts() for line in report.lines} == EXPECTED_MARCH
    assert report.total.counts() == EXPECTED_TOTAL
    found = {(v.dossier_id, v.law, v.kind) for v in report.violations}
    assert found == expected_violations(prepared)
    assert len(report.violations) == 4  # each once, the held dossier not among them


async def test_a_period_counts_only_what_happened_in_it(store, clock):
    prepared = await prepare(store, clock)
    february = month_period(2026, 2)
    async with read_session(store.sessions) as session:
        report = await reconciliation(session, period=february, now=clock.current)
    counts = {line.service_type: line.counts() for line in report.lines}
    # Only the February dossier was created then; the expired hold was active in February.
    assert counts["informatie"] == (1, 0, 0, 0, 0, 0, 0)
    assert counts["kort"] == (0, 0, 0, 0, 0, 1, 0)
    assert counts["geboorteaangifte"] == (0,) * 7
    # AVG violations stand now whatever the period; the Archiefwet one happened in March.
    kinds = {(v.dossier_id, v.kind) for v in report.violations}
    assert (prepared.unarchived, "destroyed_without_export") not in kinds
    assert (prepared.past_deadline, "past_deadline") in kinds


async def test_an_expired_hold_does_not_excuse_a_dossier_past_its_deadline(store, clock):
    prepared = await prepare(store, clock)
    clock.current = dt.datetime(2026, 6, 2, tzinfo=dt.UTC)  # the hold ended on 1 June
    async with read_session(store.sessions) as session:
        report = await reconciliation(session, period=MARCH, now=clock.current)
    overdue = {v.dossier_id for v in report.violations if v.kind == "past_deadline"}
    assert prepared.on_hold in overdue
    assert prepared.past_deadline in overdue


async def test_month_statement_lists_exactly_the_destroyed(store, clock):
    prepared = await prepare(store, clock)
    async with read_session(store.sessions) as session:
        statement = await statement_for_month(session, MARCH)
        months = await destruction_months(session)
    assert {line.dossier_id for line in statement.lines} == prepared.destroyed
    assert prepared.exported not in {line.dossier_id for line in statement.lines}
    by_id = {line.dossier_id: line for line in statement.lines}
    assert by_id[prepared.on_cancel].approved_by == str(CLERK)
    assert by_id[prepared.at_deadline].approved_by == f"{IM}, {PO}"
    assert by_id[prepared.unarchived].selectielijst == "7"
    assert by_id[prepared.unarchived].label == "Geboorteaangifte"
    assert by_id[prepared.february].outcome == "destroyed_by_operator"
    assert [(m.key, m.destroyed) for m in months] == [("2026-03", 5)]
    async with read_session(store.sessions) as session:
        april = await statement_for_month(session, month_period(2026, 4))
    assert april.lines == []


async def test_batch_statement_lists_the_batch_only(store, clock):
    prepared = await prepare(store, clock)
    async with read_session(store.sessions) as session:
        statement = await statement_for_batch(session, BATCH)
        batches = await destruction_batches(session)
        missing = await statement_for_batch(session, "no-such-batch")
    assert statement is not None
    assert statement.batch is not None
    assert {line.dossier_id for line in statement.lines} == {
        prepared.at_deadline,
        prepared.unarchived,
    }
    assert [(b.id, b.destroyed) for b in batches] == [(BATCH, 2)]
    assert missing is None


async def test_overview_shows_where_everything_stands(store, clock):
    prepared = await prepare(store, clock)
    async with read_session(store.sessions) as session:
        seen = await overview(session, now=clock.current)
    assert seen.outcomes == {
        "exported": 2,
        "destroyed_at_deadline": 2,
        "destroyed_on_cancel": 1,
        "destroyed_by_operator": 2,
    }
    # Live rows: the six still here (exported_tombstone's row still exists, a violation).
    assert sum(seen.live.values()) == 6
    assert seen.live[("kort", "scheduled")] == 2
    # Due in 14 days (by 8 April): the "kort" dossier (30 days from 2 March, 10:00).
    assert [(r.dossier_id, r.held) for r in seen.upcoming] == [(prepared.live, False)]
    assert [e.dossier_id for e in seen.escalations] == [prepared.escalated]
    assert [h.dossier_id for h in seen.holds_requested] == [prepared.escalated]
    assert [h.dossier_id for h in seen.holds_active] == [prepared.on_hold]
    assert seen.verification is None

    async with store.sessions() as session, session.begin():
        for at, ok in ((dt.datetime(2026, 3, 23, tzinfo=dt.UTC), True),
                       (dt.datetime(2026, 3, 24, tzinfo=dt.UTC), False)):  # fmt: skip
            session.add(AuditVerification(verified_at=at, by=IM, ok=ok, events=40,
                                          first_bad_seq=None if ok else 17))  # fmt: skip
        # Acknowledged: no longer open.
        notice = RetentionNotice(
            dossier_id=prepared.live, department_id=uuid.uuid4(), service_type="kort",
            kind="escalation", deadline=clock.current, created_at=clock.current,
            acknowledged_by=IM, acknowledged_at=clock.current,
        )  # fmt: skip
        session.add(notice)
    async with read_session(store.sessions) as session:
        seen = await overview(session, now=clock.current)
    assert seen.verification is not None
    assert (seen.verification.ok, seen.verification.first_bad_seq) == (False, 17)
    assert [e.dossier_id for e in seen.escalations] == [prepared.escalated]


async def test_trail_shows_tombstone_and_audit_events(store, clock):
    prepared = await prepare(store, clock)
    async with read_session(store.sessions) as session:
        trail = await dossier_trail(session, prepared.unarchived)
        live = await dossier_trail(session, prepared.past_deadline)
        nothing = await dossier_trail(session, uuid.uuid4())
    assert trail is not None
    assert trail.tombstone is not None
    assert trail.live is None
    assert trail.tombstone.outcome == "destroyed_at_deadline"
    assert trail.tombstone.archive_mode == "export_required"
    actions = [e.action for e in trail.events]
    assert actions[-1] == "dossier.destroyed"
    assert "dossier.destroy_started" in actions
    assert [e.seq for e in trail.events] == sorted(e.seq for e in trail.events)
    for event in trail.events:
        json.loads(event.detail)
        assert not any(secret in event.detail for secret in SECRETS)
    assert live is not None
    assert live.tombstone is None
    assert live.live is not None
    assert live.live.deadline == dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    assert nothing is None


def test_periods_follow_dutch_calendar_days():
    # Summer time starts on 29 March 2026: that day has 23 hours.
    assert MARCH.starts_at == dt.datetime(2026, 2, 28, 23, 0, tzinfo=dt.UTC)
    assert MARCH.ends_at == dt.datetime(2026, 3, 31, 22, 0, tzinfo=dt.UTC)
    now = dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC)  # already 1 April in Amsterdam
    assert Period.last_full_month(now) == MARCH
    assert Period.last_full_month(dt.datetime(2026, 1, 5, tzinfo=dt.UTC)) == Period(
        dt.date(2025, 12, 1), dt.date(2025, 12, 31)
    )
    assert month_period(2024, 2).last == dt.date(2024, 2, 29)
    for year, month in ((1, 1), (9999, 12), (2026, 13), (2026, 0)):
        with pytest.raises(ValueError, match=r"outside|month must be in"):
            month_period(year, month)
    with pytest.raises(ValueError, match="ends"):
        Period(dt.date(2026, 3, 2), dt.date(2026, 3, 1))
