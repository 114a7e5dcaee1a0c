"""Destroying a month's key-encryption key once nothing it wrapped may still be read (DESIGN §4).

A database backup keeps wrapped data keys after their dossiers were shredded; destroying
the KEK that wrapped them makes every such backup noise too. A month's KEK may go when:

* it is not the current month's key (that one still wraps new data keys);
* no live dossier (one that is not exported or destroyed, held ones included) and no data
  key uses it;
* the month has ended and every dossier it wrapped reached its deadline, both at least
  `grace_days` ago (the grace is how long backups are kept, roughly).

The record (`KekDestruction`, audit event) is committed before the key file goes, so a key
is never gone without a record; a crash in between is finished by the next run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from dossier.crypto.keyring import kek_id_for
from dossier.db import read_session
from dossier.models import DataKey, Dossier, Tombstone
from dossier.store import DossierStore
from retention.audit import Actor, record_event
from retention.models import Hold, KekDestruction

__all__ = ["KeyStatus", "destroy_expired_keks", "key_statuses", "month_end"]

log = logging.getLogger(__name__)


def month_end(key_id: str) -> dt.datetime:
    """The first instant after the month of `kek-YYYYMM` (UTC)."""
    year, month = int(key_id[4:8]), int(key_id[8:10])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """What is known of one KEK: what it still protects and when it may go.

    `in_use` lists what keeps it (empty: nothing does); `may_go_from` is the earliest moment
    it may go, as far as its dossiers' deadlines tell (a hold can push it on); `due` says
    that moment has come.
    """

    key_id: str
    data_keys: int
    live_dossiers: int
    held_dossiers: int
    destroyed_dossiers: int
    last_deadline: dt.datetime | None
    may_go_from: dt.datetime
    in_use: tuple[str, ...]
    due: bool
    destroyed: KekDestruction | None

    @property
    def may_go(self) -> bool:
        return self.destroyed is None and not self.in_use and self.due

    def describe(self) -> str:
        """For `balie keys status`: its dossiers and when it goes (or went)."""
        last = _when(self.last_deadline) if self.last_deadline else "-"
        line = f"{self.live_dossiers} live dossier(s), last deadline {last}; "
        if self.destroyed is not None:
            return line + f"destroyed {_when(self.destroyed.destroyed_at)}"
        when = f"may be destroyed from {_when(self.may_go_from)}"
        if self.in_use:
            return line + f"in use ({', '.join(self.in_use)}); {when} at the earliest"
        return line + when + (" (due now)" if self.due else "")


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


async def _status(
    session: AsyncSession, *, key_id: str, now: dt.datetime, grace_days: int
) -> KeyStatus:
    data_keys = (
        await session.execute(select(func.count()).where(col(DataKey.kek_id) == key_id))
    ).scalar_one()
    live, live_last = (
        await session.execute(
            select(func.count(), func.max(col(Dossier.deadline))).where(
                col(Dossier.kek_id) == key_id
            )
        )
    ).one()
    held = (
        await session.execute(
            select(func.count(func.distinct(col(Hold.dossier_id))))
            .join(Dossier, col(Dossier.id) == col(Hold.dossier_id))
            .where(
                col(Dossier.kek_id) == key_id,
                col(Hold.state) == "active",
                col(Hold.ends_at) > now,
            )
        )
    ).scalar_one()
    gone, gone_last = (
        await session.execute(
            select(func.count(), func.max(col(Tombstone.deadline))).where(
                col(Tombstone.kek_id) == key_id
            )
        )
    ).one()
    deadlines = [d for d in (live_last, gone_last) if d is not None]
    last_deadline = max(deadlines) if deadlines else None
    grace = dt.timedelta(days=grace_days)
    may_go_from = max(month_end(key_id), last_deadline or month_end(key_id)) + grace
    reasons = []
    if key_id == kek_id_for(now):
        reasons.append("current month's key")
    if live:
        reasons.append(f"{live} live dossier(s)")
    if held:
        reasons.append(f"{held} on hold")
    if data_keys and not live:  # a data key without its dossier's kek_id: keep, to be safe
        reasons.append(f"wraps {data_keys} data key(s)")
    return KeyStatus(
        key_id=key_id,
        data_keys=int(data_keys),
        live_dossiers=int(live),
        held_dossiers=int(held),
        destroyed_dossiers=int(gone),
        last_deadline=last_deadline,
        may_go_from=may_go_from,
        in_use=tuple(reasons),
        due=now >= may_go_from,
        destroyed=await session.get(KekDestruction, key_id),
    )


async def key_statuses(store: DossierStore, *, grace_days: int) -> list[KeyStatus]:
    """The status of every KEK in the keyring, used by a dossier or destroyed, by id."""
    async with read_session(store.sessions) as session:
        now = await store.clock.now(session)
        ids = {info.key_id for info in store.keyring.list_keys()}
        for column in (col(DataKey.kek_id), col(Dossier.kek_id), col(KekDestruction.kek_id)):
            found = (await session.execute(select(column).distinct())).scalars()
            ids.update(k for k in found if k)
        return [
            await _status(session, key_id=key_id, now=now, grace_days=grace_days)
            for key_id in sorted(ids)
        ]


async def _record(
    store: DossierStore, *, actor: Actor, key_id: str, grace_days: int
) -> KekDestruction | None:
    """Record the key's destruction if it may go (or was recorded before); else None."""
    async with read_session(store.sessions) as session:  # most hours, no key may go
        now = await store.clock.now(session)
        status = await _status(session, key_id=key_id, now=now, grace_days=grace_days)
        if status.destroyed is None and not status.may_go:
            return None
    async with store.sessions() as session, session.begin():  # decide again, for real
        recorded = await session.get(KekDestruction, key_id)
        if recorded is not None:
            return recorded  # recorded by a run that did not get to delete the file
        now = await store.clock.now(session)
        status = await _status(session, key_id=key_id, now=now, grace_days=grace_days)
        if not status.may_go:
            return None
        record = KekDestruction(
            kek_id=key_id,
            destroyed_at=now,
            actor=str(actor),
            last_deadline=status.last_deadline,
            dossiers=status.destroyed_dossiers,
        )
        session.add(record)
        await record_event(
            session,
            at=now,
            actor=actor,
            action="key.kek_destroyed",
            object_type="key",
            object_ref=key_id,
            detail={
                "dossiers": status.destroyed_dossiers,
                "last_deadline": status.last_deadline.isoformat() if status.last_deadline else None,
                "grace_days": grace_days,
            },
        )
    return record


async def destroy_expired_keks(store: DossierStore, *, actor: Actor, grace_days: int) -> list[str]:
    """Destroy every KEK in the keyring that may go now; returns their ids, oldest first."""
    if grace_days < 0:
        raise ValueError(f"grace_days must not be negative, got {grace_days}")
    destroyed = []
    for info in store.keyring.list_keys():
        try:
            may_go = await _record(store, actor=actor, key_id=info.key_id,
                                   grace_days=grace_days) is not None  # fmt: skip
        except IntegrityError:
            may_go = True  # another process recorded it at the same moment; both delete
        if may_go:
            await asyncio.to_thread(store.keyring.destroy, info.key_id)
            log.info("key-encryption key %s destroyed", info.key_id)
            destroyed.append(info.key_id)
    return destroyed
