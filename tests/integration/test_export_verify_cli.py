"""`balie keys status` publishes the export key; `balie export verify` checks a package with it."""

from __future__ import annotations

import re
import stat

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dossier.export.signing import EXPORT_KEY_FILE, key_fingerprint, load_export_key, public_key_pem
from server.cli import main

from export_sample import (
    MEMBERS,
    build_package,
    flip_byte,
    read_members,
    sample_content,
    write_members,
)


@pytest.fixture
def env(settings, isolated_env):
    return {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(settings.data_dir),
        "BALIE_DATABASE_URL": settings.resolved_database_url,
    }


def run(env, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--operator", "beheerder", *args], env=env)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def signed(env, settings, tmp_path):
    """A package signed with the installation's key, which `keys status` made (test mode)."""
    run(env, "keys", "status")
    key = load_export_key(settings.resolved_key_dir, create=False)
    return build_package(tmp_path / "out", key, sample_content()), key


def test_keys_status_publishes_the_export_key(env, settings):
    status = run(env, "keys", "status")
    path = settings.resolved_key_dir / EXPORT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_export_key(settings.resolved_key_dir, create=False)
    assert f"export signing key: {path} (present)" in status
    assert f"export public key fingerprint (SHA-256): {key_fingerprint(key.public_key())}" in status
    assert public_key_pem(key) in status  # PEM an archive can import as it is
    assert "PRIVATE" not in status
    assert run(env, "keys", "status") == status  # made once, then the same key


def test_create_export_key_ahead(env, settings):
    out = run(env, "keys", "create-export-key")
    path = settings.resolved_key_dir / EXPORT_KEY_FILE
    assert out.startswith(f"{path}: created\n")
    assert run(env, "keys", "create-export-key").startswith(f"{path}: exists\n")


def test_verify_passes_on_an_untouched_package(env, signed):
    package, key = signed
    out = run(env, "export", "verify", str(package))
    assert (
        out
        == f"package OK: {len(MEMBERS) - 2} files, signed by {key_fingerprint(key.public_key())}\n"
    )


@pytest.mark.parametrize(
    "name", ["documents/2-foto_paspoort_1.jpg", "manifest.json", "manifest.json.sig"]
)
def test_verify_fails_naming_the_changed_file(env, signed, tmp_path, name):
    package, _ = signed
    members = read_members(package)
    members[name] = flip_byte(members[name])
    changed = tmp_path / "changed.zip"
    write_members(changed, members)
    out = run(env, "export", "verify", str(changed), code=1)
    assert out.startswith("package INVALID: changed.zip, ")
    assert re.search(rf"^  {re.escape(name)}[: ]", out, re.MULTILINE) or f"match {name}" in out, out


def test_verify_with_a_given_public_key(env, signed, tmp_path):
    package, key = signed
    pem = tmp_path / "archief.pem"
    pem.write_text(public_key_pem(key))
    assert run(env, "export", "verify", str(package), "--public-key", str(pem)).startswith(
        "package OK"
    )
    pem.write_text(public_key_pem(Ed25519PrivateKey.generate()))
    out = run(env, "export", "verify", str(package), "--public-key", str(pem), code=1)
    assert "manifest.json.sig: the signature does not match manifest.json" in out
    pem.write_text("no key")
    assert f"{pem}: not a PEM public key" in run(
        env, "export", "verify", str(package), "--public-key", str(pem), code=1
    )


def test_verify_without_an_export_key_names_the_missing_file(env, settings, tmp_path):
    package = build_package(tmp_path, Ed25519PrivateKey.generate(), sample_content())
    out = run(env, "export", "verify", str(package), code=1)
    assert str(settings.resolved_key_dir / EXPORT_KEY_FILE) in out
    assert not (settings.resolved_key_dir / EXPORT_KEY_FILE).exists()  # verify never mints one
