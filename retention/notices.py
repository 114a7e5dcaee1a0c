"""Warnings before a dossier's deadline, and escalations of dossiers that must be archived.

A department is warned 14, 7 and 1 day before a dossier of theirs is destroyed; at 7 days a
dossier whose service type requires export (or whose rule says `escalate_then_destroy`) and that
is not exported is escalated to the information managers. A dossier on an active hold, or whose
destruction has begun, gets none. Each (dossier, kind) exists once, ever: the table has that
unique constraint, so two processes issuing at once both succeed and only one row (and one audit
event) results.

When the job runs late (the server was down), a dossier gets only the most urgent warning it has
crossed, not all three at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.errors import DossierError
from dossier.models import Appointment, Department, Dossier, DossierState, ServiceType
from dossier.store import DossierStore
from retention.audit import Actor, record_event
from retention.models import Hold, RetentionNotice

__all__ = [
    "ESCALATION",
    "WARNINGS",
    "NoticeNotFound",
    "NoticeSummary",
    "acknowledge_notice",
    "issue_notices",
    "list_notices",
    "open_department_warnings",
]

# (kind, days before the deadline), most urgent first.
WARNINGS: Final = (("warning_1", 1), ("warning_7", 7), ("warning_14", 14))
ESCALATION: Final = "escalation"
ESCALATION_DAYS: Final = 7
_GONE = (DossierState.DESTROYING, DossierState.CANCELLED)
_ACTOR = Actor.system("retention-notices")
_TABLE = RetentionNotice.__table__  # type: ignore[attr-defined]


class NoticeNotFound(DossierError):
    """No notice with that id (404)."""

    code = "notice_not_found"


@dataclass(frozen=True, slots=True)
class NoticeSummary:
    """A notice as a page or an e-mail shows it: references and dates, no personal data."""

    id: uuid.UUID
    dossier_id: uuid.UUID
    kind: str
    deadline: dt.datetime
    created_at: dt.datetime
    service_type: str
    service_label: str
    department: str
    live: bool  # the dossier still exists (not exported, destroyed or being destroyed)
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    emailed_at: dt.datetime | None
    email_error: str | None


def _not_held(now: dt.datetime) -> Any:
    held = exists().where(
        col(Hold.dossier_id) == col(Dossier.id),
        col(Hold.state) == "active",
        col(Hold.ends_at) > now,
    )
    return ~held


def _no_notice(kind: str) -> Any:
    return ~exists().where(
        col(RetentionNotice.dossier_id) == col(Dossier.id), col(RetentionNotice.kind) == kind
    )


def _candidates() -> Any:
    return (
        select(Dossier, col(Appointment.department_id), col(ServiceType.code))
        .join(Appointment, col(Appointment.id) == col(Dossier.appointment_id))
        .join(ServiceType, col(ServiceType.id) == col(Appointment.service_type_id))
        .where(col(Dossier.state).not_in(_GONE), col(Dossier.exported_at).is_(None))
        .order_by(col(Dossier.deadline), col(Dossier.id))
    )


async def _due(session: AsyncSession, now: dt.datetime) -> list[tuple[str, Any]]:
    """(kind, row) for every notice that should exist and does not."""
    due: list[tuple[str, Any]] = []
    lower = now
    # Disjoint windows, most urgent first: (now, now+1d] -> warning_1, (now+1d, now+7d] -> ...
    for kind, days in WARNINGS:
        upper = now + dt.timedelta(days=days)
        query = _candidates().where(
            col(Dossier.deadline) > lower,
            col(Dossier.deadline) <= upper,
            _not_held(now),
            # A more urgent warning sent before (clock moved back, policy shortened) suffices.
            *[_no_notice(k) for k, d in WARNINGS if d <= days],
        )
        due += [(kind, row) for row in (await session.execute(query)).all()]
        lower = upper
    escalate = _candidates().where(
        col(Dossier.deadline) <= now + dt.timedelta(days=ESCALATION_DAYS),
        or_(
            col(ServiceType.archive_mode) == "export_required",
            col(ServiceType.on_deadline) == "escalate_then_destroy",
        ),
        _not_held(now),
        _no_notice(ESCALATION),
    )
    due += [(ESCALATION, row) for row in (await session.execute(escalate)).all()]
    return due


def _insert_once(session: AsyncSession, values: dict[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_TABLE)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dossier_id", "kind"])
        .returning(_TABLE.c.id)
    )


async def issue_notices(store: DossierStore, *, now: dt.datetime) -> list[RetentionNotice]:
    """Create the warnings and escalations that are due at `now`; returns the new ones.

    Each notice is inserted in a transaction of its own with its audit event
    (`retention.warning` / `retention.escalated`); one another process inserted first is
    skipped without error.
    """
    async with store.sessions() as session:
        due = await _due(session, now)
        await session.commit()
    created: list[RetentionNotice] = []
    for kind, (dossier, department_id, service_code) in due:
        notice = RetentionNotice(
            id=uuid.uuid4(),
            dossier_id=dossier.id,
            department_id=department_id,
            service_type=service_code,
            kind=kind,
            deadline=dossier.deadline,
            created_at=now,
        )
        async with store.sessions() as session, session.begin():
            values = notice.model_dump()
            inserted = (await session.execute(_insert_once(session, values))).first()
            if inserted is None:
                continue  # another process issued it a moment ago
            await record_event(
                session,
                at=now,
                actor=_ACTOR,
                action="retention.escalated" if kind == ESCALATION else "retention.warning",
                object_type="dossier",
                object_ref=str(dossier.id),
                detail={
                    "notice": str(notice.id),
                    "kind": kind,
                    "deadline": dossier.deadline.isoformat(),
                    "service_type": service_code,
                },
            )
        created.append(notice)
    return created


async def acknowledge_notice(
    store: DossierStore, *, notice_id: uuid.UUID, actor: Actor
) -> RetentionNotice:
    """Mark a notice as seen by `actor` (idempotent: the first acknowledgement stays).

    Raises NoticeNotFound. Who may acknowledge which notice is the caller's check.
    """
    async with store.sessions() as session, session.begin():
        now = await store.clock.now(session)
        query = select(RetentionNotice).where(col(RetentionNotice.id) == notice_id)
        notice = (await session.execute(query.with_for_update())).scalar()
        if notice is None:
            raise NoticeNotFound(f"no notice with id {notice_id}")
        if notice.acknowledged_at is None:
            notice.acknowledged_by, notice.acknowledged_at = str(actor), now
            await record_event(
                session,
                at=now,
                actor=actor,
                action="retention.notice_acknowledged",
                object_type="dossier",
                object_ref=str(notice.dossier_id),
                detail={"notice": str(notice.id), "kind": notice.kind},
            )
    return notice


def _summaries() -> Any:
    return (
        select(
            RetentionNotice,
            col(ServiceType.label),
            col(Department.code),
            col(Dossier.state),
        )
        .join(Department, col(Department.id) == col(RetentionNotice.department_id))
        .outerjoin(ServiceType, col(ServiceType.code) == col(RetentionNotice.service_type))
        .outerjoin(Dossier, col(Dossier.id) == col(RetentionNotice.dossier_id))
    )


def _summary(row: Any) -> NoticeSummary:
    notice, label, department, state = row
    return NoticeSummary(
        id=notice.id,
        dossier_id=notice.dossier_id,
        kind=notice.kind,
        deadline=notice.deadline,
        created_at=notice.created_at,
        service_type=notice.service_type,
        service_label=label or notice.service_type,
        department=department,
        live=state is not None and state not in _GONE,
        acknowledged_by=notice.acknowledged_by,
        acknowledged_at=notice.acknowledged_at,
        emailed_at=notice.emailed_at,
        email_error=notice.email_error,
    )


async def list_notices(
    session: AsyncSession, *, kinds: tuple[str, ...], limit: int = 500
) -> list[NoticeSummary]:
    """Notices of `kinds`, open ones (dossier live, not acknowledged) first, then newest."""
    query = (
        _summaries()
        .where(col(RetentionNotice.kind).in_(kinds))
        .order_by(
            col(RetentionNotice.acknowledged_at).is_not(None),
            col(RetentionNotice.deadline),
            col(RetentionNotice.created_at).desc(),
        )
        .limit(limit)
    )
    return [_summary(row) for row in (await session.execute(query)).all()]


async def open_department_warnings(
    session: AsyncSession, *, department_id: uuid.UUID
) -> list[NoticeSummary]:
    """The department's warnings about dossiers that still exist and are not on an active
    hold, the most urgent per dossier, earliest deadline first (for the clerk's console)."""
    held = exists().where(
        col(Hold.dossier_id) == col(RetentionNotice.dossier_id), col(Hold.state) == "active"
    )
    query = (
        _summaries()
        .where(
            col(RetentionNotice.department_id) == department_id,
            col(RetentionNotice.kind).in_([kind for kind, _ in WARNINGS]),
            col(RetentionNotice.acknowledged_at).is_(None),
            and_(col(Dossier.id).is_not(None), col(Dossier.state).not_in(_GONE)),
            ~held,
        )
        .order_by(col(RetentionNotice.deadline), col(RetentionNotice.dossier_id))
    )
    urgency = {kind: days for kind, days in WARNINGS}
    best: dict[uuid.UUID, NoticeSummary] = {}
    for row in (await session.execute(query)).all():
        summary = _summary(row)
        current = best.get(summary.dossier_id)
        if current is None or urgency[summary.kind] < urgency[current.kind]:
            best[summary.dossier_id] = summary
    return sorted(best.values(), key=lambda s: (s.deadline, str(s.dossier_id)))
