"""Checking a package (`balie export verify`): is it exactly what Balie signed, and complete?

Every problem is one plain sentence that starts with the member it concerns, so that an
archivist knows which file to look at:

    documents/2-foto.jpg: SHA-256 does not match the manifest
    payments.csv: listed in the manifest but missing from the package

Checks, in order: the ZIP can be read; the signature over manifest.json; the manifest has
every field an archive needs; every listed member is there with its size and SHA-256 and
nothing else is; the MDTO informatieobject and one MDTO bestand per content file are
well-formed, have every element the XSD requires in its order, and agree with the manifest.
A member whose bytes were changed inside the ZIP fails the ZIP's own CRC check; that is
reported for the member too, never as a crash.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dossier.export.errors import PackageInvalid
from dossier.export.mdto import INFORMATIEOBJECT_PATH, MDTO_NAMESPACE, check_object, sidecar_path
from dossier.export.package import FORMAT, MANIFEST_PATH, SIGNATURE_PATH
from dossier.export.signing import key_fingerprint

__all__ = ["PackageReport", "verify_package"]

_MAX_METADATA = 16 << 20  # manifest, signature and MDTO files are read whole; bound them
_ALWAYS = ("transcript.html", "transcript.pdf", "payments.csv")
# What an archive needs to know; "a.b" is a nested field.
_REQUIRED_FIELDS = (
    "format",
    "dossier.id",
    "dossier.service.code",
    "dossier.service.label",
    "dossier.department.code",
    "dossier.department.name",
    "dossier.created_at",
    "dossier.appointment_start",
    "dossier.deadline",
    "participants",
    "payments",
    "policy.version",
    "policy.digest",
    "policy.archiefvormer",
    "export.exported_at",
    "export.exported_by",
    "mdto.informatieobject",
    "files",
)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)
_NS = "{" + MDTO_NAMESPACE + "}"


@dataclass(frozen=True, slots=True)
class PackageReport:
    """A package that passed every check."""

    files: int  # members listed in the manifest
    dossier_id: str
    signer: str  # fingerprint of the key that signed it


def verify_package(path: Path, public_key: Ed25519PublicKey) -> PackageReport:
    """Check the package at `path` against `public_key`; what it holds, if it passes.

    Raises PackageInvalid listing every problem found, each naming its member.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageInvalid([f"{path.name}: not a readable ZIP archive ({exc})"]) from None
    with archive:
        problems: list[str] = []
        report = _Checker(archive, public_key, problems).run()
    if problems or report is None:
        raise PackageInvalid(problems)
    return report


class _Checker:
    def __init__(
        self, archive: zipfile.ZipFile, public_key: Ed25519PublicKey, problems: list[str]
    ) -> None:
        self.archive = archive
        self.public_key = public_key
        self.problems = problems
        self.members: dict[str, zipfile.ZipInfo] = {}

    def run(self) -> PackageReport | None:
        for info in self.archive.infolist():
            name = info.filename
            if info.is_dir():
                continue
            parts = PurePosixPath(name).parts
            if name.startswith("/") or "\\" in name or ".." in parts:
                self.problems.append(f"{name}: unsafe path (absolute, or with .. or \\)")
            elif name in self.members:
                self.problems.append(f"{name}: occurs more than once in the package")
            self.members[name] = info
        manifest_bytes = self._read_whole(MANIFEST_PATH)
        signature = self._read_whole(SIGNATURE_PATH)
        manifest = self._parse_manifest(manifest_bytes)
        if manifest_bytes is not None and signature is not None:
            self._check_signature(manifest_bytes, signature, manifest)
        if manifest is None:
            return None
        self._check_fields(manifest)
        entries = self._check_files(manifest)
        self._check_mdto(manifest, entries)
        return PackageReport(
            files=len(entries),
            dossier_id=str(_field(manifest, "dossier.id")),
            signer=key_fingerprint(self.public_key),
        )

    def _read_whole(self, name: str) -> bytes | None:
        info = self.members.get(name)
        if info is None:
            self.problems.append(f"{name}: missing from the package")
            return None
        if info.file_size > _MAX_METADATA:
            self.problems.append(f"{name}: {info.file_size} bytes, too large for metadata")
            return None
        try:
            return self.archive.read(info)
        except _ZIP_ERRORS as exc:
            self.problems.append(f"{name}: damaged inside the ZIP ({exc})")
            return None

    def _parse_manifest(self, data: bytes | None) -> dict[str, Any] | None:
        if data is None:
            return None
        try:
            manifest = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.problems.append(f"{MANIFEST_PATH}: not valid UTF-8 JSON ({exc})")
            return None
        if not isinstance(manifest, dict):
            self.problems.append(f"{MANIFEST_PATH}: not a JSON object")
            return None
        return manifest

    def _check_signature(
        self, manifest_bytes: bytes, signature: bytes, manifest: dict[str, Any] | None
    ) -> None:
        if len(signature) != 64:
            self.problems.append(
                f"{SIGNATURE_PATH}: {len(signature)} bytes, not a raw 64-byte Ed25519 signature"
            )
            return
        try:
            self.public_key.verify(signature, manifest_bytes)
        except InvalidSignature:
            hint = ""
            named = _field(manifest, "signature.public_key_sha256") if manifest else None
            ours = key_fingerprint(self.public_key)
            if isinstance(named, str) and named != ours:
                hint = f"; the manifest names key {named}, this check used {ours}"
            self.problems.append(
                f"{SIGNATURE_PATH}: the signature does not match {MANIFEST_PATH} (was the "
                f"manifest changed, or signed with another key?){hint}"
            )

    def _check_fields(self, manifest: dict[str, Any]) -> None:
        for name in _REQUIRED_FIELDS:
            value = _field(manifest, name)
            if value is None or value == "":
                self.problems.append(f"{MANIFEST_PATH}: missing field {name}")
        if manifest.get("format") not in (None, FORMAT):
            self.problems.append(
                f"{MANIFEST_PATH}: format {manifest.get('format')!r}, expected {FORMAT!r}"
            )

    def _check_files(self, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every listed member present, with its size and SHA-256; nothing unlisted."""
        listed: dict[str, dict[str, Any]] = {}
        files = manifest.get("files")
        for index, entry in enumerate(files if isinstance(files, list) else []):
            if not _is_entry(entry):
                self.problems.append(
                    f"{MANIFEST_PATH}: files[{index}] needs path, size, media_type and sha256"
                )
                continue
            path = entry["path"]
            if path in (MANIFEST_PATH, SIGNATURE_PATH) or path in listed:
                self.problems.append(f"{MANIFEST_PATH}: lists {path} more than once or wrongly")
                continue
            listed[path] = entry
            info = self.members.get(path)
            if info is None:
                self.problems.append(f"{path}: listed in the manifest but missing from the package")
                continue
            measured = self._measure(info)
            if measured is None:
                continue
            size, digest = measured
            if size != entry["size"]:
                self.problems.append(f"{path}: {size} bytes, the manifest says {entry['size']}")
            if digest != entry["sha256"]:
                self.problems.append(f"{path}: SHA-256 does not match the manifest")
        for name in self.members:
            if name not in listed and name not in (MANIFEST_PATH, SIGNATURE_PATH):
                self.problems.append(f"{name}: in the package but not in the manifest")
        for name in _ALWAYS:
            if name not in listed and name not in self.members:
                self.problems.append(f"{name}: missing (every package has one)")
        return listed

    def _measure(self, info: zipfile.ZipInfo) -> tuple[int, str] | None:
        digest = hashlib.sha256()
        size = 0
        try:
            with self.archive.open(info) as member:
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except _ZIP_ERRORS as exc:
            self.problems.append(f"{info.filename}: damaged inside the ZIP ({exc})")
            return None
        return size, digest.hexdigest()

    def _check_mdto(self, manifest: dict[str, Any], listed: dict[str, dict[str, Any]]) -> None:
        io_path = _field(manifest, "mdto.informatieobject") or INFORMATIEOBJECT_PATH
        io_root = self._read_xml(str(io_path), "informatieobject", context="")
        io_id = _text(io_root, "informatieobject/identificatie/identificatieKenmerk")
        if io_root is not None and io_id != _field(manifest, "dossier.id"):
            self.problems.append(
                f"{io_path}: identificatieKenmerk {io_id!r} is not the dossier id in the manifest"
            )
        # Every file but the metadata itself needs a bestand, whatever its manifest `kind` says.
        content = {p: e for p, e in listed.items() if not p.endswith(".mdto.xml")}
        for path, entry in content.items():
            sidecar = sidecar_path(path)
            if sidecar not in listed:
                self.problems.append(
                    f"{sidecar}: missing; every file needs its MDTO bestand (for {path})"
                )
                continue
            root = self._read_xml(sidecar, "bestand", context=f" for {path}")
            if root is None:
                continue
            self._agree(sidecar, path, root, entry, io_id)
        for path in listed:
            if path.endswith(".bestand.mdto.xml"):
                target = path.removesuffix(".bestand.mdto.xml")
                if target not in content:
                    self.problems.append(
                        f"{path}: MDTO bestand for {target}, which is not a file of the package"
                    )

    def _agree(
        self, sidecar: str, path: str, root: ET.Element, entry: dict[str, Any], io_id: str | None
    ) -> None:
        """The bestand says what the manifest says about the file."""
        where = f"{sidecar}: "
        checks = (
            ("bestand/omvang", str(entry["size"]), "omvang"),
            ("bestand/checksum/checksumWaarde", entry["sha256"], "checksum"),
            ("bestand/checksum/checksumAlgoritme/begripLabel", "SHA256", "checksum algorithm"),
        )
        for element, expected, what in checks:
            found = _text(root, element)
            if found is not None and found.lower() != expected.lower():
                self.problems.append(
                    f"{where}{what} {found!r} does not match the manifest for {path}"
                )
        ref = _text(root, "bestand/isRepresentatieVan/verwijzingIdentificatie/identificatieKenmerk")
        if io_id is not None and ref != io_id:
            self.problems.append(
                f"{where}isRepresentatieVan does not point to the conversation {io_id} ({path})"
            )

    def _read_xml(self, name: str, kind: str, *, context: str) -> ET.Element | None:
        if name not in self.members:
            self.problems.append(f"{name}: missing from the package (MDTO {kind}{context})")
            return None
        data = self._read_whole(name)
        if data is None:
            return None
        # Expat >= 2.4.1 (Python 3.11 ships 2.5) bounds entity expansion and ElementTree never
        # fetches external entities; MDTO files have no DTD, so one is refused outright.
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            self.problems.append(f"{name}: has a DOCTYPE, which MDTO metadata never has")
            return None
        try:
            root = ET.fromstring(data)  # noqa: S314 - see above: no DTD, bounded expansion
        except ET.ParseError as exc:
            self.problems.append(f"{name}: not well-formed XML ({exc}){context}")
            return None
        self.problems.extend(f"{name}: {p}{context}" for p in check_object(root, kind))
        return root


def _field(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _is_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("media_type"), str)
        and isinstance(entry.get("sha256"), str)
    )


def _text(root: ET.Element | None, path: str) -> str | None:
    """Text of the element at `path` below MDTO (namespace added), or None."""
    if root is None:
        return None
    found = root.find("/".join(_NS + part for part in path.split("/")))
    return None if found is None else (found.text or "").strip()
