"""The `package` exporter: a signed ZIP that stands on its own for an archivist (DESIGN §6).

Layout of `<dossier id>.zip` (every member stored with `COMPRESSION`):

    manifest.json                        what is in the package, signed (see below)
    manifest.json.sig                    Ed25519 signature: the raw 64 bytes over the exact
                                         bytes of manifest.json
    gespreksessie.mdto.xml               MDTO informatieobject: the conversation
    transcript.html                      the chat, accessible HTML
    transcript.pdf                       the chat, PDF
    payments.csv                         the payments (UTF-8, RFC 4180)
    documents/<n>-<safe name>            each document exactly as uploaded
    <each of the above>.bestand.mdto.xml MDTO bestand, next to its file (SIP sidecar naming)

The manifest lists every member but itself and its signature, with size, media type and
SHA-256, so the signature covers every byte of the package. Check one by hand with
`openssl pkeyutl -verify -pubin -inkey export-key.pem -rawin -in manifest.json
-sigfile manifest.json.sig`, or with `balie export verify`.

The build is deterministic (times come from the content; Ed25519 is deterministic): a rebuild
after a lost file gives the same bytes and checksums.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import re
import secrets
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dossier.export.base import ExportOutcome, Progress, StepLedger
from dossier.export.content import ExportContent, ExportDocument
from dossier.export.errors import ExportConfigError, ExportFailed, PackageInvalid
from dossier.export.mdto import (
    INFORMATIEOBJECT_PATH,
    MDTO_VERSION,
    MdtoFile,
    bestand_xml,
    informatieobject_xml,
    sidecar_path,
)
from dossier.export.signing import key_fingerprint
from dossier.export.transcript import transcript_html, transcript_pdf
from dossier.fsutil import fsync_dir

__all__ = [
    "COMPRESSION",
    "FORMAT",
    "MANIFEST_PATH",
    "SIGNATURE_PATH",
    "STEP_WRITTEN",
    "PackageExporter",
    "package_file_name",
    "safe_file_name",
    "transcript_layout_pool",
]

# PDFs and JPEG/PNG are compressed already and the text members are small, so deflating buys
# little and costs CPU on every build and every verify. One setting for every member keeps
# the benchmark's plain-zipfile baseline honest.
COMPRESSION = zipfile.ZIP_STORED
STEP_WRITTEN = "package:written"
FORMAT = "balie-package/1"
MANIFEST_PATH = "manifest.json"
SIGNATURE_PATH = "manifest.json.sig"
_ZIP64_FROM = 1 << 31  # documents this large need ZIP64 headers up front
_XML = "application/xml"


def package_file_name(content: ExportContent) -> str:
    """The package's file name in the output directory."""
    return f"{content.dossier_id}.zip"


def transcript_layout_pool() -> ProcessPoolExecutor:
    """One worker process that lays out transcript PDFs (give it to `PackageExporter`).

    fpdf2 is pure Python, and reading the font alone takes about a tenth of a second: in a
    thread it would hold the server's GIL all that time (stalling signaling and the document
    pipeline of the very same export); in a process of its own it runs on another core. The
    worker starts at the first export ("spawn": never a fork of a process with threads) and
    stays for the next. Shut it down with the exporter's owner.
    """
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


class PackageExporter:
    """Writes `<output_dir>/<dossier id>.zip`, atomically, signed with `signing_key`.

    `layout` runs the transcript's PDF layout (see `transcript_layout_pool`); without one it
    runs in a thread of the default executor.
    """

    def __init__(
        self,
        *,
        output_dir: Path,
        signing_key: Ed25519PrivateKey,
        id: str = "package",
        layout: Executor | None = None,
    ) -> None:
        self.id = id
        self.output_dir = output_dir
        self._signing_key = signing_key
        self._layout = layout

    async def check_config(self) -> None:
        """Raise ExportConfigError naming the directory if packages cannot be written there."""
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportConfigError(f"{self.output_dir}: cannot create ({exc})") from None
        if not os.access(self.output_dir, os.W_OK | os.X_OK):
            raise ExportConfigError(f"{self.output_dir}: not writable for this process")

    async def export(
        self,
        content: ExportContent,
        *,
        options: Mapping[str, str],
        steps: StepLedger,
        progress: Progress,
    ) -> ExportOutcome:
        """Write the package unless the ledger records it and the file there still verifies
        against the recorded manifest; return its name and the manifest's SHA-256. `options`
        are not used.

        Raises ExportFailed if a document's stream is not as long as its recorded size, or
        the package cannot be written (nothing half-written is left behind); errors of the
        document streams (IntegrityError) pass through.
        """
        name = package_file_name(content)
        target = self.output_dir / name
        done = await steps.done(STEP_WRITTEN)
        # Recorded and still the package that was recorded (its signed manifest and every
        # member check out): nothing to do. A missing or changed file is rebuilt (the build
        # is deterministic, so it comes out the same). Only a rerun pays for this read.
        if (
            done is not None
            and done.get("path") == name
            and await asyncio.to_thread(self._still_valid, target, done)
        ):
            await progress(1.0, f"Pakket {name} was al gemaakt")
            return _outcome(name, str(done["manifest_sha256"]))
        await self.check_config()
        tmp = self.output_dir / f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            manifest_sha256 = await self._build(content, tmp, progress)
            size = (await asyncio.to_thread(tmp.stat)).st_size
            await asyncio.to_thread(os.replace, tmp, target)
            await asyncio.to_thread(fsync_dir, self.output_dir)
        except OSError as exc:
            raise ExportFailed(f"{target}: cannot write the package ({exc})") from exc
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        result = {"path": name, "size": size, "manifest_sha256": manifest_sha256}
        if done != result:
            await steps.record(STEP_WRITTEN, result)
        await progress(1.0, f"Pakket {name} is klaar")
        return _outcome(name, manifest_sha256)

    def _still_valid(self, target: Path, done: Mapping[str, Any]) -> bool:
        """Whether `target` is the recorded package: its manifest has the recorded SHA-256 and
        the package verifies with our own key (so every member matches the manifest)."""
        from dossier.export.verify import verify_package  # verify imports this module

        try:
            with zipfile.ZipFile(target) as archive:
                manifest = archive.read(MANIFEST_PATH)
            verify_package(target, self._signing_key.public_key())
        except (OSError, KeyError, zipfile.BadZipFile, PackageInvalid):
            return False
        return hashlib.sha256(manifest).hexdigest() == done.get("manifest_sha256")

    async def _build(self, content: ExportContent, tmp: Path, progress: Progress) -> str:
        """Write the whole ZIP to `tmp` and fsync it; the manifest's SHA-256."""
        packed: list[PackedFile] = []
        with tmp.open("xb") as handle:
            with zipfile.ZipFile(handle, "w", compression=COMPRESSION) as archive:
                writer = _Writer(archive, content.exported_at.astimezone(dt.UTC))
                await progress(0.0, "Gespreksverslag opmaken")
                # The PDF is laid out meanwhile (see transcript_layout_pool); the ZIP is
                # written by this task alone, so the PDF goes in after the documents. The
                # layout gets the content without the documents: their streams stay here.
                pdf_job = asyncio.get_running_loop().run_in_executor(
                    self._layout, transcript_pdf, replace(content, documents=())
                )
                try:
                    count = len(content.documents)
                    for number, document in enumerate(content.documents, start=1):
                        await progress(
                            0.1 + 0.7 * (number - 1) / count,
                            f"Documenten inpakken ({number} van {count})",
                        )
                        packed.append(await writer.put_document(number, document))
                    pdf = await pdf_job
                finally:
                    if not pdf_job.done():  # a document failed: the layout is not needed
                        pdf_job.cancel()
                html = transcript_html(content).encode("utf-8")
                packed.append(writer.put("transcript.html", html, "text/html", "transcript"))
                packed.append(writer.put("transcript.pdf", pdf, "application/pdf", "transcript"))
                csv_data = payments_csv(content)
                packed.append(writer.put("payments.csv", csv_data, "text/csv", "payments"))
                await progress(0.85, "Metagegevens (MDTO) opmaken")
                files = [_mdto_file(content, entry) for entry in packed]
                for file in files:
                    sidecar = bestand_xml(content, file)
                    packed.append(writer.put(sidecar_path(file.path), sidecar, _XML, "mdto"))
                io_xml = informatieobject_xml(content, files)
                packed.append(writer.put(INFORMATIEOBJECT_PATH, io_xml, _XML, "mdto"))
                await progress(0.95, "Manifest ondertekenen en pakket opslaan")
                fingerprint = key_fingerprint(self._signing_key.public_key())
                manifest = build_manifest(content, packed, exporter=self.id, signer=fingerprint)
                writer.put(MANIFEST_PATH, manifest, "application/json", "manifest")
                signature = self._signing_key.sign(manifest)
                writer.put(SIGNATURE_PATH, signature, "application/octet-stream", "signature")
            handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
        return hashlib.sha256(manifest).hexdigest()


class _Writer:
    """Adds members with fixed timestamps and permissions, hashing what it writes."""

    def __init__(self, archive: zipfile.ZipFile, moment: dt.datetime) -> None:
        self.archive = archive
        self.date_time = moment.timetuple()[:6]

    def _info(self, path: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self.date_time)
        info.compress_type = COMPRESSION
        info.external_attr = 0o100644 << 16  # a regular file, readable: unzip gives sane modes
        return info

    def put(self, path: str, data: bytes, media_type: str, kind: str) -> PackedFile:
        self.archive.writestr(self._info(path), data)
        return PackedFile(path, len(data), media_type, hashlib.sha256(data).hexdigest(), kind)

    async def put_document(self, number: int, document: ExportDocument) -> PackedFile:
        """Stream one document into the ZIP, hashing on the way; never whole in memory."""
        path = f"documents/{number}-{safe_file_name(document.name, document.media_type)}"
        digest = hashlib.sha256()
        size = 0
        force_zip64 = document.size >= _ZIP64_FROM
        member: IO[bytes] = self.archive.open(self._info(path), "w", force_zip64=force_zip64)

        def take(chunk: bytes) -> None:
            digest.update(chunk)
            member.write(chunk)  # the ZIP's CRC-32 and the write

        with member:
            # Stored documents stream in 1 MiB segments. One segment is hashed and written in
            # a thread (SHA-256, CRC-32 and write let go of the GIL on data this size) while
            # the next is decrypted here: two cores instead of one. Never more than one in
            # flight, so the order holds and memory stays at two segments.
            writing: asyncio.Future[None] | None = None
            try:
                async for chunk in document.open():
                    size += len(chunk)
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(take, chunk))
                if writing is not None:
                    await writing
            finally:
                # A failed stream: let the segment in flight finish before the member closes.
                if writing is not None and not writing.done():
                    await asyncio.wait([writing])
        if size != document.size:
            raise ExportFailed(
                f"document {document.document_id}: {size} bytes streamed, "
                f"{document.size} recorded; not packed"
            )
        sha256 = digest.hexdigest()
        return PackedFile(path, size, document.media_type, sha256, "document", document)


@dataclass(frozen=True, slots=True)
class PackedFile:
    """A member of the package as the manifest lists it."""

    path: str
    size: int
    media_type: str
    sha256: str
    kind: str  # transcript, payments, document, mdto
    document: ExportDocument | None = None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


def safe_file_name(name: str, media_type: str) -> str:
    """A file name safe in any archive and file system: ASCII letters, digits, `._-` only
    (the SIP specification forbids spaces and `<>:"/\\|?*#&`), no leading dot, a stem of at
    most 80 characters, and keeping (or, if missing, adding) the extension."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = ascii_name.replace("\\", "/").rsplit("/", 1)[-1]  # a Windows path as name
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:80] or "document"
    ext = _UNSAFE.sub("", ext)[:10].lower()
    suffix = f".{ext}" if ext else _EXTENSIONS.get(media_type, "")
    return stem + suffix


def payments_csv(content: ExportContent) -> bytes:
    """The payments as CSV (UTF-8, header row, CRLF as RFC 4180 has it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["payment_id", "description", "amount", "amount_cents", "currency", "status",
         "provider", "provider_reference", "created_at", "paid_at"]
    )  # fmt: skip
    for p in content.payments:
        writer.writerow(
            [p.payment_id, _cell(p.description), _euros(p.amount_cents), p.amount_cents,
             p.currency, p.status, p.provider, _cell(p.provider_reference or ""),
             _iso(p.created_at), _iso(p.paid_at) if p.paid_at else ""]
        )  # fmt: skip
    return out.getvalue().encode("utf-8")


def _cell(text: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula (CSV injection); the quote
    # makes it text. Only free text gets it: amounts and ids never start that way.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _euros(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


_REF_KEYS = {"clerk": "employee_id", "resident": "pseudonym"}


def build_manifest(
    content: ExportContent, files: Sequence[PackedFile], *, exporter: str, signer: str
) -> bytes:
    """The manifest's exact bytes (UTF-8 JSON): the dossier, its people by role, payments,
    the policy in force, the export, and every member but itself and its signature."""
    participants: list[dict[str, str]] = [
        {"role": p.role, _REF_KEYS.get(p.role, "reference"): p.ref} for p in content.participants
    ]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "dossier": {
            "id": str(content.dossier_id),
            "appointment_id": str(content.appointment_id),
            "service": {"code": content.service_code, "label": content.service_label},
            "department": {"code": content.department_code, "name": content.department_name},
            "created_at": _iso(content.created_at),
            "appointment_start": _iso(content.appointment_start),
            "ended_at": _iso(content.ended_at) if content.ended_at else None,
            "deadline": _iso(content.deadline),
        },
        "participants": participants,
    }
    if content.bsn is not None:  # only where the service type needs it (policy needs_bsn)
        manifest["bsn"] = content.bsn
    manifest["payments"] = [
        {
            "id": str(p.payment_id),
            "description": p.description,
            "amount_cents": p.amount_cents,
            "currency": p.currency,
            "status": p.status,
            "provider": p.provider,
            "provider_reference": p.provider_reference,
            "created_at": _iso(p.created_at),
            "paid_at": _iso(p.paid_at) if p.paid_at else None,
        }
        for p in content.payments
    ]
    manifest["policy"] = {
        "version": content.policy_version,
        "digest": content.policy_digest,
        "archiefvormer": content.archiefvormer,
        "archive_mode": content.archive_mode,
        "selectielijst": content.selectielijst,
        "bewaartermijn": content.bewaartermijn,
        "informatiecategorie": content.informatiecategorie,
    }
    manifest["export"] = {
        "exported_at": _iso(content.exported_at),
        "exported_by": content.exported_by,
        "exporter": exporter,
    }
    manifest["mdto"] = {"version": MDTO_VERSION, "informatieobject": INFORMATIEOBJECT_PATH}
    manifest["signature"] = {
        "path": SIGNATURE_PATH,
        "algorithm": "Ed25519",
        "encoding": "raw 64 bytes over the exact bytes of manifest.json",
        "public_key_sha256": signer,
    }
    manifest["files"] = [_file_entry(f) for f in sorted(files, key=lambda f: f.path)]
    return json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def _file_entry(file: PackedFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": file.path,
        "size": file.size,
        "media_type": file.media_type,
        "sha256": file.sha256,
        "kind": file.kind,
    }
    if file.kind != "mdto":
        entry["mdto"] = sidecar_path(file.path)
    if file.document is not None:
        entry["document_id"] = str(file.document.document_id)
        entry["original_name"] = file.document.name
        entry["uploaded_by_role"] = file.document.uploaded_by_role
        entry["uploaded_at"] = _iso(file.document.created_at)
    return entry


def _mdto_file(content: ExportContent, entry: PackedFile) -> MdtoFile:
    # `naam` is the file's name in the package, unique as the SIP specification wants (two
    # uploads may both be "scan.pdf"); the original name is in the manifest.
    name = entry.path.rsplit("/", 1)[-1]
    if entry.document is not None:
        identifier = str(entry.document.document_id)
    else:
        identifier = f"{content.dossier_id}/{entry.path}"
    return MdtoFile(entry.path, name, identifier, entry.size, entry.media_type, entry.sha256)


def _outcome(name: str, manifest_sha256: str) -> ExportOutcome:
    return ExportOutcome(references={"package": name}, manifest_sha256=manifest_sha256)
