"""Documents through the HTTP API, as browsers send and fetch them.

    POST /api/dossiers/{dossier}/documents              multipart/form-data, part "file"
    GET  /api/dossiers/{dossier}/documents              the list
    GET  /api/dossiers/{dossier}/documents/{document}   the download

Every file is generated here: PDFs with pypdf, images with Pillow, programs, polyglots and the
EICAR test string from their bytes. Each test checks what a user or an attacker would notice
(status, JSON code, headers, bytes) and what the server kept: the `documents` rows and the
files in the blob directory. The size limit is measured where it matters: how much of an
oversized body the server took off the connection before it answered 413, and afterwards.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import ClientResponse, DummyCookieJar, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from aiohttp.test_utils import TestClient, TestServer
from PIL import ExifTags, Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from sqlalchemy import select
from sqlmodel import col

from dossier.appointments import BookedAppointment, ensure_department
from dossier.models import Document
from identity.accounts import add_local_account
from identity.sessions import create_session
from retention.models import AuditEvent
from server.app import LINGERING_SECONDS, create_app

from fake_clamd import EICAR, FakeClamd
from support import Visitor, book, free_port

KIB, MIB = 1 << 10, 1 << 20
PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
# A Windows program as far as anyone looking at it can tell: DOS header pointing at "PE\0\0".
WINDOWS_PROGRAM = b"MZ" + b"\x90" * 0x3A + (0x40).to_bytes(4, "little") + b"PE\x00\x00" + bytes(200)
RED, BLUE = (255, 0, 0), (0, 0, 255)
# Body bytes the server had taken off the connection when its answer was ready.
RECEIVED = web.RequestKey("received_when_answered", int)


# --- files -----------------------------------------------------------------------------------


def pdf_bytes() -> bytes:
    """An ordinary one-page PDF, the kind a scanner app or a word processor makes."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "Verklaring"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_javascript() -> bytes:
    """A PDF that runs a script as it is opened."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_open_action(JavaScript("app.alert('hallo')"))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def two_colours(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Left half red, right half blue: easy to recognise after a lossy re-encoding."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photo_with_gps() -> bytes:
    """A JPEG as a phone takes it: EXIF with the camera make and where it was taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Fairphone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 43.2)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 52.8)
    return encode(two_colours(), "JPEG", exif=exif)


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(image: Image.Image, xy: tuple[int, int], colour: tuple[int, ...], slack: int) -> bool:
    pixel = image.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return all(abs(got - want) <= slack for got, want in zip(pixel, colour, strict=True))


SAMPLES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # kind: (content, name, declared type)
    "pdf": (pdf_bytes, "verklaring.pdf", PDF),
    "jpeg": (lambda: encode(two_colours(), "JPEG", quality=95), "foto.jpg", JPEG),
    "png": (lambda: encode(two_colours(), "PNG"), "scan.png", PNG),
}


# --- people ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class People:
    """Appointment A (booked) with everyone who might touch its dossier, and appointment B
    (other) of another resident."""

    booked: BookedAppointment
    other: BookedAppointment
    resident: Visitor
    clerk: Visitor
    interpreter: Visitor
    manager: Visitor
    other_clerk: Visitor
    other_resident: Visitor

    @property
    def dossier(self) -> uuid.UUID:
        return self.booked.dossier.id


@pytest.fixture
async def people(store, settings, clock) -> People:
    booked, other = await book(store, clock), await book(store, clock)
    secret = settings.secret_key.get_secret_value().encode()
    visitors: dict[str, Visitor] = {}
    async with store.sessions() as session, session.begin():
        await ensure_department(session, code="publiekszaken", name="Publiekszaken")
        for name, role, department in (
            ("clerk", "clerk", "burgerzaken"),
            ("other_clerk", "clerk", "publiekszaken"),
            ("manager", "information_manager", None),
        ):
            made = await add_local_account(
                session, secret_key=secret, username=name, display_name=name,
                employee_id=f"emp-{name}", role=role, department=department,
                now=clock.current, password="x" * 16,
            )  # fmt: skip
            token, row = await create_session(
                session, now=clock.current, kind="staff", role=role, staff_id=made.account.id,
                department_id=made.account.department_id,
            )  # fmt: skip
            visitors[name] = Visitor(token, row.csrf_token)
        for name, kind, appointment in (
            ("resident", "resident", booked.appointment.id),
            ("interpreter", "guest", booked.appointment.id),
            ("other_resident", "resident", other.appointment.id),
        ):
            token, row = await create_session(
                session, now=clock.current, kind=kind, role=kind, appointment_id=appointment,
                resident_pseudonym=f"p-{name}",
            )  # fmt: skip
            visitors[name] = Visitor(token, row.csrf_token)
    return People(booked=booked, other=other, **visitors)


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(aiohttp_client, settings, clock, store) -> MakeClient:
    """The real app with some settings changed; no cookie jar (each request names its
    session). `middleware`, if given, wraps everything (to watch, never to change)."""

    async def make(middleware=None, **changes):
        app = create_app(settings.model_copy(update=changes), clock=clock)
        if middleware is not None:
            app.middlewares.insert(0, middleware)
        # The server as `balie serve` runs it (its lingering time matters below).
        server = TestServer(app)
        await server.start_server(lingering_time=LINGERING_SECONDS)
        return await aiohttp_client(server, cookie_jar=DummyCookieJar())

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


# --- requests --------------------------------------------------------------------------------


def form(
    data: bytes | AsyncIterator[bytes],
    *,
    filename: str | None,
    content_type: str | None,
    field: str = "file",
) -> aiohttp.MultipartWriter:
    """multipart/form-data with one part, as a browser sends a file input: the name as
    UTF-8 in the quoted string (not percent-encoded)."""
    writer = aiohttp.MultipartWriter("form-data")
    headers = {"Content-Type": content_type} if content_type else {}
    part = writer.append(data, headers)
    params = {"name": field} if filename is None else {"name": field, "filename": filename}
    part.set_content_disposition("form-data", quote_fields=False, **params)
    return writer


def unsafe_headers(settings, visitor: Visitor | None) -> dict[str, str]:
    """What a page of ours sends with a POST: our Origin, the cookie and the CSRF token."""
    headers = {"Origin": settings.public_origin}
    if visitor is not None:
        headers |= {**visitor.cookie, "X-CSRF-Token": visitor.csrf}
    return headers


def documents_path(dossier_id: uuid.UUID | str) -> str:
    return f"/api/dossiers/{dossier_id}/documents"


async def upload(
    client,
    settings,
    visitor: Visitor | None,
    dossier_id: uuid.UUID | str,
    data: bytes | AsyncIterator[bytes],
    *,
    filename: str | None = "upload.pdf",
    content_type: str | None = PDF,
    field: str = "file",
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    body = form(data, filename=filename, content_type=content_type, field=field)
    return await client.post(
        documents_path(dossier_id),
        data=body,
        headers=headers if headers is not None else unsafe_headers(settings, visitor),
    )


async def upload_as_rfc5987(
    client, settings, visitor: Visitor, dossier_id: uuid.UUID, name: str, data: bytes
) -> ClientResponse:
    """Upload a PDF whose name travels percent-encoded in `filename*`. Browsers do not do
    this (RFC 7578 says not to), but the server's parser honours it, and it is the only way
    quotes or line breaks in a name get through multipart framing intact."""
    quoted = "".join(f"%{b:02X}" for b in name.encode())
    body = (
        (
            f"--grens\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''{quoted}"
            "\r\nContent-Type: application/pdf\r\n\r\n"
        ).encode()
        + data
        + b"\r\n--grens--\r\n"
    )
    return await client.post(
        documents_path(dossier_id),
        data=body,
        headers={
            **unsafe_headers(settings, visitor),
            "Content-Type": "multipart/form-data; boundary=grens",
        },
    )


def request_head(settings, visitor: Visitor, dossier_id: uuid.UUID, extra: dict[str, str]) -> bytes:
    """The request line and headers of an upload, byte for byte."""
    headers = {
        "Host": "127.0.0.1",
        **unsafe_headers(settings, visitor),
        "Content-Type": "multipart/form-data; boundary=grens",
        **extra,
    }
    lines = [f"POST {documents_path(dossier_id)} HTTP/1.1"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def keep_sending(
    writer: asyncio.StreamWriter, budget: int, until: asyncio.Future | None = None
) -> int:
    """Send 64 KiB chunks of PDF comment lines until `budget` bytes went out, `until` is done,
    the server closed the connection or stopped taking data for a second; returns the bytes
    the server's side took."""
    line = b"%" + b"x" * (64 * KIB - 2) + b"\n"
    sent = 0
    try:
        while sent < budget and not (until is not None and until.done()):
            writer.write(chunk(line))
            await asyncio.wait_for(writer.drain(), 1)
            sent += len(line)
    except (ConnectionError, TimeoutError):
        pass
    return sent


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of an HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(lines[0].split(" ", 2)[1]), body


def rfc5987(data: bytes) -> str:
    """RFC 5987 percent-encoding: everything but unreserved ASCII letters, digits and -._~."""
    keep = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in data)


async def error_of(response: ClientResponse, status: int) -> dict[str, str]:
    """The JSON error body of a response that must have `status`."""
    body = await response.json()
    assert response.status == status, body
    assert set(body) == {"code", "message"}, body
    return body


async def stored_rows(store) -> list[Document]:
    async with store.sessions() as session:
        return list((await session.execute(select(Document))).scalars())


def blob_files(settings) -> list[Path]:
    root = settings.resolved_blob_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def assert_nothing_stored(store, settings) -> None:
    assert await stored_rows(store) == []
    assert blob_files(settings) == []


async def denials(store) -> list[AuditEvent]:
    async with store.sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "access.denied")
        return list((await session.execute(query.order_by(col(AuditEvent.seq)))).scalars())


# --- the round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pdf", "jpeg", "png"])
@pytest.mark.parametrize("who", ["resident", "clerk"])
async def test_upload_and_download_round_trip(client, settings, store, people, who, kind):
    make, name, declared = SAMPLES[kind]
    original = make()
    visitor = getattr(people, who)

    response = await upload(
        client, settings, visitor, people.dossier, original, filename=name, content_type=declared
    )
    document = await response.json()
    assert response.status == 201, document
    assert document["name"] == name
    assert document["media_type"] == declared
    assert document["from"] == who
    assert document["url"] == f"{documents_path(people.dossier)}/{document['id']}"
    [row] = await stored_rows(store)
    assert (str(row.id), row.state, row.dossier_id) == (document["id"], "complete", people.dossier)
    assert name.encode() not in row.name_sealed

    # Both participants see it in the list and can fetch it.
    for reader in (people.resident, people.clerk):
        listed = await client.get(documents_path(people.dossier), headers=reader.cookie)
        assert listed.status == 200
        assert (await listed.json()) == {"documents": [document]}

        download = await client.get(document["url"], headers=reader.cookie)
        content = await download.read()
        assert download.status == 200
        assert download.headers["Content-Type"] == declared
        assert int(download.headers["Content-Length"]) == len(content) == document["size"]
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in download.headers["Content-Security-Policy"]
        assert download.headers["Cache-Control"] == "no-store"

        if kind == "pdf":
            assert content == original
        else:
            # Re-encoded (see the EXIF test), but the same picture.
            image = opened(content)
            assert image.format == {"jpeg": "JPEG", "png": "PNG"}[kind]
            assert image.size == (40, 20)
            slack = 40 if kind == "jpeg" else 0
            assert near(image, (5, 10), RED, slack)
            assert near(image, (34, 10), BLUE, slack)


@pytest.mark.parametrize(
    ("name", "fallback", "send"),
    [
        # As browsers send it: UTF-8 in the quoted string.
        ("Geboorteakte Zoë ü.pdf", "Geboorteakte Zo_ _.pdf", "utf-8"),
        # Quotes survive multipart framing only in filename*.
        ('brief "2024"; deel\\1 100%.pdf', "brief _2024__ deel_1 100_.pdf", "rfc5987"),
    ],
    ids=["non-ascii", "quotes-semicolon-backslash-percent"],
)
async def test_download_names_the_file_exactly_and_the_name_is_sealed(
    client, settings, store, people, name, fallback, send
):
    original = pdf_bytes()
    if send == "utf-8":
        response = await upload(
            client, settings, people.resident, people.dossier, original, filename=name
        )
    else:
        response = await upload_as_rfc5987(
            client, settings, people.resident, people.dossier, name, original
        )
    document = await response.json()
    assert response.status == 201, document
    assert document["name"] == name

    download = await client.get(document["url"], headers=people.clerk.cookie)
    assert await download.read() == original
    header = download.headers["Content-Disposition"]
    encoded = name.encode()
    assert header.isascii()
    assert header == f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{rfc5987(encoded)}"
    # The fallback is one clean quoted string; a client that reads filename* gets the name back.
    assert not set(fallback) & set('"\\;%')
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == name
    disposition, params = parse_content_disposition(header)
    assert disposition == "attachment"
    assert content_disposition_filename(params) == name

    # The name is sealed in the database and the content in the blob; neither is readable.
    [row] = await stored_rows(store)
    assert encoded not in row.name_sealed
    assert b"Geboorteakte" not in row.name_sealed
    assert b"brief" not in row.name_sealed
    [blob] = blob_files(settings)
    sealed = blob.read_bytes()
    assert b"%PDF-" not in sealed
    assert encoded not in sealed


# --- the size limit --------------------------------------------------------------------------


def body_meter(seen: list[web.Request]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware that only watches: it keeps each request, so that a test can read how many
    body bytes the server had taken off the connection (`request.content.total_bytes`) when
    the answer was ready, and again later."""

    @web.middleware
    async def meter(request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            request[RECEIVED] = request.content.total_bytes
            seen.append(request)

    return meter


async def pdf_then_padding(total: int, consumed: list[int]) -> AsyncIterator[bytes]:
    """A PDF of `total` bytes (a real PDF padded with comment lines), counting in `consumed`
    how much of it the client's transport has taken so far."""
    head = pdf_bytes()
    consumed[0] += len(head)
    yield head
    line = b"%" + b"x" * (64 * KIB - 2) + b"\n"
    while consumed[0] < total:
        consumed[0] += len(line)
        yield line


async def test_oversized_chunked_upload_is_413_after_reading_little_more_than_the_limit(
    make_client, settings, store, people
):
    limit, total = 64 * KIB, 64 * MIB
    seen: list[web.Request] = []
    client = await make_client(middleware=body_meter(seen), document_max_bytes=limit)
    consumed = [0]

    response = await upload(
        client, settings, people.resident, people.dossier, pdf_then_padding(total, consumed)
    )
    consumed_at_answer = consumed[0]
    error = await error_of(response, 413)
    response.close()  # stop sending the rest

    assert error["code"] == "document_too_large"
    assert str(limit) in error["message"]
    [request] = seen
    # No Content-Length: the size check before reading could not have answered this.
    assert request.content_length is None
    assert request.headers["Transfer-Encoding"] == "chunked"
    # The handler stopped reading a little past the limit (asyncio takes up to 256 KiB per
    # read from the socket, and aiohttp buffers a little ahead), nowhere near the 64 MiB.
    assert request[RECEIVED] <= limit + MIB
    # What the client had handed to its socket by then: that, plus the kernel's buffers.
    assert consumed_at_answer < total // 4
    await assert_nothing_stored(store, settings)


async def test_oversized_upload_with_content_length_is_413_before_any_body_is_sent(
    make_client, settings, store, people
):
    seen: list[web.Request] = []
    client = await make_client(middleware=body_meter(seen), document_max_bytes=64 * KIB)
    head = request_head(
        settings, people.resident, people.dossier, {"Content-Length": str(10 << 30)}
    )
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head)  # the headers only: not one byte of the body is ever sent
        await writer.drain()
        status, body = await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status == 413
    error = json.loads(body)
    assert error["code"] == "document_too_large"
    assert "65536" in error["message"]
    [request] = seen
    assert request[RECEIVED] == 0
    await assert_nothing_stored(store, settings)


async def test_file_a_little_over_the_limit_with_content_length_is_413(
    make_client, settings, store, people
):
    """Within the allowance for multipart framing, so the size check before reading lets it
    through; the limit while reading catches it."""
    limit = 64 * KIB
    client = await make_client(document_max_bytes=limit)
    data = pdf_bytes() + b"%" + b"x" * limit + b"\n"
    response = await upload(client, settings, people.resident, people.dossier, data)
    assert (await error_of(response, 413))["code"] == "document_too_large"
    await assert_nothing_stored(store, settings)


async def test_after_a_413_the_server_stops_reading_the_upload_soon(
    make_client, settings, store, people
):
    """The handler stops at the limit (above); then aiohttp drains what the client still
    sends so that the client can read the 413, but only for LINGERING_SECONDS
    (aiohttp's default is 10 s: gigabytes on a fast link). After that the server stops taking
    data: the connection is closed or sending stalls."""
    limit = 64 * KIB
    lingering = LINGERING_SECONDS
    seen: list[web.Request] = []
    client = await make_client(middleware=body_meter(seen), document_max_bytes=limit)
    head = request_head(settings, people.resident, people.dossier, {"Transfer-Encoding": "chunked"})
    part = (
        b'--grens\r\nContent-Disposition: form-data; name="file"; filename="groot.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + pdf_bytes()
    )
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + chunk(part))
        answer = asyncio.ensure_future(read_response(reader))
        await keep_sending(writer, 1 << 40, until=answer)
        status, body = await asyncio.wait_for(answer, 5)
        assert status == 413
        assert json.loads(body)["code"] == "document_too_large"
        answered = time.monotonic()
        # Go on sending as a careless client would, for longer than the server lingers.
        deadline = asyncio.ensure_future(asyncio.sleep(lingering + 4))
        await keep_sending(writer, 1 << 40, until=deadline)
        stopped_after = time.monotonic() - answered
        deadline.cancel()
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    [request] = seen
    assert request[RECEIVED] < limit + MIB  # the handler answered a little past the limit
    assert stopped_after < lingering + 2, f"the server kept reading for {stopped_after:.1f} s"
    await assert_nothing_stored(store, settings)


# --- content that is refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "filename", "declared", "phrases"),
    [
        (WINDOWS_PROGRAM, "brief.pdf", PDF, ["a Windows program"]),
        (encode(two_colours(), "PNG"), "scan", PDF, ["application/pdf", "a PNG image"]),
        (encode(two_colours(), "PNG"), "foto.pdf", PNG, [".pdf", "a PNG image"]),
        (
            encode(two_colours(), "JPEG") + zip_bytes({"run.js": b"WScript.Echo(1)"}),
            "foto.jpg",
            JPEG,
            ["a JPEG image", "a ZIP archive"],
        ),
        (encode(two_colours(), "GIF"), "plaatje.gif", "image/gif", ["a GIF image"]),
    ],
    ids=["program-named-pdf", "png-declared-pdf", "png-named-pdf", "jpeg-zip-polyglot", "gif"],
)
async def test_wrong_types_are_415_and_nothing_is_stored(
    client, settings, store, people, content, filename, declared, phrases
):
    response = await upload(
        client, settings, people.resident, people.dossier, content,
        filename=filename, content_type=declared,
    )  # fmt: skip
    error = await error_of(response, 415)
    assert error["code"] == "unsupported_type"
    for phrase in phrases:
        assert phrase in error["message"]
    assert filename not in error["message"]
    await assert_nothing_stored(store, settings)


async def test_gps_position_is_gone_after_upload(client, settings, store, people):
    original = photo_with_gps()
    assert opened(original).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # there to begin with
    assert b"Fairphone" in original

    response = await upload(
        client, settings, people.resident, people.dossier, original,
        filename="IMG_0001.jpg", content_type=JPEG,
    )  # fmt: skip
    document = await response.json()
    assert response.status == 201, document
    content = await (await client.get(document["url"], headers=people.clerk.cookie)).read()

    image = opened(content)
    assert ExifTags.Base.GPSInfo not in image.getexif()
    assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in content
    assert b"Fairphone" not in content
    assert near(image, (5, 10), RED, 40)


async def test_pdf_with_javascript_is_refused(client, settings, store, people):
    response = await upload(
        client, settings, people.resident, people.dossier, pdf_with_javascript()
    )
    error = await error_of(response, 422)
    assert error["code"] == "unsafe_document"
    assert "JavaScript" in error["message"]
    await assert_nothing_stored(store, settings)


# --- the virus scanner -----------------------------------------------------------------------


async def test_clamd_passes_a_clean_pdf_and_refuses_eicar(make_client, settings, store, people):
    clean = pdf_bytes()
    # A valid PDF with the test signature in a comment after its end: it passes every type
    # and content check, so only the scanner can refuse it.
    infected = pdf_bytes() + b"%" + EICAR + b"\n"
    async with FakeClamd() as clamd:
        client = await make_client(clamd_host="127.0.0.1", clamd_port=clamd.port)
        response = await upload(client, settings, people.resident, people.dossier, clean)
        assert response.status == 201, await response.text()
        assert len(await stored_rows(store)) == 1

        response = await upload(client, settings, people.resident, people.dossier, infected)
        error = await error_of(response, 422)
        await clamd.idle()
    assert error["code"] == "virus_found"
    assert "Eicar-Test-Signature" in error["message"]
    assert clamd.received == [clean, infected]  # the uploads as they came, whole
    assert len(await stored_rows(store)) == 1
    assert len(blob_files(settings)) == 1


@pytest.mark.parametrize("behaviour", ["down", "hang", "garbage", "error", "close"])
async def test_no_verdict_from_the_scanner_refuses_the_upload(
    make_client, settings, store, people, behaviour
):
    """Fail closed: nobody listening, no answer in time, an answer that is not a verdict."""
    if behaviour == "down":
        client = await make_client(clamd_host="127.0.0.1", clamd_port=free_port())
        response = await upload(client, settings, people.resident, people.dossier, pdf_bytes())
    else:
        async with FakeClamd(behaviour=behaviour) as clamd:
            client = await make_client(
                clamd_host="127.0.0.1", clamd_port=clamd.port, clamd_timeout=0.5
            )
            response = await upload(client, settings, people.resident, people.dossier, pdf_bytes())
    assert (await error_of(response, 503))["code"] == "scan_failed"
    await assert_nothing_stored(store, settings)


# --- who may -----------------------------------------------------------------------------------


async def stored_by_clerk(client, settings, people) -> dict:
    response = await upload(
        client, settings, people.clerk, people.dossier, pdf_bytes(), filename="Geheim besluit.pdf"
    )
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.mark.parametrize("who", ["interpreter", "manager", "other_clerk", "nobody"])
async def test_outsiders_can_neither_upload_list_nor_download(client, settings, store, people, who):
    document = await stored_by_clerk(client, settings, people)
    visitor = getattr(people, who, None)
    status = 401 if visitor is None else 403
    cookie = visitor.cookie if visitor else {}

    attempts = [
        await upload(client, settings, visitor, people.dossier, pdf_bytes(), filename="x.pdf"),
        await client.get(documents_path(people.dossier), headers=cookie),
        await client.get(document["url"], headers=cookie),
    ]
    for response in attempts:
        body = await error_of(response, status)
        assert "Geheim" not in body["message"]
    assert len(await stored_rows(store)) == 1
    denied = [e for e in await denials(store) if e.object_ref == str(people.dossier)]
    assert [json.loads(e.detail)["action"] for e in denied] == [
        "add_document",
        "read_content",
        "read_content",
    ]
    if who == "manager":
        assert {e.actor for e in denied} == {"information_manager:emp-manager"}
        assert all(json.loads(e.detail)["reason"] for e in denied)


async def test_resident_cannot_reach_another_appointments_documents(
    client, settings, store, people
):
    response = await upload(
        client, settings, people.other_resident, people.other.dossier.id, pdf_bytes(),
        filename="Paspoort Jansen.pdf",
    )  # fmt: skip
    theirs = await response.json()
    assert response.status == 201, theirs
    mine = people.resident

    # Their dossier, their ids: refused outright.
    their_list = await client.get(documents_path(people.other.dossier.id), headers=mine.cookie)
    their_file = await client.get(theirs["url"], headers=mine.cookie)
    their_upload = await upload(client, settings, mine, people.other.dossier.id, pdf_bytes())
    for response in (their_list, their_file, their_upload):
        body = await error_of(response, 403)
        assert "Jansen" not in body["message"]
    # Their document through my own dossier: it is not in my dossier.
    mixed = await client.get(
        f"{documents_path(people.dossier)}/{theirs['id']}", headers=mine.cookie
    )
    body = await error_of(mixed, 404)
    assert body["code"] == "document_not_found"
    assert "Jansen" not in body["message"]
    # Still only their document, in their dossier.
    [row] = await stored_rows(store)
    assert row.dossier_id == people.other.dossier.id


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "<ours>"},
        {"Origin": "<ours>", "X-CSRF-Token": "vervalst"},
        {"Origin": "https://evil.example", "X-CSRF-Token": "<token>"},
        {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": "<token>"},
        {"X-CSRF-Token": "<token>"},
    ],
    ids=["no-token", "wrong-token", "other-origin", "cross-site", "no-origin"],
)
async def test_upload_without_csrf_protection_is_refused(client, settings, store, people, headers):
    sent = {
        key: {"<ours>": settings.public_origin, "<token>": people.resident.csrf}.get(value, value)
        for key, value in headers.items()
    }
    response = await upload(
        client, settings, people.resident, people.dossier, pdf_bytes(),
        headers={**people.resident.cookie, **sent},
    )  # fmt: skip
    assert (await error_of(response, 403))["code"] == "csrf"
    await assert_nothing_stored(store, settings)


# --- malformed requests ----------------------------------------------------------------------


async def test_upload_that_is_not_multipart_is_415(client, settings, store, people):
    response = await client.post(
        documents_path(people.dossier),
        json={"file": "JVBERi0xLjQ="},
        headers=unsafe_headers(settings, people.resident),
    )
    error = await error_of(response, 415)
    assert error["code"] == "unsupported_media_type"
    assert "multipart/form-data" in error["message"]
    await assert_nothing_stored(store, settings)


@pytest.mark.parametrize(
    ("field", "filename"),
    [("bestand", "brief.pdf"), ("file", None), ("file", "")],
    ids=["other-field", "no-filename", "empty-filename"],
)
async def test_first_part_must_be_the_named_file(client, settings, store, people, field, filename):
    response = await upload(
        client, settings, people.resident, people.dossier, pdf_bytes(),
        filename=filename, field=field,
    )  # fmt: skip
    error = await error_of(response, 422)
    assert error["code"] == "unprocessable_entity"
    assert "'file'" in error["message"]
    await assert_nothing_stored(store, settings)


@pytest.mark.parametrize(
    "name",
    ["regel\r\nX-Extra: 1.pdf", "a" * 300 + ".pdf"],
    ids=["control-characters", "too-long"],
)
async def test_unacceptable_names_are_422(client, settings, store, people, name):
    response = await upload_as_rfc5987(
        client, settings, people.resident, people.dossier, name, pdf_bytes()
    )
    assert (await error_of(response, 422))["code"] == "invalid_input"
    await assert_nothing_stored(store, settings)


BROKEN_FRAMING = {
    # Content-Type, body
    "no-boundary": ("multipart/form-data", b"--x\r\n\r\n%PDF-1.4\r\n--x--\r\n"),
    "boundary-not-in-body": ("multipart/form-data; boundary=zzz", b"--x\r\n\r\nabc\r\n--x--\r\n"),
    "empty-body": ("multipart/form-data; boundary=x", b""),
    "boundary-too-long": ("multipart/form-data; boundary=" + "b" * 71, b"--" + b"b" * 71),
}


@pytest.mark.parametrize("case", list(BROKEN_FRAMING))
async def test_broken_multipart_framing_is_a_client_error(client, settings, store, people, case):
    """What a broken or hostile client sends is its mistake: a 4xx with the JSON error body
    every endpoint uses, not a 500 and a server-side traceback."""
    content_type, body = BROKEN_FRAMING[case]
    response = await client.post(
        documents_path(people.dossier),
        data=body,
        headers={**unsafe_headers(settings, people.resident), "Content-Type": content_type},
    )
    assert response.status in (400, 422), (response.status, await response.text())
    assert response.content_type == "application/json"
    assert (await response.json())["code"]
    await assert_nothing_stored(store, settings)


@pytest.mark.parametrize("dossier", ["unknown", "not-a-uuid"])
async def test_unknown_dossier_is_404(client, settings, people, dossier):
    target = str(uuid.uuid4()) if dossier == "unknown" else dossier
    code = "dossier_not_found" if dossier == "unknown" else "not_found"
    for response in (
        await upload(client, settings, people.clerk, target, pdf_bytes()),
        await client.get(documents_path(target), headers=people.clerk.cookie),
        await client.get(f"{documents_path(target)}/{uuid.uuid4()}", headers=people.clerk.cookie),
    ):
        assert (await error_of(response, 404))["code"] == code


async def test_unknown_document_is_404(client, people):
    for target, code in ((uuid.uuid4(), "document_not_found"), ("not-a-uuid", "not_found")):
        response = await client.get(
            f"{documents_path(people.dossier)}/{target}", headers=people.resident.cookie
        )
        assert (await error_of(response, 404))["code"] == code


# --- the call hears of it --------------------------------------------------------------------


async def join(client, settings, visitor: Visitor, dossier_id: uuid.UUID):
    ws = await client.ws_connect(
        f"/ws/calls/{dossier_id}", headers={**visitor.cookie, "Origin": settings.public_origin}
    )
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws, hello["you"]


async def expect(ws, kind: str, **fields) -> tuple[dict, list[dict]]:
    """The next message of `kind` (matching `fields`) and those skipped before it; 5 s at most."""
    skipped: list[dict] = []
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message, skipped
            skipped.append(message)


async def test_upload_is_announced_in_the_call_but_not_to_the_interpreter(client, settings, people):
    clerk, _ = await join(client, settings, people.clerk, people.dossier)

    async def let_in(visitor: Visitor):
        ws, me = await join(client, settings, visitor, people.dossier)
        await expect(clerk, "participant", id=me, status="joined")
        await ws.send_json({"type": "knock"})
        await expect(clerk, "participant", id=me, status="waiting")
        await clerk.send_json({"type": "admit", "participant": me})
        await expect(ws, "admitted")
        return ws

    resident = await let_in(people.resident)
    interpreter = await let_in(people.interpreter)

    response = await upload(
        client, settings, people.clerk, people.dossier, pdf_bytes(), filename="Uittreksel.pdf"
    )
    document = await response.json()
    assert response.status == 201, document

    notice, _ = await expect(resident, "document")
    assert notice["name"] == "Uittreksel.pdf"
    assert notice["url"] == document["url"]
    assert notice == {"type": "document", **document}
    await expect(clerk, "document", id=document["id"])
    # The interpreter hears the chat that follows, and never heard of the document before it.
    await clerk.send_json({"type": "chat", "text": "Ik heb het uittreksel gedeeld"})
    _, before = await expect(interpreter, "chat", text="Ik heb het uittreksel gedeeld")
    assert "document" not in {m["type"] for m in before}
    assert all("Uittreksel" not in json.dumps(m) for m in before)
    for ws in (interpreter, resident, clerk):
        await ws.close()


# --- rate limit ------------------------------------------------------------------------------


async def test_many_uploads_by_one_session_are_rate_limited(client, settings, store, people):
    statuses = []
    for _ in range(12):
        response = await upload(client, settings, people.resident, people.dossier, pdf_bytes())
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[:5] == [201] * 5  # a burst of five
    assert statuses[-1] == 429
    assert (await error_of(response, 429))["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    accepted = statuses.count(201)
    assert len(await stored_rows(store)) == accepted
    # Per session: the clerk in the same dossier is not held up.
    response = await upload(client, settings, people.clerk, people.dossier, pdf_bytes())
    assert response.status == 201
