"""The operator's `balie` command, end to end against a real database."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
import urllib.request

import pyotp
import pytest
from click.testing import CliRunner

from server.cli import main
from server.migrate import head_revision

from support import free_port


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
def seeded(env, store):
    """Reference data exists (the `store` fixture seeded it in this test's database)."""
    return env


def test_db_upgrade_and_current(env):
    head = head_revision()
    assert run(env, "db", "current") == f"current: empty database; head: {head}\n"
    assert run(env, "db", "upgrade") == f"database at {head}\n"
    assert run(env, "db", "current") == f"current: {head}; head: {head}\n"


def test_operator_walks_a_dossier_through_its_life(seeded, tmp_path):
    env = seeded
    out = run(
        env,
        "appointment", "create", "--department", "burgerzaken", "--service", "geboorteaangifte",
        "--start", "2030-01-07T10:00:00+01:00", "--bsn", "999993653",
    )  # fmt: skip
    dossier_id = re.search(r"dossier\s+(\S+)", out).group(1)
    assert "deadline    2030-03-04T09:00:00+00:00" in out

    run(env, "dossier", "chat", dossier_id, "Welkom bij de gemeente")
    assert "[operator] Welkom bij de gemeente" in run(env, "dossier", "chat-list", dossier_id)

    original = tmp_path / "akte.pdf"
    original.write_bytes(b"%PDF-1.7\n" + os.urandom(300_000))
    out = run(env, "dossier", "put", dossier_id, str(original), "--media-type", "application/pdf")
    document_id = re.search(r"document (\S+)", out).group(1)
    assert document_id in run(env, "dossier", "documents", dossier_id)
    copy = tmp_path / "copy.pdf"
    run(env, "dossier", "get", dossier_id, document_id, str(copy))
    assert copy.read_bytes() == original.read_bytes()

    assert "destroyed_by_operator" in run(env, "dossier", "destroy", dossier_id)
    out = run(env, "dossier", "chat-list", dossier_id, code=1)
    assert "dossier_destroyed" in out
    assert run(env, "audit", "verify").startswith("OK: ")


def test_bsn_is_checked_and_never_stored(seeded, settings):
    out = run(
        seeded,
        "appointment", "create", "--department", "burgerzaken", "--service", "geboorteaangifte",
        "--start", "2030-01-07T10:00:00+01:00", "--bsn", "123456789",
    code=1)  # fmt: skip
    assert "invalid_bsn" in out
    run(
        seeded,
        "appointment", "create", "--department", "burgerzaken", "--service", "geboorteaangifte",
        "--start", "2030-01-07T10:00:00+01:00", "--bsn", "999993653",
    )  # fmt: skip
    if settings.resolved_database_url.startswith("sqlite"):
        db = settings.resolved_database_url.split("///", 1)[1]
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                with open(db + suffix, "rb") as handle:
                    assert b"999993653" not in handle.read()


def test_bad_input_gets_a_clear_message(seeded):
    out = run(
        seeded,
        "appointment", "create", "--department", "burgerzaken", "--service", "geboorteaangifte",
        "--start", "2030-01-07T10:00",
    code=2)  # fmt: skip
    assert "needs a time zone" in out
    out = run(seeded, "dossier", "chat", "not-a-uuid", "hoi", code=2)
    assert "not a valid UUID" in out


def test_keys_status_and_create(env):
    out = run(env, "keys", "create", "--month", "203001")
    assert out == "kek-203001: created\n"
    assert run(env, "keys", "create", "--month", "203001") == "kek-203001: exists\n"
    status = run(env, "keys", "status")
    assert "kek-203001  present   wraps 0 dossier key(s)" in status


def demo_lines(process: subprocess.Popen[str], marker: str) -> str:
    """The demo's output up to and including the first line that contains `marker`."""
    seen = []
    while True:
        line = process.stdout.readline()
        assert line, "demo ended before printing " + marker + ": " + "".join(seen)
        seen.append(line)
        if marker in line:
            return "".join(seen)


def test_demo_serves_and_is_ready(tmp_path, isolated_env):
    """`make demo` runs this command: it must come up ready, on SQLite, with links printed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    env.update(BALIE_DATA_DIR=str(tmp_path / "demo"), BALIE_ENVIRONMENT="dev")
    demo = subprocess.Popen(
        [sys.executable, "-u", "-m", "server", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    head = ""
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200
        # The printed resident link leads to the DigiD test IdP at the service's level.
        head = demo_lines(demo, "resident link")
        link = re.search(r"resident link: (\S+)", head).group(1)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", link.split(str(port), 1)[1])
        answer = connection.getresponse()
        assert answer.status == 303
        assert answer.getheader("Location").startswith(f"http://127.0.0.1:{port}/test-idp/sso?")
        connection.close()
    finally:
        demo.terminate()
        # Not communicate(timeout=...): it reads the pipe past the buffer readline() filled.
        rest = demo.stdout.read()
        demo.wait(timeout=20)
        demo.stdout.close()
    output = head + rest
    assert f"http://127.0.0.1:{port}/readyz" in output
    assert output.count("geboorteaangifte") == 1
    assert output.count(f"resident link: http://127.0.0.1:{port}/i/") == 3
    assert "clerk login: user medewerker, password " in output
    assert (tmp_path / "demo" / "balie.db").exists()


def test_user_add_and_reset(seeded):
    out = run(
        seeded, "user", "add", "anna", "--name", "Anna de Vries", "--employee-id", "e-17",
        "--role", "clerk", "--department", "burgerzaken",
    )  # fmt: skip
    password = re.search(r"password  (\S+)", out).group(1)
    assert len(password) >= 12
    assert "otpauth://totp/" in out
    again = run(seeded, "user", "reset", "anna")
    assert re.search(r"password  (\S+)", again).group(1) != password
    out = run(
        seeded, "user", "add", "bob", "--name", "Bob", "--employee-id", "e-18", "--role", "clerk",
    code=1)  # fmt: skip
    assert "a clerk belongs to a department" in out
    assert "no local account 'zoe'" in run(seeded, "user", "reset", "zoe", code=1)


def test_user_code_is_the_authenticator_code_and_only_in_development(seeded):
    out = run(
        seeded, "user", "add", "anna", "--name", "Anna de Vries", "--employee-id", "e-17",
        "--role", "clerk", "--department", "burgerzaken",
    )  # fmt: skip
    totp = pyotp.parse_uri(re.search(r"totp      (\S+)", out).group(1))
    code = run(seeded, "user", "code", "anna").strip()
    assert totp.verify(code, valid_window=1)
    assert "no local account 'zoe'" in run(seeded, "user", "code", "zoe", code=1)
    secret = "x" * 40
    production = {**seeded, "BALIE_ENVIRONMENT": "production", "BALIE_PSEUDONYM_KEY": secret,
                  "BALIE_SECRET_KEY": secret}  # fmt: skip
    assert "only with BALIE_ENVIRONMENT=dev or test" in run(
        production, "user", "code", "anna", code=1
    )
