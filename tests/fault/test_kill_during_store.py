"""A process killed (SIGKILL) while storing a document leaves no visible document and, after
the next start-up, no stray file and no pending row."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from dossier.documents import list_documents
from dossier.models import Document
from retention.audit import verify_chain
from retention.models import AuditEvent
from server.app import create_app
from server.appkeys import DOSSIER_STORE

from support import CLERK, engine_of

# The child stores a document whose source never ends (the upload is still arriving) or
# whose completion transaction never starts (the blob is renamed, the row still pending),
# announces where it is, and waits to be killed.
CHILD = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from dossier.db import DatabaseClock
    from dossier.documents import store_document
    from dossier.store import DossierStore
    from retention.audit import Actor
    from server.resources import make_store, open_engine
    from server.settings import Settings

    PHASE, DOSSIER = sys.argv[1], uuid.UUID(sys.argv[2])

    async def source():
        for _ in range(8):
            yield b"%" * 65536
        if PHASE == "writing":
            print("WRITING", flush=True)
            await asyncio.Event().wait()

    async def main():
        settings = Settings()
        store = make_store(settings, open_engine(settings), DatabaseClock())
        calls = 0
        real = store.sessions

        def sessions():
            nonlocal calls
            calls += 1
            if PHASE == "renamed" and calls == 2:  # 1: pending row; 2: mark complete
                print("RENAMED", flush=True)
                return _Stuck()
            return real()

        class _Stuck:
            async def __aenter__(self):
                await asyncio.Event().wait()

            async def __aexit__(self, *exc):
                return False

        stuck = DossierStore(sessions=sessions, audit=store.audit, keyring=store.keyring,
                             blobs=store.blobs,
                             clock=store.clock, segment_size=4096)
        await store_document(stuck, actor=Actor("resident", "r1"), dossier_id=DOSSIER,
                             name="scan.pdf", media_type="application/pdf", content=source())

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


@pytest.mark.parametrize(("phase", "marker"), [("writing", "WRITING"), ("renamed", "RENAMED")])
async def test_sigkill_while_storing_leaves_nothing_after_restart(
    aiohttp_client, settings, store, booked, clock, phase, marker
):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, phase, str(booked.dossier.id)],
        env=child_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=60)
        assert line.strip() == marker, child.stderr.read() if child.poll() is not None else line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()

    # The crash left its traces: a pending row and a partial (or whole, unconfirmed) blob.
    files = [p for p in store.blobs.root.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].name.endswith(".tmp") == (phase == "writing")
    async with store.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Document))).scalar() == 1
    # ...but no visible document, even before recovery.
    assert await list_documents(store, actor=CLERK, dossier_id=booked.dossier.id) == []

    # Restart: the application's start-up recovery cleans up.
    client = await aiohttp_client(create_app(settings, clock=clock))
    assert (await client.get("/readyz")).status == 200
    restarted = client.server.app[DOSSIER_STORE]
    assert await list_documents(restarted, actor=CLERK, dossier_id=booked.dossier.id) == []
    assert [p for p in store.blobs.root.rglob("*") if p.is_file()] == []
    async with store.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Document))).scalar() == 0
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "document.discarded_incomplete" in actions
    assert (await verify_chain(engine_of(store))).ok
