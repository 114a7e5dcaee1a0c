"""Benchmark: export a dossier as a signed package and verify it, versus zipping its files.

Measured, in one run, in one process and on one filesystem:

* Balie: a dossier (SQLite and the encrypted blob store in a temporary directory) holds
  BALIE_BENCH_MIB (default 100) MiB of documents, split into BALIE_BENCH_DOCS (default 5)
  PDFs that start with "%PDF-1.7" and continue with one random MiB repeated; they are stored
  once, untimed, with `store_document`, as an upload would. A round then does what an export
  run does: `gather_content` (the dossier's metadata, audited reads; the policy is the one in
  `Settings().policy_file`), `PackageExporter.export` with a fresh in-memory step ledger (so
  the package really is built again: documents decrypted from the blob store, hashed and
  streamed into the ZIP, transcript HTML and PDF (laid out meanwhile in the exporter's worker
  process, created once as the server creates it; its CPU shows under "other processes"),
  MDTO, manifest and signature, fsync, the
  package's SHA-256 read back, rename, fsync of the directory) and then `verify_package` on
  the result (reads every member back, checking CRC, SHA-256, signature and MDTO).
* baseline: the same plaintext documents, as plain files in the temporary directory (written
  and fsynced once, untimed), zipped with `zipfile` with the exporter's own setting
  `dossier.export.package.COMPRESSION` (each file copied into `ZipFile.open(info, "w")` in
  1 MiB reads, which is faster than `ZipFile.write` and its 8 KiB copies), the ZIP flushed and
  fsynced, then opened again with `zipfile` and every member read back in 1 MiB chunks into a
  SHA-256 (as the exporter's verify step reads the package back and hashes each member).

Both paths read their sources from the page cache: one full untimed round of each (the
warm-up) reads every blob and every plain file first; page caches cannot be dropped here.
Before every timed round a scratch file the size of the output is written and unlinked
(untimed), as in bench_dossier_store.py: on this VM memory freed a moment ago goes back to
the host, and touching it again costs more than the copy. Rounds alternate (baseline, Balie,
baseline, ...); the headline compares the median round of each:

    export_ratio = baseline seconds / Balie seconds (1.0 = as fast)        goal >= 0.5

Throughput is MiB of documents per second. The package written by Balie holds the same
documents plus a few small members (transcript, payments, MDTO, manifest, signature); each
round's package is deleted afterwards (untimed), as is the baseline's ZIP. The last Balie
package is checked untimed: every document member hashes to its source file.

The machine is shared: per round the CPU seconds of this process and of every other process
on the machine are printed, so that a round that others disturbed shows it.

Run as `.venv/bin/python tests/bench/bench_export.py`; the last line printed is one JSON
object. Exit 0 whether or not the goal is met, 1 if the run failed. Environment:
BALIE_BENCH_MIB (total size of the documents), BALIE_BENCH_DOCS (how many documents),
BALIE_BENCH_ROUNDS (timed rounds per path, default 7), BALIE_BENCH_DIR (parent of the
temporary directory, default var/bench in the project, so that the files land on the real
disk and not on a tmpfs /tmp), BALIE_BENCH_PROFILE (a file name: after the timed rounds, one
more Balie round runs under cProfile, its statistics are written there and the top functions
printed; cProfile follows one thread, so in that round `asyncio.to_thread` runs its function
inline, on the event loop's thread, and the work of every step is attributed to it).
"""

from __future__ import annotations

import asyncio
import cProfile
import datetime as dt
import hashlib
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dossier.appointments import create_appointment, ensure_department, ensure_service_type
from dossier.blobstore import LocalBlobStore
from dossier.crypto.keyring import FileKeyring
from dossier.db import DatabaseClock, create_engine, make_sessionmaker
from dossier.documents import store_document
from dossier.export.gather import gather_content
from dossier.export.package import COMPRESSION, PackageExporter, transcript_layout_pool
from dossier.export.signing import load_export_key
from dossier.export.verify import verify_package
from dossier.store import DossierStore
from retention.audit import Actor
from retention.auditlog import AuditLog
from retention.policy import Policy, load_policy
from server.migrate import upgrade_to_head
from server.settings import Settings

MIB = 1 << 20
CHUNK = MIB
PROJECT = Path(__file__).resolve().parents[2]

SIZE_MIB = int(os.environ.get("BALIE_BENCH_MIB", "100"))
DOCS = int(os.environ.get("BALIE_BENCH_DOCS", "5"))
ROUNDS = int(os.environ.get("BALIE_BENCH_ROUNDS", "7"))
BENCH_DIR = Path(os.environ.get("BALIE_BENCH_DIR", str(PROJECT / "var" / "bench")))
PROFILE = os.environ.get("BALIE_BENCH_PROFILE", "")

RATIO_GOAL = 0.5
PDF_MAGIC = b"%PDF-1.7\n"
PREFERRED_SERVICE = "geboorteaangifte"  # in the example policy; else the policy's first
CLERK = Actor("clerk", "bench-clerk")
# Generous: even at 5 MiB/s a round ends in time; a hang fails the run, not the machine.
ROUND_SECONDS = 60.0 + SIZE_MIB / 5

T = TypeVar("T")


# --- the documents ------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """The documents: `sizes[n]` MiB each, made of one random MiB (the source holds 1 MiB)."""

    block: bytes
    sizes: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.sizes) * MIB

    def name(self, number: int) -> str:
        return f"scan-{number}.pdf"

    def chunks(self, number: int) -> Iterator[bytes]:
        """Document `number` in 1 MiB chunks: a PDF header naming it, then the block."""
        head = PDF_MAGIC + f"% bench document {number}\n".encode()
        yield head + self.block[len(head) :]
        for _ in range(self.sizes[number - 1] - 1):
            yield self.block

    async def stream(self, number: int) -> AsyncIterator[bytes]:
        for chunk in self.chunks(number):
            yield chunk

    def sha256(self, number: int) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks(number):
            digest.update(chunk)
        return digest.hexdigest()


def make_corpus(total_mib: int, docs: int) -> Corpus:
    base, extra = divmod(total_mib, docs)
    sizes = tuple(base + (1 if n < extra else 0) for n in range(docs))
    return Corpus(block=os.urandom(CHUNK), sizes=sizes)


# --- set-up -------------------------------------------------------------------------------


@dataclass
class Setup:
    store: DossierStore
    dossier_id: uuid.UUID
    policy: Policy
    key: Ed25519PrivateKey
    plain: list[Path]
    layout: Executor
    dispose: Callable[[], Awaitable[None]]


async def set_up(root: Path, corpus: Corpus) -> Setup:
    """A migrated SQLite store in `root` with one dossier holding the corpus, the same
    documents as plain files (fsynced), the policy and an export key."""
    policy = load_policy(Settings().policy_file)
    code = PREFERRED_SERVICE
    if code not in policy.services:
        code = next(iter(policy.services))
    rule = policy.rule(code)
    engine = create_engine(f"sqlite+aiosqlite:///{root / 'bench.db'}")
    await upgrade_to_head(engine)
    store = DossierStore(
        sessions=make_sessionmaker(engine),
        audit=AuditLog(engine),
        keyring=FileKeyring(root / "keys", create_missing=True),
        blobs=LocalBlobStore(root / "blobs"),
        clock=DatabaseClock(),
    )
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="burgerzaken", name="Burgerzaken")
        await ensure_service_type(
            session,
            code=rule.code,
            label=rule.label,
            level_of_assurance=rule.level_of_assurance,
            retention_days=rule.max_days,
            archive_mode=rule.archive,
            selectielijst=rule.selectielijst or "",
            needs_bsn=rule.needs_bsn,
        )
    now = dt.datetime.now(dt.UTC)
    booked = await create_appointment(
        store,
        actor=CLERK,
        department="burgerzaken",
        service_type=code,
        starts_at=now + dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(hours=2),
        resident_pseudonym="bench-resident",
    )
    dossier_id = booked.dossier.id
    plain_dir = root / "plain"
    plain_dir.mkdir()
    plain: list[Path] = []
    for number in range(1, len(corpus.sizes) + 1):
        info = await store_document(
            store,
            actor=CLERK,
            dossier_id=dossier_id,
            name=corpus.name(number),
            media_type="application/pdf",
            content=corpus.stream(number),
        )
        if info.size != corpus.sizes[number - 1] * MIB:
            raise AssertionError(f"document {number} stored {info.size} bytes")
        path = plain_dir / corpus.name(number)
        with open(path, "wb") as handle:
            for chunk in corpus.chunks(number):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        plain.append(path)
    key = load_export_key(root / "keys", create=True)

    # As the server does (server.export_routes): one layout worker process for the process's
    # lifetime; the warm-up round starts it.
    layout = transcript_layout_pool()

    async def dispose() -> None:
        layout.shutdown(wait=True)
        await store.audit.close()
        await engine.dispose()

    return Setup(store, dossier_id, policy, key, plain, layout, dispose)


# --- the two paths ------------------------------------------------------------------------


class NoProgress:
    async def __call__(self, fraction: float, text: str) -> None:
        return None


class MemoryLedger:
    """A fresh StepLedger per round: nothing recorded, so the package is built again."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, object]] = {}

    async def done(self, key: str) -> dict[str, object] | None:
        return self.steps.get(key)

    async def record(self, key: str, result: dict[str, object]) -> None:
        self.steps[key] = result


@dataclass(frozen=True)
class BalieRound:
    gather: float
    export: float
    verify: float
    package: Path
    files: int

    @property
    def seconds(self) -> float:
        return self.gather + self.export + self.verify


async def balie_round(setup: Setup, out_dir: Path) -> BalieRound:
    """Gather, export (fresh ledger), verify; the seconds of each phase."""
    exporter = PackageExporter(output_dir=out_dir, signing_key=setup.key, layout=setup.layout)
    started = time.perf_counter()
    content = await gather_content(
        setup.store,
        actor=CLERK,
        dossier_id=setup.dossier_id,
        policy=setup.policy,
        exported_at=dt.datetime.now(dt.UTC),
    )
    gathered = time.perf_counter()
    outcome = await exporter.export(
        content, options={}, steps=MemoryLedger(), progress=NoProgress()
    )
    exported = time.perf_counter()
    package = out_dir / outcome.references["package"]
    report = await asyncio.to_thread(verify_package, package, setup.key.public_key())
    verified = time.perf_counter()
    return BalieRound(
        gathered - started, exported - gathered, verified - exported, package, report.files
    )


@dataclass(frozen=True)
class BaselineRound:
    write: float
    read: float
    digests: dict[str, str]

    @property
    def seconds(self) -> float:
        return self.write + self.read


def baseline_round(files: list[Path], target: Path) -> BaselineRound:
    """Zip the plain files (1 MiB copies, COMPRESSION), fsync, read back hashing each member."""
    started = time.perf_counter()
    with open(target, "xb") as handle:
        with zipfile.ZipFile(handle, "w", compression=COMPRESSION) as archive:
            for path in files:
                info = zipfile.ZipInfo.from_file(path, f"documents/{path.name}")
                info.compress_type = COMPRESSION
                with open(path, "rb") as source, archive.open(info, "w") as member:
                    while chunk := source.read(CHUNK):
                        member.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    written = time.perf_counter()
    digests: dict[str, str] = {}
    with zipfile.ZipFile(target) as archive:
        for info in archive.infolist():
            digest = hashlib.sha256()
            with archive.open(info) as member:
                while chunk := member.read(CHUNK):
                    digest.update(chunk)
            digests[info.filename.rsplit("/", 1)[-1]] = digest.hexdigest()
    finished = time.perf_counter()
    return BaselineRound(written - started, finished - written, digests)


def check_package(package: Path, expected: dict[str, str]) -> None:
    """Untimed: each document member of the package hashes to its source file's SHA-256."""
    with zipfile.ZipFile(package) as archive:
        found = {}
        for info in archive.infolist():
            if info.filename.startswith("documents/") and not info.filename.endswith(".xml"):
                with archive.open(info) as member:
                    digest = hashlib.file_digest(member, "sha256").hexdigest()  # type: ignore[arg-type]
                # documents/<n>-<safe name>: the name after the number is the source's
                found[info.filename.split("/", 1)[1].split("-", 1)[1]] = digest
    if found != expected:
        raise AssertionError(f"package documents {sorted(found)} do not match the sources")


# --- measuring ----------------------------------------------------------------------------


def prime_page_cache(root: Path, block: bytes, count: int) -> None:
    """Untimed: dirty and drop `count` MiB of page cache (see the module docstring)."""
    scratch = root / "scratch.bin"
    with open(scratch, "wb") as handle:
        for _ in range(count):
            handle.write(block)
    scratch.unlink()


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


class CpuMeter:
    """CPU seconds of this process and of every other process over a `with` block."""

    def __enter__(self) -> CpuMeter:
        self._own, self._busy = own_cpu_seconds(), busy_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.own = own_cpu_seconds() - self._own
        self.others = max(0.0, busy_cpu_seconds() - self._busy - self.own)


def mib_s(size: int, seconds: float) -> float:
    return size / MIB / seconds


async def _inline(func: Callable[..., T], /, *args: object, **kwargs: object) -> T:
    """`asyncio.to_thread` for the profiled round: the work runs where cProfile sees it."""
    return func(*args, **kwargs)


async def profiled_round(setup: Setup, out_dir: Path, path: Path) -> None:
    """One more Balie round under cProfile, with `asyncio.to_thread` run inline (cProfile
    follows one thread only): the CPU of every step is attributed, though nothing overlaps."""
    profile = cProfile.Profile()
    to_thread = asyncio.to_thread
    asyncio.to_thread = _inline
    profile.enable()
    try:
        measured = await balie_round(setup, out_dir)
    finally:
        profile.disable()
        asyncio.to_thread = to_thread
    measured.package.unlink()
    profile.dump_stats(str(path))
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    print(f"profiled Balie round: {measured.seconds:.3f} s (not comparable: under cProfile)")
    for key in ("tottime", "cumulative"):
        print(f"--- Balie round profile, top 30 by {key} ({path}) ---")
        stats.sort_stats(key).print_stats(30)
    sys.stdout.flush()


async def run(root: Path) -> dict[str, object]:
    corpus = make_corpus(SIZE_MIB, DOCS)
    size = corpus.total
    setup = await set_up(root, corpus)
    out_dir, zip_path = root / "exports", root / "baseline.zip"
    expected = {corpus.name(n): corpus.sha256(n) for n in range(1, len(corpus.sizes) + 1)}
    print(
        f"{SIZE_MIB} MiB in {len(corpus.sizes)} documents"
        f" ({', '.join(str(s) for s in corpus.sizes)} MiB), {ROUNDS} rounds per path,"
        f" files in {root}"
    )
    print(
        f"{psutil.cpu_count()} CPUs, load average before the run:"
        f" {', '.join(f'{x:.2f}' for x in os.getloadavg())}; ZIP compression {COMPRESSION}"
    )

    # Warm-up, full size: every blob and plain file is read once (page cache), and imports,
    # the SQLAlchemy statement cache, the PDF writer and the thread pool exist.
    warm = await balie_round(setup, out_dir)
    check_package(warm.package, expected)
    warm.package.unlink()
    warm_base = baseline_round(setup.plain, zip_path)
    zip_path.unlink()
    if warm_base.digests != expected:
        raise AssertionError("the baseline's ZIP does not hash to the sources")
    print(f"warm-up: Balie {warm.seconds:.3f} s, baseline {warm_base.seconds:.3f} s")

    base_rounds: list[tuple[BaselineRound, CpuMeter]] = []
    balie_rounds: list[tuple[BalieRound, CpuMeter]] = []
    slack = SIZE_MIB + 8
    for number in range(1, ROUNDS + 1):
        prime_page_cache(root, corpus.block, slack)
        with CpuMeter() as cpu:
            base = baseline_round(setup.plain, zip_path)
        zip_path.unlink()
        if base.digests != expected:
            raise AssertionError("the baseline's ZIP does not hash to the sources")
        base_rounds.append((base, cpu))
        print(
            f"round {number} baseline: {base.seconds:6.3f} s {mib_s(size, base.seconds):7.1f} MiB/s"
            f"  (zip+fsync {base.write:.3f}, read+hash {base.read:.3f})"
            f"  CPU s: own {cpu.own:4.2f} others {cpu.others:4.2f}"
        )

        prime_page_cache(root, corpus.block, slack)
        with CpuMeter() as cpu:
            balie = await asyncio.wait_for(balie_round(setup, out_dir), ROUND_SECONDS)
        if number == ROUNDS:
            check_package(balie.package, expected)
        balie.package.unlink()
        balie_rounds.append((balie, cpu))
        print(
            f"round {number} Balie   : {balie.seconds:6.3f} s"
            f" {mib_s(size, balie.seconds):7.1f} MiB/s  (gather {balie.gather:.3f},"
            f" export {balie.export:.3f}, verify {balie.verify:.3f})"
            f"  CPU s: own {cpu.own:4.2f} others {cpu.others:4.2f}"
        )
    print(
        f"the last package verifies ({balie_rounds[-1][0].files} files in its manifest) and its"
        " documents hash to the sources"
    )
    if PROFILE:
        await profiled_round(setup, out_dir, Path(PROFILE).resolve())
    await setup.dispose()

    base_s = [r.seconds for r, _ in base_rounds]
    balie_s = [r.seconds for r, _ in balie_rounds]
    ratio = statistics.median(base_s) / statistics.median(balie_s)
    best_ratio = min(base_s) / min(balie_s)
    base_rate = mib_s(size, statistics.median(base_s))
    balie_rate = mib_s(size, statistics.median(balie_s))

    def median_of(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    phases = {
        "balie_gather_s": median_of([r.gather for r, _ in balie_rounds]),
        "balie_export_s": median_of([r.export for r, _ in balie_rounds]),
        "balie_verify_s": median_of([r.verify for r, _ in balie_rounds]),
        "baseline_zip_s": median_of([r.write for r, _ in base_rounds]),
        "baseline_read_s": median_of([r.read for r, _ in base_rounds]),
    }
    balie_cpu = statistics.median(c.own for _, c in balie_rounds)
    base_cpu = statistics.median(c.own for _, c in base_rounds)
    others_cpu = statistics.median(c.others for _, c in balie_rounds + base_rounds)
    print(f"median baseline {base_rate:.1f} MiB/s, median Balie {balie_rate:.1f} MiB/s")
    print(
        "median phases (s): "
        + ", ".join(f"{k.removesuffix('_s')} {v:.3f}" for k, v in phases.items())
    )
    print(f"median CPU per round: baseline {base_cpu:.2f} s, Balie {balie_cpu:.2f} s")
    print(f"median CPU of other processes during a round: {others_cpu:.2f} s")
    print(f"export_ratio {ratio:.3f} (goal >= {RATIO_GOAL}; best-of ratio {best_ratio:.3f})")
    return {
        "mib": SIZE_MIB,
        "documents": len(corpus.sizes),
        "export_ratio": round(ratio, 4),
        "export_ratio_best_of": round(best_ratio, 4),
        "export_ratio_goal_met": ratio >= RATIO_GOAL,
        "balie_mib_s": round(balie_rate, 1),
        "baseline_mib_s": round(base_rate, 1),
        **phases,
        "balie_cpu_s": round(balie_cpu, 3),
        "baseline_cpu_s": round(base_cpu, 3),
        "other_processes_cpu_s": round(others_cpu, 3),
        "balie_seconds": [round(s, 4) for s in balie_s],
        "baseline_seconds": [round(s, 4) for s in base_s],
        "package_verified": True,
        "rounds": ROUNDS,
        "compression": COMPRESSION,
        "profiled": bool(PROFILE),
    }


def main() -> int:
    if SIZE_MIB < 1 or DOCS < 1 or SIZE_MIB < DOCS or ROUNDS < 1:
        print(json.dumps({"error": "need BALIE_BENCH_MIB >= BALIE_BENCH_DOCS >= 1, rounds >= 1"}))
        return 1
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="export-", dir=BENCH_DIR))
    try:
        result = asyncio.run(run(root))
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
