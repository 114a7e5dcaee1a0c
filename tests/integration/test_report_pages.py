"""The /beheer report pages through the real HTTP app: who may see them, what they count, the
CSV and PDF downloads, bad input, and that no output carries personal data."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import uuid
from html.parser import HTMLParser

import pytest
from aiohttp import DummyCookieJar
from pypdf import PdfReader
from test_reports import (
    BATCH,
    CHAT,
    CLERK_NAME,
    EXPECTED_MARCH,
    EXPECTED_TOTAL,
    SECRETS,
    expected_violations,
    prepare,
)

from dossier.chat import list_chat_messages
from identity.accounts import add_local_account
from server.app import create_app

from support import CLERK, staff_visitor

PAGES = (
    "/beheer",
    "/beheer/verantwoording",
    "/beheer/verantwoording.csv",
    "/beheer/vernietiging",
    f"/beheer/vernietiging/batch/{BATCH}",
    f"/beheer/vernietiging/batch/{BATCH}.csv",
    f"/beheer/vernietiging/batch/{BATCH}.pdf",
    "/beheer/vernietiging/maand/2026-03",
    "/beheer/vernietiging/maand/2026-03.csv",
    "/beheer/vernietiging/maand/2026-03.pdf",
)
MARCH_QUERY = "van=2026-03-01&tot=2026-03-31"


@pytest.fixture
async def client(aiohttp_client, settings, clock, store):
    return await aiohttp_client(create_app(settings, clock=clock), cookie_jar=DummyCookieJar())


@pytest.fixture
async def manager(store, clock, settings):
    """A way to sign in an information manager; call it after moving the clock (sessions
    time out after 15 idle minutes)."""

    async def sign_in():
        return await staff_visitor(store, clock, settings, role="information_manager")

    async with store.sessions() as session, session.begin():
        # The clerk who booked the dossiers, with a name that must never show.
        await add_local_account(
            session, secret_key=settings.secret_key.get_secret_value().encode(),
            username="anna", display_name=CLERK_NAME, employee_id="emp-1001",
            role="clerk", department="burgerzaken", now=clock.current,
        )  # fmt: skip
    return sign_in


class _Cells(HTMLParser):
    """Rows of a table by a data attribute: {row key: {cell data-count: text}}, and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, dict[str, str]] = {}
        self.violations: dict[str, str] = {}  # dossier id -> kind
        self.links: list[str] = []
        self._row: str | None = None
        self._cell: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "tr" and "data-service" in values:
            self._row = values["data-service"] or "total"
            self.rows[self._row] = {}
        if tag == "tr" and "data-kind" in values:
            self.violations[values["data-dossier"]] = values["data-kind"]
        if tag == "td" and "data-count" in values and self._row is not None:
            self._cell, self._text = values["data-count"], []
        if tag == "a":
            self.links.append(values.get("href") or "")

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row is not None:
            self.rows[self._row][self._cell] = "".join(self._text).strip()
            self._cell = None
        if tag == "tr":
            self._row = None


def counts_of(page: str) -> tuple[dict[str, tuple[int, ...]], _Cells]:
    cells = _Cells()
    cells.feed(page)
    fields = ("created", "exported", "destroyed_at_deadline", "destroyed_on_cancel",
              "destroyed_by_operator", "on_hold", "escalated")  # fmt: skip
    counted = {
        row: tuple(int(values[name]) for name in fields) for row, values in cells.rows.items()
    }
    # The policy in force lists more service types than the prepared set uses: all zero.
    return {row: numbers for row, numbers in counted.items() if any(numbers)}, cells


def csv_blocks(text: str) -> list[list[list[str]]]:
    """The CSV's blocks (separated by an empty line), each a list of rows with its header."""
    blocks: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text)):
        if not row:
            blocks.append([])
        else:
            blocks[-1].append(row)
    return blocks


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def assert_no_personal_data(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}"
    # No BSN written with separators either.
    assert not re.search(r"9\D?9\D?9\D?9\D?9\D?3\D?6\D?5\D?3", text), where


async def test_pages_are_for_oversight_roles_only(client, store, clock, settings):
    clerk = await staff_visitor(store, clock, settings, role="clerk", department="burgerzaken")
    officer = await staff_visitor(store, clock, settings, role="privacy_officer")
    for path in (*PAGES, f"/beheer/dossier/{uuid.uuid4()}"):
        anonymous = await client.get(path, allow_redirects=False)
        assert anonymous.status == 303, path
        assert anonymous.headers["Location"] == "/balie/inloggen"
        refused = await client.get(path, headers=clerk.cookie, allow_redirects=False)
        assert refused.status == 403, path
        assert "informatiebeheerders" in await refused.text()
        assert refused.headers["Cache-Control"] == "no-store"
    for path in ("/beheer", "/beheer/verantwoording", "/beheer/vernietiging"):
        allowed = await client.get(path, headers=officer.cookie, allow_redirects=False)
        assert allowed.status == 200, path
        assert allowed.headers["Cache-Control"] == "no-store"


async def test_reconciliation_page_and_csv_count_every_line(client, store, clock, manager):
    prepared = await prepare(store, clock)
    im = await manager()
    page = await client.get(
        f"/beheer/verantwoording?{MARCH_QUERY}", headers=im.cookie, allow_redirects=False
    )
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store", dict(page.headers)
    body = await page.text()
    counts, cells = counts_of(body)
    assert counts == {**EXPECTED_MARCH, "total": EXPECTED_TOTAL}
    expected = {(str(i), kind) for i, _, kind in expected_violations(prepared)}
    assert set(cells.violations.items()) == expected
    for dossier_id, _ in expected:
        assert f"/beheer/dossier/{dossier_id}" in cells.links
    assert "01-03-2026 tot en met 31-03-2026" in body
    assert f"/beheer/verantwoording.csv?{MARCH_QUERY}" in cells.links

    download = await client.get(f"/beheer/verantwoording.csv?{MARCH_QUERY}",
                                headers=im.cookie, allow_redirects=False)  # fmt: skip
    assert download.status == 200
    assert download.content_type == "text/csv"
    assert download.headers["Cache-Control"] == "no-store"
    assert download.headers["Content-Disposition"].startswith(
        'attachment; filename="verantwoording-2026-03-01-2026-03-31.csv"'
    )
    period, table, violations = csv_blocks(await download.text())
    assert period[1][:2] == ["2026-03-01", "2026-03-31"]
    assert table[0] == [
        "dienst", "omschrijving", "aangemaakt", "geexporteerd", "vernietigd_na_termijn",
        "vernietigd_na_annulering", "vernietigd_door_beheerder", "bewaard_na_termijn",
        "geescaleerd",
    ]  # fmt: skip
    rows = {row[0]: tuple(int(n) for n in row[2:]) for row in table[1:]}
    rows = {service: numbers for service, numbers in rows.items() if any(numbers)}
    assert rows == {**EXPECTED_MARCH, "totaal": EXPECTED_TOTAL}
    listed = {(row[0], row[3]) for row in violations[1:]}
    assert listed == expected
    for row in violations[1:]:
        assert row[6].endswith(f"/beheer/dossier/{row[0]}")
        assert row[2] in ("AVG", "Archiefwet")


async def test_default_period_is_the_last_full_month(client, store, clock, manager):
    await prepare(store, clock)
    clock.current = dt.datetime(2026, 4, 10, 9, 0, tzinfo=dt.UTC)
    im = await manager()
    page = await client.get("/beheer/verantwoording", headers=im.cookie, allow_redirects=False)
    counts, _ = counts_of(await page.text())
    assert counts["total"] == EXPECTED_TOTAL
    download = await client.get(
        "/beheer/verantwoording.csv", headers=im.cookie, allow_redirects=False
    )
    assert "verantwoording-2026-03-01-2026-03-31.csv" in download.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("van=2026-13-01", "'van'"),
        ("van=gisteren", "'van'"),
        ("tot=2026-02-30", "'tot'"),
        ("van=20260301", "'van'"),
        ("van=2026-03-10&tot=2026-03-01", "'tot'"),
        ("van=0001-01-01", "'van'"),
        ("tot=9999-12-31", "'tot'"),
    ],
)
async def test_bad_dates_are_refused_naming_the_parameter(client, manager, query, named):
    im = await manager()
    for path in ("/beheer/verantwoording", "/beheer/verantwoording.csv"):
        response = await client.get(f"{path}?{query}", headers=im.cookie, allow_redirects=False)
        assert response.status == 400, (path, query)
        assert named in html.unescape(await response.text())
        assert response.headers["Cache-Control"] == "no-store"


async def test_bad_statement_references_are_refused(client, manager):
    im = await manager()
    for path, status, said in (
        ("/beheer/vernietiging/maand/2026-13", 400, "2026-13"),
        ("/beheer/vernietiging/maand/maart.csv", 400, "maart"),
        ("/beheer/vernietiging/maand/2026-3.pdf", 400, "2026-3"),
        ("/beheer/vernietiging/maand/0001-01", 400, "0001-01"),
        ("/beheer/vernietiging/maand/9999-12.csv", 400, "9999-12"),
        ("/beheer/vernietiging/batch/geen-batch", 404, "geen-batch"),
        ("/beheer/vernietiging/batch/geen-batch.pdf", 404, "geen-batch"),
        ("/beheer/dossier/not-an-id", 400, "not-an-id"),
        (f"/beheer/dossier/{uuid.UUID(int=7)}", 404, str(uuid.UUID(int=7))),
    ):
        response = await client.get(path, headers=im.cookie, allow_redirects=False)
        assert response.status == status, path
        assert said in html.unescape(await response.text()), path
        assert response.headers["Cache-Control"] == "no-store"


async def test_destruction_statement_lists_exactly_the_destroyed(client, store, clock, manager):
    prepared = await prepare(store, clock)
    im = await manager()
    destroyed = {str(i) for i in prepared.destroyed}
    listing = await client.get("/beheer/vernietiging", headers=im.cookie, allow_redirects=False)
    text = await listing.text()
    assert 'data-month="2026-03"' in text
    assert f'data-batch="{BATCH}"' in text

    page = await client.get(
        "/beheer/vernietiging/maand/2026-03", headers=im.cookie, allow_redirects=False
    )
    body = await page.text()
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert set(re.findall(r'<tr class="utrecht-table__row" data-dossier="([^"]+)"', body)) == (
        destroyed
    )
    assert "Voorbeeldstad" in body  # municipality and archiefvormer of the policy in force
    assert "Aantal vernietigde dossiers: 5." in body
    assert "Handtekening" in body

    download = await client.get(
        "/beheer/vernietiging/maand/2026-03.csv", headers=im.cookie, allow_redirects=False
    )
    assert download.headers["Content-Disposition"].startswith(
        'attachment; filename="verklaring-van-vernietiging-maand-2026-03.csv"'
    )
    head, lines = csv_blocks(await download.text())
    assert head[1][0] == "Voorbeeldstad"
    assert head[1][5] == "5"
    assert {row[0] for row in lines[1:]} == destroyed
    by_id = {row[0]: dict(zip(lines[0], row, strict=True)) for row in lines[1:]}
    assert by_id[str(prepared.on_cancel)]["goedgekeurd_door"] == "clerk:emp-1001"
    assert by_id[str(prepared.at_deadline)]["vernietigingsbatch"] == BATCH

    pdf = await client.get(
        "/beheer/vernietiging/maand/2026-03.pdf", headers=im.cookie, allow_redirects=False
    )
    assert pdf.content_type == "application/pdf"
    assert pdf.headers["Cache-Control"] == "no-store"
    assert "verklaring-van-vernietiging-maand-2026-03.pdf" in pdf.headers["Content-Disposition"]
    text = pdf_text(await pdf.read())
    flat = re.sub(r"\s+", "", text)
    for dossier_id in destroyed:
        assert dossier_id in flat
    for kept in (prepared.exported, prepared.exported_tombstone, prepared.live):
        assert str(kept) not in flat
    assert "Verklaring van vernietiging" in text
    assert "Aantaldossiers" not in flat
    assert "Aantal vernietigde dossiers: 5." in text

    batch = await client.get(
        f"/beheer/vernietiging/batch/{BATCH}.csv", headers=im.cookie, allow_redirects=False
    )
    _, batch_lines = csv_blocks(await batch.text())
    assert {row[0] for row in batch_lines[1:]} == {
        str(prepared.at_deadline),
        str(prepared.unarchived),
    }


async def test_trail_page_links_the_violation_to_its_events(client, store, clock, manager):
    prepared = await prepare(store, clock)
    im = await manager()
    page = await client.get(
        f"/beheer/dossier/{prepared.unarchived}", headers=im.cookie, allow_redirects=False
    )
    body = await page.text()
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert 'data-outcome="destroyed_at_deadline"' in body
    assert 'data-action="dossier.destroyed"' in body
    assert "system:sweeper" in body


async def test_no_output_contains_personal_data(client, store, clock, manager):
    prepared = await prepare(store, clock)
    im = await manager()
    paths = [
        *PAGES,
        f"/beheer/verantwoording?{MARCH_QUERY}",
        f"/beheer/verantwoording.csv?{MARCH_QUERY}",
        *(
            f"/beheer/dossier/{getattr(prepared, name)}"
            for name in (
                "exported",
                "at_deadline",
                "on_cancel",
                "by_operator",
                "live",
                "on_hold",
                "escalated",
                "past_deadline",
                "exported_live",
                "exported_tombstone",
                "unarchived",
            )
        ),
    ]
    for path in paths:
        response = await client.get(path, headers=im.cookie, allow_redirects=False)
        assert response.status == 200, path
        body = await response.read()
        text = pdf_text(body) if path.endswith(".pdf") else body.decode("utf-8")
        assert_no_personal_data(text, path)
    # The scan can fail: the secrets really are in the dossiers the pages are about.
    chat = await list_chat_messages(store, actor=CLERK, dossier_id=prepared.past_deadline)
    assert CHAT in [entry.text for entry in chat]


async def test_overview_page_shows_the_state_of_things(client, store, clock, manager):
    prepared = await prepare(store, clock)
    im = await manager()
    page = await client.get("/beheer", headers=im.cookie, allow_redirects=False)
    body = await page.text()
    assert page.status == 200
    assert "nog nooit gecontroleerd" in body
    assert f'<tr class="utrecht-table__row" data-dossier="{prepared.live}">' in body
    assert 'data-holds="requested">1<' in body
    assert 'data-holds="active">1<' in body
    assert 'data-outcome="destroyed_on_cancel"' in body
    english = await client.get("/beheer?lang=en", headers=im.cookie, allow_redirects=False)
    assert "never been verified" in await english.text()
