"""The destruction statement ("verklaring van vernietiging", DESIGN §3) of a batch or a month:
every dossier destroyed (at its deadline, on cancel, by an operator) with its service type,
selectielijst category, dates, policy version and who approved that policy. Exported dossiers
are not destroyed records: the record system holds them. No personal data.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.models import Tombstone, TombstoneOutcome
from retention.models import DestructionBatch, PolicyVersion
from retention.reports import (
    DESTROYED,
    PERIOD_ZONE,
    Period,
    month_period,
    service_labels,
    within,
)

__all__ = [
    "BatchSummary",
    "MonthSummary",
    "Statement",
    "StatementLine",
    "destruction_batches",
    "destruction_months",
    "statement_for_batch",
    "statement_for_month",
]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    actor: str
    policy_version: str
    destroyed: int  # tombstones that name the batch


@dataclass(frozen=True, slots=True)
class MonthSummary:
    year: int
    month: int
    destroyed: int

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class StatementLine:
    dossier_id: uuid.UUID
    service_type: str
    label: str
    selectielijst: str
    created_at: dt.datetime
    deadline: dt.datetime
    removed_at: dt.datetime
    outcome: str
    policy_version: str
    approved_by: str  # the policy version's two approvers; for a cancel, who cancelled
    removed_by: str
    destruction_batch: str


@dataclass(frozen=True, slots=True)
class Statement:
    """A destruction statement: the destroyed dossiers of a batch or of a month."""

    batch: BatchSummary | None
    period: Period | None
    lines: list[StatementLine]


async def destruction_batches(session: AsyncSession) -> list[BatchSummary]:
    """Every destruction batch, newest first, with the number of dossiers it destroyed."""
    counted = await _batch_counts(session, None)
    query = select(DestructionBatch).order_by(
        col(DestructionBatch.started_at).desc(), col(DestructionBatch.id)
    )
    return [
        _batch_summary(batch, counted.get(batch.id, 0))
        for batch in (await session.execute(query)).scalars()
    ]


async def _batch_counts(session: AsyncSession, batch_id: str | None) -> dict[str, int]:
    query = (
        select(col(Tombstone.destruction_batch), func.count())
        .where(col(Tombstone.outcome).in_(DESTROYED))
        .where(col(Tombstone.destruction_batch).is_not(None))
        .group_by(col(Tombstone.destruction_batch))
    )
    if batch_id is not None:
        query = query.where(col(Tombstone.destruction_batch) == batch_id)
    return {str(batch): n for batch, n in await session.execute(query)}


def _batch_summary(batch: DestructionBatch, destroyed: int) -> BatchSummary:
    return BatchSummary(
        batch.id, batch.started_at, batch.finished_at, batch.actor, batch.policy_version, destroyed
    )


async def destruction_months(session: AsyncSession) -> list[MonthSummary]:
    """Every calendar month (Dutch time) in which dossiers were destroyed, newest first."""
    destroyed = col(Tombstone.outcome).in_(DESTROYED)
    span = select(func.min(col(Tombstone.removed_at)), func.max(col(Tombstone.removed_at)))
    first, last = (await session.execute(span.where(destroyed))).one()
    if first is None or last is None:
        return []
    months = list(_months(first, last))
    buckets = [func.sum(case((within(col(Tombstone.removed_at), p), 1), else_=0)) for p in months]
    counts = (await session.execute(select(*buckets).where(destroyed))).one()
    found = [
        MonthSummary(p.first.year, p.first.month, int(n or 0))
        for p, n in zip(months, counts, strict=True)
    ]
    return [m for m in reversed(found) if m.destroyed]


def _months(first: dt.datetime, last: dt.datetime) -> Iterable[Period]:
    day = first.astimezone(PERIOD_ZONE).date().replace(day=1)
    end = last.astimezone(PERIOD_ZONE).date()
    while day <= end:
        period = month_period(day.year, day.month)
        yield period
        day = period.last + dt.timedelta(days=1)


async def statement_for_batch(session: AsyncSession, batch_id: str) -> Statement | None:
    """The destroyed dossiers of batch `batch_id`; None if there is no such batch."""
    batch = await session.get(DestructionBatch, batch_id)
    if batch is None:
        return None
    counted = await _batch_counts(session, batch_id)
    lines = await _statement_lines(session, col(Tombstone.destruction_batch) == batch_id)
    return Statement(_batch_summary(batch, counted.get(batch_id, 0)), None, lines)


async def statement_for_month(session: AsyncSession, period: Period) -> Statement:
    """The dossiers destroyed within `period` (a calendar month), in any batch or none."""
    lines = await _statement_lines(session, within(col(Tombstone.removed_at), period))
    return Statement(None, period, lines)


async def _statement_lines(
    session: AsyncSession, which: ColumnElement[bool]
) -> list[StatementLine]:
    query = (
        select(Tombstone)
        .where(col(Tombstone.outcome).in_(DESTROYED), which)
        .order_by(col(Tombstone.removed_at), col(Tombstone.dossier_id))
    )
    tombstones = list((await session.execute(query)).scalars())
    labels = await service_labels(session)
    approvers = await _approvers(session, {t.policy_version for t in tombstones})
    return [
        StatementLine(
            dossier_id=t.dossier_id,
            service_type=t.service_type,
            label=labels.get(t.service_type, t.service_type),
            selectielijst=t.selectielijst,
            created_at=t.created_at,
            deadline=t.deadline,
            removed_at=t.removed_at,
            outcome=str(t.outcome),
            policy_version=t.policy_version,
            approved_by=(
                t.removed_by
                if t.outcome == TombstoneOutcome.DESTROYED_ON_CANCEL
                else approvers.get(t.policy_version, "")
            ),
            removed_by=t.removed_by,
            destruction_batch=t.destruction_batch or "",
        )
        for t in tombstones
    ]


async def _approvers(session: AsyncSession, versions: set[str]) -> dict[str, str]:
    """Per policy version, "information manager, privacy officer" of its approved text."""
    if not versions:
        return {}
    query = (
        select(PolicyVersion)
        .where(col(PolicyVersion.version).in_(sorted(versions)))
        .where(col(PolicyVersion.im_approved_by).is_not(None))
        .where(col(PolicyVersion.po_approved_by).is_not(None))
        .order_by(col(PolicyVersion.proposed_at))
    )
    found: dict[str, str] = {}
    for version in (await session.execute(query)).scalars():
        found.setdefault(version.version, f"{version.im_approved_by}, {version.po_approved_by}")
    return found
