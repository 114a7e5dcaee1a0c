"""The retention policy in force, and how a new version gets there (DESIGN §3: four eyes).

    proposed ──approved by an information manager AND a privacy officer──► in_force
        │                                                                     │ next one in force
        └──rejected──► rejected                                              ▼
                                                                          superseded

The text of every version lives in `policy_versions`; exactly one is in force. A fresh
installation adopts its configured policy file as the first version (`adopt_policy_file`);
after that the file is only the text an operator proposes from: editing it changes nothing
until a proposal is approved by two different people, one in each role. When a version comes
into force the service types follow it; dossiers that exist keep their deadline and the
version they were created under.

Every change is an audit event in the same transaction (policy.adopted, policy.proposed,
policy.approved, policy.rejected, policy.in_force), naming versions and digests only: a
justification is free text and stays in the table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from dossier.db import Clock
from dossier.models import ServiceType
from retention.audit import Actor, record_event
from retention.errors import PolicyError, PolicyNotFound, PolicyRefused
from retention.models import PolicyVersion
from retention.policy import Policy, parse_policy

__all__ = [
    "APPROVER_ROLES",
    "IN_FORCE",
    "MAX_POLICY_CHARS",
    "MIN_JUSTIFICATION",
    "PROPOSED",
    "REJECTED",
    "SUPERSEDED",
    "CurrentPolicy",
    "PolicyAtStart",
    "PolicyNotFound",
    "PolicyRefused",
    "adopt_policy_file",
    "approve_policy",
    "ensure_policy_in_force",
    "open_proposals",
    "policy_diff",
    "policy_in_force",
    "policy_of",
    "propose_policy",
    "reject_policy",
    "sync_service_types",
]

log = logging.getLogger(__name__)

ApproverRole = Literal["information_manager", "privacy_officer"]
APPROVER_ROLES: Final[tuple[ApproverRole, ...]] = ("information_manager", "privacy_officer")
_ROLE_NAMES: Final = {
    "information_manager": "an information manager",
    "privacy_officer": "a privacy officer",
}
MIN_JUSTIFICATION: Final = 20
MAX_JUSTIFICATION: Final = 4000
MAX_REASON: Final = 2000
# The policy text goes through a web form too (64 KiB request limit); the example is 8 KB.
MAX_POLICY_CHARS: Final = 32_000
PROPOSED, IN_FORCE, SUPERSEDED, REJECTED = "proposed", "in_force", "superseded", "rejected"
# Serialises policy changes between processes on PostgreSQL (SQLite: BEGIN IMMEDIATE does).
_PG_LOCK_KEY: Final = 0x42A11E_B0711C


@dataclass(slots=True)
class CurrentPolicy:
    """The policy in force as this process last saw it (the app's state is frozen after
    start-up, this holder is not). Readers take `.policy` each time they need it."""

    _policy: Policy | None = None
    version_id: uuid.UUID | None = None
    _parsed: dict[str, Policy] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        """The policy in force; raises RuntimeError before start-up loaded one."""
        if self._policy is None:
            raise RuntimeError("no policy loaded yet: the database context loads it at start")
        return self._policy

    @property
    def loaded(self) -> bool:
        return self._policy is not None

    def use(self, policy: Policy, version_id: uuid.UUID | None) -> None:
        """Put `policy` (the text of version row `version_id`, if it has one) in force here."""
        self._policy, self.version_id = policy, version_id

    def parsed(self, row: PolicyVersion) -> Policy:
        """The checked policy of a stored version, parsed once per process."""
        found = self._parsed.get(row.digest)
        if found is None:
            found = self._parsed[row.digest] = policy_of(row)
        return found


def policy_of(row: PolicyVersion) -> Policy:
    """The checked policy of a stored version (it was checked when stored, so this holds)."""
    return parse_policy(row.text, source=f"policy version {row.version}")


def _digest(policy_text: str) -> str:
    return hashlib.sha256(policy_text.encode("utf-8")).hexdigest()


async def _serialise(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


async def policy_in_force(session: AsyncSession) -> PolicyVersion | None:
    """The version in force, or None on a database that never adopted one."""
    query = select(PolicyVersion).where(col(PolicyVersion.state) == IN_FORCE)
    return (await session.execute(query.limit(1))).scalar()


async def open_proposals(session: AsyncSession) -> list[PolicyVersion]:
    """Proposals waiting for approval, oldest first."""
    query = (
        select(PolicyVersion)
        .where(col(PolicyVersion.state) == PROPOSED)
        .order_by(col(PolicyVersion.proposed_at))
    )
    return list((await session.execute(query)).scalars())


async def adopt_policy_file(
    session: AsyncSession, *, policy_text: str, source: str, actor: Actor, now: dt.datetime
) -> PolicyVersion | None:
    """Adopt `policy_text` as the first version in force, unless one is in force already.

    The installing operator counts as proposer and both approvers: there is nothing yet to
    protect. Returns the new version, or None when one was in force. Raises PolicyError.
    Call inside a transaction.
    """
    policy = parse_policy(policy_text, source=source)
    await _serialise(session)
    if await policy_in_force(session) is not None:
        return None
    who = str(actor)
    row = PolicyVersion(
        version=policy.version,
        digest=_digest(policy_text),
        text=policy_text,
        state=IN_FORCE,
        justification=f"initial policy from {source}",
        proposed_by=who,
        proposed_at=now,
        im_approved_by=who,
        im_approved_at=now,
        po_approved_by=who,
        po_approved_at=now,
        in_force_from=now,
    )
    session.add(row)
    await session.flush()
    changed = await sync_service_types(session, policy)
    await _audit(session, now, actor, "policy.adopted", row, service_types=changed)
    return row


@dataclass(frozen=True, slots=True)
class PolicyAtStart:
    """The version in force at start-up, and what the configured file says about it."""

    row: PolicyVersion
    adopted: bool  # the file was adopted just now, as the first version
    file_differs: bool  # the file is not the text in force (a change waiting to be proposed)


async def ensure_policy_in_force(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, *, policy_file: Path, actor: Actor
) -> PolicyAtStart:
    """The version in force; on a database without one, `policy_file` is adopted first.

    When a version is in force and the file differs from it, a warning says that the file
    takes effect only after a proposal and both approvals. Raises PolicyError when the file
    must be adopted but is invalid or unreadable.
    """
    try:
        data: bytes | None = await asyncio.to_thread(policy_file.read_bytes)
    except OSError as exc:
        data, problem = None, f"cannot read the file: {exc.strerror or exc}"
    async with sessions() as session, session.begin():
        now = await clock.now(session)
        row = await policy_in_force(session)
        adopted = False
        if row is None:
            if data is None:
                raise PolicyError(str(policy_file), [problem])
            try:
                policy_text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PolicyError(str(policy_file), [f"not UTF-8 text (byte {exc.start})"]) from exc
            row = await adopt_policy_file(
                session, policy_text=policy_text, source=str(policy_file), actor=actor, now=now
            )
            adopted = row is not None
            row = row or await policy_in_force(session)  # another process adopted it first
            assert row is not None
    differs = data is None or hashlib.sha256(data).hexdigest() != row.digest
    if differs:
        log.warning(
            "policy file %s is not the policy in force (version %s): a change takes effect "
            "only after `balie policy propose` and approval by an information manager and a "
            "privacy officer",
            policy_file,
            row.version,
        )
    return PolicyAtStart(row=row, adopted=adopted, file_differs=differs)


async def propose_policy(
    session: AsyncSession,
    *,
    policy_text: str,
    justification: str,
    actor: Actor,
    now: dt.datetime,
    source: str = "the proposal",
) -> PolicyVersion:
    """Store `policy_text` as a proposal waiting for both approvals; `source` names it in
    error messages.

    Raises PolicyError (nothing stored) for an invalid policy, listing a bad justification
    too; PolicyRefused for a missing or short justification, a version already used (in
    force, superseded or proposed), or a text identical to the one in force. Call inside a
    transaction.
    """
    justification = justification.strip()
    problems: list[str] = []
    if len(justification) < MIN_JUSTIFICATION:
        problems.append(
            f"justification: {len(justification)} characters; write at least "
            f"{MIN_JUSTIFICATION} on why this change is needed"
        )
    elif len(justification) > MAX_JUSTIFICATION:
        problems.append(f"justification: at most {MAX_JUSTIFICATION} characters")
    if len(policy_text) > MAX_POLICY_CHARS:
        raise PolicyRefused(
            f"policy text: {len(policy_text)} characters; at most {MAX_POLICY_CHARS}"
        )
    try:
        policy = parse_policy(policy_text, source=source)
    except PolicyError as exc:  # every problem in one answer, the justification's too
        raise PolicyError(exc.source, [*exc.problems, *problems]) from None
    if problems:
        raise PolicyRefused(problems[0])
    digest = _digest(policy_text)
    await _serialise(session)
    current = await policy_in_force(session)
    if current is not None and current.digest == digest:
        raise PolicyRefused(f"this text is the version in force ({current.version}) already")
    taken = select(col(PolicyVersion.state)).where(
        col(PolicyVersion.version) == policy.version, col(PolicyVersion.state) != REJECTED
    )
    state = (await session.execute(taken.limit(1))).scalar()
    if state is not None:
        raise PolicyRefused(
            f"version: {policy.version!r} is used already ({state.replace('_', ' ')}); "
            "give the new text a version of its own"
        )
    row = PolicyVersion(
        version=policy.version,
        digest=digest,
        text=policy_text,
        state=PROPOSED,
        justification=justification,
        proposed_by=str(actor),
        proposed_at=now,
    )
    session.add(row)
    await session.flush()
    await _audit(session, now, actor, "policy.proposed", row)
    return row


async def _open_proposal(session: AsyncSession, proposal_id: uuid.UUID) -> PolicyVersion:
    await _serialise(session)
    query = select(PolicyVersion).where(col(PolicyVersion.id) == proposal_id).with_for_update()
    row = (await session.execute(query)).scalar()
    if row is None:
        raise PolicyNotFound(f"no policy proposal with id {proposal_id}")
    if row.state != PROPOSED:
        raise PolicyRefused(
            f"proposal {proposal_id} (version {row.version}) is {row.state.replace('_', ' ')}, "
            "not open for a decision"
        )
    return row


def _person(actor: str | None) -> str | None:
    """The person in an actor reference `role:ref`: the same employee in either role."""
    return None if actor is None else actor.partition(":")[2]


async def approve_policy(
    session: AsyncSession,
    *,
    proposal_id: uuid.UUID,
    actor: Actor,
    role: str,
    now: dt.datetime,
) -> PolicyVersion:
    """Record `actor`'s approval in `role`; with both approvals the proposal comes into force.

    Coming into force supersedes the version in force and brings the service types in line
    (new dossiers record the new version; existing ones keep theirs). Raises PolicyNotFound,
    and PolicyRefused for another role, a role that approved already, or a person who gave
    the other approval. Call inside a transaction.
    """
    if role not in APPROVER_ROLES:
        raise PolicyRefused(f"role: {role!r} cannot approve; one of: {', '.join(APPROVER_ROLES)}")
    if actor.role != role:
        raise PolicyRefused(f"{actor} cannot approve as {_ROLE_NAMES[role]}")
    row = await _open_proposal(session, proposal_id)
    who = str(actor)
    mine, other = (
        (row.im_approved_by, row.po_approved_by)
        if role == "information_manager"
        else (row.po_approved_by, row.im_approved_by)
    )
    if mine is not None:
        raise PolicyRefused(
            f"version {row.version} is approved by {_ROLE_NAMES[role]} already ({mine})"
        )
    if other is not None and _person(other) == actor.ref:
        raise PolicyRefused(
            f"{who} approved version {row.version} in the other role already; "
            "the second approval must come from someone else"
        )
    if role == "information_manager":
        row.im_approved_by, row.im_approved_at = who, now
    else:
        row.po_approved_by, row.po_approved_at = who, now
    await _audit(session, now, actor, "policy.approved", row, role=role)
    if row.im_approved_by is not None and row.po_approved_by is not None:
        await _bring_into_force(session, row, now)
    await session.flush()
    return row


async def _bring_into_force(session: AsyncSession, row: PolicyVersion, now: dt.datetime) -> None:
    previous = await policy_in_force(session)
    if previous is not None:
        previous.state, previous.superseded_at = SUPERSEDED, now
        await session.flush()  # one version in force at any moment, also inside this transaction
    row.state, row.in_force_from = IN_FORCE, now
    await session.flush()
    changed = await sync_service_types(session, policy_of(row))
    await _audit(
        session,
        now,
        Actor.system("policy"),
        "policy.in_force",
        row,
        supersedes=previous.version if previous is not None else None,
        service_types=changed,
    )


async def reject_policy(
    session: AsyncSession,
    *,
    proposal_id: uuid.UUID,
    actor: Actor,
    reason: str,
    now: dt.datetime,
) -> PolicyVersion:
    """Close an open proposal without effect. Raises PolicyNotFound, and PolicyRefused for a
    missing reason or a proposal that is not open. Call inside a transaction."""
    reason = reason.strip()
    if not reason:
        raise PolicyRefused("reason: say why the proposal is rejected")
    if len(reason) > MAX_REASON:
        raise PolicyRefused(f"reason: at most {MAX_REASON} characters")
    row = await _open_proposal(session, proposal_id)
    row.state = REJECTED
    row.rejected_by, row.rejected_at, row.rejection_reason = str(actor), now, reason
    await session.flush()
    await _audit(session, now, actor, "policy.rejected", row)
    return row


async def sync_service_types(session: AsyncSession, policy: Policy) -> list[str]:
    """Make every service type of `policy` say what the policy says (creating new ones).

    Service types the policy no longer lists are left as they are. Returns the codes of the
    service types created or changed.
    """
    existing = {
        service.code: service
        for service in (await session.execute(select(ServiceType))).scalars()
        if service.code in policy.services
    }
    changed: list[str] = []
    for code, rule in policy.services.items():
        wanted = {
            "label": rule.label,
            "level_of_assurance": rule.level_of_assurance,
            "retention_days": rule.max_days,
            "archive_mode": rule.archive,
            "selectielijst": rule.selectielijst,
            "on_deadline": rule.on_deadline,
            "needs_bsn": rule.needs_bsn,
            "policy_version": policy.version,
        }
        service = existing.get(code)
        if service is None:
            service = ServiceType(code=code, label=rule.label, level_of_assurance="")
            session.add(service)
        elif all(getattr(service, name) == value for name, value in wanted.items()):
            continue
        for name, value in wanted.items():
            setattr(service, name, value)
        changed.append(code)
    await session.flush()
    return changed


def policy_diff(old: str, new: str, *, old_name: str, new_name: str) -> list[str]:
    """A unified diff of two policy texts, line by line (without line ends)."""
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name, lineterm=""
        )
    )


async def _audit(
    session: AsyncSession,
    now: dt.datetime,
    actor: Actor,
    action: str,
    row: PolicyVersion,
    **extra: str | Sequence[str] | None,
) -> None:
    detail: dict[str, object] = {"version": row.version, "digest": row.digest, "state": row.state}
    detail.update({key: list(value) if isinstance(value, list) else value
                   for key, value in extra.items()})  # fmt: skip
    await record_event(
        session,
        at=now,
        actor=actor,
        action=action,
        object_type="policy",
        object_ref=str(row.id),
        detail=detail,
    )
