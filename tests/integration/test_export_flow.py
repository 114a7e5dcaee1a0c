"""The export flow with a fake exporter: shred only after full success, keep everything on a
failure, retry from the last finished step, refuse what cannot be exported."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import pytest
from sqlalchemy import func, select

from dossier.calls import admit, end_call, knock
from dossier.chat import append_chat_message, list_chat_messages
from dossier.errors import DossierDestroyed, InvalidState
from dossier.export.base import ExportOutcome, Progress, StepLedger
from dossier.export.content import ExportContent
from dossier.export.errors import TargetUnavailable
from dossier.export.flow import (
    claim_export,
    export_job,
    pending_exports,
    request_export,
    retry_export,
    run_export,
)
from dossier.models import DataKey, ExportStep, Tombstone, TombstoneOutcome
from dossier.shredding import destroy_dossier
from retention.audit import verify_chain
from retention.models import AuditEvent
from retention.policy import load_policy
from server.settings import Settings

from support import CLERK, RESIDENT, book, engine_of

POLICY = load_policy(Settings().policy_file)


class FakeExporter:
    """Two steps per document; can be told to fail after some steps."""

    id = "fake"

    def __init__(self, *, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.uploaded: list[str] = []  # what reached "the target", in order
        self.seen: ExportContent | None = None

    async def export(
        self,
        content: ExportContent,
        *,
        options: Mapping[str, str],
        steps: StepLedger,
        progress: Progress,
    ) -> ExportOutcome:
        self.seen = content
        keys = [f"chat:{i}" for i, _ in enumerate(content.chat)] + ["transcript"]
        for number, key in enumerate(keys):
            if await steps.done(key) is not None:
                continue
            if self.fail_after is not None and len(self.uploaded) >= self.fail_after:
                raise TargetUnavailable("the target answered 503")
            self.uploaded.append(key)
            await steps.record(key, {"url": f"https://target.example/{key}"})
            await progress((number + 1) / len(keys), f"Stap {number + 1} van {len(keys)}")
        return ExportOutcome(
            references={"zaak": options.get("zaak", "")}, manifest_sha256="ab" * 32
        )

    async def check_config(self) -> None:
        return None


async def ended_dossier(store, clock, *, lines: int = 3):
    booked = await book(store, clock)
    dossier_id = booked.dossier.id
    await knock(store, actor=RESIDENT, dossier_id=dossier_id)
    await admit(store, actor=CLERK, dossier_id=dossier_id)
    for i in range(lines):
        await append_chat_message(store, actor=RESIDENT, dossier_id=dossier_id, text=f"regel {i}")
    await end_call(store, actor=CLERK, dossier_id=dossier_id)
    return booked


async def queued(store, booked, target: str = "fake"):
    return await request_export(
        store, actor=CLERK, dossier_id=booked.dossier.id,
        department_id=booked.appointment.department_id, target=target, options={"zaak": "Z-1"},
    )  # fmt: skip


async def test_success_shreds_at_once_and_leaves_a_tombstone_naming_the_export(store, clock):
    booked = await ended_dossier(store, clock)
    job = await queued(store, booked)
    exporter = FakeExporter()
    assert await claim_export(store, job.export_id)
    done = await run_export(
        store, export_id=job.export_id, exporters={"fake": exporter}, policy=POLICY
    )
    assert done.state == "done"
    assert done.progress == 1.0
    assert exporter.seen is not None
    assert [line.text for line in exporter.seen.chat] == ["regel 0", "regel 1", "regel 2"]
    assert exporter.seen.exported_by == CLERK.ref
    with pytest.raises(DossierDestroyed):
        await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    async with store.sessions() as session:
        tombstone = await session.get(Tombstone, booked.dossier.id)
        keys = (await session.execute(select(func.count()).select_from(DataKey))).scalar_one()
    assert keys == 0
    assert tombstone.outcome == TombstoneOutcome.EXPORTED
    assert tombstone.export_target == "fake"
    assert json.loads(tombstone.export_references) == {"zaak": "Z-1"}
    assert tombstone.export_manifest_sha256 == "ab" * 32
    async with store.sessions() as session:
        actions = set((await session.execute(select(AuditEvent.action))).scalars())
    assert {"export.requested", "export.confirmed", "dossier.destroyed"} <= actions
    assert (await verify_chain(engine_of(store))).ok


async def test_failure_shreds_nothing_and_a_retry_repeats_no_finished_step(store, clock):
    booked = await ended_dossier(store, clock)
    job = await queued(store, booked)
    exporter = FakeExporter(fail_after=2)
    assert await claim_export(store, job.export_id)
    failed = await run_export(
        store, export_id=job.export_id, exporters={"fake": exporter}, policy=POLICY
    )
    assert failed.state == "failed"
    assert "503" in failed.error
    # Nothing shredded: the content is still readable and the deadline stands.
    assert len(await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)) == 3
    again = await retry_export(store, actor=CLERK, export_id=job.export_id)
    assert again.state == "queued"
    exporter.fail_after = None
    assert await claim_export(store, job.export_id)
    done = await run_export(
        store, export_id=job.export_id, exporters={"fake": exporter}, policy=POLICY
    )
    assert done.state == "done"
    # Each step reached the target exactly once over both runs.
    assert exporter.uploaded == ["chat:0", "chat:1", "chat:2", "transcript"]
    async with store.sessions() as session:
        steps = (await session.execute(select(func.count()).select_from(ExportStep))).scalar_one()
    assert steps == 4


async def test_export_needs_an_ended_call_and_refuses_what_is_gone(store, clock):
    booked = await book(store, clock)
    with pytest.raises(InvalidState, match="end the call before exporting"):
        await queued(store, booked)
    ended = await ended_dossier(store, clock)
    job = await queued(store, ended)
    with pytest.raises(InvalidState, match="already under way"):
        await queued(store, ended)
    assert await claim_export(store, job.export_id)
    await run_export(
        store, export_id=job.export_id, exporters={"fake": FakeExporter()}, policy=POLICY
    )
    with pytest.raises(InvalidState, match="exported already"):
        await queued(store, ended)
    destroyed = await ended_dossier(store, clock)
    await destroy_dossier(
        store, actor=CLERK, dossier_id=destroyed.dossier.id,
        outcome=TombstoneOutcome.DESTROYED_BY_OPERATOR,
    )  # fmt: skip
    with pytest.raises(DossierDestroyed):
        await queued(store, destroyed)


async def test_only_one_process_claims_a_job_and_a_dead_ones_job_is_taken_over(store, clock):
    booked = await ended_dossier(store, clock)
    job = await queued(store, booked)
    assert await pending_exports(store) == [job.export_id]
    assert await claim_export(store, job.export_id)
    assert not await claim_export(store, job.export_id)  # another process: it is taken
    assert await pending_exports(store) == []
    clock.advance(dt.timedelta(minutes=11))  # the claiming process died: no progress for too long
    assert await pending_exports(store) == [job.export_id]
    assert await claim_export(store, job.export_id)
    info = await export_job(store, job.export_id)
    assert info.state == "running"


async def test_an_unknown_target_fails_the_job_without_shredding(store, clock):
    booked = await ended_dossier(store, clock)
    job = await queued(store, booked, target="nowhere")
    assert await claim_export(store, job.export_id)
    failed = await run_export(store, export_id=job.export_id, exporters={}, policy=POLICY)
    assert failed.state == "failed"
    assert "nowhere" in failed.error
    assert len(await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)) == 3
