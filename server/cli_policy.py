"""`balie policy ...` (issue 7): the retention policy's versions and their approval.

    balie policy status
    balie policy propose FILE --justification TEXT
    balie policy approve ID --role information_manager|privacy_officer --by EMPLOYEE_ID
    balie policy reject ID --by EMPLOYEE_ID --reason TEXT

Every command first makes sure a version is in force (a fresh database adopts the configured
policy file, recorded as the operator's). Approving and rejecting name the staff member who
decided (`--by`): they must have an account in that role, and are recorded under it.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from pathlib import Path

import click
from sqlalchemy import select
from sqlmodel import col

from identity.models import StaffAccount
from retention.audit import Actor
from retention.errors import PolicyError
from retention.models import PolicyVersion
from retention.policy_versions import (
    APPROVER_ROLES,
    PolicyAtStart,
    PolicyRefused,
    approve_policy,
    ensure_policy_in_force,
    open_proposals,
    propose_policy,
    reject_policy,
)
from server.cli_support import Resources, operator_of, run

__all__ = ["policy_group"]

_ROLE_NAMES = {"information_manager": "information manager", "privacy_officer": "privacy officer"}


@click.group("policy")
def policy_group() -> None:
    """The retention policy: propose a new version, approve it, see which is in force."""


async def _in_force(res: Resources, ctx: click.Context) -> PolicyAtStart:
    return await ensure_policy_in_force(
        res.store.sessions,
        res.store.clock,
        policy_file=res.settings.policy_file,
        actor=operator_of(ctx),
    )


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds") if moment else "-"


def _approvals(row: PolicyVersion) -> list[str]:
    return [
        f"  {_ROLE_NAMES[role]}: " + (f"{who} at {_when(at)}" if who else "not yet")
        for role, who, at in (
            ("information_manager", row.im_approved_by, row.im_approved_at),
            ("privacy_officer", row.po_approved_by, row.po_approved_at),
        )
    ]


@policy_group.command("status")
@click.pass_context
def policy_status(ctx: click.Context) -> None:
    """The version in force (digest, who approved it when) and the open proposals."""

    async def work(res: Resources) -> list[str]:
        at_start = await _in_force(res, ctx)
        row = at_start.row
        async with res.store.sessions() as session:
            waiting = await open_proposals(session)
        lines = [
            f"in force: version {row.version} since {_when(row.in_force_from)}",
            f"  digest: {row.digest}",
            f"  proposed by {row.proposed_by} at {_when(row.proposed_at)}",
            *_approvals(row),
        ]
        if at_start.adopted:
            lines.append(f"  adopted just now from {res.settings.policy_file}")
        if at_start.file_differs:
            lines.append(
                f"note: {res.settings.policy_file} differs from the version in force; it takes "
                "effect only after `balie policy propose` and both approvals"
            )
        lines.append(f"open proposals: {len(waiting) or 'none'}")
        for proposal in waiting:
            lines += [
                f"{proposal.id}  version {proposal.version}",
                f"  digest: {proposal.digest}",
                f"  proposed by {proposal.proposed_by} at {_when(proposal.proposed_at)}",
                *_approvals(proposal),
            ]
        return lines

    for line in run(work):
        click.echo(line)


@policy_group.command("propose")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--justification", required=True, help="Why the change is needed (20+ chars).")
@click.pass_context
def policy_propose(ctx: click.Context, file: Path, justification: str) -> None:
    """Propose FILE as the next version; prints its id, or every problem (exit 1)."""
    try:
        policy_text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{file}: not UTF-8 text (byte {exc.start})") from None

    async def work(res: Resources) -> PolicyVersion | PolicyError:
        await _in_force(res, ctx)
        try:
            async with res.store.sessions() as session, session.begin():
                return await propose_policy(
                    session,
                    policy_text=policy_text,
                    justification=justification,
                    actor=operator_of(ctx),
                    now=await res.store.clock.now(session),
                    source=str(file),
                )
        except PolicyError as exc:
            return exc

    result = run(work)
    if isinstance(result, PolicyError):
        click.echo(f"{result.source} is not a valid policy; nothing was stored:", err=True)
        for problem in result.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    click.echo(f"proposal {result.id}")
    click.echo(f"version  {result.version}")
    click.echo(f"digest   {result.digest}")
    click.echo("It takes effect after approval by an information manager and a privacy officer.")


async def _staff_actor(res: Resources, employee_id: str, roles: tuple[str, ...]) -> Actor:
    """The staff member with `employee_id` in one of `roles`, as the audit log names them."""
    async with res.store.sessions() as session:
        query = select(StaffAccount).where(
            col(StaffAccount.employee_id) == employee_id,
            col(StaffAccount.role).in_(roles),
            col(StaffAccount.disabled_at).is_(None),
        )
        account = (await session.execute(query.limit(1))).scalar()
    if account is None:
        wanted = " or ".join(_ROLE_NAMES.get(role, role) for role in roles)
        raise PolicyRefused(f"--by: no active {wanted} with employee id {employee_id!r}")
    return Actor(account.role, account.employee_id)


@policy_group.command("approve")
@click.argument("proposal_id", type=click.UUID)
@click.option("--role", type=click.Choice(APPROVER_ROLES), required=True)
@click.option("--by", "employee_id", required=True, help="Employee id of the approver.")
@click.pass_context
def policy_approve(ctx: click.Context, proposal_id: uuid.UUID, role: str, employee_id: str) -> None:
    """Record an approval; with both roles' approvals the proposal comes into force."""

    async def work(res: Resources) -> PolicyVersion:
        await _in_force(res, ctx)
        actor = await _staff_actor(res, employee_id, (role,))
        async with res.store.sessions() as session, session.begin():
            return await approve_policy(
                session,
                proposal_id=proposal_id,
                actor=actor,
                role=role,
                now=await res.store.clock.now(session),
            )

    row = run(work)
    if row.state == "in_force":
        click.echo(f"approved; version {row.version} is in force from {_when(row.in_force_from)}")
    else:
        click.echo(
            f"approved as {_ROLE_NAMES[role]}; version {row.version} waits for the other role"
        )


@policy_group.command("reject")
@click.argument("proposal_id", type=click.UUID)
@click.option("--by", "employee_id", required=True, help="Employee id of who rejects it.")
@click.option("--reason", required=True, help="Why the proposal is rejected.")
@click.pass_context
def policy_reject(
    ctx: click.Context, proposal_id: uuid.UUID, employee_id: str, reason: str
) -> None:
    """Close a proposal without effect."""

    async def work(res: Resources) -> PolicyVersion:
        await _in_force(res, ctx)
        actor = await _staff_actor(res, employee_id, APPROVER_ROLES)
        async with res.store.sessions() as session, session.begin():
            return await reject_policy(
                session,
                proposal_id=proposal_id,
                actor=actor,
                reason=reason,
                now=await res.store.clock.now(session),
            )

    row = run(work)
    click.echo(f"rejected; version {row.version} will not take effect")
