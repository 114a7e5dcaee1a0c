"""A hand-made dossier for the export tests, and tools to build and tamper with packages.

The dossier has everything an archivist must find back: chat in three roles with non-ASCII
text and an attempted `<script>`, a real PDF and a real JPEG (one with a hostile file name),
a paid payment, and a BSN (the service type requires it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from pypdf import PdfWriter

from dossier.export.base import ExportOutcome
from dossier.export.content import (
    ChatLine,
    ExportContent,
    ExportDocument,
    ExportParticipant,
    ExportPayment,
)
from dossier.export.package import COMPRESSION, PackageExporter

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SCRIPT = "<script>alert('inwoner')</script>"


def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "Geboorteakte"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, format="JPEG", quality=90)
    return out.getvalue()


class Opened:
    """Counts how often each document's stream was opened (0 on an idempotent re-run)."""

    def __init__(self) -> None:
        self.count = 0

    def source(self, data: bytes, chunk: int = 1000) -> Callable[[], AsyncIterator[bytes]]:
        async def stream() -> AsyncIterator[bytes]:
            self.count += 1
            for start in range(0, len(data), chunk):
                yield data[start : start + chunk]

        return stream


def sample_content(
    opened: Opened | None = None, *, documents: tuple[tuple[str, str, bytes], ...] | None = None
) -> ExportContent:
    opened = opened or Opened()
    if documents is None:
        documents = (
            ("Geboorteakte Zoë.pdf", "application/pdf", pdf_bytes()),
            ("../../etc/foto paspoort #1.JPG", "image/jpeg", jpeg_bytes()),
        )
    docs = tuple(
        ExportDocument(
            document_id=uuid.UUID(int=index + 1),
            name=name,
            media_type=media_type,
            size=len(data),
            uploaded_by_role="resident",
            created_at=T0 + dt.timedelta(minutes=5 + index),
            open=opened.source(data),
        )
        for index, (name, media_type, data) in enumerate(documents)
    )
    return ExportContent(
        dossier_id=uuid.UUID("0b6f3e0e-1b7a-4c1e-9a55-5d2f1c0a7e11"),
        appointment_id=uuid.UUID("7d1c2a90-3f4b-4e6a-8c2d-9e0f1a2b3c4d"),
        service_code="geboorteaangifte",
        service_label="Geboorteaangifte",
        department_code="burgerzaken",
        department_name="Burgerzaken",
        created_at=T0 - dt.timedelta(days=7),
        appointment_start=T0,
        ended_at=T0 + dt.timedelta(minutes=25),
        deadline=T0 + dt.timedelta(days=56),
        participants=(
            ExportParticipant("clerk", "E10234"),
            ExportParticipant("resident", "5f" * 32),
            ExportParticipant("guest", "tolk-3c9e"),
        ),
        bsn="999993653",
        chat=(
            ChatLine(T0 + dt.timedelta(minutes=1), "clerk", "Goedemorgen, welkom! 👍"),
            ChatLine(
                T0 + dt.timedelta(minutes=2), "resident", f"Dag, ik ben Zoë Ĳsselmeer {SCRIPT}"
            ),
            ChatLine(T0 + dt.timedelta(minutes=3), "guest", "مرحبا — ik vertaal.\nTweede regel."),
        ),
        documents=docs,
        payments=(
            ExportPayment(
                payment_id=uuid.UUID(int=99),
                description="Uittreksel BRP",
                amount_cents=1550,
                currency="EUR",
                status="paid",
                provider="demo",
                provider_reference="tr_Wq1",
                created_at=T0 + dt.timedelta(minutes=10),
                paid_at=T0 + dt.timedelta(minutes=11),
            ),
        ),
        policy_version="2026-1",
        policy_digest="ab" * 32,
        archiefvormer="Gemeente Voorbeeldstad",
        archive_mode="export_required",
        selectielijst="7.1.21",
        bewaartermijn="P1Y6M",
        informatiecategorie="Bescheiden t.b.v. opmaken akte burgerlijke stand",
        exported_at=T0 + dt.timedelta(hours=1),
        exported_by="E10234",
    )


def replace(content: ExportContent, **changes: Any) -> ExportContent:
    return dataclasses.replace(content, **changes)


# Members of the sample's package; tests parametrised over these cover "every file".
MEMBERS = (
    "documents/1-Geboorteakte_Zoe.pdf",
    "documents/1-Geboorteakte_Zoe.pdf.bestand.mdto.xml",
    "documents/2-foto_paspoort_1.jpg",
    "documents/2-foto_paspoort_1.jpg.bestand.mdto.xml",
    "gespreksessie.mdto.xml",
    "manifest.json",
    "manifest.json.sig",
    "payments.csv",
    "payments.csv.bestand.mdto.xml",
    "transcript.html",
    "transcript.html.bestand.mdto.xml",
    "transcript.pdf",
    "transcript.pdf.bestand.mdto.xml",
)


class MemoryLedger:
    """The StepLedger in memory."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.records = 0

    async def done(self, key: str) -> dict[str, Any] | None:
        return self.steps.get(key)

    async def record(self, key: str, result: dict[str, Any]) -> None:
        self.records += 1
        self.steps[key] = json.loads(json.dumps(result))  # as a database would keep it


class ProgressLog:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    async def __call__(self, fraction: float, text: str) -> None:
        self.calls.append((fraction, text))


async def export(
    exporter: PackageExporter,
    content: ExportContent,
    ledger: MemoryLedger | None = None,
    progress: ProgressLog | None = None,
) -> ExportOutcome:
    return await exporter.export(
        content,
        options={},
        steps=ledger or MemoryLedger(),
        progress=progress or ProgressLog(),
    )


def build_package(directory: Path, key: Ed25519PrivateKey, content: ExportContent) -> Path:
    """Build the package synchronously (for fixtures and the CLI tests); its path."""
    exporter = PackageExporter(output_dir=directory, signing_key=key)
    outcome = asyncio.run(export(exporter, content))
    return directory / outcome.references["package"]


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path: Path, members: dict[str, bytes]) -> None:
    """A well-formed ZIP (correct CRCs) with exactly `members`: tampering as a person with a
    ZIP tool would do it."""
    with zipfile.ZipFile(path, "w", compression=COMPRESSION) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x20]) + data[middle + 1 :]


def flip_stored_byte(path: Path, name: str) -> None:
    """Change one byte of member `name` inside the ZIP file itself (CRC left as it was)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    raw = bytearray(path.read_bytes())
    header = info.header_offset
    name_length = int.from_bytes(raw[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(raw[header + 28 : header + 30], "little")
    start = header + 30 + name_length + extra_length
    raw[start + info.compress_size // 2] ^= 0x20
    path.write_bytes(bytes(raw))


def resign(
    members: dict[str, bytes],
    key: Ed25519PrivateKey,
    edit: Callable[[dict[str, Any]], object] | None = None,
) -> None:
    """Make the manifest agree with the members again (after `edit`, if given) and sign it:
    a package that only one check can fail."""
    manifest = json.loads(members["manifest.json"])
    if edit is not None:
        edit(manifest)
    for entry in manifest["files"]:
        if entry["path"] in members:
            entry["size"] = len(members[entry["path"]])
            entry["sha256"] = hashlib.sha256(members[entry["path"]]).hexdigest()
    members["manifest.json"] = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
    members["manifest.json.sig"] = key.sign(members["manifest.json"])
