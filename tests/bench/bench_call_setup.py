"""Benchmark: call set-up time through Balie, with synthetic aiortc participants.

For each of BALIE_BENCH_CALLS (default 20) calls on the real server (create_app on a loopback
port, SQLite in a temporary directory): a synthetic clerk is connected and admits whoever
knocks; the clock starts when the synthetic resident opens its WebSocket and stops at the first
decoded video frame from the clerk. Prints the p50 and p95 and, as its last line, one JSON
object with `setup_ms_p50` and `setup_ms_p95`. Goals: p50 <= 500 ms, p95 <= 1000 ms.

Run as `.venv/bin/python tests/bench/bench_call_setup.py`. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from dossier.appointments import create_appointment, ensure_department, ensure_service_type
from identity.accounts import add_local_account
from identity.sessions import create_session
from retention.audit import Actor
from server.app import create_app
from server.appkeys import DOSSIER_STORE
from server.settings import Settings

from synthetic import SyntheticParticipant

CALLS = int(os.environ.get("BALIE_BENCH_CALLS", "20"))
P50_GOAL_MS, P95_GOAL_MS = 500.0, 1000.0
PROJECT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def one_call(
    http: aiohttp.ClientSession, app: web.Application, clerk_account: Any, base: str, origin: str
) -> float:
    store = app[DOSSIER_STORE]
    now = dt.datetime.now(dt.UTC)
    booked = await create_appointment(
        store, actor=Actor.system("bench"), department="bench", service_type="bench",
        starts_at=now + dt.timedelta(minutes=5), ends_at=now + dt.timedelta(minutes=35),
    )  # fmt: skip
    async with store.sessions() as session, session.begin():
        clerk_token, _ = await create_session(
            session, now=now, kind="staff", role="clerk", staff_id=clerk_account.id,
            department_id=clerk_account.department_id,
        )  # fmt: skip
        resident_token, _ = await create_session(
            session, now=now, kind="resident", role="resident",
            appointment_id=booked.appointment.id, resident_pseudonym="bench",
        )  # fmt: skip
    common = {"base_url": base, "origin": origin, "dossier_id": str(booked.dossier.id)}
    clerk = SyntheticParticipant(http, session_token=clerk_token, auto_admit=True, **common)
    resident = SyntheticParticipant(http, session_token=resident_token, **common)
    try:
        clerk_hello = await clerk.connect()
        started = time.perf_counter()
        await resident.connect()
        await resident.send({"type": "knock"})
        await asyncio.wait_for(resident.admitted.wait(), 10)
        await resident.call(clerk_hello["you"])
        await resident.first_remote_frame()
        return (time.perf_counter() - started) * 1000
    finally:
        await resident.close()
        await clerk.close()


async def run(root: Path) -> dict[str, object]:
    port = free_port()
    settings = Settings(environment="test", data_dir=root, port=port)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        store = app[DOSSIER_STORE]
        async with store.sessions() as session, session.begin():
            await ensure_department(session, code="bench", name="Bench")
            await ensure_service_type(session, code="bench", label="Bench")
            made = await add_local_account(
                session, secret_key=b"bench-secret-key-bench-secret-key", username="clerk",
                display_name="Clerk", employee_id="bench", role="clerk", department="bench",
                now=dt.datetime.now(dt.UTC), password="x" * 16,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        timings = []
        async with aiohttp.ClientSession() as http:
            await one_call(http, app, made.account, base, settings.public_origin)  # warm-up
            for number in range(1, CALLS + 1):
                ms = await one_call(http, app, made.account, base, settings.public_origin)
                timings.append(ms)
                print(f"call {number:2}: {ms:7.1f} ms")
    finally:
        await runner.cleanup()
    timings.sort()
    p50 = statistics.median(timings)
    p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
    print(f"setup_ms_p50 {p50:.1f} (goal <= {P50_GOAL_MS:.0f})")
    print(f"setup_ms_p95 {p95:.1f} (goal <= {P95_GOAL_MS:.0f})")
    return {
        "setup_ms_p50": round(p50, 1),
        "setup_ms_p95": round(p95, 1),
        "p50_goal_met": p50 <= P50_GOAL_MS,
        "p95_goal_met": p95 <= P95_GOAL_MS,
        "calls": len(timings),
    }


def main() -> None:
    bench_dir = PROJECT / "var" / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="call-", dir=bench_dir))
    try:
        result = asyncio.run(run(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
