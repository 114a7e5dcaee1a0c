"""`balie policy ...` end to end against a real database: status, propose (invalid files
refused with every key named), approval by both roles, rejection."""

from __future__ import annotations

import hashlib
import re

import pytest
from click.testing import CliRunner

from identity.accounts import add_local_account
from server.cli import main

WHY = "Geboorteaangiften zijn na zes weken altijd geexporteerd; korter bewaren mag."


@pytest.fixture
def env(settings, isolated_env):
    return {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(settings.data_dir),
        "BALIE_DATABASE_URL": settings.resolved_database_url,
    }


@pytest.fixture
async def staff(env, store, settings, clock):
    """Accounts of an information manager (emp-im), a privacy officer (emp-po), a clerk
    (emp-c), and the information manager's second account as privacy officer (emp-both)."""
    secret = settings.secret_key.get_secret_value().encode()
    async with store.sessions() as session, session.begin():
        for username, employee_id, role, department in (
            ("ilse", "emp-im", "information_manager", None),
            ("piet", "emp-po", "privacy_officer", None),
            ("anna", "emp-c", "clerk", "burgerzaken"),
            ("dubbel-im", "emp-both", "information_manager", None),
            ("dubbel-po", "emp-both", "privacy_officer", None),
        ):
            await add_local_account(
                session, secret_key=secret, username=username, display_name=username,
                employee_id=employee_id, role=role, department=department, now=clock.current,
            )  # fmt: skip
    return env


def run(env, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--operator", "beheerder", *args], env=env)
    assert result.exit_code == code, result.output
    return result.output


def changed_policy(settings, tmp_path, *, version: str = "2026-2", birth_days: int = 42):
    text = settings.policy_file.read_text(encoding="utf-8")
    text = text.replace('version = "2026-1"', f'version = "{version}"', 1)
    birth = text.index("[service.geboorteaangifte]")
    text = text[:birth] + text[birth:].replace("max_days = 56", f"max_days = {birth_days}", 1)
    path = tmp_path / f"policy-{version}-{birth_days}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def propose(env, path, why: str = WHY) -> str:
    out = run(env, "policy", "propose", str(path), "--justification", why)
    found = re.search(r"proposal (\S+)", out)
    assert found is not None, out
    return found.group(1)


def test_status_on_a_fresh_database_adopts_the_configured_file(staff, settings):
    out = run(staff, "policy", "status")
    digest = hashlib.sha256(settings.policy_file.read_bytes()).hexdigest()
    assert out.splitlines()[1] == f"  digest: {digest}"
    assert out.startswith("in force: version 2026-1 since ")
    assert "  proposed by operator:beheerder at " in out
    assert "  information manager: operator:beheerder at " in out
    assert "  privacy officer: operator:beheerder at " in out
    assert f"  adopted just now from {settings.policy_file}" in out
    assert "open proposals: none" in out
    again = run(staff, "policy", "status")
    assert "adopted just now" not in again
    assert "differs" not in again


def test_an_invalid_file_is_refused_with_every_key_named(staff, settings, tmp_path):
    broken = tmp_path / "broken.toml"
    text = settings.policy_file.read_text(encoding="utf-8").replace(
        "max_days = 28", "max_days = 60"
    )
    broken.write_text(text.replace('level_of_assurance = "basis"', 'level_of_assurance = "laag"'))
    out = run(staff, "policy", "propose", str(broken), "--justification", WHY, code=1)
    assert f"{broken} is not a valid policy; nothing was stored:" in out
    assert "  service.uittreksel_brp.max_days: 60 is more than 56" in out
    assert "  service.informatie.level_of_assurance: 'laag' is not one of" in out
    assert "open proposals: none" in run(staff, "policy", "status")

    out = run(staff, "policy", "propose", str(changed_policy(settings, tmp_path)),
              "--justification", "kort", code=1)  # fmt: skip
    assert "justification: 4 characters; write at least 20" in out
    out = run(staff, "policy", "propose", str(settings.policy_file), "--justification", WHY,
              code=1)  # fmt: skip
    assert "policy_refused: this text is the version in force (2026-1) already" in out


def test_one_approval_changes_nothing_and_both_bring_it_into_force(staff, settings, tmp_path):
    path = changed_policy(settings, tmp_path)
    ident = propose(staff, path)
    out = run(staff, "policy", "status")
    assert f"open proposals: 1\n{ident}  version 2026-2\n" in out
    assert "  information manager: not yet\n  privacy officer: not yet" in out

    out = run(staff, "policy", "approve", ident, "--role", "information_manager", "--by", "emp-im")
    assert out == "approved as information manager; version 2026-2 waits for the other role\n"
    # The same role again, by another person or the same: refused.
    out = run(staff, "policy", "approve", ident, "--role", "information_manager", "--by",
              "emp-both", code=1)  # fmt: skip
    assert "approved by an information manager already (information_manager:emp-im)" in out
    # The information manager has no privacy officer account: refused.
    out = run(staff, "policy", "approve", ident, "--role", "privacy_officer", "--by", "emp-im",
              code=1)  # fmt: skip
    assert "--by: no active privacy officer with employee id 'emp-im'" in out
    out = run(staff, "policy", "approve", ident, "--role", "privacy_officer", "--by", "emp-c",
              code=1)  # fmt: skip
    assert "no active privacy officer with employee id 'emp-c'" in out
    out = run(staff, "appointment", "create", "--department", "burgerzaken", "--service",
              "geboorteaangifte", "--start", "2030-01-07T10:00:00+01:00")  # fmt: skip
    assert "deadline    2030-03-04T09:00:00+00:00" in out  # 56 days: the old version
    assert "in force: version 2026-1" in run(staff, "policy", "status")

    out = run(staff, "policy", "approve", ident, "--role", "privacy_officer", "--by", "emp-po")
    assert out.startswith("approved; version 2026-2 is in force from ")
    out = run(staff, "appointment", "create", "--department", "burgerzaken", "--service",
              "geboorteaangifte", "--start", "2030-01-07T10:00:00+01:00")  # fmt: skip
    assert "deadline    2030-02-18T09:00:00+00:00" in out  # 42 days: the new version
    out = run(staff, "policy", "status")
    assert out.startswith("in force: version 2026-2 since ")
    assert f"  digest: {hashlib.sha256(path.read_bytes()).hexdigest()}" in out
    assert "  information manager: information_manager:emp-im at " in out
    assert "  privacy officer: privacy_officer:emp-po at " in out
    assert "open proposals: none" in out
    assert f"note: {settings.policy_file} differs from the version in force" in out
    out = run(staff, "policy", "approve", ident, "--role", "privacy_officer", "--by", "emp-po",
              code=1)  # fmt: skip
    assert "is in force, not open for a decision" in out


def test_one_person_cannot_approve_in_both_roles(staff, settings, tmp_path):
    ident = propose(staff, changed_policy(settings, tmp_path))
    run(staff, "policy", "approve", ident, "--role", "privacy_officer", "--by", "emp-both")
    out = run(staff, "policy", "approve", ident, "--role", "information_manager", "--by",
              "emp-both", code=1)  # fmt: skip
    assert "the second approval must come from someone else" in out
    assert "in force: version 2026-1" in run(staff, "policy", "status")


def test_reject(staff, settings, tmp_path):
    ident = propose(staff, changed_policy(settings, tmp_path))
    out = run(staff, "policy", "reject", ident, "--by", "emp-c", "--reason", "nee", code=1)
    assert "no active information manager or privacy officer with employee id 'emp-c'" in out
    out = run(staff, "policy", "reject", ident, "--by", "emp-po", "--reason", "Eerst overleg.")
    assert out == "rejected; version 2026-2 will not take effect\n"
    out = run(staff, "policy", "approve", ident, "--role", "information_manager", "--by",
              "emp-im", code=1)  # fmt: skip
    assert "is rejected, not open for a decision" in out
    out = run(staff, "policy", "approve", "00000000-0000-4000-8000-000000000000", "--role",
              "information_manager", "--by", "emp-im", code=1)  # fmt: skip
    assert "policy_not_found: no policy proposal with id" in out
    assert "open proposals: none" in run(staff, "policy", "status")
