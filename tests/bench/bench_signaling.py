"""Benchmark: call signaling through Balie versus a bare aiohttp WebSocket relay.

BALIE_BENCH_CALLS (default 500) calls, two WebSockets each (a clerk and a resident on the
same dossier's `/ws/calls/{dossier_id}`), exchange ICE-candidate-sized `ice` messages (about
290 bytes; relayed, never stored). The same client code drives, in the same run, a bare
aiohttp relay that pairs two sockets by the call id in the URL and forwards every text frame
to the other one. Both servers run as subprocesses on 127.0.0.1 (Balie as `python -m server
serve` on SQLite in a temporary directory, prepared beforehand with the appointments,
accounts and sessions), so that neither shares an event loop with the load generator. The
servers take turns in every phase, so that a busy moment of the machine hits both alike.

Per server: a warm-up call, then all calls set up (both sockets connected with the session
cookie, knock, admit, admitted), then

* throughput: every socket sends 40 messages back-to-back (inside the per-socket burst of 60
  that Balie allows), timed until the peers have received all of them; BALIE_BENCH_ROUNDS
  (default 3) rounds, 3 s apart so that the rate-limit bucket refills.
  relay_ratio = the median round's Balie messages per second / the bare relay's.  goal >= 0.7
* latency: every socket sends 5 messages a second (jittered start) for 8 s; the time from the
  send to the peer's receipt, both in this process. p99_ms is Balie's.           goal <= 50 ms
* memory: Balie's resident set (VmRSS) with all sockets open (connected and admitted, and
  after the bursts: the larger), minus the same after the warm-up with no sockets, per
  socket. rss_per_socket_kib                                                    goal <= 100

Any `error` message (e.g. `rate_limited`), lost message, socket closed by a server, or
timeout fails the run (exit code 1); missed goals do not (this is a measurement).

Reading the figures: the client is one Python process, and on a 2-core machine it, not the
bare relay, is the limit of the relay's throughput (its CPU share is printed per round, with
the servers' and that of other processes on the machine). A client-bound baseline makes
relay_ratio flatter Balie; the servers' CPU time per message does not depend on the client,
and `server_cpu_ratio` (the relay's over Balie's) says how much more work Balie does per
message. The client does not offer permessage-deflate (a browser would, and then both
servers would compress). On a shared machine (others > 0 %) the figures are noisy.

Run as `.venv/bin/python tests/bench/bench_signaling.py`; the last line printed is one JSON
object. BALIE_BENCH_PROFILE=<file> runs Balie under cProfile and writes its stats there.
Traffic stays on 127.0.0.1; every wait is bounded and the servers are stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

CALLS = int(os.environ.get("BALIE_BENCH_CALLS", "500"))
ROUNDS = int(os.environ.get("BALIE_BENCH_ROUNDS", "3"))
PROFILE = os.environ.get("BALIE_BENCH_PROFILE", "")
BURST_MESSAGES = 40  # per socket and round; Balie allows a burst of 60, then 20 a second
REFILL_PAUSE = 3.0  # seconds: 40 tokens come back at 20 a second in 2 s
STEADY_RATE = 5.0  # messages per second per socket
STEADY_SECONDS = 8.0
CONNECT_CONCURRENCY = 50  # calls being set up at once
SETUP_TIMEOUT = 300.0
DRAIN_TIMEOUT = 30.0  # for the last messages of a phase to arrive
TOTAL_TIMEOUT = 1200.0
RATIO_GOAL, P99_GOAL_MS, RSS_GOAL_KIB = 0.7, 50.0, 100.0
PROJECT = Path(__file__).resolve().parents[2]
SESSION_COOKIE = "__Host-balie"
# How an ice message starts as both servers pass it on (Balie re-encodes it; the relay does
# not), and the send time that the client adds to the candidate.
ICE_PREFIX, STAMP = '{"type": "ice"', '"t": '
CANDIDATE = (
    "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 10.0.0.2 "
    "rport 54321 generation 0 ufrag abcd network-cost 999"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the bare relay (runs as `this script --baseline-relay PORT`) ---------------------------


def serve_baseline_relay(port: int) -> None:
    """Pair two sockets by the call id in the URL; forward each text frame to the other."""
    pairs: dict[str, list[web.WebSocketResponse]] = {}

    async def relay(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        pair = pairs.setdefault(request.match_info["call"], [])
        pair.append(ws)
        if len(pair) == 2:  # so that the clients know when to start (set-up, not relaying)
            for each in pair:
                await each.send_str('{"type":"paired"}')
        try:
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT and len(pair) == 2:
                    await (pair[1] if pair[0] is ws else pair[0]).send_str(frame.data)
        finally:
            pair.remove(ws)
            if not pair:
                pairs.pop(request.match_info["call"], None)
        return ws

    app = web.Application()
    app.router.add_get("/relay/{call}", relay)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- the load generator ----------------------------------------------------------------------


@dataclass
class Tally:
    """What arrived during one phase, over all sockets."""

    expected: float = math.inf
    received: int = 0
    last_at: float = 0.0  # when the latest message arrived
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, now: float, sent: float) -> None:
        self.received += 1
        self.last_at = now
        self.latencies.append(now - sent)
        if self.received >= self.expected:
            self.done.set()

    def expect(self, count: int) -> None:
        self.expected = count
        if self.received >= count:
            self.done.set()


@dataclass
class Bench:
    """State shared by all connections of one run."""

    tally: Tally = field(default_factory=Tally)
    errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unexpected_closes: int = 0


class Conn:
    """One WebSocket: a reader task counts `ice` arrivals, anything else is kept for set-up."""

    def __init__(self, bench: Bench, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.bench = bench
        self.ws = ws
        self.me = ""
        self.prefix = ""
        self.seen: list[dict[str, Any]] = []
        self.arrival = asyncio.Event()
        self.closing = False
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, bench: Bench, http: aiohttp.ClientSession, url: str, headers: dict[str, str]
    ) -> Conn:
        return cls(bench, await http.ws_connect(url, headers=headers))

    def talk_to(self, peer: str) -> None:
        """Address ice messages to `peer`: a browser's candidate, plus the time it is sent."""
        candidate = {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0,
                     "usernameFragment": "abcd", "t": 0}  # fmt: skip
        text = json.dumps({"type": "ice", "to": peer, "candidate": candidate})
        self.prefix = text[: text.rindex(STAMP) + len(STAMP)]  # the time and "}}" follow
        assert text.startswith(ICE_PREFIX)

    async def send_ice(self) -> None:
        await self.ws.send_str(f"{self.prefix}{time.perf_counter()!r}}}}}")

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            now, data = time.perf_counter(), frame.data
            if data.startswith(ICE_PREFIX):  # the common case, without a JSON parse
                stamp = data.rfind(STAMP)
                self.bench.tally.arrived(
                    now, float(data[stamp + len(STAMP) : data.find("}", stamp)])
                )
                continue
            message = json.loads(data)
            kind = message.get("type")
            if kind == "ice":
                self.bench.tally.arrived(now, message["candidate"]["t"])
            elif kind == "error":
                self.bench.errors.append(str(message.get("code")))
            else:
                self.seen.append(message)
                self.arrival.set()
        if not self.closing:
            self.bench.unexpected_closes += 1

    async def expect(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30) -> Any:
        """The first message so far (or to come) that `match`es."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.seen:
                    if match(message):
                        return message
                self.arrival.clear()
                await self.arrival.wait()

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(BaseException):
            await self.reader


Pair = tuple[Conn, Conn]


@dataclass(frozen=True)
class BalieCall:
    dossier_id: str
    clerk_token: str
    resident_token: str


async def prepare_balie(root: Path, port: int, count: int) -> list[BalieCall]:
    """Department, clerk account, `count` appointments and a session per participant."""
    from dossier.appointments import create_appointment, ensure_department, ensure_service_type
    from dossier.db import DatabaseClock
    from identity.accounts import add_local_account
    from identity.sessions import create_session
    from retention.audit import Actor
    from server.migrate import upgrade_to_head
    from server.resources import make_store, open_engine
    from server.settings import Settings

    settings = Settings(environment="test", data_dir=root, port=port)
    engine = open_engine(settings)
    try:
        await upgrade_to_head(engine)
        store = make_store(settings, engine, DatabaseClock())
        try:
            now = dt.datetime.now(dt.UTC)
            async with store.sessions() as session, session.begin():
                await ensure_department(session, code="bench", name="Bench")
                await ensure_service_type(session, code="bench", label="Bench")
                made = await add_local_account(
                    session, secret_key=settings.secret_key.get_secret_value().encode(),
                    username="clerk", display_name="Clerk", employee_id="bench", role="clerk",
                    department="bench", now=now, password="x" * 16,
                )  # fmt: skip
            booked = []
            for _ in range(count):
                one = await create_appointment(
                    store, actor=Actor.system("bench"), department="bench", service_type="bench",
                    starts_at=now + dt.timedelta(minutes=5), ends_at=now + dt.timedelta(minutes=35),
                )  # fmt: skip
                booked.append(one)
            calls = []
            async with store.sessions() as session, session.begin():
                for one in booked:
                    clerk_token, _ = await create_session(
                        session, now=now, kind="staff", role="clerk", staff_id=made.account.id,
                        department_id=made.account.department_id,
                    )  # fmt: skip
                    resident_token, _ = await create_session(
                        session, now=now, kind="resident", role="resident",
                        appointment_id=one.appointment.id, resident_pseudonym="bench",
                    )  # fmt: skip
                    calls.append(BalieCall(str(one.dossier.id), clerk_token, resident_token))
            return calls
        finally:
            await store.audit.close()
    finally:
        await engine.dispose()


def is_type(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())


async def balie_pair(
    bench: Bench, http: aiohttp.ClientSession, base: str, origin: str, call: BalieCall
) -> Pair:
    """Clerk and resident connected; the resident knocks, the clerk admits."""
    url = f"{base}/ws/calls/{call.dossier_id}"
    clerk = await Conn.open(
        bench, http, url, {"Cookie": f"{SESSION_COOKIE}={call.clerk_token}", "Origin": origin}
    )
    resident = await Conn.open(
        bench, http, url, {"Cookie": f"{SESSION_COOKIE}={call.resident_token}", "Origin": origin}
    )
    clerk.me = (await clerk.expect(is_type("hello")))["you"]
    resident.me = (await resident.expect(is_type("hello")))["you"]
    await resident.ws.send_str('{"type":"knock"}')
    await clerk.expect(is_type("participant", id=resident.me, status="waiting"))
    await clerk.ws.send_str(json.dumps({"type": "admit", "participant": resident.me}))
    await resident.expect(is_type("admitted"))
    await resident.expect(is_type("participant", id=clerk.me))  # the server knows its peer
    clerk.talk_to(resident.me)
    resident.talk_to(clerk.me)
    return clerk, resident


async def relay_pair(bench: Bench, http: aiohttp.ClientSession, base: str, number: int) -> Pair:
    url = f"{base}/relay/{number}"
    first = await Conn.open(bench, http, url, {})
    second = await Conn.open(bench, http, url, {})
    for conn in (first, second):
        await conn.expect(is_type("paired"))
    first.me, second.me = f"c{number:015d}", f"r{number:015d}"  # as long as Balie's ids
    first.talk_to(second.me)
    second.talk_to(first.me)
    return first, second


# --- measuring ---------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def machine_busy_seconds() -> float:
    """CPU time of every process on the machine (user, nice, system, irq, softirq, steal)."""
    user, nice, system, _, _, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Usage:
    """Wall time, and the CPU that the server, this client and everything else used in it
    (others: the machine may be shared, which makes a run noisy)."""

    pid: int
    wall: float = 0.0
    server: float = 0.0
    client: float = 0.0
    others: float = 0.0

    def __enter__(self) -> Usage:
        self._marks = (
            time.perf_counter(),
            cpu_seconds(self.pid),
            time.process_time(),
            machine_busy_seconds(),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        wall, server, client, busy = self._marks
        self.wall = time.perf_counter() - wall
        self.server = cpu_seconds(self.pid) - server
        self.client = time.process_time() - client
        busy = machine_busy_seconds() - busy
        self.others = max(0.0, busy - self.server - self.client) / max(self.wall, 1e-9)

    def __str__(self) -> str:
        wall = max(self.wall, 1e-9)
        return (
            f"cpu: server {self.server / wall:4.0%}, client {self.client / wall:4.0%}, "
            f"others {self.others:4.0%}"
        )


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def finish(bench: Bench, tally: Tally, sent: int, what: str) -> bool:
    """Wait for the phase's last messages; a shortfall is a failure."""
    tally.expect(sent)
    try:
        await asyncio.wait_for(tally.done.wait(), DRAIN_TIMEOUT)
    except TimeoutError:
        bench.failures.append(f"{what}: {sent - tally.received} of {sent} messages lost")
        return False
    return True


async def burst_round(bench: Bench, conns: list[Conn]) -> float:
    """Every socket sends BURST_MESSAGES at once; messages per second until all arrived."""
    bench.tally = tally = Tally()

    async def send(conn: Conn) -> None:
        for _ in range(BURST_MESSAGES):
            await conn.send_ice()

    started = time.perf_counter()
    await asyncio.gather(*(send(conn) for conn in conns))
    sent = BURST_MESSAGES * len(conns)
    if not await finish(bench, tally, sent, "throughput"):
        return 0.0
    return sent / (tally.last_at - started)


async def steady(bench: Bench, conns: list[Conn]) -> list[float]:
    """Every socket sends STEADY_RATE messages a second; the latencies in ms, sorted."""
    bench.tally = tally = Tally()
    interval, count = 1 / STEADY_RATE, round(STEADY_SECONDS * STEADY_RATE)
    begin = time.perf_counter() + 0.2

    async def send(conn: Conn) -> None:
        first = begin + random.uniform(0, interval)
        for number in range(count):
            delay = first + number * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await conn.send_ice()

    await asyncio.gather(*(send(conn) for conn in conns))
    await finish(bench, tally, count * len(conns), "latency")
    return sorted(latency * 1000 for latency in tally.latencies)


@dataclass
class Server:
    """One server under test and what was measured of it."""

    name: str
    pid: int
    warm_pair: Callable[[], Awaitable[Pair]]
    make_pairs: list[Callable[[], Awaitable[Pair]]]
    pairs: list[Pair] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)  # server CPU microseconds per message
    latencies: list[float] = field(default_factory=list)

    @property
    def conns(self) -> list[Conn]:
        return [conn for pair in self.pairs for conn in pair]

    def rss_per_socket(self) -> float:
        # A socket's cost is what the server holds while it is open: measured once all are
        # connected and admitted, and again after the bursts, when buffers, queues and the
        # allocator's pools have grown to what traffic makes of them; the larger counts. Both
        # are taken with every socket still open; what stays after they close is not theirs.
        held = max(self.rss["connected"], self.rss["after bursts"]) - self.rss["idle"]
        return held / max(1, len(self.conns))


async def warm_up(bench: Bench, server: Server) -> None:
    pair = await server.warm_pair()
    bench.tally = tally = Tally()
    for _ in range(5):
        for conn in pair:
            await conn.send_ice()
    await finish(bench, tally, 10, f"{server.name} warm-up")
    for conn in pair:
        await conn.close()


async def connect(server: Server) -> None:
    """Set up every call, CONNECT_CONCURRENCY at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def gated(make: Callable[[], Awaitable[Pair]]) -> Pair:
        async with gate:
            return await make()

    with Usage(server.pid) as usage:
        setups = [asyncio.ensure_future(gated(make)) for make in server.make_pairs]
        try:
            await asyncio.wait_for(asyncio.gather(*setups), SETUP_TIMEOUT)
        finally:  # keep what did connect, so that it is closed
            server.pairs = [s.result() for s in setups if s.done() and not s.cancelled()]
    print(
        f"{server.name:8} set-up: {len(server.pairs)} calls, {len(server.conns)} sockets "
        f"in {usage.wall:.1f} s"
    )


async def measure(bench: Bench, servers: list[Server]) -> float:
    """Warm-up, set-up, the throughput rounds and the steady phase; the servers take turns
    (the order alternating by round), so that a busy moment of the machine hits both alike.
    Returns the most CPU that other processes took during a measurement (in cores)."""
    others = 0.0
    for server in servers:
        await asyncio.wait_for(warm_up(bench, server), SETUP_TIMEOUT)
    await asyncio.sleep(1)
    for server in servers:
        server.rss["idle"] = rss_kib(server.pid)
    for server in servers:
        await connect(server)
    await asyncio.sleep(1)
    for server in servers:
        server.rss["connected"] = rss_kib(server.pid)

    for number in range(1, ROUNDS + 1):
        await asyncio.sleep(REFILL_PAUSE)  # Balie's buckets refill
        for server in servers if number % 2 else servers[::-1]:
            conns = server.conns
            with Usage(server.pid) as usage:
                rate = await asyncio.wait_for(burst_round(bench, conns), 120)
            sent = BURST_MESSAGES * len(conns)
            server.rates.append(rate)
            server.costs.append(usage.server / sent * 1e6)
            others = max(others, usage.others)
            print(
                f"{server.name:8} throughput round {number}: {rate:9,.0f} messages/s "
                f"({sent:,} in {usage.wall:.2f} s; server {server.costs[-1]:4.1f} us cpu per "
                f"message; {usage})"
            )
    for server in servers:
        server.rss["after bursts"] = rss_kib(server.pid)

    for server in servers:
        await asyncio.sleep(REFILL_PAUSE)
        conns = server.conns
        with Usage(server.pid) as usage:
            server.latencies = await asyncio.wait_for(steady(bench, conns), STEADY_SECONDS + 60)
        others = max(others, usage.others)
        ordered = server.latencies
        print(
            f"{server.name:8} latency at {STEADY_RATE * len(conns):,.0f} messages/s: "
            f"p50 {percentile(ordered, 0.5):.1f} ms, p99 {percentile(ordered, 0.99):.1f} ms, "
            f"max {ordered[-1]:.1f} ms ({len(ordered):,} messages; {usage})"
        )
    for server in servers:
        print(
            f"{server.name:8} rss: "
            + ", ".join(f"{when} {kib / 1024:.1f} MiB" for when, kib in server.rss.items())
            + f": {server.rss_per_socket():.1f} KiB per socket"
        )
    return others


# --- processes and the run -----------------------------------------------------------------


def raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        print(f"warning: open-files limit {target} is below the {needed} this run needs")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # aiohttp shuts down cleanly (and cProfile writes)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"server on port {port} did not start:\n{log.read_text()}")


async def run(root: Path) -> dict[str, Any]:
    bench = Bench()
    balie_port, relay_port = free_port(), free_port()
    started = time.perf_counter()
    calls = await prepare_balie(root, balie_port, CALLS + 1)  # one for the warm-up
    took = time.perf_counter() - started
    print(f"prepared {CALLS + 1} appointments and {2 * CALLS + 2} sessions in {took:.1f} s")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    origin = f"http://127.0.0.1:{balie_port}"
    balie_env = env | {
        "BALIE_ENVIRONMENT": "test",
        "BALIE_DATA_DIR": str(root),
        "BALIE_HOST": "127.0.0.1",
        "BALIE_PORT": str(balie_port),
        "BALIE_PUBLIC_URL": origin,
    }
    profile = ["-m", "cProfile", "-o", str(Path(PROFILE).resolve())] if PROFILE else []
    logs = {"relay": root / "relay.log", "balie": root / "balie.log"}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        relay = start(
            [sys.executable, __file__, "--baseline-relay", str(relay_port)], env, logs["relay"]
        )
        processes.append(relay)
        balie = start([sys.executable, *profile, "-m", "server", "serve"], balie_env, logs["balie"])
        processes.append(balie)
        await wait_listening(relay_port, relay, logs["relay"])
        await wait_listening(balie_port, balie, logs["balie"])
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            relay_base = f"http://127.0.0.1:{relay_port}"
            baseline = Server(
                "baseline",
                relay.pid,
                partial(relay_pair, bench, http, relay_base, 0),
                [partial(relay_pair, bench, http, relay_base, n) for n in range(1, CALLS + 1)],
            )
            ours = Server(
                "balie",
                balie.pid,
                partial(balie_pair, bench, http, origin, origin, calls[0]),
                [partial(balie_pair, bench, http, origin, origin, call) for call in calls[1:]],
            )
            try:
                others = await measure(bench, [baseline, ours])
            finally:
                closing = [conn.close() for server in (baseline, ours) for conn in server.conns]
                await asyncio.wait_for(asyncio.gather(*closing), 60)
    finally:
        for process in processes:
            stop(process)
    server_log = logs["balie"].read_text(errors="replace")
    dropped = server_log.count("dropped a message")
    if "Traceback" in server_log or dropped:
        print(f"Balie's log ({dropped} dropped messages):\n{server_log[-4000:]}")
    if bench.errors:
        codes = sorted(set(bench.errors))
        bench.failures.append(f"{len(bench.errors)} error messages from Balie: {codes}")
    if bench.unexpected_closes:
        bench.failures.append(f"{bench.unexpected_closes} sockets closed by a server")
    for server in (baseline, ours):
        if len(server.conns) != 2 * CALLS:
            bench.failures.append(f"{server.name}: only {len(server.conns)} sockets connected")
    # Rounds are paired (the servers take turns), so the ratio is the median of the rounds'.
    ratio = statistics.median(
        ours_rate / base_rate if base_rate else 0.0
        for ours_rate, base_rate in zip(ours.rates, baseline.rates, strict=True)
    )
    p99 = percentile(ours.latencies, 0.99)
    rss = ours.rss_per_socket()
    ours_cost, base_cost = statistics.median(ours.costs), statistics.median(baseline.costs)
    result = {
        "calls": CALLS,
        "sockets": 2 * CALLS,
        "relay_ratio": round(ratio, 3),
        "balie_messages_per_s": round(statistics.median(ours.rates)),
        "baseline_messages_per_s": round(statistics.median(baseline.rates)),
        "balie_server_us_per_message": round(ours_cost, 1),
        "baseline_server_us_per_message": round(base_cost, 1),
        "server_cpu_ratio": round(base_cost / ours_cost, 3) if ours_cost else 0.0,
        "p50_ms": round(percentile(ours.latencies, 0.5), 1),
        "p99_ms": round(p99, 1),
        "baseline_p99_ms": round(percentile(baseline.latencies, 0.99), 1),
        "rss_per_socket_kib": round(rss, 1),
        "baseline_rss_per_socket_kib": round(baseline.rss_per_socket(), 1),
        "others_cpu_max": round(others, 2),
        "errors": len(bench.errors),
        "dropped_by_server": dropped,
        "failures": bench.failures,
        "goals_met": ratio >= RATIO_GOAL and p99 <= P99_GOAL_MS and rss <= RSS_GOAL_KIB,
    }
    print(f"relay_ratio {ratio:.3f} (goal >= {RATIO_GOAL})")
    print(
        f"server_cpu_ratio {result['server_cpu_ratio']:.3f} (server cpu per message: "
        f"baseline {result['baseline_server_us_per_message']} us, "
        f"balie {result['balie_server_us_per_message']} us)"
    )
    print(f"p99_ms {p99:.1f} (goal <= {P99_GOAL_MS:.0f})")
    print(f"rss_per_socket_kib {rss:.1f} (goal <= {RSS_GOAL_KIB:.0f})")
    if others > 0.25:
        print(f"note: other processes took up to {others:.0%} of a core during a measurement")
    for failure in bench.failures:
        print(f"FAILED: {failure}")
    return result


def main() -> None:
    if sys.argv[1:2] == ["--baseline-relay"]:
        serve_baseline_relay(int(sys.argv[2]))
        return
    raise_open_files_limit(2 * CALLS + 100)
    bench_dir = PROJECT / "var" / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="signaling-", dir=bench_dir))
    try:
        result = asyncio.run(asyncio.wait_for(run(root), TOTAL_TIMEOUT))
    except Exception as exc:  # a failed run still ends with its JSON line
        print(f"FAILED: {type(exc).__name__}: {exc}")
        result = {"calls": CALLS, "sockets": 2 * CALLS, "failures": [repr(exc)]}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
