"""The exporter interface (STYLE rule 8) and the ledger of finished steps.

Every exporter is idempotent: it records each step it finished (`StepLedger.record`, e.g.
"document 3 uploaded as <url>") and, when run again after a crash or a timeout, looks each
step up first (`StepLedger.done`) and repeats nothing that is recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dossier.export.content import ExportContent

__all__ = ["ExportOutcome", "Exporter", "Progress", "StepLedger"]

# progress(fraction 0..1, what is happening in plain words)
Progress = Callable[[float, str], Awaitable[None]]


class StepLedger(Protocol):
    """The finished steps of one export, kept in the database across crashes and retries."""

    async def done(self, key: str) -> dict[str, Any] | None:
        """The result recorded for step `key`, or None if it has not finished."""
        ...

    async def record(self, key: str, result: dict[str, Any]) -> None:
        """Record that step `key` finished with `result` (JSON-serialisable)."""
        ...


@dataclass(frozen=True)
class ExportOutcome:
    """What the target confirmed: its references (for the tombstone) and, where there is one,
    the SHA-256 of the manifest that was handed over."""

    references: Mapping[str, str] = field(default_factory=dict)
    manifest_sha256: str | None = None


class Exporter(Protocol):
    """Hands a dossier's content to one kind of target."""

    id: str

    async def export(
        self,
        content: ExportContent,
        *,
        options: Mapping[str, str],
        steps: StepLedger,
        progress: Progress,
    ) -> ExportOutcome:
        """Export everything, skipping steps the ledger has; return only when the target has
        confirmed all of it. Raises ExportFailed (or a subclass) otherwise; nothing recorded
        is lost, so a retry continues where this run stopped."""
        ...

    async def check_config(self) -> None:
        """Raise ExportConfigError if the exporter cannot work as configured."""
        ...
