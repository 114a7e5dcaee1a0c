"""A sweeping process killed (SIGKILL) after a dossier's data key was deleted but before its
blobs, rows and tombstone went: the next sweep finishes every dossier of the batch, and no
half-destroyed dossier remains."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

from sqlalchemy import func, select
from sqlmodel import col

from dossier.chat import append_chat_message
from dossier.documents import store_document
from dossier.models import DataKey, Dossier, DossierState, Tombstone
from retention.audit import Actor, verify_chain
from retention.models import AuditEvent, DestructionBatch
from retention.sweeper import sweep

from support import CLERK, RESIDENT, book, chunks, engine_of

# The child sweeps on the database clock (today, long after these deadlines). Its hook
# stops the first destruction right after the data key's deletion was committed.
CHILD = textwrap.dedent(
    """
    import asyncio
    import dossier.shredding as shredding
    from dossier.db import DatabaseClock
    from retention.audit import Actor
    from retention.sweeper import sweep
    from server.resources import make_store, open_engine
    from server.settings import Settings

    real_flush = shredding._flush_deleted_key

    async def stop_after_key(store):
        await real_flush(store)
        print("KEY_DELETED", flush=True)
        await asyncio.Event().wait()

    shredding._flush_deleted_key = stop_after_key

    async def main():
        settings = Settings()
        store = make_store(settings, open_engine(settings), DatabaseClock())
        await sweep(store, actor=Actor.system("retention-sweep"), batch_size=10)
        print("NOT KILLED", flush=True)

    asyncio.run(main())
    """
)


def child_env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    env.update(
        BALIE_ENVIRONMENT="test",
        BALIE_DATA_DIR=str(settings.data_dir),
        BALIE_DATABASE_URL=settings.resolved_database_url,
    )
    return env


async def test_sigkill_mid_destruction_is_finished_by_the_next_sweep(settings, store, clock):
    hour = dt.timedelta(hours=1)
    # The first to go (earliest deadline) has content on disk and in the database.
    first = await book(store, clock, starts_at=clock.current + hour)
    await append_chat_message(store, actor=CLERK, dossier_id=first.dossier.id, text="Hallo")
    await store_document(
        store, actor=RESIDENT, dossier_id=first.dossier.id, name="akte.pdf",
        media_type="application/pdf", content=chunks(b"%PDF-1.7 " + b"q" * 9000),
    )  # fmt: skip
    others = [await book(store, clock, starts_at=clock.current + n * hour) for n in (2, 3)]
    ids = [first.dossier.id, *(b.dossier.id for b in others)]

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env=child_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=60)
        assert line.strip() == "KEY_DELETED", child.stderr.read() if child.poll() else line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()

    # Killed halfway: the key is gone, the blob and the rows are still there, no tombstone.
    blobs = [p for p in store.blobs.root.rglob("*") if p.is_file()]
    assert len(blobs) == 1
    async with store.sessions() as session:
        assert await session.get(DataKey, first.dossier.id) is None
        assert await session.get(Tombstone, first.dossier.id) is None
        states = select(col(Dossier.state)).where(col(Dossier.id).in_(ids))
        assert set((await session.execute(states)).scalars()) == {DossierState.DESTROYING}
        [killed_batch] = (await session.execute(select(DestructionBatch))).scalars().all()
    assert killed_batch.finished_at is None

    # The next run (a killed PostgreSQL session may take a moment to release its lock).
    clock.current = others[-1].dossier.deadline
    sweeper = Actor.system("retention-sweep")
    async with asyncio.timeout(30):
        while (report := await sweep(store, actor=sweeper, batch_size=10)).busy:
            await asyncio.sleep(0.05)
    assert sorted(i.dossier_id for i in report.items) == sorted(ids)
    assert report.destroyed == 3

    assert [p for p in store.blobs.root.rglob("*") if p.is_file()] == []
    async with store.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Dossier))).scalar() == 0
        assert (await session.execute(select(func.count()).select_from(DataKey))).scalar() == 0
        stones = (await session.execute(select(Tombstone))).scalars().all()
        destroyed = select(col(AuditEvent.object_ref)).where(
            col(AuditEvent.action) == "dossier.destroyed"
        )
        refs = sorted((await session.execute(destroyed)).scalars())
        batch = await session.get(DestructionBatch, report.batch_id)
    assert {s.dossier_id for s in stones} == set(ids)
    assert {s.outcome for s in stones} == {"destroyed_at_deadline"}
    assert {s.destruction_batch for s in stones} == {report.batch_id}
    assert refs == sorted(str(i) for i in ids)  # one event each
    assert (batch.dossiers, batch.finished_at) == (3, clock.current)
    assert (await verify_chain(engine_of(store))).ok
