"""Two processes sweeping one database at the same moment destroy every due dossier exactly
once, with one audit event each. On PostgreSQL: with the advisory lock as in production, and
with the lock taken away so that only the row claims (FOR UPDATE SKIP LOCKED) and the row
locks of destroy_dossier stand between them. On SQLite (no advisory lock): BEGIN IMMEDIATE."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from dossier.models import Dossier, Tombstone
from retention.audit import verify_chain
from retention.models import AuditEvent, DestructionBatch

from support import book, engine_of

PG_URL = os.environ.get("BALIE_TEST_DATABASE_URL", "")
ON_PG = pytest.mark.skipif(not PG_URL, reason="the advisory lock is PostgreSQL's")
DUE = 30

CHILD = textwrap.dedent(
    """
    import asyncio, contextlib, json, sys
    import retention.sweeper as sweeper
    from dossier.db import DatabaseClock
    from retention.audit import Actor
    from server.resources import make_store, open_engine
    from server.settings import Settings

    if sys.argv[1] == "claims-only":
        @contextlib.asynccontextmanager
        async def no_lock(store):
            yield True
        sweeper._sweep_lock = no_lock

    async def main():
        settings = Settings()
        store = make_store(settings, open_engine(settings), DatabaseClock())
        await store.now()  # connected
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        report = await sweeper.sweep(store, actor=Actor.system(sys.argv[2]), batch_size=4)
        print(json.dumps({"busy": report.busy, "destroyed": report.destroyed,
                          "elsewhere": report.count("elsewhere"),
                          "failed": report.failed}), flush=True)
        await store.audit.close()

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


# On SQLite "claims-only" is how production runs (BEGIN IMMEDIATE, no advisory lock).
@pytest.mark.parametrize("mode", [pytest.param("advisory-lock", marks=ON_PG), "claims-only"])
async def test_two_processes_destroy_each_due_dossier_once(settings, store, clock, mode):
    minute = dt.timedelta(minutes=1)
    due = [await book(store, clock, starts_at=clock.current + (n + 1) * minute) for n in range(DUE)]
    # Not due by the database clock (today): must survive both.
    future = await book(store, clock, starts_at=dt.datetime(2099, 1, 5, 9, tzinfo=dt.UTC))

    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, f"sweeper-{n}"],
            env=child_env(settings),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    try:
        for child in children:
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=60)
            assert line.strip() == "READY", line
        for child in children:  # both at once
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, err = await asyncio.wait_for(asyncio.to_thread(child.communicate), timeout=120)
            assert child.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)

    assert sum(r["destroyed"] for r in reports) == DUE
    assert all(r["failed"] == 0 for r in reports)
    if mode == "advisory-lock":
        # Either the second waited its turn and found nothing, or it stepped aside.
        assert sorted(r["destroyed"] for r in reports) == [0, DUE]

    ids = {str(b.dossier.id) for b in due}
    async with store.sessions() as session:
        stones = (await session.execute(select(Tombstone))).scalars().all()
        query = select(col(AuditEvent.object_ref)).where(
            col(AuditEvent.action) == "dossier.destroyed"
        )
        destroyed_events = Counter((await session.execute(query)).scalars())
        query = select(col(AuditEvent.object_ref)).where(
            col(AuditEvent.action) == "dossier.destroy_started"
        )
        started_events = Counter((await session.execute(query)).scalars())
        left = (await session.execute(select(col(Dossier.id)))).scalars().all()
        batches = (await session.execute(select(DestructionBatch))).scalars().all()
        counted = select(func.count()).select_from(Tombstone)
        assert (await session.execute(counted)).scalar() == DUE
    assert {str(s.dossier_id) for s in stones} == ids
    assert {s.outcome for s in stones} == {"destroyed_at_deadline"}
    assert destroyed_events == Counter(ids)  # exactly one each
    assert started_events == Counter(ids)
    assert left == [future.dossier.id]
    # Each tombstone names the batch of the process that finished it; the batches add up.
    assert sum(b.dossiers for b in batches) == DUE
    assert Counter(s.destruction_batch for s in stones) == Counter(
        {b.id: b.dossiers for b in batches if b.dossiers}
    )
    assert all(b.finished_at is not None for b in batches)
    assert (await verify_chain(engine_of(store))).ok
