"""Benchmark: Balie's audit chain on SQLite versus plain `sqlite3` and plain `hashlib`.

Measured, in one run and on one filesystem:

* append: BALIE_BENCH_EVENTS (default 2000) events through Balie's audit API, one event per
  transaction: `AuditLog.append` (the API for an event that is its own transaction: reads,
  refusals, failures), and for comparison `record_event` inside an async SQLAlchemy session
  transaction (the API for an event that belongs to a change, whose cost is shared with that
  change); against a plain `sqlite3` loop over a table of the same schema and pragmas that,
  per event, runs BEGIN IMMEDIATE, reads the head, hashes with `canonical_entry`/`chain_hash`,
  inserts the row (sequence number, entry, hash: the table's other columns are generated from
  the entry, on both sides), updates the head and commits.

      append_ratio = AuditLog.append events per second / plain events per second   goal >= 0.3
      append_in_transaction_ratio = the same for record_event in a session transaction

* verify: `retention.audit.verify_chain(engine)` over a chain of BALIE_BENCH_VERIFY_EVENTS
  (default 50000) events, read from the database; against a loop that chains
  `hashlib.sha256(DOMAIN_TAG + prev + canonical)` over the same rows' canonical bytes,
  precomputed in a list (no reading at all).

      verify_ratio = baseline seconds / verify_chain seconds                  goal >= 0.5

  and, to show where the time goes, against the least any verifier must do: read the same
  rows with plain `sqlite3` and hash them (`verify_ratio_vs_sqlite_read`).

The sides take turns (in blocks of 100 appends; whole runs for verify) and the median round of
each side counts. Run as `.venv/bin/python tests/bench/bench_audit.py`; the last line printed
is one JSON object. BALIE_BENCH_ROUNDS (default 3) and BALIE_BENCH_VERIFY_ROUNDS (default 5)
set the rounds, BALIE_BENCH_DIR the parent of the temporary directory (default var/bench in
the project, so that fsync hits the real disk, not a tmpfs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.db import create_engine, make_sessionmaker
from retention.audit import (
    DOMAIN_TAG,
    GENESIS_HASH,
    Actor,
    canonical_entry,
    chain_hash,
    record_event,
    verify_chain,
)
from retention.auditlog import AuditLog
from server.migrate import upgrade_to_head

PROJECT = Path(__file__).resolve().parents[2]

EVENTS = int(os.environ.get("BALIE_BENCH_EVENTS", "2000"))
VERIFY_EVENTS = int(os.environ.get("BALIE_BENCH_VERIFY_EVENTS", "50000"))
ROUNDS = int(os.environ.get("BALIE_BENCH_ROUNDS", "3"))
VERIFY_ROUNDS = int(os.environ.get("BALIE_BENCH_VERIFY_ROUNDS", "5"))
BENCH_DIR = Path(os.environ.get("BALIE_BENCH_DIR", str(PROJECT / "var" / "bench")))
WARMUP_EVENTS = 50
BLOCK = 100

APPEND_GOAL = 0.3
VERIFY_GOAL = 0.5

ACTOR = Actor.operator("bench")
ACTION = "bench.append"
OBJECT_TYPE = "dossier"

# The same connection set-up as dossier.db._sqlite_pragmas, so that both sides pay for the
# same durability (WAL, fsync on every commit) and the same secure_delete page writes.
PLAIN_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA secure_delete=ON",
)


def detail_json(n: int) -> str:
    """The detail exactly as record_event serialises {"n": n}."""
    return json.dumps({"n": n}, sort_keys=True, separators=(",", ":"))


# --- append -------------------------------------------------------------------------------


async def alone_append(log: AuditLog, count: int, first: int) -> float:
    """Append `count` events through AuditLog.append (one transaction each); returns seconds."""
    started = time.perf_counter()
    for n in range(first, first + count):
        await log.append(
            at=dt.datetime.now(dt.UTC),
            actor=ACTOR,
            action=ACTION,
            object_type=OBJECT_TYPE,
            object_ref=str(uuid.uuid4()),
            detail={"n": n},
        )
    return time.perf_counter() - started


async def balie_append(engine: AsyncEngine, count: int, first: int) -> float:
    """Append `count` events through record_event, one transaction each; returns seconds."""
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    for n in range(first, first + count):
        async with sessions() as session, session.begin():
            await record_event(
                session,
                at=dt.datetime.now(dt.UTC),
                actor=ACTOR,
                action=ACTION,
                object_type=OBJECT_TYPE,
                object_ref=str(uuid.uuid4()),
                detail={"n": n},
            )
    return time.perf_counter() - started


def plain_connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the module issues no BEGIN of its own, we write BEGIN IMMEDIATE
    # ourselves, as Balie's engine does.
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PLAIN_PRAGMAS:
        conn.execute(pragma)
    return conn


def copy_audit_schema(source: Path, target: sqlite3.Connection) -> None:
    """Create the audit tables and indexes exactly as Balie's migrations made them."""
    with closing(sqlite3.connect(source)) as src:
        statements = [
            sql
            for (sql,) in src.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name IN ('audit_events', 'audit_head')"
                " AND sql IS NOT NULL"  # tables, then their indexes and append-only triggers
                " ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END"
            )
        ]
    for sql in statements:
        target.execute(sql)


def plain_append(conn: sqlite3.Connection, count: int, first: int) -> float:
    """The same appends with bare sqlite3, one transaction each; returns seconds."""
    actor = str(ACTOR)
    started = time.perf_counter()
    for n in range(first, first + count):
        at = dt.datetime.now(dt.UTC)
        object_ref, detail = str(uuid.uuid4()), detail_json(n)
        conn.execute("BEGIN IMMEDIATE")
        head = conn.execute("SELECT seq, entry_hash FROM audit_head WHERE id = 1").fetchone()
        seq, prev = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
        canonical = canonical_entry(
            seq=seq,
            occurred_at=at,
            actor=actor,
            action=ACTION,
            object_type=OBJECT_TYPE,
            object_ref=object_ref,
            result="ok",
            detail=detail,
        )
        entry = chain_hash(prev, canonical)
        conn.execute(
            "INSERT INTO audit_events (seq, entry, entry_hash) VALUES (?, ?, ?)",
            (seq, canonical.decode(), entry),
        )
        if head is None:
            conn.execute(
                "INSERT INTO audit_head (id, seq, entry_hash) VALUES (1, ?, ?)", (seq, entry)
            )
        else:
            conn.execute("UPDATE audit_head SET seq = ?, entry_hash = ? WHERE id = 1", (seq, entry))
        conn.execute("COMMIT")
    return time.perf_counter() - started


# --- verify -------------------------------------------------------------------------------


def extend_chain(path: Path, total: int) -> int:
    """Untimed: append properly chained rows to Balie's database until it holds `total`.

    The rows are built like record_event's (same fields, canonical bytes and hashes) but in
    one transaction, which is only a way to get a long chain quickly. Returns rows added.
    """
    with closing(plain_connect(path)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        head_seq, prev = conn.execute(
            "SELECT seq, entry_hash FROM audit_head WHERE id = 1"
        ).fetchone()
        base = dt.datetime.now(dt.UTC)
        rows = []
        for seq in range(head_seq + 1, total + 1):
            at = base + dt.timedelta(microseconds=seq)
            object_ref, detail = str(uuid.uuid4()), detail_json(seq)
            canonical = canonical_entry(
                seq=seq,
                occurred_at=at,
                actor=str(ACTOR),
                action=ACTION,
                object_type=OBJECT_TYPE,
                object_ref=object_ref,
                result="ok",
                detail=detail,
            )
            entry = chain_hash(prev, canonical)
            rows.append((seq, canonical.decode(), entry))
            prev = entry
        conn.executemany("INSERT INTO audit_events (seq, entry, entry_hash) VALUES (?, ?, ?)", rows)
        if rows:
            conn.execute(
                "UPDATE audit_head SET seq = ?, entry_hash = ? WHERE id = 1", (rows[-1][0], prev)
            )
        conn.execute("COMMIT")
        return len(rows)


def canonical_rows(path: Path) -> tuple[list[bytes], str]:
    """Untimed: every event's canonical bytes in order, and the head hash they must reach."""
    with closing(sqlite3.connect(path)) as conn:
        canon = [
            entry.encode()
            for (entry,) in conn.execute("SELECT entry FROM audit_events ORDER BY seq")
        ]
        (head,) = conn.execute("SELECT entry_hash FROM audit_head WHERE id = 1").fetchone()
    return canon, head


def raw_chain(canon: list[bytes]) -> tuple[float, str]:
    """The floor for verification: SHA-256 chaining over precomputed bytes; (seconds, hash)."""
    sha256, fromhex = hashlib.sha256, bytes.fromhex
    started = time.perf_counter()
    h = GENESIS_HASH
    prev = fromhex(h)
    for canonical in canon:
        h = sha256(DOMAIN_TAG + prev + canonical).hexdigest()
        prev = fromhex(h)  # the next event's prev_hash, as stored: hex text
    return time.perf_counter() - started, h


def read_and_hash(path: Path) -> float:
    """The least a verifier must do: read every row with plain sqlite3 and chain-hash it."""
    sha256, fromhex = hashlib.sha256, bytes.fromhex
    started = time.perf_counter()
    with closing(sqlite3.connect(path)) as conn:
        prev = GENESIS_HASH
        rows = conn.execute("SELECT seq, entry, entry_hash FROM audit_events ORDER BY seq")
        for seq, entry, entry_hash in rows:
            if sha256(DOMAIN_TAG + fromhex(prev) + entry.encode()).hexdigest() != entry_hash:
                raise AssertionError(f"plain read: event {seq} does not verify")
            prev = entry_hash
    return time.perf_counter() - started


async def timed_verify(engine: AsyncEngine, expected: int) -> float:
    started = time.perf_counter()
    report = await verify_chain(engine)
    elapsed = time.perf_counter() - started
    if not report.ok or report.count != expected:
        raise AssertionError(f"verify_chain failed on the benchmark chain: {report}")
    return elapsed


# --- run ----------------------------------------------------------------------------------


def median_of(label: str, seconds: list[float], events: int) -> float:
    middle = statistics.median(seconds)
    rounds = ", ".join(f"{s:.3f}" for s in seconds)
    print(f"{label}: median {middle:.3f} s = {events / middle:,.0f} events/s  (rounds: {rounds})")
    return middle


async def run(root: Path) -> dict[str, object]:
    balie_path, plain_path = root / "balie.db", root / "plain.db"
    engine = create_engine(f"sqlite+aiosqlite:///{balie_path}")
    await upgrade_to_head(engine)
    conn = plain_connect(plain_path)
    copy_audit_schema(balie_path, conn)

    # Warm-up: imports, SQLAlchemy's compiled statement cache, the connection pool, the
    # first pages of both files. These events are part of the chains but not of the timing.
    log = AuditLog(engine)
    await alone_append(log, WARMUP_EVENTS, 0)
    await balie_append(engine, WARMUP_EVENTS, WARMUP_EVENTS)
    plain_append(conn, 2 * WARMUP_EVENTS, 0)

    print(f"append: {EVENTS} events per round, {ROUNDS} rounds per side, files in {root}")
    alone_times: list[float] = []
    balie_times: list[float] = []
    plain_times: list[float] = []
    next_n = 2 * WARMUP_EVENTS
    for _ in range(ROUNDS):
        # Within a round the sides take turns in blocks of BLOCK events, so that both meet the
        # same disk: fsync latency on a shared (virtual) disk drifts by a factor of several
        # within seconds, which whole-round alternation would hand to one side only.
        alone_round = balie_round = plain_round = 0.0
        for start in range(0, EVENTS, BLOCK):
            size = min(BLOCK, EVENTS - start)
            alone_round += await alone_append(log, size, next_n)
            balie_round += await balie_append(engine, size, next_n + size)
            plain_round += plain_append(conn, 2 * size, next_n) / 2
            next_n += 2 * size
        alone_times.append(alone_round)
        balie_times.append(balie_round)
        plain_times.append(plain_round)
    conn.close()
    await log.close()
    alone_s = median_of("append AuditLog.append", alone_times, EVENTS)
    balie_s = median_of("append record_event in a session", balie_times, EVENTS)
    plain_s = median_of("append plain sqlite3", plain_times, EVENTS)
    append_ratio = plain_s / alone_s  # same event count: rate ratio = inverse time ratio
    in_transaction_ratio = plain_s / balie_s

    # Verify: Balie's own file, its chain (appended above through record_event) extended to
    # VERIFY_EVENTS with rows in the identical format.
    await engine.dispose()  # no pooled connection holds the file while rows are added
    appended = next_n
    added = extend_chain(balie_path, VERIFY_EVENTS)
    total = appended + added
    canon, head = canonical_rows(balie_path)
    if len(canon) != total:
        raise AssertionError(f"expected {total} events, found {len(canon)}")
    print(f"verify: {total} events ({appended} via record_event, {added} added in bulk)")
    await timed_verify(engine, total)  # warm-up, and proof that the chain is sound
    verify_times: list[float] = []
    raw_times: list[float] = []
    for _ in range(VERIFY_ROUNDS):
        verify_times.append(await timed_verify(engine, total))
        seconds, last = raw_chain(canon)
        if last != head:
            raise AssertionError("the hashlib baseline does not reach the head hash")
        raw_times.append(seconds)
    await engine.dispose()
    verify_s = median_of("verify_chain", verify_times, total)
    raw_s = median_of("hashlib chain", raw_times, total)
    verify_ratio = raw_s / verify_s
    read_s = statistics.median(read_and_hash(balie_path) for _ in range(VERIFY_ROUNDS))
    print(f"plain sqlite3 read + hash: {read_s:.4f} s")

    print(f"append_ratio {append_ratio:.3f} (goal >= {APPEND_GOAL})")
    print(f"append_in_transaction_ratio {in_transaction_ratio:.3f}")
    print(f"verify_ratio {verify_ratio:.3f} (goal >= {VERIFY_GOAL})")
    return {
        "append_ratio": round(append_ratio, 4),
        "append_goal_met": append_ratio >= APPEND_GOAL,
        "append_in_transaction_ratio": round(in_transaction_ratio, 4),
        "verify_ratio": round(verify_ratio, 4),
        "verify_goal_met": verify_ratio >= VERIFY_GOAL,
        "verify_ratio_vs_sqlite_read": round(read_s / verify_s, 4),
        "append_events": EVENTS,
        "append_rounds": ROUNDS,
        "verify_rounds": VERIFY_ROUNDS,
        "auditlog_append_per_s": round(EVENTS / alone_s, 1),
        "record_event_append_per_s": round(EVENTS / balie_s, 1),
        "plain_append_per_s": round(EVENTS / plain_s, 1),
        "verify_events": total,
        "verify_chain_s": round(verify_s, 4),
        "hashlib_chain_s": round(raw_s, 4),
        "verify_chain_events_per_s": round(total / verify_s, 1),
        "hashlib_chain_events_per_s": round(total / raw_s, 1),
    }


def main() -> None:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="audit-", dir=BENCH_DIR))
    try:
        result = asyncio.run(run(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
