"""The `package` exporter: a signed ZIP an archivist can check without Balie."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import zipfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from dossier.errors import IntegrityError
from dossier.export import transcript
from dossier.export.errors import ExportConfigError, ExportFailed, PackageInvalid
from dossier.export.package import STEP_WRITTEN, PackageExporter, safe_file_name
from dossier.export.signing import (
    EXPORT_KEY_FILE,
    key_fingerprint,
    load_export_key,
    load_public_key_pem,
    public_key_pem,
)
from dossier.export.verify import verify_package

from export_sample import (
    MEMBERS,
    SCRIPT,
    MemoryLedger,
    Opened,
    ProgressLog,
    build_package,
    export,
    flip_byte,
    flip_stored_byte,
    jpeg_bytes,
    pdf_bytes,
    read_members,
    replace,
    resign,
    sample_content,
    write_members,
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def package(tmp_path_factory, key):
    """One package of the sample dossier, built once; tests copy it before changing it."""
    return build_package(tmp_path_factory.mktemp("package"), key, sample_content())


@pytest.fixture
def members(package) -> dict[str, bytes]:
    return read_members(package)


def problems_of(path, key) -> list[str]:
    with pytest.raises(PackageInvalid) as caught:
        verify_package(path, key.public_key())
    return caught.value.problems


def test_package_has_the_layout_and_verifies(package, key, members):
    assert sorted(members) == sorted(MEMBERS)
    report = verify_package(package, key.public_key())
    assert report.files == len(MEMBERS) - 2  # all but the manifest and its signature
    assert report.signer == key_fingerprint(key.public_key())
    assert report.dossier_id == str(sample_content().dossier_id)
    # The documents exactly as uploaded.
    assert members["documents/1-Geboorteakte_Zoe.pdf"] == pdf_bytes()
    assert members["documents/2-foto_paspoort_1.jpg"] == jpeg_bytes()
    with zipfile.ZipFile(package) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_manifest_says_what_an_archivist_needs(members, key):
    raw = members["manifest.json"]
    key.public_key().verify(members["manifest.json.sig"], raw)  # raw 64 bytes, detached
    manifest = json.loads(raw)
    content = sample_content()
    assert manifest["dossier"]["id"] == str(content.dossier_id)
    assert manifest["dossier"]["service"] == {
        "code": "geboorteaangifte",
        "label": "Geboorteaangifte",
    }
    assert manifest["dossier"]["department"]["code"] == "burgerzaken"
    assert manifest["dossier"]["appointment_start"] == "2026-03-02T09:00:00+00:00"
    assert manifest["participants"] == [
        {"role": "clerk", "employee_id": "E10234"},
        {"role": "resident", "pseudonym": "5f" * 32},
        {"role": "guest", "reference": "tolk-3c9e"},
    ]
    assert manifest["bsn"] == "999993653"  # this service type requires it
    assert manifest["payments"][0]["status"] == "paid"
    assert manifest["payments"][0]["amount_cents"] == 1550
    assert manifest["policy"]["version"] == "2026-1"
    assert manifest["export"]["exported_at"] == "2026-03-02T10:00:00+00:00"
    assert manifest["signature"]["public_key_sha256"] == key_fingerprint(key.public_key())
    files = {entry["path"]: entry for entry in manifest["files"]}
    assert set(files) == set(MEMBERS) - {"manifest.json", "manifest.json.sig"}
    for path, entry in files.items():
        assert entry["size"] == len(members[path])
        assert entry["sha256"] == hashlib.sha256(members[path]).hexdigest()
    photo = files["documents/2-foto_paspoort_1.jpg"]
    assert photo["media_type"] == "image/jpeg"
    assert photo["original_name"] == "../../etc/foto paspoort #1.JPG"
    assert photo["mdto"] == "documents/2-foto_paspoort_1.jpg.bestand.mdto.xml"


async def test_without_bsn_the_manifest_has_none(tmp_path, key):
    exporter = PackageExporter(output_dir=tmp_path, signing_key=key)
    outcome = await export(exporter, replace(sample_content(), bsn=None))
    manifest = json.loads(read_members(tmp_path / outcome.references["package"])["manifest.json"])
    assert "bsn" not in manifest
    assert "999993653" not in json.dumps(manifest)


def test_transcript_html_is_accessible_and_escaped(members):
    page = members["transcript.html"].decode("utf-8")
    assert page.startswith('<!DOCTYPE html>\n<html lang="nl">')
    assert "<title>Gespreksverslag Geboorteaangifte, 2 maart 2026</title>" in page
    assert page.count("<h1>") == 1
    assert '<th scope="col">Rol</th>' in page
    assert "<script" not in page.lower()  # the resident's text is shown, not run
    assert "&lt;script&gt;alert(&#x27;inwoner&#x27;)&lt;/script&gt;" in page
    assert "Zoë Ĳsselmeer" in page
    assert "مرحبا" in page
    for role in ("Medewerker", "Inwoner", "Tolk"):
        assert f"<td>{role}</td>" in page
    assert '<time datetime="2026-03-02T09:01:00Z">02-03-2026 10:01:00</time>' in page


def test_transcript_pdf_has_the_chat(members):
    text = "".join(
        page.extract_text() for page in PdfReader(io.BytesIO(members["transcript.pdf"])).pages
    )
    for expected in ("Geboorteaangifte", "Inwoner", "Tolk", "Zoë Ĳsselmeer", SCRIPT):
        assert expected in text


def test_transcript_pdf_without_a_unicode_font_says_so(monkeypatch):
    monkeypatch.setattr(transcript, "_FONT_DIRS", ())
    data = transcript.transcript_pdf(sample_content())
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Zoë ?sselmeer" in text  # Latin-1 kept, the rest replaced
    assert "geen Unicode-lettertype" in text


def test_payments_csv(members):
    rows = list(csv.DictReader(io.StringIO(members["payments.csv"].decode("utf-8"))))
    assert rows == [
        {
            "payment_id": "00000000-0000-0000-0000-000000000063",
            "description": "Uittreksel BRP",
            "amount": "15.50",
            "amount_cents": "1550",
            "currency": "EUR",
            "status": "paid",
            "provider": "demo",
            "provider_reference": "tr_Wq1",
            "created_at": "2026-03-02T09:10:00+00:00",
            "paid_at": "2026-03-02T09:11:00+00:00",
        }
    ]


@pytest.mark.parametrize("name", MEMBERS)
def test_changing_any_byte_of_any_member_fails_naming_it(tmp_path, members, key, name):
    """Rewritten with a ZIP tool (CRCs correct): the manifest or the signature catches it."""
    members[name] = flip_byte(members[name])
    changed = tmp_path / "changed.zip"
    write_members(changed, members)
    problems = problems_of(changed, key)
    assert any(problem.startswith(f"{name}:") or f" {name} " in problem for problem in problems), (
        problems
    )
    if name == "manifest.json":
        assert any("the signature does not match manifest.json" in p for p in problems)


@pytest.mark.parametrize("name", MEMBERS)
def test_a_flipped_byte_inside_the_zip_is_reported_not_raised(tmp_path, package, key, name):
    """Changed in place (CRC now wrong): reported for that member, never a crash."""
    changed = tmp_path / "changed.zip"
    changed.write_bytes(package.read_bytes())
    flip_stored_byte(changed, name)
    problems = problems_of(changed, key)
    assert f"{name}: damaged inside the ZIP" in "\n".join(problems), problems


def test_a_missing_member_is_named(tmp_path, members, key):
    del members["payments.csv"]
    write_members(tmp_path / "p.zip", members)
    assert "payments.csv: listed in the manifest but missing from the package" in problems_of(
        tmp_path / "p.zip", key
    )


def test_an_extra_member_is_named(tmp_path, members, key):
    members["extra.txt"] = b"ook nog dit"
    write_members(tmp_path / "p.zip", members)
    assert problems_of(tmp_path / "p.zip", key) == [
        "extra.txt: in the package but not in the manifest"
    ]


def test_an_incomplete_manifest_is_named_even_when_signed(tmp_path, members, key):
    resign(members, key, edit=lambda manifest: manifest["policy"].pop("version"))
    write_members(tmp_path / "p.zip", members)
    assert problems_of(tmp_path / "p.zip", key) == ["manifest.json: missing field policy.version"]


def test_another_key_is_named_in_the_signature_problem(package, key):
    other = Ed25519PrivateKey.generate()
    (problem,) = problems_of(package, other)
    assert problem.startswith("manifest.json.sig: the signature does not match manifest.json")
    assert key_fingerprint(key.public_key()) in problem


def test_not_a_zip(tmp_path, key):
    (tmp_path / "p.zip").write_bytes(b"PK no zip at all")
    assert problems_of(tmp_path / "p.zip", key) == [
        "p.zip: not a readable ZIP archive (File is not a zip file)"
    ]


async def test_an_empty_conversation_still_makes_a_complete_package(tmp_path, key):
    content = replace(sample_content(documents=()), chat=(), payments=())
    outcome = await export(PackageExporter(output_dir=tmp_path, signing_key=key), content)
    path = tmp_path / outcome.references["package"]
    assert verify_package(path, key.public_key()).files == 7  # 3 files, 3 bestanden, 1 io
    members = read_members(path)
    assert "geen chatberichten" in members["transcript.html"].decode()
    assert members["payments.csv"].startswith(b"payment_id,description,amount,")


async def test_progress_is_reported_in_dutch(tmp_path, key):
    progress = ProgressLog()
    await export(
        PackageExporter(output_dir=tmp_path, signing_key=key), sample_content(), progress=progress
    )
    texts = [text for _, text in progress.calls]
    assert "Documenten inpakken (1 van 2)" in texts
    assert "Documenten inpakken (2 van 2)" in texts
    fractions = [fraction for fraction, _ in progress.calls]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


async def test_a_rerun_after_success_repeats_nothing(tmp_path, key):
    opened, ledger = Opened(), MemoryLedger()
    exporter = PackageExporter(output_dir=tmp_path, signing_key=key)
    first = await export(exporter, sample_content(opened), ledger)
    path = tmp_path / first.references["package"]
    assert opened.count == 2
    assert ledger.records == 1
    assert ledger.steps[STEP_WRITTEN]["manifest_sha256"] == first.manifest_sha256
    assert first.manifest_sha256 == hashlib.sha256(read_members(path)["manifest.json"]).hexdigest()
    before = path.stat().st_mtime_ns
    again = await export(exporter, sample_content(opened), ledger)
    assert again == first
    assert opened.count == 2
    assert ledger.records == 1
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
async def test_a_lost_or_damaged_package_is_rebuilt_identically(tmp_path, key, damage):
    opened, ledger = Opened(), MemoryLedger()
    exporter = PackageExporter(output_dir=tmp_path, signing_key=key)
    first = await export(exporter, sample_content(opened), ledger)
    path = tmp_path / first.references["package"]
    original = path.read_bytes()
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(flip_byte(original))
    again = await export(exporter, sample_content(opened), ledger)
    assert opened.count == 4  # built again
    assert again == first
    assert path.read_bytes() == original
    verify_package(path, key.public_key())


async def test_a_document_shorter_than_recorded_fails_and_leaves_nothing(tmp_path, key):
    content = sample_content()
    short = replace(content.documents[0], size=content.documents[0].size + 1)
    exporter = PackageExporter(output_dir=tmp_path, signing_key=key)
    ledger = MemoryLedger()
    with pytest.raises(ExportFailed, match=str(short.document_id)):
        await export(exporter, replace(content, documents=(short,)), ledger)
    assert list(tmp_path.iterdir()) == []
    assert ledger.steps == {}


async def test_a_document_that_fails_to_decrypt_midway_fails_and_leaves_nothing(tmp_path, key):
    # The second segment does not authenticate while the first is still being written.
    content = sample_content()
    first = content.documents[0]

    async def damaged():
        yield b"%PDF-1.7\n" + bytes(1 << 20)
        raise IntegrityError(f"document {first.document_id} segment 1 does not authenticate")

    broken = replace(first, open=damaged, size=(1 << 20) * 2)
    exporter = PackageExporter(output_dir=tmp_path, signing_key=key)
    ledger = MemoryLedger()
    with pytest.raises(IntegrityError, match="segment 1"):
        await export(exporter, replace(content, documents=(broken,)), ledger)
    assert list(tmp_path.iterdir()) == []
    assert ledger.steps == {}


async def test_an_unwritable_output_dir_is_a_config_error(tmp_path, key):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    exporter = PackageExporter(output_dir=blocker / "exports", signing_key=key)
    with pytest.raises(ExportConfigError, match="exports"):
        await exporter.check_config()


@pytest.mark.parametrize(
    ("name", "media_type", "safe"),
    [
        ("Geboorteakte Zoë.pdf", "application/pdf", "Geboorteakte_Zoe.pdf"),
        ("../../etc/passwd", "application/pdf", "passwd.pdf"),
        ("C:\\Users\\x\\scan 1.PNG", "image/png", "scan_1.png"),
        (".hidden.jpg", "image/jpeg", "hidden.jpg"),
        ("..", "image/jpeg", "document.jpg"),
        ("فاتورة.pdf", "application/pdf", "document.pdf"),
        ("a" * 300 + ".pdf", "application/pdf", "a" * 80 + ".pdf"),
        ("zonder extensie", "image/jpeg", "zonder_extensie.jpg"),
    ],
)
def test_safe_file_names(name, media_type, safe):
    assert safe_file_name(name, media_type) == safe


def test_export_key_is_created_only_when_allowed(tmp_path):
    with pytest.raises(ExportConfigError, match=EXPORT_KEY_FILE) as caught:
        load_export_key(tmp_path / "keys", create=False)  # production: never minted silently
    assert str(tmp_path / "keys" / EXPORT_KEY_FILE) in str(caught.value)
    created = load_export_key(tmp_path / "keys", create=True)
    path = tmp_path / "keys" / EXPORT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_export_key(tmp_path / "keys", create=False)
    assert key_fingerprint(again.public_key()) == key_fingerprint(created.public_key())
    assert [p.name for p in path.parent.iterdir()] == [EXPORT_KEY_FILE]
    pem = public_key_pem(created)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    loaded = load_public_key_pem(pem.encode(), source="x.pem")
    assert key_fingerprint(loaded) == key_fingerprint(created.public_key())


def test_a_broken_export_key_file_is_named(tmp_path):
    path = tmp_path / EXPORT_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(ExportConfigError, match=f"{path}: not an unencrypted PEM private key"):
        load_export_key(tmp_path, create=True)
