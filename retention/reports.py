"""What the information manager and the privacy officer are shown (DESIGN §1 and §3).

Read-only queries over metadata: the overview (where every dossier stands now) and the
reconciliation report for a period (what came in, what went and how, and the violations of
the AVG and the Archiefwet); the destruction statements are in `retention.statements`.
A dossier's trail (`retention.trail`) ties one dossier's tombstone or live row to its audit
events.

Nothing here reads content: no chat, no document, no BSN, no name. Rows carry ids, service
type codes, dates, outcomes, policy versions and pseudonymous actor references (`role:ref`).

Periods are calendar days and months in Dutch time (Europe/Amsterdam), as the people who sign
the statements count them; every instant stays UTC underneath.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeVarTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Exists, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from dossier.models import (
    Appointment,
    DataKey,
    Document,
    Dossier,
    ServiceType,
    Tombstone,
    TombstoneOutcome,
)
from retention.models import (
    AuditVerification,
    Hold,
    RetentionNotice,
)

__all__ = [
    "COUNT_FIELDS",
    "DESTROYED",
    "EARLIEST_DAY",
    "LATEST_DAY",
    "PERIOD_ZONE",
    "UPCOMING_DAYS",
    "UPCOMING_LIMIT",
    "DeadlineRow",
    "EscalationRow",
    "HoldRow",
    "Overview",
    "Period",
    "Reconciliation",
    "ServiceCounts",
    "Verification",
    "Violation",
    "live_with_service",
    "month_period",
    "overview",
    "reconciliation",
    "service_labels",
    "within",
]

PERIOD_ZONE: Final = ZoneInfo("Europe/Amsterdam")
UPCOMING_DAYS: Final = 14
# Days a period may cover: Balie holds nothing older, and the ends stay clear of year 1 and
# 9999, where converting Dutch midnight to UTC would overflow.
EARLIEST_DAY: Final = dt.date(2000, 1, 1)
LATEST_DAY: Final = dt.date(2999, 12, 31)
UPCOMING_LIMIT: Final = 500  # the overview lists this many; the count says how many more
DESTROYED: Final = (
    TombstoneOutcome.DESTROYED_AT_DEADLINE,
    TombstoneOutcome.DESTROYED_ON_CANCEL,
    TombstoneOutcome.DESTROYED_BY_OPERATOR,
)
# The counted columns of the reconciliation report, in the order the page and the CSV show them.
COUNT_FIELDS: Final = (
    "created",
    "exported",
    "destroyed_at_deadline",
    "destroyed_on_cancel",
    "destroyed_by_operator",
    "on_hold",
    "escalated",
)
_HELD_STATES: Final = ("active", "released", "expired")  # a hold that was approved once
_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True, slots=True)
class Period:
    """Calendar days `first` to `last`, both included, in Dutch time."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        for day in (self.first, self.last):
            if not EARLIEST_DAY <= day <= LATEST_DAY:
                raise ValueError(f"{day} lies outside {EARLIEST_DAY} to {LATEST_DAY}")
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it starts ({self.first})")

    @property
    def starts_at(self) -> dt.datetime:
        """The first instant of the period, UTC."""
        return _midnight(self.first)

    @property
    def ends_at(self) -> dt.datetime:
        """The first instant after the period, UTC."""
        return _midnight(self.last + dt.timedelta(days=1))

    @classmethod
    def last_full_month(cls, now: dt.datetime) -> Period:
        """The calendar month before the one `now` falls in (Dutch time)."""
        first_of_this = now.astimezone(PERIOD_ZONE).date().replace(day=1)
        last = first_of_this - dt.timedelta(days=1)
        return cls(last.replace(day=1), last)


def month_period(year: int, month: int) -> Period:
    """The calendar month `year`-`month`; raises ValueError for a month that does not exist
    or lies outside EARLIEST_DAY to LATEST_DAY."""
    if not EARLIEST_DAY.year <= year <= LATEST_DAY.year:
        raise ValueError(f"year {year} lies outside {EARLIEST_DAY.year} to {LATEST_DAY.year}")
    first = dt.date(year, month, 1)
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return Period(first, following - dt.timedelta(days=1))


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=PERIOD_ZONE).astimezone(dt.UTC)


def within(column: Mapped[dt.datetime], period: Period) -> ColumnElement[bool]:
    return and_(column >= period.starts_at, column < period.ends_at)


# --- Overview ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    dossier_id: uuid.UUID
    service_type: str
    deadline: dt.datetime
    held: bool


@dataclass(frozen=True, slots=True)
class EscalationRow:
    dossier_id: uuid.UUID
    service_type: str
    deadline: dt.datetime
    escalated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class HoldRow:
    dossier_id: uuid.UUID
    service_type: str
    ground: str
    state: str
    requested_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Verification:
    verified_at: dt.datetime
    by: str
    ok: bool
    events: int
    first_bad_seq: int | None


@dataclass(frozen=True, slots=True)
class Overview:
    """Where things stand at `now`."""

    now: dt.datetime
    labels: dict[str, str]  # service type code -> label
    # (service type, state) -> number of live dossiers
    live: dict[tuple[str, str], int]
    outcomes: dict[str, int]  # tombstone outcome -> number
    upcoming: list[DeadlineRow]
    upcoming_total: int
    escalations: list[EscalationRow]
    holds_requested: list[HoldRow]
    holds_active: list[HoldRow]
    verification: Verification | None


async def overview(session: AsyncSession, *, now: dt.datetime) -> Overview:
    """Live dossiers by service type and state, tombstones by outcome, deadlines in the next
    14 days, open escalations, requested and active holds, and the last audit verification."""
    labels = await service_labels(session)
    live_query = (
        live_with_service(select(col(ServiceType.code), col(Dossier.state), func.count()))
        .group_by(col(ServiceType.code), col(Dossier.state))
    )  # fmt: skip
    live = {(code, str(state)): n for code, state, n in await session.execute(live_query)}
    outcome_query = select(col(Tombstone.outcome), func.count()).group_by(col(Tombstone.outcome))
    outcomes = {str(outcome): n for outcome, n in await session.execute(outcome_query)}

    horizon = now + dt.timedelta(days=UPCOMING_DAYS)
    due = and_(col(Dossier.deadline) >= now, col(Dossier.deadline) < horizon)
    upcoming_total = (
        await session.execute(select(func.count()).select_from(Dossier).where(due))
    ).scalar_one()
    upcoming_query = (
        live_with_service(select(col(Dossier.id), col(ServiceType.code), col(Dossier.deadline)))
        .where(due)
        .order_by(col(Dossier.deadline), col(Dossier.id))
        .limit(UPCOMING_LIMIT)
    )
    rows = list(await session.execute(upcoming_query))
    held = await _held_now(session, [row[0] for row in rows], now)
    upcoming = [DeadlineRow(i, code, deadline, i in held) for i, code, deadline in rows]

    escalation_query = (
        select(RetentionNotice)
        .where(col(RetentionNotice.kind) == "escalation")
        .where(col(RetentionNotice.acknowledged_at).is_(None))
        .order_by(col(RetentionNotice.deadline))
    )
    escalations = [
        EscalationRow(n.dossier_id, n.service_type, n.deadline, n.created_at)
        for n in (await session.execute(escalation_query)).scalars()
    ]
    hold_query = (
        select(Hold)
        .where(
            or_(
                col(Hold.state) == "requested",
                and_(col(Hold.state) == "active", col(Hold.ends_at) > now),
            )
        )
        .order_by(col(Hold.ends_at))
    )
    holds = [
        HoldRow(h.dossier_id, h.service_type, h.ground, h.state, h.requested_at, h.ends_at)
        for h in (await session.execute(hold_query)).scalars()
    ]
    verification_query = select(AuditVerification).order_by(
        col(AuditVerification.verified_at).desc(), col(AuditVerification.id).desc()
    )
    last = (await session.execute(verification_query.limit(1))).scalar()
    return Overview(
        now=now,
        labels=labels,
        live=live,
        outcomes=outcomes,
        upcoming=upcoming,
        upcoming_total=upcoming_total,
        escalations=escalations,
        holds_requested=[h for h in holds if h.state == "requested"],
        holds_active=[h for h in holds if h.state == "active"],
        verification=(
            Verification(last.verified_at, last.by, last.ok, last.events, last.first_bad_seq)
            if last is not None
            else None
        ),
    )


def live_with_service(query: Select[*_Ts]) -> Select[*_Ts]:
    """`query` over live dossiers, joined to their service type (through the appointment)."""
    return (
        query.select_from(Dossier)
        .join(Appointment, col(Appointment.id) == col(Dossier.appointment_id))
        .join(ServiceType, col(ServiceType.id) == col(Appointment.service_type_id))
    )


async def service_labels(session: AsyncSession) -> dict[str, str]:
    query = select(col(ServiceType.code), col(ServiceType.label)).order_by(col(ServiceType.code))
    return {code: label for code, label in await session.execute(query)}


def _active_hold(dossier_id: Mapped[uuid.UUID], now: dt.datetime) -> Exists:
    return exists().where(
        col(Hold.dossier_id) == dossier_id,
        col(Hold.state) == "active",
        col(Hold.ends_at) > now,
    )


async def _held_now(
    session: AsyncSession, dossier_ids: Sequence[uuid.UUID], now: dt.datetime
) -> set[uuid.UUID]:
    if not dossier_ids:
        return set()
    query = select(col(Hold.dossier_id)).where(
        col(Hold.dossier_id).in_(dossier_ids),
        col(Hold.state) == "active",
        col(Hold.ends_at) > now,
    )
    return set((await session.execute(query)).scalars())


# --- Reconciliation ---------------------------------------------------------------------------


@dataclass(slots=True)
class ServiceCounts:
    """One line of the reconciliation report (or its total, with `service_type` "")."""

    service_type: str
    label: str
    created: int = 0
    exported: int = 0
    destroyed_at_deadline: int = 0
    destroyed_on_cancel: int = 0
    destroyed_by_operator: int = 0
    on_hold: int = 0
    escalated: int = 0

    def counts(self) -> tuple[int, ...]:
        """The numbers in the order of COUNT_FIELDS."""
        return tuple(getattr(self, name) for name in COUNT_FIELDS)


@dataclass(frozen=True, slots=True)
class Violation:
    """A dossier that breaks the AVG or the Archiefwet.

    kind: past_deadline (AVG), exported_not_shredded (AVG), destroyed_without_export
    (Archiefwet). `at` is the date that makes it one: the deadline, the export, the destruction.
    """

    dossier_id: uuid.UUID
    service_type: str
    law: str
    kind: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Reconciliation:
    period: Period
    now: dt.datetime
    lines: list[ServiceCounts]
    total: ServiceCounts
    violations: list[Violation]


async def reconciliation(
    session: AsyncSession, *, period: Period, now: dt.datetime
) -> Reconciliation:
    """Per service type: created, exported, destroyed (at the deadline, on cancel, by an
    operator), on hold and escalated within `period`; and the violations.

    Violations of the AVG are those standing at `now` (a live dossier past its deadline
    without an active hold; an exported dossier whose content still exists); violations of
    the Archiefwet are destructions within the period of dossiers that had to be exported.
    """
    labels = await service_labels(session)
    lines: dict[str, ServiceCounts] = {
        code: ServiceCounts(code, label) for code, label in labels.items()
    }

    def line(code: str) -> ServiceCounts:
        return lines.setdefault(code, ServiceCounts(code, code))

    # A dossier that has a tombstone as well (a violation) is counted once, by its tombstone.
    has_tombstone = exists().where(col(Tombstone.dossier_id) == col(Dossier.id))
    created_live = (
        live_with_service(select(col(ServiceType.code), func.count()))
        .where(within(col(Dossier.created_at), period), ~has_tombstone)
        .group_by(col(ServiceType.code))
    )
    for code, n in await session.execute(created_live):
        line(code).created += n
    created_gone = (
        select(col(Tombstone.service_type), func.count())
        .where(within(col(Tombstone.created_at), period))
        .group_by(col(Tombstone.service_type))
    )
    for code, n in await session.execute(created_gone):
        line(code).created += n
    removed = (
        select(col(Tombstone.service_type), col(Tombstone.outcome), func.count())
        .where(within(col(Tombstone.removed_at), period))
        .group_by(col(Tombstone.service_type), col(Tombstone.outcome))
    )
    for code, outcome, n in await session.execute(removed):
        setattr(line(code), str(outcome), getattr(line(code), str(outcome)) + n)
    held = (
        select(col(Hold.service_type), func.count(func.distinct(col(Hold.dossier_id))))
        .where(
            col(Hold.state).in_(_HELD_STATES),
            col(Hold.decided_at) < period.ends_at,
            or_(
                col(Hold.ended_at) > period.starts_at,
                and_(col(Hold.ended_at).is_(None), col(Hold.ends_at) > period.starts_at),
            ),
        )
        .group_by(col(Hold.service_type))
    )
    for code, n in await session.execute(held):
        line(code).on_hold += n
    escalated = (
        select(col(RetentionNotice.service_type), func.count())
        .where(
            col(RetentionNotice.kind) == "escalation",
            within(col(RetentionNotice.created_at), period),
        )
        .group_by(col(RetentionNotice.service_type))
    )
    for code, n in await session.execute(escalated):
        line(code).escalated += n

    ordered = [lines[code] for code in sorted(lines)]
    total = ServiceCounts("", "")
    for name in COUNT_FIELDS:
        setattr(total, name, sum(getattr(row, name) for row in ordered))
    violations = await _violations(session, period=period, now=now)
    return Reconciliation(period, now, ordered, total, violations)


async def _violations(
    session: AsyncSession, *, period: Period, now: dt.datetime
) -> list[Violation]:
    found: list[Violation] = []
    overdue = (
        live_with_service(select(col(Dossier.id), col(ServiceType.code), col(Dossier.deadline)))
        .where(col(Dossier.deadline) < now, ~_active_hold(col(Dossier.id), now))
    )  # fmt: skip
    found += [
        Violation(i, code, "AVG", "past_deadline", deadline)
        for i, code, deadline in await session.execute(overdue)
    ]
    exported_live = live_with_service(
        select(col(Dossier.id), col(ServiceType.code), col(Dossier.exported_at))
    ).where(col(Dossier.exported_at).is_not(None))
    found += [
        Violation(i, code, "AVG", "exported_not_shredded", at)
        for i, code, at in await session.execute(exported_live)
        if at is not None
    ]
    content_left = or_(
        exists().where(col(DataKey.dossier_id) == col(Tombstone.dossier_id)),
        exists().where(col(Document.dossier_id) == col(Tombstone.dossier_id)),
    )
    exported_gone = select(
        col(Tombstone.dossier_id), col(Tombstone.service_type), col(Tombstone.removed_at)
    ).where(col(Tombstone.outcome) == TombstoneOutcome.EXPORTED, content_left)
    already = {v.dossier_id for v in found if v.kind == "exported_not_shredded"}
    found += [
        Violation(i, code, "AVG", "exported_not_shredded", at)
        for i, code, at in await session.execute(exported_gone)
        if i not in already
    ]
    unarchived = select(
        col(Tombstone.dossier_id), col(Tombstone.service_type), col(Tombstone.removed_at)
    ).where(
        col(Tombstone.outcome).in_(
            (TombstoneOutcome.DESTROYED_AT_DEADLINE, TombstoneOutcome.DESTROYED_BY_OPERATOR)
        ),
        col(Tombstone.archive_mode) == "export_required",
        within(col(Tombstone.removed_at), period),
    )
    found += [
        Violation(i, code, "Archiefwet", "destroyed_without_export", at)
        for i, code, at in await session.execute(unarchived)
    ]
    order = {"past_deadline": 0, "exported_not_shredded": 1, "destroyed_without_export": 2}
    return sorted(found, key=lambda v: (order[v.kind], v.at, str(v.dossier_id)))
