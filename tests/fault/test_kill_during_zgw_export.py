"""A process killed (SIGKILL) in the middle of a `zgw` export - after the API made a document
but before its answer arrived, or halfway through a document's parts - leaves its finished
steps in the ledger; the next run finishes the export, and the target holds every document
exactly once, complete, linked once to the zaak."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from dossier.export.zgw import ZgwExporter

from fake_zgw import (
    CLIENT_ID,
    RSIN,
    SECRET,
    TRANSCRIPT,
    FakeZgw,
    JsonFileLedger,
    document_bytes,
    fixed_transcript,
    no_progress,
    sample_content,
)

TESTS = Path(__file__).resolve().parents[1]
THRESHOLD = 100_000

# The child exports with a ledger in a JSON file; the fake holds back one answer (the work is
# done at the fake), and the test kills the child while it waits for it.
CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    import aiohttp

    TESTS, LEDGER, DOCUMENTS, DOCUMENTEN, ZAKEN, IOT, ZAAK, THRESHOLD = sys.argv[1:9]
    sys.path.insert(0, TESTS)
    from dossier.export.zgw import ZgwExporter
    from fake_zgw import (CLIENT_ID, RSIN, SECRET, JsonFileLedger, document_bytes,
                          fixed_transcript, no_progress, sample_content)

    async def main():
        content = sample_content([(name, media_type, document_bytes(name, size))
                                  for name, media_type, size in json.loads(DOCUMENTS)])
        async with aiohttp.ClientSession() as http:
            exporter = ZgwExporter(
                http, documenten_url=DOCUMENTEN, zaken_url=ZAKEN, client_id=CLIENT_ID,
                secret=SECRET, informatieobjecttype=IOT, bronorganisatie=RSIN,
                part_threshold=int(THRESHOLD), timeout=120, render_transcript=fixed_transcript,
            )
            await exporter.export(content, options={"zaak": ZAAK},
                                  steps=JsonFileLedger(Path(LEDGER)), progress=no_progress)
        print("NOT KILLED", flush=True)

    asyncio.run(main())
    """
)

SMALL = [("paspoort.pdf", "application/pdf", 30_000), ("pasfoto.jpg", "image/jpeg", 12_345)]
LARGE = ("geboorteakte.pdf", "application/pdf", 250_001)  # 4 parts of 64 KiB at the fake

# phase: (documents, the request whose answer never reaches the child)
PHASES = {
    "document_created": ([*SMALL, ("brief.pdf", "application/pdf", 20_000)], ("create_eio", 2)),
    "large_created": ([SMALL[0], LARGE], ("create_eio", 2)),
    "part_uploaded": ([SMALL[0], LARGE], ("put_part", 2)),
}


def content_of(documents):
    return sample_content([(n, t, document_bytes(n, size)) for n, t, size in documents])


@pytest.mark.parametrize("phase", list(PHASES))
async def test_sigkill_mid_export_resumes_and_finishes_without_duplicates(tmp_path, phase):
    documents, (route, nth) = PHASES[phase]
    content = content_of(documents)
    ledger_path = tmp_path / "ledger.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    async with FakeZgw() as zgw, aiohttp.ClientSession() as http:
        zaak = zgw.add_zaak("ZAAK-2026-0042")
        zgw.hang(route, nth=nth)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(TESTS), str(ledger_path), json.dumps(documents),
             zgw.documenten_url, zgw.zaken_url, zgw.informatieobjecttype, zaak, str(THRESHOLD)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            # The fake runs on this event loop, so wait for the child in a thread.
            exited = asyncio.ensure_future(asyncio.to_thread(child.wait, 120))
            holding = asyncio.ensure_future(zgw.holding.wait())
            await asyncio.wait({exited, holding}, timeout=120, return_when="FIRST_COMPLETED")
            assert holding.done(), child.stderr.read() if exited.done() else "child hangs"
            assert not exited.done()
            child.send_signal(signal.SIGKILL)
            assert await exited == -signal.SIGKILL
            assert "NOT KILLED" not in child.stdout.read()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            holding.cancel()
            child.stdout.close()
            child.stderr.close()

        # Where the child died: the target did more than the ledger knows.
        recorded = JsonFileLedger(ledger_path).load()
        first, second = (str(d.document_id) for d in content.documents[:2])
        assert {"zaak", f"eio:{first}", f"zio:{first}"} <= set(recorded)
        assert f"eio:{second}" not in recorded
        second_id = f"balie-d-{content.documents[1].document_id.hex}"
        [made] = zgw.live(second_id)
        if phase == "part_uploaded":
            assert f"part:{second}:1" in recorded
            assert f"part:{second}:2" not in recorded
            assert [p["voltooid"] for p in made["bestandsdelen"]] == [True, True, False, False]
        else:
            assert f"eio-pending:{second}" not in recorded
            assert made["locked"] is (phase == "large_created")

        # The next run, with the same ledger, finishes.
        zgw.release()
        exporter = ZgwExporter(
            http,
            documenten_url=zgw.documenten_url,
            zaken_url=zgw.zaken_url,
            client_id=CLIENT_ID,
            secret=SECRET,
            informatieobjecttype=zgw.informatieobjecttype,
            bronorganisatie=RSIN,
            part_threshold=THRESHOLD,
            timeout=5,
            render_transcript=fixed_transcript,
        )
        outcome = await exporter.export(
            content, options={"zaak": zaak}, steps=JsonFileLedger(ledger_path), progress=no_progress
        )

        identificaties = [f"balie-d-{d.document_id.hex}" for d in content.documents]
        identificaties.append(f"balie-t-{content.dossier_id.hex}")
        at_target = sorted(e.record["identificatie"] for e in zgw.eios.values())
        assert at_target == sorted(identificaties)
        for document in content.documents:
            [eio] = zgw.live(f"balie-d-{document.document_id.hex}")
            assert eio["locked"] is False
            assert zgw.content(eio["url"]) == document_bytes(document.name, document.size)
            assert outcome.references[f"document:{document.document_id}"] == eio["url"]
            assert zgw.links.count((zaak, eio["url"])) == 1
        [transcript] = zgw.live(f"balie-t-{content.dossier_id.hex}")
        assert zgw.content(transcript["url"]) == TRANSCRIPT
        assert len(zgw.links) == len(identificaties)
        if phase == "large_created":  # the locked EIO nobody had the lock of was replaced
            assert zgw.deleted == [made["url"]]
            assert zgw.creations.count(second_id) == 2
        else:  # found, or continued with the recorded lock: made once
            assert zgw.deleted == []
            assert zgw.creations.count(second_id) == 1
        # A further run repeats nothing.
        before = len(zgw.requests)
        again = await exporter.export(
            content, options={"zaak": zaak}, steps=JsonFileLedger(ledger_path), progress=no_progress
        )
        assert again.references == outcome.references
        assert {s.route for s in zgw.requests[before:]} == {"get_zaak"}  # the zaak, nothing else
