"""A month's key-encryption key goes once every dossier it wrapped is past its deadline plus
the grace period, and not while one of them lives (held or not); `balie keys status` says
when each key goes or went."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlmodel import col

from dossier.crypto.keyring import kek_id_for
from dossier.errors import KeyUnavailable
from retention.audit import Actor, verify_chain
from retention.key_destruction import destroy_expired_keks, key_statuses
from retention.models import AuditEvent, Hold, KekDestruction
from retention.sweeper import sweep
from server.cli import main

from support import book, engine_of

KEEPER = Actor.system("test-keys")
GRACE = 30
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


async def destroy(store) -> list[str]:
    return await destroy_expired_keks(store, actor=KEEPER, grace_days=GRACE)


async def kek_events(store) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "key.kek_destroyed")
        return list((await session.execute(query)).scalars())


def key_file(store, key_id: str):
    return store.keyring.directory / f"{key_id}.key"


async def status_of(store, key_id: str):
    [status] = [s for s in await key_statuses(store, grace_days=GRACE) if s.key_id == key_id]
    return status


async def test_a_key_goes_after_its_dossiers_deadlines_plus_grace(store, clock):
    # March 2026: two dossiers wrapped by kek-202603; one of them gets a hold.
    plain = await book(store, clock)
    held = await book(store, clock, starts_at=clock.current + dt.timedelta(days=2))
    assert plain.dossier.kek_id == held.dossier.kek_id == "kek-202603"
    deadline = held.dossier.deadline  # the later of the two
    hold_ends = deadline + dt.timedelta(days=40)
    async with store.sessions() as session, session.begin():
        session.add(
            Hold(
                dossier_id=held.dossier.id, department_id=held.appointment.department_id,
                service_type="geboorteaangifte", ground="woo", reason="Woo-verzoek",
                ends_at=hold_ends, state="active", requested_by="clerk:emp-1",
                requested_at=clock.current,
            )
        )  # fmt: skip
    # A future month's key made ahead, and the current one: neither may go.
    store.keyring.create("kek-202701")
    clock.current = dt.datetime(2026, 4, 15, tzinfo=dt.UTC)
    assert await destroy(store) == []
    status = await status_of(store, "kek-202603")
    assert status.in_use == ("2 live dossier(s)", "1 on hold")
    assert status.describe() == (
        f"2 live dossier(s), last deadline {deadline:%Y-%m-%d %H:%M} UTC; "
        "in use (2 live dossier(s), 1 on hold); may be destroyed from "
        f"{deadline + GRACE * DAY:%Y-%m-%d %H:%M} UTC at the earliest"
    )

    # Past both deadlines and the grace: the held dossier still lives, so the key stays.
    clock.current = deadline + GRACE * DAY
    assert (await sweep(store, actor=KEEPER, batch_size=10)).destroyed == 1
    assert await destroy(store) == []
    assert key_file(store, "kek-202603").exists()
    assert (await status_of(store, "kek-202603")).in_use == ("1 live dossier(s)", "1 on hold")

    # The hold ends; the sweeper destroys the dossier; the grace after its deadline is over.
    clock.current = hold_ends
    assert (await sweep(store, actor=KEEPER, batch_size=10)).destroyed == 1
    assert await destroy(store) == ["kek-202603"]
    assert not key_file(store, "kek-202603").exists()
    with pytest.raises(KeyUnavailable):
        store.keyring.get("kek-202603")
    assert key_file(store, "kek-202701").exists()
    async with store.sessions() as session:
        record = await session.get(KekDestruction, "kek-202603")
    assert (record.destroyed_at, record.last_deadline, record.dossiers) == (hold_ends, deadline, 2)
    assert record.actor == str(KEEPER)
    [event] = await kek_events(store)
    assert (event.object_type, event.object_ref) == ("key", "kek-202603")
    assert (
        (await status_of(store, "kek-202603"))
        .describe()
        .endswith(f"destroyed {hold_ends:%Y-%m-%d %H:%M} UTC")
    )

    # Running again destroys nothing more and records nothing twice.
    assert await destroy(store) == []
    assert len(await kek_events(store)) == 1
    assert (await verify_chain(engine_of(store))).ok


async def test_not_a_second_before_the_grace_ends(store, clock):
    booked = await book(store, clock)
    clock.current = booked.dossier.deadline
    await sweep(store, actor=KEEPER, batch_size=10)
    clock.current = booked.dossier.deadline + GRACE * DAY - SECOND
    assert await destroy(store) == []
    status = await status_of(store, "kek-202603")
    assert (status.in_use, status.due) == ((), False)
    assert status.describe().endswith(
        f"may be destroyed from {booked.dossier.deadline + GRACE * DAY:%Y-%m-%d %H:%M} UTC"
    )
    clock.advance(SECOND)
    assert (await status_of(store, "kek-202603")).describe().endswith("(due now)")
    assert await destroy(store) == ["kek-202603"]


async def test_a_key_that_wrapped_nothing_goes_when_its_month_and_grace_are_over(store, clock):
    store.keyring.create("kek-202601")  # January: its month ended on 1 February
    month_over = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    clock.current = month_over + GRACE * DAY - SECOND
    assert await destroy(store) == []
    clock.current = month_over + GRACE * DAY
    assert await destroy(store) == ["kek-202601"]
    assert not key_file(store, "kek-202601").exists()


async def test_the_current_months_key_never_goes(store, clock):
    clock.current = dt.datetime(2026, 5, 20, tzinfo=dt.UTC)
    store.keyring.create(kek_id_for(clock.current))
    store.keyring.create("kek-202604")
    # With no grace at all, April's unused key goes at once; May's is still in use.
    assert await destroy_expired_keks(store, actor=KEEPER, grace_days=0) == ["kek-202604"]
    status = (await key_statuses(store, grace_days=0))[-1]
    assert (status.key_id, status.in_use) == ("kek-202605", ("current month's key",))
    with pytest.raises(ValueError, match="grace_days must not be negative, got -1"):
        await destroy_expired_keks(store, actor=KEEPER, grace_days=-1)


async def test_a_crash_between_record_and_file_is_finished(store, clock):
    store.keyring.create("kek-202512")
    async with store.sessions() as session, session.begin():
        session.add(KekDestruction(kek_id="kek-202512", destroyed_at=clock.current,
                                   actor="system:earlier"))  # fmt: skip
    assert await destroy(store) == ["kek-202512"]
    assert not key_file(store, "kek-202512").exists()
    assert await kek_events(store) == []  # the earlier run recorded it


@pytest.fixture
def env(settings, isolated_env):
    return {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(settings.data_dir),
        "BALIE_DATABASE_URL": settings.resolved_database_url,
        "BALIE_KEY_DESTRUCTION_GRACE_DAYS": str(GRACE),
    }


def cli(env, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--operator", "beheerder", *args], env=env)
    assert result.exit_code == code, result.output
    return result.output


async def test_keys_status_shows_when_each_key_goes(env, store, clock):
    booked = await book(store, clock)  # kek-202603, deadline in April 2026
    store.keyring.create("kek-202601")
    clock.current = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
    assert await destroy(store) == ["kek-202601"]
    store.keyring.create("kek-203001")

    out = await asyncio.to_thread(cli, env, "keys", "status")
    deadline = booked.dossier.deadline
    assert (
        "kek-202601  destroyed  wraps 0 dossier key(s); 0 live dossier(s), last deadline -; "
        "destroyed 2026-03-10 00:00 UTC\n"
    ) in out
    assert (
        "kek-202603  present   wraps 1 dossier key(s); 1 live dossier(s), last deadline "
        f"{deadline:%Y-%m-%d %H:%M} UTC; in use (1 live dossier(s)); may be destroyed from "
        f"{deadline + GRACE * DAY:%Y-%m-%d %H:%M} UTC at the earliest\n"
    ) in out
    assert (
        "kek-203001  present   wraps 0 dossier key(s); 0 live dossier(s), last deadline -; "
        "may be destroyed from 2030-03-03 00:00 UTC\n"
    ) in out

    # A key in use that is gone from the keyring is still an error (exit 1).
    key_file(store, "kek-202603").unlink()
    out = await asyncio.to_thread(cli, env, "keys", "status", code=1)
    assert "kek-202603  MISSING   wraps 1 dossier key(s)" in out
    assert "error: keys in use but missing from the keyring: kek-202603" in out
