"""The retention policy's versions: adoption of the configured file, proposals, four-eyes
approval, and what a version in force changes (new appointments) and leaves alone (old ones).

Runs against the real database (SQLite, or PostgreSQL with BALIE_TEST_DATABASE_URL).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import uuid

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from dossier.models import Dossier, ServiceType
from retention.audit import Actor
from retention.errors import PolicyError
from retention.models import AuditEvent, PolicyVersion
from retention.policy_versions import (
    PolicyNotFound,
    PolicyRefused,
    approve_policy,
    ensure_policy_in_force,
    policy_in_force,
    propose_policy,
    reject_policy,
)

from support import book

INSTALLER = Actor.operator("install")
IM = Actor("information_manager", "emp-im")
IM2 = Actor("information_manager", "emp-im2")
PO = Actor("privacy_officer", "emp-po")
WHY = "Geboorteaangiften zijn na zes weken altijd geexporteerd; korter bewaren mag."


def changed_policy(settings, *, version: str = "2026-2", birth_days: int = 42) -> str:
    """The example policy as a new version that keeps birth registrations `birth_days` days,
    with one new service type."""
    text = settings.policy_file.read_text(encoding="utf-8")
    text = text.replace('version = "2026-1"', f'version = "{version}"', 1)
    birth = text.index("[service.geboorteaangifte]")
    head, tail = text[:birth], text[birth:]
    tail = tail.replace("max_days = 56", f"max_days = {birth_days}", 1)
    return (
        head
        + tail
        + (
            '\n[service.rijbewijs]\nlabel = "Rijbewijs aanvragen"\nlevel_of_assurance = "midden"\n'
            'max_days = 21\narchive = "none"\navg_basis = "art. 6(1)(e) AVG; Wegenverkeerswet"\n'
            'on_deadline = "destroy"\n'
        )
    )


@pytest.fixture
async def in_force(store, settings):
    """The example policy adopted as the first version, as at a first start."""
    return (
        await ensure_policy_in_force(
            store.sessions, store.clock, policy_file=settings.policy_file, actor=INSTALLER
        )
    ).row


async def propose(store, text: str, actor: Actor = IM, why: str = WHY) -> PolicyVersion:
    async with store.sessions() as session, session.begin():
        return await propose_policy(
            session, policy_text=text, justification=why, actor=actor, now=store.clock.current
        )


async def approve(store, row: PolicyVersion, actor: Actor, role: str | None = None):
    async with store.sessions() as session, session.begin():
        return await approve_policy(
            session, proposal_id=row.id, actor=actor, role=role or actor.role,
            now=store.clock.current,
        )  # fmt: skip


async def actions(store) -> list[str]:
    async with store.sessions() as session:
        query = select(col(AuditEvent.action)).where(col(AuditEvent.object_type) == "policy")
        return list((await session.execute(query.order_by(col(AuditEvent.seq)))).scalars())


async def versions(store) -> list[tuple[str, str]]:
    async with store.sessions() as session:
        query = select(col(PolicyVersion.version), col(PolicyVersion.state))
        return sorted((row[0], row[1]) for row in (await session.execute(query)).all())


async def service(store, code: str) -> ServiceType | None:
    async with store.sessions() as session:
        query = select(ServiceType).where(col(ServiceType.code) == code)
        return (await session.execute(query)).scalar()


async def test_the_configured_file_is_adopted_once_and_sets_the_service_types(
    store, settings, in_force
):
    data = settings.policy_file.read_bytes()
    assert (in_force.version, in_force.state) == ("2026-1", "in_force")
    assert in_force.digest == hashlib.sha256(data).hexdigest()
    assert in_force.justification == f"initial policy from {settings.policy_file}"
    assert in_force.im_approved_by == in_force.po_approved_by == "operator:install"
    birth = await service(store, "geboorteaangifte")
    assert birth is not None
    assert (birth.policy_version, birth.selectielijst, birth.on_deadline) == (
        "2026-1", "7.1.21", "escalate_then_destroy",
    )  # fmt: skip
    erkenning = await service(store, "erkenning")  # not in the database before
    assert erkenning is not None
    assert erkenning.needs_bsn
    assert (await service(store, "kort")) is not None  # not in the policy: left alone

    again = await ensure_policy_in_force(
        store.sessions, store.clock, policy_file=settings.policy_file, actor=INSTALLER
    )
    assert (again.adopted, again.file_differs, again.row.id) == (False, False, in_force.id)
    assert await versions(store) == [("2026-1", "in_force")]
    assert await actions(store) == ["policy.adopted"]


async def test_a_changed_file_only_warns(store, settings, in_force, tmp_path, caplog):
    edited = tmp_path / "policy.toml"
    edited.write_text(changed_policy(settings), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="retention.policy_versions"):
        seen = await ensure_policy_in_force(
            store.sessions, store.clock, policy_file=edited, actor=INSTALLER
        )
    assert seen.file_differs
    assert seen.row.version == "2026-1"
    assert "takes effect only after `balie policy propose`" in caplog.text
    assert (await service(store, "geboorteaangifte")).retention_days == 56


async def test_an_invalid_first_file_is_refused_naming_the_key(store, settings, tmp_path):
    broken = tmp_path / "policy.toml"
    text = settings.policy_file.read_text(encoding="utf-8")
    broken.write_text(text.replace("max_days = 28", "max_days = 60"), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        await ensure_policy_in_force(
            store.sessions, store.clock, policy_file=broken, actor=INSTALLER
        )
    assert caught.value.problems == [
        "service.uittreksel_brp.max_days: 60 is more than 56 (AVG storage limitation: at most "
        "eight weeks)"
    ]
    assert await versions(store) == []


async def test_an_invalid_proposal_names_every_key_and_stores_nothing(store, settings, in_force):
    text = changed_policy(settings).replace('archive = "none"', 'archive = "maybe"')
    text = text.replace("max_days = 14", "max_days = 99")
    with pytest.raises(PolicyError) as caught:
        await propose(store, text, why="kort")
    problems = "\n".join(caught.value.problems)
    assert "service.rijbewijs.archive: 'maybe' is not one of" in problems
    assert "service.informatie.max_days: 99 is more than 56" in problems
    assert "justification: 4 characters; write at least 20" in problems
    assert await versions(store) == [("2026-1", "in_force")]


@pytest.mark.parametrize(
    ("make", "why", "message"),
    [
        (lambda s: changed_policy(s), "te kort", "justification: 7 characters"),
        (lambda s: changed_policy(s), "   ", "justification: 0 characters"),
        (lambda s: s.policy_file.read_text(encoding="utf-8"), WHY, "is the version in force"),
        (lambda s: changed_policy(s, version="2026-1"), WHY, "'2026-1' is used already (in force)"),
    ],
)
async def test_proposals_the_workflow_refuses(store, settings, in_force, make, why, message):
    with pytest.raises(PolicyRefused, match=re.escape(message)):
        await propose(store, make(settings), why=why)
    assert await versions(store) == [("2026-1", "in_force")]


async def test_a_version_of_an_open_proposal_cannot_be_proposed_twice(store, settings, in_force):
    await propose(store, changed_policy(settings))
    with pytest.raises(PolicyRefused, match=r"'2026-2' is used already \(proposed\)"):
        await propose(store, changed_policy(settings, birth_days=35))


async def test_without_both_approvals_nothing_changes(store, clock, settings, in_force):
    proposal = await propose(store, changed_policy(settings))
    half = await approve(store, proposal, IM)
    assert (half.state, half.im_approved_by, half.po_approved_by) == (
        "proposed", "information_manager:emp-im", None,
    )  # fmt: skip
    with pytest.raises(PolicyRefused, match="approved by an information manager already"):
        await approve(store, proposal, IM2)  # a second information manager: same role
    with pytest.raises(PolicyRefused, match="approved by an information manager already"):
        await approve(store, proposal, IM)
    with pytest.raises(PolicyRefused, match="in the other role already"):
        await approve(store, proposal, Actor("privacy_officer", "emp-im"))  # same person
    with pytest.raises(PolicyRefused, match="cannot approve as a privacy officer"):
        await approve(store, proposal, IM2, role="privacy_officer")
    with pytest.raises(PolicyRefused, match="role: 'clerk' cannot approve"):
        await approve(store, proposal, Actor("clerk", "emp-c"))

    booked = await book(store, clock)
    assert booked.dossier.policy_version == "2026-1"
    assert booked.dossier.deadline == booked.appointment.starts_at + dt.timedelta(days=56)
    async with store.sessions() as session:
        assert (await policy_in_force(session)).version == "2026-1"
    assert await versions(store) == [("2026-1", "in_force"), ("2026-2", "proposed")]
    assert await actions(store) == ["policy.adopted", "policy.proposed", "policy.approved"]


async def test_with_both_approvals_new_appointments_follow_and_old_ones_keep_theirs(
    store, clock, settings, in_force
):
    before = await book(store, clock)
    proposal = await propose(store, changed_policy(settings), actor=Actor.operator("beheer"))
    clock.advance(dt.timedelta(hours=1))
    await approve(store, proposal, PO)
    clock.advance(dt.timedelta(hours=1))
    done = await approve(store, proposal, IM)
    assert (done.state, done.in_force_from) == ("in_force", clock.current)

    after = await book(store, clock)
    assert after.dossier.policy_version == "2026-2"
    assert after.dossier.deadline == after.appointment.starts_at + dt.timedelta(days=42)
    async with store.sessions() as session:
        old = await session.get_one(Dossier, before.dossier.id)
        previous = await session.get_one(PolicyVersion, in_force.id)
    assert (old.policy_version, old.deadline) == ("2026-1", before.dossier.deadline)
    assert (previous.state, previous.superseded_at) == ("superseded", clock.current)
    birth = await service(store, "geboorteaangifte")
    assert (birth.retention_days, birth.policy_version) == (42, "2026-2")
    new = await service(store, "rijbewijs")
    assert (new.label, new.retention_days, new.archive_mode) == ("Rijbewijs aanvragen", 21, "none")
    assert await versions(store) == [("2026-1", "superseded"), ("2026-2", "in_force")]
    assert await actions(store) == [
        "policy.adopted", "policy.proposed", "policy.approved", "policy.approved",
        "policy.in_force",
    ]  # fmt: skip
    async with store.sessions() as session:
        count = (
            select(func.count())
            .select_from(PolicyVersion)
            .where(col(PolicyVersion.state) == "in_force")
        )
        assert (await session.execute(count)).scalar_one() == 1


async def test_a_rejected_proposal_is_closed_and_its_version_free_again(store, settings, in_force):
    proposal = await propose(store, changed_policy(settings))
    async with store.sessions() as session, session.begin():
        with pytest.raises(PolicyRefused, match="reason: say why"):
            await reject_policy(
                session, proposal_id=proposal.id, actor=PO, reason="  ", now=store.clock.current
            )
    async with store.sessions() as session, session.begin():
        rejected = await reject_policy(
            session, proposal_id=proposal.id, actor=PO, reason="Eerst het zaaktype aanpassen.",
            now=store.clock.current,
        )  # fmt: skip
    assert (rejected.state, rejected.rejected_by) == ("rejected", "privacy_officer:emp-po")
    with pytest.raises(PolicyRefused, match="is rejected, not open for a decision"):
        await approve(store, proposal, IM)
    again = await propose(store, changed_policy(settings))  # the version may be used again
    assert again.state == "proposed"
    async with store.sessions() as session, session.begin():
        with pytest.raises(PolicyNotFound, match="no policy proposal with id"):
            await approve_policy(
                session, proposal_id=uuid.uuid4(), actor=IM, role=IM.role, now=store.clock.current
            )
    assert "policy.rejected" in await actions(store)
