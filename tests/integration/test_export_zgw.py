"""The `zgw` exporter against the fake ZGW APIs on 127.0.0.1: what it sends, uploads in parts,
and that failures, timeouts and crashes at any step end, after a retry, with every document
exactly once at the target and linked once to the zaak."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from dossier.errors import IntegrityError
from dossier.export.errors import ExportConfigError, ExportFailed, TargetUnavailable
from dossier.export.zgw import ZgwExporter, is_rsin

from fake_zgw import (
    CLERK_ID,
    CLIENT_ID,
    CRS,
    RSIN,
    SECRET,
    TRANSCRIPT,
    FakeZgw,
    MemoryLedger,
    document_bytes,
    fixed_transcript,
    no_progress,
    sample_content,
)

PDF = document_bytes("paspoort", 30_000)
JPEG = document_bytes("foto", 12_345)
LARGE = document_bytes("akte", 250_001)  # 4 parts of 64 KiB at the fake
THRESHOLD = 100_000


@pytest.fixture
async def zgw():
    async with FakeZgw() as fake:
        fake.zaak_url = fake.add_zaak("ZAAK-2026-0001")
        yield fake


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def exporter_for(http, zgw, **overrides):
    settings = dict(
        documenten_url=zgw.documenten_url,
        zaken_url=zgw.zaken_url,
        client_id=CLIENT_ID,
        secret=SECRET,
        informatieobjecttype=zgw.informatieobjecttype,
        bronorganisatie=RSIN,
        part_threshold=THRESHOLD,
        timeout=5.0,
        render_transcript=fixed_transcript,
    )
    settings.update(overrides)
    return ZgwExporter(http, **settings)


@pytest.fixture
def exporter(http, zgw):
    return exporter_for(http, zgw)


def three_documents():
    return sample_content(
        [
            ("paspoort.pdf", "application/pdf", PDF),
            ("pasfoto.jpg", "image/jpeg", JPEG),
            ("geboorteakte.pdf", "application/pdf", LARGE),
        ]
    )


def assert_each_exactly_once(zgw, content, outcome=None):
    """Every document and the transcript: one EIO, complete, with the right bytes, linked once."""
    expected = {f"balie-d-{d.document_id.hex}": d for d in content.documents}
    transcript_id = f"balie-t-{content.dossier_id.hex}"
    identificaties = [*expected, transcript_id]
    assert sorted(e.record["identificatie"] for e in zgw.eios.values()) == sorted(identificaties)
    for identificatie in identificaties:
        [eio] = zgw.live(identificatie)
        assert eio["locked"] is False
        assert zgw.links.count((zgw.zaak_url, eio["url"])) == 1
        document = expected.get(identificatie)
        data = zgw.content(eio["url"])
        if document is not None:
            assert data == document_bytes_of(document)
            if outcome is not None:
                assert outcome.references[f"document:{document.document_id}"] == eio["url"]
        else:
            assert data == TRANSCRIPT
    assert len(zgw.links) == len(identificaties)


def document_bytes_of(document):
    names = {"paspoort.pdf": PDF, "pasfoto.jpg": JPEG, "geboorteakte.pdf": LARGE, "scan.pdf": PDF}
    return names[document.name]


async def test_export_sends_what_the_standard_asks(exporter, zgw):
    content = sample_content(
        [("paspoort.pdf", "application/pdf", PDF), ("pasfoto.jpg", "image/jpeg", JPEG)]
    )
    seen_progress = []

    async def progress(fraction, text):
        seen_progress.append((fraction, text))

    outcome = await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=MemoryLedger(), progress=progress
    )

    assert_each_exactly_once(zgw, content, outcome)
    transcript = zgw.live(f"balie-t-{content.dossier_id.hex}")[0]
    assert outcome.references["zaak"] == zgw.zaak_url
    assert outcome.references["transcript"] == transcript["url"]
    assert len(outcome.references) == 4
    # The fields of each EIO, as the fake received them.
    bodies = {s.body["bestandsnaam"]: s.body for s in zgw.seen("create_eio")}
    assert set(bodies) == {"paspoort.pdf", "pasfoto.jpg", "gespreksverslag-2026-03-02.pdf"}
    pdf = bodies["paspoort.pdf"]
    assert base64.b64decode(pdf.pop("inhoud")) == PDF
    assert pdf == {
        "identificatie": f"balie-d-{content.documents[0].document_id.hex}",
        "bronorganisatie": RSIN,
        "creatiedatum": "2026-03-02",
        "titel": "paspoort.pdf",
        "auteur": "Digitale Balie",
        "taal": "nld",
        "status": "definitief",
        "formaat": "application/pdf",
        "bestandsnaam": "paspoort.pdf",
        "bestandsomvang": len(PDF),
        "vertrouwelijkheidaanduiding": "vertrouwelijk",
        "indicatieGebruiksrecht": False,
        "informatieobjecttype": zgw.informatieobjecttype,
        "integriteit": {
            "algoritme": "sha_256",
            "waarde": hashlib.sha256(PDF).hexdigest(),
            "datum": pdf["integriteit"]["datum"],
        },
    }
    assert bodies["pasfoto.jpg"]["formaat"] == "image/jpeg"
    assert bodies["gespreksverslag-2026-03-02.pdf"]["titel"] == "Gespreksverslag"
    assert bodies["gespreksverslag-2026-03-02.pdf"]["formaat"] == "application/pdf"
    # Links: one per EIO, to the zaak, with the CRS headers the Zaken API asks for.
    for seen in zgw.seen("create_zio"):
        assert seen.body["zaak"] == zgw.zaak_url
        assert seen.headers["Accept-Crs"] == CRS
        assert seen.headers["Content-Crs"] == CRS
    assert all(s.headers.get("Accept-Crs") == CRS for s in zgw.requests if "/zaken/" in s.path)
    # Authentication: a ZGW JWT on behalf of the clerk, on every request.
    for seen in zgw.requests:
        token = seen.headers["Authorization"].removeprefix("Bearer ")
        decoded = jwt.decode(token, OctKey.import_key(SECRET), algorithms=["HS256"])
        assert decoded.header["alg"] == "HS256"
        assert decoded.claims["iss"] == decoded.claims["client_id"] == CLIENT_ID
        assert decoded.claims["user_id"] == decoded.claims["user_representation"] == CLERK_ID
        assert isinstance(decoded.claims["iat"], int)
    # Progress in Dutch, forward only, to the end.
    texts = [text for _, text in seen_progress]
    assert "Document 2 van 2 naar het zaaksysteem" in texts
    assert "Gespreksverslag naar het zaaksysteem" in texts
    fractions = [fraction for fraction, _ in seen_progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


async def test_a_large_document_goes_up_in_parts_and_arrives_whole(exporter, zgw):
    content = three_documents()
    steps = MemoryLedger()

    await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content)
    [large_create] = [
        s for s in zgw.seen("create_eio") if s.body["bestandsnaam"] == "geboorteakte.pdf"
    ]
    assert "inhoud" not in large_create.body
    assert large_create.body["bestandsomvang"] == len(LARGE)
    assert large_create.body["integriteit"]["waarde"] == hashlib.sha256(LARGE).hexdigest()
    puts = zgw.seen("put_part")
    assert len(puts) == 4  # 250 001 bytes in parts of 64 KiB
    for put in puts:  # each part streamed with its exact length, not chunked
        assert put.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        assert "Transfer-Encoding" not in put.headers
        assert int(put.headers["Content-Length"]) > 0
    assert len(zgw.seen("unlock")) == 1
    large_id = str(content.documents[2].document_id)
    assert [k for k in steps.steps if k.startswith("part:")] == [
        f"part:{large_id}:{n}" for n in range(1, 5)
    ]
    pending = steps.steps[f"eio-pending:{large_id}"]
    assert pending["sha256"] == hashlib.sha256(LARGE).hexdigest()
    assert [p["omvang"] for p in pending["parts"]] == [65536, 65536, 65536, 53393]


@pytest.mark.parametrize(
    ("route", "nth"),
    [
        ("list_zaken", 1),
        ("list_eio", 2),
        ("create_eio", 2),
        ("create_eio", 3),  # the large document's
        ("put_part", 3),
        ("unlock", 1),
        ("list_zio", 3),
        ("create_zio", 2),
        ("create_zio", 4),  # the transcript's link, the very last request
    ],
)
async def test_a_server_error_midway_then_a_retry_makes_each_document_once(
    exporter, zgw, route, nth
):
    content = three_documents()
    steps = MemoryLedger()
    zgw.fail(route, nth=nth, status=503)

    with pytest.raises(TargetUnavailable, match="HTTP 503"):
        await exporter.export(content, options={"zaak": "ZAAK-2026-0001"}, steps=steps,
                              progress=no_progress)  # fmt: skip
    outcome = await exporter.export(
        content, options={"zaak": "ZAAK-2026-0001"}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content, outcome)
    assert sorted(zgw.creations) == sorted(e.record["identificatie"] for e in zgw.eios.values())
    assert zgw.deleted == []


@pytest.mark.parametrize("route", ["create_eio", "put_part", "unlock", "create_zio"])
async def test_a_timeout_after_the_server_did_the_work_repeats_nothing(http, zgw, route):
    exporter = exporter_for(http, zgw, timeout=0.5)
    content = three_documents()
    steps = MemoryLedger()
    zgw.hang(route, nth=1)

    with pytest.raises(TargetUnavailable, match="in time"):
        await exporter.export(content, options={"zaak": zgw.zaak_url}, steps=steps,
                              progress=no_progress)  # fmt: skip
    zgw.release()
    outcome = await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content, outcome)
    assert len(zgw.creations) == 4
    assert zgw.deleted == []


@pytest.mark.parametrize("step", ["eio:", "zio:"])
async def test_a_crash_between_the_servers_answer_and_the_record_makes_no_duplicate(
    exporter, zgw, step
):
    content = three_documents()
    steps = MemoryLedger()
    steps.fail_on(step)

    with pytest.raises(ConnectionError):
        await exporter.export(content, options={"zaak": zgw.zaak_url}, steps=steps,
                              progress=no_progress)  # fmt: skip
    assert len(zgw.creations) == 1  # the first document was made, its step not recorded
    await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content)
    assert len(zgw.creations) == 4  # found by its identificatie, not made again
    assert zgw.deleted == []


async def test_a_large_document_made_but_not_recorded_is_replaced_not_doubled(exporter, zgw):
    # The API made the EIO and its lock, but the lock never reached the ledger: nobody can
    # finish that upload, so the exporter deletes its own unfinished EIO and starts over.
    content = three_documents()
    steps = MemoryLedger()
    steps.fail_on("eio-pending:")

    with pytest.raises(ConnectionError):
        await exporter.export(content, options={"zaak": zgw.zaak_url}, steps=steps,
                              progress=no_progress)  # fmt: skip
    [orphan] = zgw.live(f"balie-d-{content.documents[2].document_id.hex}")
    assert orphan["locked"] is True
    await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content)
    assert zgw.deleted == [orphan["url"]]


async def test_an_upload_unlocked_by_someone_else_starts_over_as_a_new_attempt(exporter, zgw):
    content = three_documents()
    steps = MemoryLedger()
    zgw.fail("put_part", nth=2)
    with pytest.raises(TargetUnavailable):
        await exporter.export(content, options={"zaak": zgw.zaak_url}, steps=steps,
                              progress=no_progress)  # fmt: skip
    large_id = str(content.documents[2].document_id)
    first = steps.steps[f"eio-pending:{large_id}"]["url"]
    zgw.force_unlock(first)

    await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content)
    assert zgw.deleted == [first]
    assert steps.steps[f"eio-pending:{large_id}:2"]["url"] != first
    assert f"part:{large_id}:2:4" in steps.steps


async def test_a_transcript_rendered_anew_replaces_the_unrecorded_one(http, zgw):
    renderings = iter([b"%PDF first rendering", TRANSCRIPT])
    exporter = exporter_for(http, zgw, render_transcript=lambda content: next(renderings))
    content = sample_content([("scan.pdf", "application/pdf", PDF)])
    steps = MemoryLedger()
    steps.fail_on("eio:transcript")

    with pytest.raises(ConnectionError):
        await exporter.export(content, options={"zaak": zgw.zaak_url}, steps=steps,
                              progress=no_progress)  # fmt: skip
    await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )

    assert_each_exactly_once(zgw, content)  # the second rendering, once
    assert len(zgw.deleted) == 1


async def test_a_document_that_changes_under_the_upload_is_refused_and_never_linked(exporter, zgw):
    content = three_documents()
    large = content.documents[2]
    opened = []

    def changing():
        opened.append(1)
        data = LARGE if len(opened) == 1 else LARGE[:-1] + b"\x00"

        async def stream():
            yield data

        return stream()

    changed = dataclasses.replace(large, open=changing)
    tampered = dataclasses.replace(content, documents=(*content.documents[:2], changed))

    with pytest.raises(ExportFailed, match="checksum-mismatch"):
        await exporter.export(tampered, options={"zaak": zgw.zaak_url}, steps=MemoryLedger(),
                              progress=no_progress)  # fmt: skip
    [eio] = zgw.live(f"balie-d-{large.document_id.hex}")
    assert eio["locked"] is True
    assert all(io != eio["url"] for _, io in zgw.links)


async def test_the_zaak_by_identificatie_or_by_url_is_the_same_zaak(exporter, zgw):
    content = sample_content([("scan.pdf", "application/pdf", PDF)])
    by_identificatie = await exporter.export(
        content, options={"zaak": " ZAAK-2026-0001 "}, steps=MemoryLedger(), progress=no_progress
    )
    [search] = zgw.seen("list_zaken")
    assert search.query == {"identificatie": "ZAAK-2026-0001", "bronorganisatie": RSIN}

    by_url = await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=MemoryLedger(), progress=no_progress
    )
    assert by_url.references == by_identificatie.references
    assert by_url.references["zaak"] == zgw.zaak_url
    assert len(zgw.seen("get_zaak")) == 1
    assert len(zgw.creations) == 2  # the second export found both EIOs and both links


@pytest.mark.parametrize(
    ("zaak", "message"),
    [
        ("ZAAK-2026-9999", "no zaak with identificatie 'ZAAK-2026-9999'"),
        ("{zaken}/zaken/00000000-0000-4000-8000-000000000000", "has no zaak http"),
        ("https://elders.example/zaken/api/v1/zaken/1", "is not a zaak of"),
        ("", "needs a zaak"),
        ("x" * 41, "neither a zaak URL nor an identificatie"),
    ],
)
async def test_an_unknown_zaak_fails_naming_it_and_uploads_nothing(exporter, zgw, zaak, message):
    with pytest.raises(ExportFailed, match=message):
        await exporter.export(
            sample_content([("scan.pdf", "application/pdf", PDF)]),
            options={"zaak": zaak.format(zaken=zgw.zaken_url)},
            steps=MemoryLedger(),
            progress=no_progress,
        )
    assert zgw.creations == []


async def test_two_zaken_with_one_identificatie_is_refused(exporter, zgw):
    zgw.add_zaak("ZAAK-2026-0001")
    with pytest.raises(ExportFailed, match="2 zaken with identificatie 'ZAAK-2026-0001'"):
        await exporter.export(sample_content([]), options={"zaak": "ZAAK-2026-0001"},
                              steps=MemoryLedger(), progress=no_progress)  # fmt: skip


async def test_a_retry_cannot_switch_to_another_zaak(exporter, zgw):
    steps = MemoryLedger()
    content = sample_content([("scan.pdf", "application/pdf", PDF)])
    await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=steps, progress=no_progress
    )
    other = zgw.add_zaak("ZAAK-2026-0002")
    with pytest.raises(ExportFailed, match="was started for zaak"):
        await exporter.export(content, options={"zaak": other}, steps=steps, progress=no_progress)


async def test_a_wrong_secret_is_a_configuration_error_that_never_shows_the_secret(
    http, zgw, caplog
):
    wrong = "an-entirely-different-secret-42"
    exporter = exporter_for(http, zgw, secret=wrong)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(
        ExportConfigError, match="refused client 'balie-test' \\(HTTP 403\\)"
    ) as exc:
        await exporter.export(sample_content([]), options={"zaak": zgw.zaak_url},
                              steps=MemoryLedger(), progress=no_progress)  # fmt: skip
    with pytest.raises(ExportConfigError, match="HTTP 403"):
        await exporter.check_config()

    assert zgw.creations == []
    for text in (str(exc.value), repr(exporter), caplog.text):
        assert wrong not in text
        assert SECRET not in text


async def test_check_config_accepts_the_right_settings_and_names_the_wrong_ones(http, zgw):
    await exporter_for(http, zgw).check_config()
    assert {s.route for s in zgw.requests} == {"list_eio", "list_zaken"}

    for overrides, message in [
        ({"bronorganisatie": "123456789"}, "'123456789' is not an RSIN"),
        ({"secret": "short"}, "shorter than 14 bytes"),
        ({"client_id": ""}, "client id is not set"),
        ({"informatieobjecttype": ""}, "informatieobjecttype URL is not set"),
        ({"vertrouwelijkheidaanduiding": "staatsgeheim"}, "'staatsgeheim' is not a ZGW"),
    ]:
        with pytest.raises(ExportConfigError, match=message):
            await exporter_for(http, zgw, **overrides).check_config()
    assert is_rsin(RSIN)
    assert not is_rsin("12345678")
    assert not is_rsin("123456783")


async def test_the_apis_own_explanation_of_a_refusal_is_kept(http, zgw):
    exporter = exporter_for(http, zgw, informatieobjecttype=f"{zgw.origin}/catalogi/api/v1/x")
    with pytest.raises(ExportFailed, match="informatieobjecttype: onbekend informatieobjecttype"):
        await exporter.export(sample_content([("scan.pdf", "application/pdf", PDF)]),
                              options={"zaak": zgw.zaak_url}, steps=MemoryLedger(),
                              progress=no_progress)  # fmt: skip


async def test_an_unreachable_api_is_unavailable(http, zgw):
    exporter = exporter_for(http, zgw, zaken_url="http://127.0.0.1:9/zaken/api/v1")
    with pytest.raises(TargetUnavailable, match="could not be reached"):
        await exporter.export(sample_content([]), options={"zaak": "ZAAK-1"},
                              steps=MemoryLedger(), progress=no_progress)  # fmt: skip


async def test_the_fake_refuses_what_open_zaak_would_refuse(http, zgw):
    # The fake's checks can fail: a test that passes against it means something.
    auth = {"Authorization": exporter_for(http, zgw)._api.auth.authorization(CLERK_ID)}
    url = f"{zgw.documenten_url}/enkelvoudiginformatieobjecten"
    good = {
        "identificatie": "x-1", "bronorganisatie": RSIN, "creatiedatum": "2026-03-02",
        "titel": "t", "auteur": "a", "taal": "nld",
        "informatieobjecttype": zgw.informatieobjecttype,
        "inhoud": base64.b64encode(b"abc").decode(),
        "integriteit": {"algoritme": "sha_256", "waarde": hashlib.sha256(b"abc").hexdigest(),
                        "datum": "2026-03-02"},
    }  # fmt: skip
    for change, code in [
        ({"integriteit": {**good["integriteit"], "waarde": "0" * 64}}, "checksum-mismatch"),
        ({"bestandsomvang": 4}, "file-size"),
        ({"titel": ""}, "required"),
        ({"taal": "nl"}, "invalid"),
    ]:
        async with http.post(url, json={**good, **change}, headers=auth) as response:
            assert response.status == 400
            assert (await response.json())["invalidParams"][0]["code"] == code
    async with http.post(url, json=good) as response:
        assert response.status == 403
    async with http.post(url, json=good, headers=auth) as response:
        assert response.status == 201
    async with http.post(url, json=good, headers=auth) as response:
        assert (await response.json())["invalidParams"][0]["code"] == "identificatie-niet-uniek"
    async with http.get(f"{zgw.zaken_url}/zaken", headers=auth) as response:
        assert response.status == 412  # no Accept-Crs
    assert json.loads(json.dumps(zgw.live("x-1")))[0]["bestandsomvang"] == 3


async def test_a_document_that_fails_to_decrypt_midway_raises_that_not_a_network_error(
    exporter, zgw
):
    content = three_documents()
    large = content.documents[2]
    opened = []

    def breaks_on_upload():
        opened.append(1)

        async def stream():
            yield LARGE[:100_000]
            if len(opened) > 1:  # the hash pass reads it whole; the upload pass breaks
                raise IntegrityError("segment 7 of the document failed to authenticate")
            yield LARGE[100_000:]

        return stream()

    broken = dataclasses.replace(large, open=breaks_on_upload)
    content = dataclasses.replace(content, documents=(*content.documents[:2], broken))

    with pytest.raises(IntegrityError, match="segment 7"):
        await exporter.export(content, options={"zaak": zgw.zaak_url}, steps=MemoryLedger(),
                              progress=no_progress)  # fmt: skip
    assert all(io != zgw.live(f"balie-d-{large.document_id.hex}")[0]["url"] for _, io in zgw.links)


async def test_the_real_transcript_renderer_is_used_by_default(http, zgw):
    exporter = ZgwExporter(
        http,
        documenten_url=zgw.documenten_url,
        zaken_url=zgw.zaken_url,
        client_id=CLIENT_ID,
        secret=SECRET,
        informatieobjecttype=zgw.informatieobjecttype,
        bronorganisatie=RSIN,
    )
    content = sample_content([])

    outcome = await exporter.export(
        content, options={"zaak": zgw.zaak_url}, steps=MemoryLedger(), progress=no_progress
    )

    pdf = zgw.content(outcome.references["transcript"])
    assert pdf.startswith(b"%PDF-")
    [eio] = zgw.live(f"balie-t-{content.dossier_id.hex}")
    assert eio["integriteit"]["waarde"] == hashlib.sha256(pdf).hexdigest()
