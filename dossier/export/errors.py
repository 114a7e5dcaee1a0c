"""Errors of the export package.

ExportError(DossierError)      base; `code` is stable
├── ExportFailed               the target did not confirm everything; a retry continues
│   └── TargetUnavailable      the target could not be reached or answered 5xx/timeout
├── ExportConfigError          the exporter is not configured to work
├── PackageInvalid             `verify`: a package failed a check (`problems` lists each)
└── UnknownExporter            no exporter with that id
"""

from __future__ import annotations

from dossier.errors import DossierError

__all__ = [
    "ExportConfigError",
    "ExportError",
    "ExportFailed",
    "PackageInvalid",
    "TargetUnavailable",
    "UnknownExporter",
]


class ExportError(DossierError):
    code = "export_error"


class ExportFailed(ExportError):
    code = "export_failed"


class TargetUnavailable(ExportFailed):
    code = "export_target_unavailable"


class ExportConfigError(ExportError):
    code = "export_config_error"


class PackageInvalid(ExportError):
    code = "package_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UnknownExporter(ExportError):
    code = "unknown_exporter"
