"""Signed checkpoints and their witness copies: made when due, never overwritten, and together
with the chain they expose every way a database owner can tamper with the log, each at its
sequence number, through `balie audit verify` and the information manager's page."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import stat

import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, text, update
from sqlmodel import col

from retention.audit import Actor, EventFields, record_event, verify_chain
from retention.audit_verify import verify_audit
from retention.checkpoints import (
    CheckpointError,
    Witness,
    checkpoint_statement,
    key_id_of,
    load_checkpoint_key,
    witness_path,
    write_witness,
)
from retention.models import AuditCheckpoint, AuditEvent, AuditHead, AuditVerification
from server.app import create_app
from server.appkeys import DOSSIER_STORE, SETTINGS
from server.audit_routes import checkpoint_job, checkpoint_now
from server.cli import main
from server.settings import Settings

from support import drop_append_only_guard, engine_of, rewrite_event, staff_visitor

ACTOR = Actor("clerk", "emp-7")
SYSTEM = Actor.system("test")
_EVENTS = AuditEvent.__table__
_HEAD = AuditHead.__table__


async def append(store, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        async with store.sessions() as session, session.begin():
            await record_event(
                session,
                at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
                actor=ACTOR,
                action="test.event",
                object_type="dossier",
                object_ref=f"ref-{i}",
                detail={"i": i},
            )


def real_key(settings) -> Ed25519PrivateKey:
    return load_checkpoint_key(settings.resolved_audit_signing_key, create=False)


@pytest.fixture
async def signed(store, settings):
    """Events 1-5, checkpoint (event 6); events 7-10, checkpoint (event 11)."""
    await append(store, 5)
    assert (await checkpoint_now(store, settings, actor=SYSTEM, force=True)).seq == 6
    await append(store, 4, start=5)
    assert (await checkpoint_now(store, settings, actor=SYSTEM, force=True)).seq == 11
    return store


def cli_env(settings) -> dict[str, str]:
    return {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(settings.data_dir),
        "BALIE_DATABASE_URL": settings.resolved_database_url,
    }


async def balie(settings, *args: str):
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, main, ["--operator", "beheer-1", *args], env=cli_env(settings)
    )


async def verify_cli(settings, *, code: int) -> str:
    result = await balie(settings, "audit", "verify")
    assert result.exit_code == code, result.output
    return result.output


async def checkpoints(store) -> list[AuditCheckpoint]:
    async with store.sessions() as session:
        query = select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq))
        return list((await session.execute(query)).scalars())


async def verifications(store) -> list[AuditVerification]:
    async with store.sessions() as session:
        query = select(AuditVerification).order_by(col(AuditVerification.id))
        return list((await session.execute(query)).scalars())


async def tamper(store, *statements) -> None:
    await drop_append_only_guard(engine_of(store))
    async with store.sessions() as session, session.begin():
        for statement in statements:
            await session.execute(statement)


async def rewrite_history(store, edit) -> dict[int, str]:
    """What an attacker with the database does: rewrite the events (`edit` gets and returns
    their fields), recompute every hash and the head. Returns the new hash of each event."""
    await drop_append_only_guard(engine_of(store))
    async with store.sessions() as session, session.begin():
        rows = (await session.execute(select(AuditEvent).order_by(col(AuditEvent.seq)))).scalars()
        fields = [
            EventFields(
                at=r.occurred_at,
                actor=r.actor,
                action=r.action,
                object_type=r.object_type,
                object_ref=r.object_ref,
                result=r.result,
                detail=r.detail,
            )
            for r in rows
        ]
        await session.execute(delete(AuditEvent))
        head: tuple[int, str] | None = None
        hashes: dict[int, str] = {}
        for item in edit(fields):
            row = item.chained(head)
            await session.execute(insert(_EVENTS), row)
            head = (row["seq"], row["entry_hash"])
            hashes[row["seq"]] = row["entry_hash"]
        assert head is not None
        await session.execute(update(_HEAD).values(seq=head[0], entry_hash=head[1]))
    return hashes


def forged_action(seq: int):
    def edit(fields: list[EventFields]) -> list[EventFields]:
        old = fields[seq - 1]
        fields[seq - 1] = EventFields(
            old.at, old.actor, "forged", old.object_type, old.object_ref, old.result, old.detail
        )
        return fields

    return edit


async def resign(store, hashes: dict[int, str], key: Ed25519PrivateKey, *, after: int) -> None:
    """Delete the checkpoints past event `after` (the ones the rewrite broke) and make them
    again over the rewritten history with `key`."""
    old = [cp for cp in await checkpoints(store) if cp.seq > after]
    made = []
    for cp in old:
        statement = checkpoint_statement(
            seq=cp.seq, entry_hash=hashes[cp.seq], signed_at=cp.signed_at
        )
        made.append(
            {
                "seq": cp.seq,
                "entry_hash": hashes[cp.seq],
                "signed_at": cp.signed_at,
                "key_id": key_id_of(key),
                "signature": key.sign(statement).hex(),
            }
        )
    await tamper(
        store,
        delete(AuditCheckpoint).where(col(AuditCheckpoint.seq) > after),
        *(insert(AuditCheckpoint.__table__).values(**m) for m in made),
    )


# --- making checkpoints ------------------------------------------------------------------------


async def test_a_checkpoint_signs_the_head_and_leaves_a_witness_copy(store, settings):
    await append(store, 10)
    made = await checkpoint_now(store, settings, actor=SYSTEM, force=True)
    assert made is not None
    async with store.sessions() as session:
        head = await session.get(AuditHead, 1)
        event = await session.get(AuditEvent, made.seq)
    # The checkpoint records itself in the log first and signs the head that includes it.
    assert (made.seq, made.entry_hash) == (11, head.entry_hash) == (head.seq, event.entry_hash)
    assert event.action == "audit.checkpoint"
    key = real_key(settings)
    assert made.key_id == key_id_of(key)
    key.public_key().verify(
        bytes.fromhex(made.signature),
        checkpoint_statement(seq=11, entry_hash=made.entry_hash, signed_at=made.signed_at),
    )
    path = witness_path(settings.resolved_witness_dir, 11)
    witness = Witness.from_json(path.read_bytes())
    assert witness.matches(made)
    assert witness.first_seq == 1
    assert len(witness.entry_hashes) == 11
    assert witness.entry_hashes[-1] == made.entry_hash
    # The key is made on demand in test mode, readable by its owner only.
    assert stat.S_IMODE(os.stat(settings.resolved_audit_signing_key).st_mode) == 0o600
    # Nothing new: nothing to sign.
    assert await checkpoint_now(store, settings, actor=SYSTEM, force=True) is None
    assert len(await checkpoints(store)) == 1


async def test_the_job_makes_a_checkpoint_after_n_events_or_m_minutes(store, settings, clock):
    configured = settings.model_copy(
        update={"audit_checkpoint_events": 5, "audit_checkpoint_minutes": 60}
    )
    app = web.Application()
    app[DOSSIER_STORE] = store
    app[SETTINGS] = configured

    assert await checkpoint_job(app) is None  # an empty log
    await append(store, 2)
    first = await checkpoint_job(app)  # the first checkpoint is due at once
    assert first is not None
    assert first.seq == 3
    await append(store, 4)
    assert await checkpoint_job(app) is None  # 4 events, 0 minutes
    await append(store, 1)
    assert (await checkpoint_job(app)).seq == 9  # 5 events
    await append(store, 1)
    clock.advance(dt.timedelta(minutes=59))
    assert await checkpoint_job(app) is None
    clock.advance(dt.timedelta(minutes=1))
    assert (await checkpoint_job(app)).seq == 11  # 60 minutes and something new
    clock.advance(dt.timedelta(hours=5))
    assert await checkpoint_job(app) is None  # a quiet log earns no checkpoint
    assert [cp.seq for cp in await checkpoints(store)] == [3, 9, 11]
    assert sorted(p.name for p in configured.resolved_witness_dir.iterdir()) == [
        "checkpoint-000000000003.json",
        "checkpoint-000000000009.json",
        "checkpoint-000000000011.json",
    ]


async def test_the_job_is_scheduled_in_the_server(aiohttp_client, settings, clock, store):
    await append(store, 3)
    client = await aiohttp_client(create_app(settings, clock=clock))
    for _ in range(100):  # the first run happens at start-up
        if await checkpoints(store):
            break
        await asyncio.sleep(0.05)
    # Other start-up jobs may record events too; the checkpoint covers all of them.
    [made] = await checkpoints(store)
    async with store.sessions() as session:
        head = await session.get(AuditHead, 1)
        event = await session.get(AuditEvent, made.seq)
    assert made.seq >= 4
    assert event.action == "audit.checkpoint"
    assert witness_path(settings.resolved_witness_dir, made.seq).exists()
    assert head.seq >= made.seq
    assert client.app is not None


async def test_a_witness_copy_is_never_overwritten(signed, settings):
    path = witness_path(settings.resolved_witness_dir, 11)
    original = path.read_bytes()
    witness = Witness.from_json(original)
    assert write_witness(settings.resolved_witness_dir, witness) is False  # identical: fine
    forged = Witness(11, "f" * 64, witness.signed_at, witness.key_id, witness.signature, 7)
    with pytest.raises(CheckpointError, match="different witness copy of checkpoint 11"):
        write_witness(settings.resolved_witness_dir, forged)
    assert path.read_bytes() == original
    assert [p.name for p in settings.resolved_witness_dir.iterdir() if p.name.startswith(".")] == []


async def test_a_copy_lost_in_a_crash_is_written_by_the_next_run(signed, settings):
    """The witness follows the commit; if the process dies in between, the next run writes it."""
    path = witness_path(settings.resolved_witness_dir, 11)
    original = path.read_bytes()
    path.unlink()
    assert "(inserted): checkpoint 11 has no witness copy" in await verify_cli(settings, code=1)
    await checkpoint_now(signed, settings, actor=SYSTEM)
    assert path.read_bytes() == original


async def test_production_refuses_to_make_a_key(settings):
    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(CheckpointError, match=r"audit-checkpoint\.pem: the audit checkpoint"):
        load_checkpoint_key(production.resolved_audit_signing_key, create=False)
    assert not production.resolved_audit_signing_key.exists()


# --- what `balie audit verify` finds -----------------------------------------------------------


async def test_intact_log_verifies_and_the_outcome_is_recorded(signed, settings):
    out = await verify_cli(settings, code=0)
    assert out.startswith("OK: 11 events, head 11 ")
    key_id = key_id_of(real_key(settings))
    assert f"checkpoints: 2 (last at event 11), witness copies: 2, key {key_id}" in out
    [row] = await verifications(signed)
    assert (row.ok, row.events, row.first_bad_seq, row.by) == (True, 11, None, "operator:beheer-1")
    async with signed.sessions() as session:
        event = await session.get(AuditEvent, 12)
    assert (event.action, event.result, event.object_ref) == (
        "audit.verified",
        "ok",
        f"verification-{row.id}",
    )
    assert json.loads(event.detail)["checkpoints"] == 2


async def test_an_edited_row_is_found(signed, settings):
    await rewrite_event(engine_of(signed), 4, action="x")
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 4 (modified): event 4 was altered" in out
    [row] = await verifications(signed)
    assert (row.ok, row.first_bad_seq) == (False, 4)
    assert "event 4 was altered" in row.reason
    async with signed.sessions() as session:
        event = await session.get(AuditEvent, 12)
    assert (event.action, event.result) == ("audit.verified", "broken")


async def test_a_deleted_row_is_found(signed, settings):
    await tamper(signed, delete(AuditEvent).where(col(AuditEvent.seq) == 3))
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 3 (deleted): event 3 is missing" in out


async def test_an_inserted_row_is_found(signed, settings):
    """A forged event chained properly behind the last one, the head left alone."""
    async with signed.sessions() as session:
        head = await session.get(AuditHead, 1)
    forged = EventFields.build(
        at=dt.datetime(2026, 3, 3, tzinfo=dt.UTC),
        actor=ACTOR,
        action="dossier.exported",
        object_type="dossier",
        object_ref="ref-x",
    ).chained((head.seq, head.entry_hash))
    await tamper(signed, insert(_EVENTS).values(**forged))
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 12 (inserted): event 12 was appended behind" in out


async def test_a_row_inserted_into_the_middle_and_rehashed_is_found(signed, settings):
    def insert_at_5(fields: list[EventFields]) -> list[EventFields]:
        extra = EventFields.build(
            at=fields[3].at, actor=ACTOR, action="forged", object_type="dossier", object_ref="x"
        )
        return [*fields[:4], extra, *fields[4:]]

    await rewrite_history(signed, insert_at_5)
    out = await verify_cli(settings, code=1)
    # The chain itself is consistent again; the checkpoints and their witnesses are not.
    assert "BROKEN at sequence number 5 (modified)" in out
    assert "event 5 is the first that differs from the witness copy" in out


async def test_a_truncated_tail_with_its_head_is_found(signed, settings):
    async with signed.sessions() as session:
        eighth = await session.get(AuditEvent, 8)
    await tamper(
        signed,
        delete(AuditEvent).where(col(AuditEvent.seq) > 8),
        update(AuditHead).values(seq=8, entry_hash=eighth.entry_hash),
    )
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 9 (truncated): the log ends at event 8" in out
    assert "checkpoint 11 vouches for event 11" in out


async def test_a_deleted_checkpoint_is_found_by_its_witness(signed, settings):
    await tamper(signed, delete(AuditCheckpoint).where(col(AuditCheckpoint.seq) == 6))
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 6 (deleted): checkpoint 6 was deleted" in out


async def test_history_re_signed_with_the_stolen_key_is_exposed_by_the_witnesses(signed, settings):
    hashes = await rewrite_history(signed, forged_action(4))
    await resign(signed, hashes, real_key(settings), after=0)
    # The database on its own is consistent: chain, head and signatures all check out.
    report = await verify_audit(
        engine_of(signed),
        public_key=real_key(settings).public_key(),
        witness_dir=settings.resolved_witness_dir / "elsewhere",
    )
    assert report.chain.ok
    assert not any("not signed" in f.message for f in report.faults)
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 4 (re-signed)" in out
    assert "event 4 is the first that differs from the witness copy" in out
    assert "checkpoint 11 in the database differs from its witness copy" in out
    assert "not signed" not in out


async def test_history_re_signed_with_another_key_fails_the_signature_check(signed, settings):
    hashes = await rewrite_history(signed, forged_action(7))
    await resign(signed, hashes, Ed25519PrivateKey.generate(), after=6)
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 7 (re-signed)" in out
    assert "at 11 (re-signed): checkpoint 11 is not signed with this installation's key" in out
    # Even with the witness copies gone too, the signature check gives it away.
    for path in settings.resolved_witness_dir.iterdir():
        path.unlink()
    out = await verify_cli(settings, code=1)
    assert "at 11 (re-signed): checkpoint 11 is not signed with this installation's key" in out
    assert "at 6 (re-signed)" not in out  # checkpoint 6 still holds: the rewrite began after it


async def test_verify_without_the_key_in_production_is_an_error(signed, settings, tmp_path):
    env = {
        **cli_env(settings),
        "BALIE_ENVIRONMENT": "production",
        "BALIE_AUDIT_SIGNING_KEY": str(tmp_path / "absent.pem"),
        "BALIE_PSEUDONYM_KEY": "p" * 40,
        "BALIE_SECRET_KEY": "s" * 40,
    }
    result = await asyncio.to_thread(CliRunner().invoke, main, ["audit", "verify"], env=env)
    assert result.exit_code == 1
    assert "absent.pem: the audit checkpoint signing key is missing" in result.output
    assert await verifications(signed) == []


async def test_cli_checkpoint_and_create_key(store, settings, tmp_path):
    await append(store, 3)
    out = (await balie(settings, "audit", "checkpoint")).output
    assert out.startswith("checkpoint at event 4 (")
    assert (await balie(settings, "audit", "checkpoint")).output.startswith("nothing to sign")
    env = {**cli_env(settings), "BALIE_AUDIT_SIGNING_KEY": str(tmp_path / "k" / "new.pem")}
    made = await asyncio.to_thread(CliRunner().invoke, main, ["audit", "create-key"], env=env)
    assert made.exit_code == 0, made.output
    assert f"{tmp_path / 'k' / 'new.pem'}: created" in made.output
    again = await asyncio.to_thread(CliRunner().invoke, main, ["audit", "create-key"], env=env)
    assert "new.pem: exists" in again.output


# --- the information manager's page -------------------------------------------------------------


def form(settings, visitor, **fields: str):
    return {
        "headers": {"Origin": settings.public_origin, **visitor.cookie},
        "data": {"csrf_token": visitor.csrf, **fields},
    }


async def test_page_shows_the_last_checkpoint_and_the_key(aiohttp_client, signed, settings, clock):
    client = await aiohttp_client(create_app(settings, clock=clock))
    for role in ("information_manager", "privacy_officer"):
        visitor = await staff_visitor(signed, clock, settings, role=role)
        response = await client.get("/beheer/audit", headers=visitor.cookie)
        assert response.status == 200
        html = await response.text()
        assert key_id_of(real_key(settings)) in html
        assert "<dd>11</dd>" in html
        assert "2026-03-02 09:00:00 UTC" in html
        assert "Het auditlog is nog niet gecontroleerd." in html
        assert response.headers["Cache-Control"] == "no-store"
        can_verify = 'action="/beheer/audit/controle"' in html
        assert can_verify is (role == "information_manager")


async def test_information_manager_verifies_from_the_page(aiohttp_client, signed, settings, clock):
    client = await aiohttp_client(create_app(settings, clock=clock))
    visitor = await staff_visitor(
        signed, clock, settings, role="information_manager", employee_id="im-1"
    )
    ok = await client.post("/beheer/audit/controle", **form(settings, visitor))
    assert ok.status == 200
    html = await ok.text()
    # 11 events, the staff account's, and whatever start-up recorded: all intact.
    assert re.search(r"In orde: 1\d regels, 2 handtekeningen en 2 kopieën kloppen\.", html)

    hashes = await rewrite_history(signed, forged_action(4))
    await resign(signed, hashes, real_key(settings), after=0)
    broken = await client.post("/beheer/audit/controle", **form(settings, visitor))
    html = await broken.text()
    assert "Niet in orde. Eerste fout bij volgnummer 4: opnieuw ondertekend." in html
    assert 'id="audit-faults"' in html
    rows = await verifications(signed)
    assert [(r.ok, r.first_bad_seq, r.by) for r in rows] == [
        (True, None, "information_manager:im-1"),
        (False, 4, "information_manager:im-1"),
    ]
    # Both show in the history on the next visit.
    page = await (await client.get("/beheer/audit", headers=visitor.cookie)).text()
    assert page.count("information_manager:im-1") == 2
    assert "niet in orde" in page


@pytest.mark.parametrize("role", ["privacy_officer", "clerk"])
async def test_only_an_information_manager_may_verify(
    aiohttp_client, signed, settings, clock, role
):
    client = await aiohttp_client(create_app(settings, clock=clock))
    department = "burgerzaken" if role == "clerk" else None
    visitor = await staff_visitor(signed, clock, settings, role=role, department=department)
    response = await client.post("/beheer/audit/controle", **form(settings, visitor))
    assert response.status == 403
    assert await verifications(signed) == []
    if role == "clerk":
        page = await client.get("/beheer/audit", headers=visitor.cookie)
        assert page.status == 403
        assert "informatiebeheerders" in await page.text()


async def test_verify_without_csrf_token_is_refused(aiohttp_client, signed, settings, clock):
    client = await aiohttp_client(create_app(settings, clock=clock))
    visitor = await staff_visitor(signed, clock, settings, role="information_manager")
    request = form(settings, visitor)
    del request["data"]["csrf_token"]
    response = await client.post("/beheer/audit/controle", **request)
    assert response.status == 403
    assert "CSRF" in (await response.json())["message"]
    assert await verifications(signed) == []


async def test_not_signed_in_is_sent_to_sign_in(aiohttp_client, settings, clock, store):
    client = await aiohttp_client(create_app(settings, clock=clock))
    response = await client.get("/beheer/audit", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/balie/inloggen"


async def test_an_unusable_key_is_shown_and_nothing_is_verified(
    aiohttp_client, store, settings, clock, tmp_path
):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    configured = settings.model_copy(update={"audit_signing_key": bad})
    client = await aiohttp_client(create_app(configured, clock=clock))
    visitor = await staff_visitor(store, clock, configured, role="information_manager")
    shown = await client.get("/beheer/audit", headers=visitor.cookie)
    assert shown.status == 200
    assert "De ondertekensleutel ontbreekt of is onbruikbaar." in await shown.text()
    refused = await client.post("/beheer/audit/controle", **form(configured, visitor))
    assert refused.status == 503
    assert "De ondertekensleutel ontbreekt of is onbruikbaar." in await refused.text()
    assert await verifications(store) == []
    assert bad.read_text() == "not a key"  # never replaced by a fresh key


async def test_readiness_needs_the_checkpoint_key_in_production(aiohttp_client, settings, tmp_path):
    production = Settings(
        environment="production",
        data_dir=settings.data_dir,
        database_url=settings.resolved_database_url,
        key_dir=tmp_path / "keys",
        pseudonym_key="p" * 40,
        secret_key="s" * 40,
    )
    client = await aiohttp_client(create_app(production))
    body = await (await client.get("/readyz")).json()
    assert body["status"] == "not_ready"
    assert (
        "audit-checkpoint.pem: the audit checkpoint signing key is missing"
        in (body["checks"]["audit_key"])
    )
    assert not production.resolved_audit_signing_key.exists()  # production never mints it
    load_checkpoint_key(production.resolved_audit_signing_key, create=True)  # the operator
    body = await (await client.get("/readyz")).json()
    assert body["checks"]["audit_key"] == "ok"


async def test_the_language_link_of_a_result_page_leads_back(
    aiohttp_client, store, settings, clock
):
    client = await aiohttp_client(create_app(settings, clock=clock))
    visitor = await staff_visitor(store, clock, settings, role="information_manager")
    response = await client.get(
        "/beheer/audit/controle?lang=en", headers=visitor.cookie, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/beheer/audit?lang=en"
    english = await client.get("/beheer/audit?lang=en", headers=visitor.cookie)
    assert "Verify the audit log" in await english.text()


async def redefine_actor_column(store) -> None:
    """What a database owner can do to show an actor the chain does not cover: make the
    derived column an ordinary one (PostgreSQL: DROP EXPRESSION; SQLite: rebuild the table)."""
    engine = engine_of(store)
    await drop_append_only_guard(engine)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE audit_events ALTER COLUMN actor DROP EXPRESSION"))
            return
        await conn.execute(
            text(
                "CREATE TABLE forged AS SELECT seq, entry, occurred_at, actor, action,"
                " object_type, object_ref, result, detail, entry_hash FROM audit_events"
            )
        )
        await conn.execute(text("DROP TABLE audit_events"))
        await conn.execute(text("ALTER TABLE forged RENAME TO audit_events"))


async def test_a_redefined_column_that_shows_another_actor_is_found(signed, settings):
    await redefine_actor_column(signed)
    async with engine_of(signed).begin() as conn:
        await conn.execute(text("UPDATE audit_events SET actor = 'clerk:emp-1' WHERE seq = 4"))
    async with signed.sessions() as session:
        assert (await session.get(AuditEvent, 4)).actor == "clerk:emp-1"
    assert (await verify_chain(engine_of(signed))).ok  # the chain alone cannot see it
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 4 (modified): event 4: its actor is not what its" in out


async def test_a_redefined_column_is_found_before_it_is_written(signed, settings):
    await redefine_actor_column(signed)
    out = await verify_cli(settings, code=1)
    assert "BROKEN at sequence number 1 (modified)" in out
    assert "are no longer derived from the hashed entries (no event differs yet)" in out
    assert "actor" in out  # on SQLite the rebuilt table has every column plain
