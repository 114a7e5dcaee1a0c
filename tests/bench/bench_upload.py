"""Benchmark: a large document uploaded over HTTP into Balie versus a bare aiohttp handler.

Both servers run as subprocesses on 127.0.0.1, so that neither shares an event loop (or a
resident set) with the client, which is this script:

* Balie: `.venv/bin/balie serve` on SQLite in a temporary directory, with
  BALIE_DOCUMENT_INSPECTION=false (a PDF is still sniffed and checked against its name and
  declared type, but not read whole and parsed) and BALIE_DOCUMENT_MAX_BYTES above the size.
  Before it starts, its database gets a department, an appointment with its dossier, and one
  resident session per upload (the upload rate limit counts per session).
* baseline: this script with `--baseline PORT DIR`, a bare aiohttp handler that reads the
  same multipart request with `request.multipart()`, streams the file part to a new file with
  `read_chunk(64 KiB)` and `write`, fsyncs it (as Balie's store does) and answers 201.

The client sends the same request to both: POST multipart/form-data with a Content-Length,
one part "file" named bench.pdf (application/pdf), BALIE_BENCH_MIB (default 256) MiB that
start with "%PDF-1.7" and continue with one random MiB repeated (the client never holds more
than that MiB). Time is measured from the request's start to the end of the response; rounds
alternate (baseline, Balie, baseline, ...) and the headline compares the median round of each:

    upload_ratio        = baseline seconds / Balie seconds (1.0 = as fast)    goal >= 0.5
    peak_rss_growth_mib = the Balie server's peak RSS during an upload
                          minus its RSS just before it (worst round)          goal <  32 MiB

Peak RSS is the kernel's high-water mark of the server process (VmHWM, reset through
/proc/PID/clear_refs just before the upload) where that is allowed, and a thread sampling the
RSS every 20 ms otherwise (which can miss a shorter spike); the sampled peak is printed too.
Every Balie upload must answer 201 with the payload's size; the last one is downloaded again
(untimed) and must hash to the payload's SHA-256.

Before every timed upload a scratch file the size of the upload is written and unlinked
(untimed), as in bench_dossier_store.py: on this VM memory freed a moment ago goes back to
the host, and first touching it again costs more than the copy, which otherwise makes the
page-cache writes of either server swing from round to round.

Both servers run with the same malloc thresholds (GLIBC_TUNABLES: mmap threshold 4 MiB, trim
threshold 8 MiB). Those are what glibc's dynamic threshold reaches in Balie by itself once it
has freed its 4 MiB I/O batch buffers (after the warm-up), but never in the bare handler: with
the defaults, each 256 KiB socket read of asyncio lands at the top of the heap, is trimmed
when freed and faulted in again by the next (strace: about 3000 brk per 256 MiB upload
against a few dozen in Balie), which doubles the baseline's server CPU and made it slower
than Balie, a ratio of about 2 that measured glibc, not Balie. BALIE_BENCH_MALLOC_TUNING=0
runs both with glibc's defaults instead.

Per round the CPU seconds of the server, of this client and of every other process on the
machine are printed: on a small machine the client and other work share the cores with the
server, and a round that others disturbed shows it.

Run as `.venv/bin/python tests/bench/bench_upload.py`; the last line printed is one JSON
object. Exit 0 whether or not the goals are met, 1 if the run failed. Environment:
BALIE_BENCH_MIB (upload size), BALIE_BENCH_ROUNDS (timed uploads per server, default 7),
BALIE_BENCH_DIR (parent of the temporary directory, default var/bench in the project, so that
the files land on the real disk), BALIE_BENCH_PROFILE (a file name: Balie runs under cProfile,
which dumps its statistics there when the server stops, and the top functions are printed;
the timings of such a run are not representative), BALIE_BENCH_MALLOC_TUNING (see above).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

MIB = 1 << 20
PROJECT = Path(__file__).resolve().parents[2]
PYTHON = PROJECT / ".venv" / "bin" / "python"
BALIE = PROJECT / ".venv" / "bin" / "balie"

SIZE_MIB = int(os.environ.get("BALIE_BENCH_MIB", "256"))
ROUNDS = int(os.environ.get("BALIE_BENCH_ROUNDS", "7"))
BENCH_DIR = Path(os.environ.get("BALIE_BENCH_DIR", str(PROJECT / "var" / "bench")))
PROFILE = os.environ.get("BALIE_BENCH_PROFILE", "")
MALLOC_TUNING = os.environ.get("BALIE_BENCH_MALLOC_TUNING", "1") != "0"

RATIO_GOAL = 0.5
RSS_GOAL_MIB = 32.0
WARMUP_MIB = 4
SERVER_CHUNK = 64 * 1024  # what the baseline reads per call, as Balie's upload handler does
SAMPLE_SECONDS = 0.02
STARTUP_SECONDS = 60.0
STOP_SECONDS = 30.0
# Generous: even at 5 MiB/s an upload ends in time; a hung server fails the run, not the machine.
UPLOAD_SECONDS = 60.0 + SIZE_MIB / 5
PDF_MAGIC = b"%PDF-1.7\n"
# Both servers get the thresholds that glibc's dynamic mmap threshold gives Balie by itself
# once it has freed its 4 MiB I/O batch buffers (see the module docstring).
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=8388608"
FILENAME = "bench.pdf"

# Balie under cProfile: the statistics are written when SIGTERM ends `run_app`.
PROFILE_WRAPPER = """
import cProfile, sys
from server.cli import main
profile = cProfile.Profile()
profile.enable()
try:
    main(["serve"], standalone_mode=False)
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
"""


class BenchError(Exception):
    """The run failed (as opposed to missing a goal)."""


# --- the bare baseline server --------------------------------------------------------------


def serve_baseline(port: int, directory: Path) -> None:
    """The baseline: stream the multipart part "file" to a new file, fsync, answer 201."""

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, aiohttp.BodyPartReader) or part.name != "file":
            raise web.HTTPUnprocessableEntity(text="the first part must be the file")
        path = directory / f"{secrets.token_hex(16)}.bin"
        size = 0
        with open(path, "wb") as handle:
            while chunk := await part.read_chunk(SERVER_CHUNK):
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        return web.json_response({"size": size, "file": path.name}, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/upload", upload)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# --- the payload and the client ------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """The document: "%PDF-1.7" over the start of `block`, then `block` repeated."""

    block: bytes
    mib: int

    @property
    def size(self) -> int:
        return self.mib * MIB

    def chunks(self) -> list[bytes]:
        """The two distinct chunks (first, rest); the document is first + rest * (mib - 1)."""
        return [PDF_MAGIC + self.block[len(PDF_MAGIC) :], self.block]

    def sha256(self) -> str:
        first, rest = self.chunks()
        digest = hashlib.sha256(first)
        for _ in range(self.mib - 1):
            digest.update(rest)
        return digest.hexdigest()


class Multipart:
    """A multipart/form-data body with one file part, framed by hand and streamed."""

    def __init__(self, payload: Payload) -> None:
        self.payload = payload
        self.boundary = f"balie-bench-{secrets.token_hex(16)}"
        self.head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{FILENAME}"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def length(self) -> int:
        return len(self.head) + self.payload.size + len(self.tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    async def body(self) -> AsyncIterator[bytes]:
        first, rest = self.payload.chunks()
        yield self.head
        yield first
        for _ in range(self.payload.mib - 1):
            yield rest
        yield self.tail


async def post_upload(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], payload: Payload
) -> tuple[float, dict[str, Any]]:
    """POST the payload as multipart; (seconds to the end of the response, its JSON)."""
    body = Multipart(payload)
    headers = {
        **headers,
        "Content-Type": body.content_type,
        "Content-Length": str(body.length),
    }
    started = time.perf_counter()
    async with http.post(
        url,
        data=body.body(),
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=UPLOAD_SECONDS),
    ) as response:
        text = await response.text()
    elapsed = time.perf_counter() - started
    if response.status != 201:
        raise BenchError(f"POST {url} answered {response.status}: {text[:500]}")
    answer: dict[str, Any] = json.loads(text)
    if answer.get("size") != payload.size:
        raise BenchError(f"POST {url} stored {answer.get('size')} bytes, sent {payload.size}")
    return elapsed, answer


# --- memory of a server process ------------------------------------------------------------


class ChildPeakRss:
    """Peak RSS of another process over a `with` block: its VmHWM if that can be reset, and
    in any case a thread that samples its RSS every SAMPLE_SECONDS."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._process = psutil.Process(pid)
        self.use_hwm = self._reset_hwm()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.before = self.peak_sampled = self.peak_hwm = 0

    @property
    def method(self) -> str:
        if self.use_hwm:
            return "VmHWM of the server process (reset before each upload)"
        return f"RSS of the server process sampled every {SAMPLE_SECONDS * 1000:.0f} ms"

    def _reset_hwm(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as handle:
                handle.write("5")
            self._read_hwm()
        except (OSError, RuntimeError):
            return False
        return True

    def _read_hwm(self) -> int:
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmHWM in /proc/{self.pid}/status")

    def __enter__(self) -> ChildPeakRss:
        self._stop.clear()
        self.before = self.peak_sampled = self._process.memory_info().rss
        if self.use_hwm:
            self._reset_hwm()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self.peak_sampled = max(self.peak_sampled, self._process.memory_info().rss)
            except psutil.Error:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak_sampled = max(self.peak_sampled, self._process.memory_info().rss)
        self.peak_hwm = self._read_hwm() if self.use_hwm else self.peak_sampled

    @property
    def growth(self) -> int:
        """The headline growth: from VmHWM if available (it sees every page)."""
        return max(self.peak_hwm, self.peak_sampled) - self.before

    @property
    def growth_sampled(self) -> int:
        return self.peak_sampled - self.before


# --- servers as subprocesses ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server subprocess listening on 127.0.0.1, with its output in a log file."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, command: list[str], env: dict[str, str]) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=PROJECT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    async def wait_ready(self, http: aiohttp.ClientSession, path: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                async with http.get(
                    self.base + path, timeout=aiohttp.ClientTimeout(total=5)
                ) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
        raise BenchError(f"{self.name} not ready after {STARTUP_SECONDS:.0f} s: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM (a clean stop, so that a profile gets written), then SIGKILL if need be."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_SECONDS)


def server_env(**balie: str) -> dict[str, str]:
    """This environment without any BALIE_ variable of ours, plus `balie` (as BALIE_<NAME>),
    and the same malloc settings for every server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    env.update({f"BALIE_{k.upper()}": v for k, v in balie.items()})
    if MALLOC_TUNING:
        env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
    return env


# --- Balie's database, prepared before it starts -------------------------------------------


@dataclass(frozen=True)
class Prepared:
    dossier_id: str
    sessions: list[tuple[str, str]]  # (session token, CSRF token), one per upload


async def prepare_balie(data_dir: Path, sessions: int) -> Prepared:
    """Migrate Balie's database and put a dossier and `sessions` resident sessions in it."""
    from dossier.appointments import create_appointment, ensure_department, ensure_service_type
    from dossier.db import DatabaseClock
    from identity.sessions import create_session
    from retention.audit import Actor
    from server.migrate import upgrade_to_head
    from server.resources import make_store, open_engine
    from server.settings import Settings

    settings = Settings(environment="test", data_dir=data_dir)
    engine = open_engine(settings)
    try:
        await upgrade_to_head(engine)
        store = make_store(settings, engine, DatabaseClock())
        try:
            async with store.sessions() as session, session.begin():
                await ensure_department(session, code="bench", name="Benchmark")
                await ensure_service_type(session, code="bench", label="Benchmark")
            now = dt.datetime.now(dt.UTC)
            booked = await create_appointment(
                store,
                actor=Actor.system("bench"),
                department="bench",
                service_type="bench",
                starts_at=now + dt.timedelta(minutes=5),
                ends_at=now + dt.timedelta(hours=2),
                resident_pseudonym="bench-resident",
            )
            tokens = []
            async with store.sessions() as session, session.begin():
                for _ in range(sessions):
                    token, row = await create_session(
                        session,
                        now=now,
                        kind="resident",
                        role="resident",
                        appointment_id=booked.appointment.id,
                        resident_pseudonym="bench-resident",
                    )
                    tokens.append((token, row.csrf_token))
        finally:
            await store.audit.close()
    finally:
        await engine.dispose()
    return Prepared(dossier_id=str(booked.dossier.id), sessions=tokens)


# --- the run -------------------------------------------------------------------------------


def prime_page_cache(root: Path, block: bytes, count: int) -> None:
    """Untimed: dirty and drop `count` MiB of page cache (see the module docstring)."""
    scratch = root / "scratch.bin"
    with open(scratch, "wb") as handle:
        for _ in range(count):
            handle.write(block)
    scratch.unlink()


async def verify_download(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], payload: Payload
) -> float:
    """Untimed check: the stored document downloads whole and hashes to the payload's
    SHA-256, streamed and never held. Returns the seconds the download took."""
    digest = hashlib.sha256()
    size = 0
    started = time.perf_counter()
    async with http.get(
        url, headers=headers, timeout=aiohttp.ClientTimeout(total=UPLOAD_SECONDS)
    ) as response:
        if response.status != 200:
            raise BenchError(f"GET {url} answered {response.status}: {await response.text()}")
        async for piece in response.content.iter_chunked(MIB):
            digest.update(piece)
            size += len(piece)
    elapsed = time.perf_counter() - started
    if size != payload.size:
        raise BenchError(f"GET {url} gave {size} bytes, uploaded {payload.size}")
    if digest.hexdigest() != payload.sha256():
        raise BenchError(f"GET {url} does not hash to what was uploaded")
    return elapsed


def mib_s(size: int, seconds: float) -> float:
    return size / MIB / seconds


def print_profile(path: Path) -> None:
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        print(f"--- Balie server profile, top 25 by {key} ({path}) ---")
        stats.sort_stats(key).print_stats(25)
    sys.stdout.flush()


@dataclass
class Round:
    seconds: float
    growth: int
    growth_sampled: int
    cpu: float  # the server's CPU seconds during the upload
    client_cpu: float
    other_cpu: float  # every other process on the machine


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def run(root: Path) -> dict[str, object]:
    payload = Payload(block=os.urandom(MIB), mib=SIZE_MIB)
    warmup = Payload(block=payload.block, mib=WARMUP_MIB)
    baseline_dir, balie_dir = root / "baseline", root / "balie"
    baseline_dir.mkdir()
    prepared = await prepare_balie(balie_dir, sessions=ROUNDS + 2)
    sessions = iter(prepared.sessions)
    profile_path = Path(PROFILE).resolve() if PROFILE else None

    balie = Server("Balie", root / "balie.log")
    baseline = Server("baseline", root / "baseline.log")
    upload_url = f"{balie.base}/api/dossiers/{prepared.dossier_id}/documents"
    origin = balie.base  # the public origin Balie derives from BALIE_HOST and BALIE_PORT

    def balie_headers() -> dict[str, str]:
        token, csrf = next(sessions)
        return {"Cookie": f"__Host-balie={token}", "Origin": origin, "X-CSRF-Token": csrf}

    print(f"upload {SIZE_MIB} MiB, {ROUNDS} rounds per server, files in {root}")
    print(
        f"{psutil.cpu_count()} CPUs, load average before the run:"
        f" {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"servers' malloc: GLIBC_TUNABLES={MALLOC_TUNABLES}"
        if MALLOC_TUNING
        else "servers' malloc: glibc defaults (BALIE_BENCH_MALLOC_TUNING=0)"
    )
    if profile_path:
        print(f"Balie runs under cProfile (stats to {profile_path}); timings are not comparable")
    rounds: dict[str, list[Round]] = {"baseline": [], "balie": []}
    last_answer: dict[str, Any] = {}
    last_headers: dict[str, str] = {}
    download_seconds = 0.0
    try:
        baseline.start(
            [str(PYTHON), __file__, "--baseline", str(baseline.port), str(baseline_dir)],
            server_env(),
        )
        balie.start(
            [str(PYTHON), "-c", PROFILE_WRAPPER, str(profile_path)]
            if profile_path
            else [str(BALIE), "serve"],
            server_env(
                environment="test",
                data_dir=str(balie_dir),
                host="127.0.0.1",
                port=str(balie.port),
                document_max_bytes=str(payload.size + MIB),
                document_inspection="false",
            ),
        )
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            await baseline.wait_ready(http, "/healthz")
            await balie.wait_ready(http, "/readyz")
            meters = {"baseline": ChildPeakRss(baseline.pid), "balie": ChildPeakRss(balie.pid)}
            print(f"peak memory measured with {meters['balie'].method}")

            # Warm-up: imports, connection pools, the thread pool and the allocator's pools
            # exist before anything is measured; small, so as not to pre-grow the heap.
            await post_upload(http, f"{baseline.base}/upload", {}, warmup)
            headers = balie_headers()
            _, answer = await post_upload(http, upload_url, headers, warmup)
            await verify_download(http, balie.base + answer["url"], headers, warmup)
            print(f"warm-up: {WARMUP_MIB} MiB to each server, Balie's stored and read back")

            for number in range(1, ROUNDS + 1):
                for name, server in (("baseline", baseline), ("balie", balie)):
                    if name == "balie":
                        url, headers = upload_url, balie_headers()
                    else:
                        url, headers = f"{baseline.base}/upload", {}
                    prime_page_cache(root, payload.block, SIZE_MIB + 8)
                    before = server.cpu_seconds(), own_cpu_seconds(), busy_cpu_seconds()
                    with meters[name] as meter:
                        seconds, answer = await post_upload(http, url, headers, payload)
                    cpu = server.cpu_seconds() - before[0]
                    client = own_cpu_seconds() - before[1]
                    others = max(0.0, busy_cpu_seconds() - before[2] - cpu - client)
                    rounds[name].append(
                        Round(seconds, meter.growth, meter.growth_sampled, cpu, client, others)
                    )
                    print(
                        f"round {number} {name:8}: {seconds:6.3f} s"
                        f" {mib_s(payload.size, seconds):6.1f} MiB/s"
                        f"  CPU s: server {cpu:4.2f} client {client:4.2f} others {others:4.2f}"
                        f"  peak RSS +{meter.growth / MIB:4.1f} MiB"
                        f" (sampled +{meter.growth_sampled / MIB:.1f})"
                    )
                    if name == "baseline":
                        (baseline_dir / answer["file"]).unlink()
                    else:
                        last_answer, last_headers = answer, headers
            download_seconds = await verify_download(
                http, balie.base + last_answer["url"], last_headers, payload
            )
            print(
                f"the last Balie upload downloads whole in {download_seconds:.3f} s"
                f" ({mib_s(payload.size, download_seconds):.1f} MiB/s) and matches its SHA-256"
            )
    except BaseException:
        for server in (baseline, balie):
            print(f"--- end of the {server.name} log ---\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        baseline.stop()
        balie.stop()
    if profile_path and profile_path.exists():
        print_profile(profile_path)

    base_s = [r.seconds for r in rounds["baseline"]]
    balie_s = [r.seconds for r in rounds["balie"]]
    ratio = statistics.median(base_s) / statistics.median(balie_s)
    best_ratio = min(base_s) / min(balie_s)
    growth = max(r.growth for r in rounds["balie"]) / MIB
    growth_sampled = max(r.growth_sampled for r in rounds["balie"]) / MIB
    baseline_growth = max(r.growth for r in rounds["baseline"]) / MIB
    balie_rate = mib_s(payload.size, statistics.median(balie_s))
    baseline_rate = mib_s(payload.size, statistics.median(base_s))
    balie_cpu = statistics.median(r.cpu for r in rounds["balie"])
    baseline_cpu = statistics.median(r.cpu for r in rounds["baseline"])
    others_cpu = statistics.median(r.other_cpu for r in rounds["balie"] + rounds["baseline"])
    ratio_met, rss_met = ratio >= RATIO_GOAL, growth < RSS_GOAL_MIB
    print(f"median baseline {baseline_rate:.1f} MiB/s, median Balie {balie_rate:.1f} MiB/s")
    print(f"median server CPU per upload: baseline {baseline_cpu:.2f} s, Balie {balie_cpu:.2f} s")
    print(f"median CPU of other processes during an upload: {others_cpu:.2f} s")
    print(f"upload_ratio {ratio:.3f} (goal >= {RATIO_GOAL}; best-of ratio {best_ratio:.3f})")
    print(
        f"peak_rss_growth_mib {growth:.2f} (goal < {RSS_GOAL_MIB:.0f}; sampled"
        f" {growth_sampled:.2f}; the baseline's {baseline_growth:.2f})"
    )
    return {
        "mib": SIZE_MIB,
        "upload_ratio": round(ratio, 4),
        "upload_ratio_best_of": round(best_ratio, 4),
        "balie_mib_s": round(balie_rate, 1),
        "baseline_mib_s": round(baseline_rate, 1),
        "peak_rss_growth_mib": round(growth, 2),
        "peak_rss_growth_mib_sampled": round(growth_sampled, 2),
        "peak_rss_method": meters["balie"].method,
        "baseline_peak_rss_growth_mib": round(baseline_growth, 2),
        "balie_server_cpu_s": round(balie_cpu, 3),
        "baseline_server_cpu_s": round(baseline_cpu, 3),
        "other_processes_cpu_s": round(others_cpu, 3),
        "malloc_tuning": MALLOC_TUNING,
        "balie_seconds": [round(s, 4) for s in balie_s],
        "baseline_seconds": [round(s, 4) for s in base_s],
        "download_mib_s": round(mib_s(payload.size, download_seconds), 1),
        "download_verified": True,
        "rounds": ROUNDS,
        "profiled": profile_path is not None,
        "upload_ratio_goal_met": ratio_met,
        "peak_rss_growth_goal_met": rss_met,
        "goals_met": ratio_met and rss_met,
    }


def main() -> int:
    if sys.argv[1:2] == ["--baseline"]:
        serve_baseline(int(sys.argv[2]), Path(sys.argv[3]))
        return 0
    if SIZE_MIB < WARMUP_MIB or ROUNDS < 1:
        print(json.dumps({"error": f"BALIE_BENCH_MIB must be >= {WARMUP_MIB}, rounds >= 1"}))
        return 1
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="upload-", dir=BENCH_DIR))
    # Everything is bounded: set-up, two servers' start, the uploads, the download.
    overall = 4 * STARTUP_SECONDS + (2 * ROUNDS + 4) * UPLOAD_SECONDS
    try:
        result = asyncio.run(asyncio.wait_for(run(root), overall))
    except Exception as exc:
        sys.stdout.flush()
        print(f"run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps({"mib": SIZE_MIB, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
