"""`balie retention ...` (issue 7): the sweeper, run by hand."""

from __future__ import annotations

import sys

import click

from retention.sweeper import SweepReport, sweep
from server.cli_support import Resources, operator_of, run

__all__ = ["retention_group"]


@click.group("retention")
def retention_group() -> None:
    """Retention: the sweeper that destroys dossiers past their deadline."""


@retention_group.command("sweep")
@click.option("--dry-run", is_flag=True, help="Only list what would be destroyed; change nothing.")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Dossiers per transaction (default BALIE_RETENTION_SWEEP_BATCH).",
)
@click.pass_context
def retention_sweep(ctx: click.Context, dry_run: bool, batch: int | None) -> None:
    """Destroy every dossier past its deadline that is not on hold, as the scheduler does.

    Prints one line per dossier and a summary; exit 1 if a dossier could not be destroyed.
    """
    actor = operator_of(ctx)

    async def work(res: Resources) -> SweepReport:
        size = batch or res.settings.retention_sweep_batch
        return await sweep(res.store, actor=actor, batch_size=size, dry_run=dry_run)

    report = run(work)
    for item in report.items:
        click.echo(item.describe())
    click.echo(report.summary())
    if report.failed:
        sys.exit(1)
