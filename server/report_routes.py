"""Reports for the information manager and privacy officer: overview, reconciliation and
destruction statements.

    GET /beheer                                   overview
    GET /beheer/verantwoording[.csv]?van=&tot=    reconciliation report (default: last month)
    GET /beheer/dossier/{dossier_id}              one dossier's tombstone and audit events
    GET /beheer/vernietiging                      destruction batches and months
    GET /beheer/vernietiging/batch/{id}[.csv|.pdf]      statement of one batch
    GET /beheer/vernietiging/maand/{YYYY-MM}[.csv|.pdf] statement of one month

Every page: oversight roles only (a clerk gets 403, anyone not signed in goes to sign in), no
caching, and metadata only. CSV files are UTF-8, RFC 4180, in Dutch whatever the page language.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import io
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from dossier.db import read_session
from identity.sessions import Principal
from retention.reports import (
    COUNT_FIELDS,
    EARLIEST_DAY,
    LATEST_DAY,
    PERIOD_ZONE,
    UPCOMING_LIMIT,
    Period,
    Reconciliation,
    month_period,
    overview,
    reconciliation,
)
from retention.statement_pdf import StatementHeader, statement_pdf
from retention.statements import (
    Statement,
    destruction_batches,
    destruction_months,
    statement_for_batch,
    statement_for_month,
)
from retention.trail import dossier_trail
from server.appkeys import DOSSIER_STORE, POLICY, SETTINGS
from server.document_routes import content_disposition
from server.oversight import oversight_page, require_oversight
from server.pages import language, message_page
from server.texts import texts

__all__ = ["add_routes"]

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_FORMATS = (".csv", ".pdf")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# The counted columns as the CSV names them (stable, Dutch, no spaces).
_CSV_COUNTS = (
    "aangemaakt",
    "geexporteerd",
    "vernietigd_na_termijn",
    "vernietigd_na_annulering",
    "vernietigd_door_beheerder",
    "bewaard_na_termijn",
    "geescaleerd",
)


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount this module's pages."""
    router.add_get("/beheer", overview_page)
    router.add_get("/beheer/verantwoording", reconciliation_page)
    router.add_get("/beheer/verantwoording.csv", reconciliation_csv)
    router.add_get("/beheer/dossier/{dossier_id}", trail_page)
    router.add_get("/beheer/vernietiging", destruction_page)
    router.add_get("/beheer/vernietiging/batch/{ref}", batch_statement)
    router.add_get("/beheer/vernietiging/maand/{ref}", month_statement)


# --- Formatting shared by the templates and the CSV files --------------------------------------


def local(moment: dt.datetime | None) -> str:
    """A moment as Dutch readers write it, in Dutch time: 02-03-2026 10:00."""
    if moment is None:
        return ""
    return moment.astimezone(PERIOD_ZONE).strftime("%d-%m-%Y %H:%M")


def day(value: dt.datetime | dt.date) -> str:
    """A calendar day (in Dutch time for a moment): 02-03-2026."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(PERIOD_ZONE).date()
    return value.strftime("%d-%m-%Y")


def iso(moment: dt.datetime | None) -> str:
    """The exact instant, UTC, ISO 8601: for `<time datetime>` and the CSV files."""
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page(
    request: web.Request, template: str, *, principal: Principal, title: str, **context: Any
) -> web.Response:
    """An /beheer page whose template can write times (`local`, `day`, `iso`)."""
    return oversight_page(request, template, principal=principal, title=title,
                          local=local, day=day, iso=iso, **context)  # fmt: skip


def _for_oversight(
    handler: Callable[[web.Request, Principal], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Run `handler` for an information manager or privacy officer only (require_oversight:
    a 303 to the sign-in form, or a 403 page)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.Response:
        return await handler(request, require_oversight(request))

    return guarded


def _no_store(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _refusal(request: web.Request, status: int, title_key: str, message: str) -> web.Response:
    t = texts(language(request))
    return _no_store(message_page(request, status, t[title_key], message))


def _csv(rows: Sequence[Sequence[object]], filename: str) -> web.Response:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return _no_store(
        web.Response(
            body=out.getvalue().encode("utf-8"),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": content_disposition(filename)},
        )
    )


def _split_format(ref: str) -> tuple[str, str]:
    """("abc", ".csv") for "abc.csv"; ("abc", "") for the page."""
    for suffix in _FORMATS:
        if ref.endswith(suffix):
            return ref[: -len(suffix)], suffix
    return ref, ""


# --- Overview ----------------------------------------------------------------------------------


@_for_oversight
async def overview_page(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer: where every dossier stands now."""
    store = request.app[DOSSIER_STORE]
    async with read_session(store.sessions) as session:
        data = await overview(session, now=await store.clock.now(session))
    t = texts(language(request))
    states = sorted({state for _, state in data.live})
    services = sorted({code for code, _ in data.live})
    return _page(
        request,
        "oversight/overview.html",
        principal=principal,
        title=t["report.overview.title"],
        data=data,
        states=states,
        services=services,
        more=(
            t["report.overview.upcoming.more"].format(
                shown=UPCOMING_LIMIT, total=data.upcoming_total
            )
            if data.upcoming_total > len(data.upcoming)
            else ""
        ),
    )


# --- Reconciliation ----------------------------------------------------------------------------


def _period(request: web.Request, now: dt.datetime) -> Period | str:
    """The period of `?van=&tot=` (default: last full month), or what is wrong with it."""
    t = texts(language(request))
    default = Period.last_full_month(now)
    days: dict[str, dt.date] = {}
    for name, fallback in (("van", default.first), ("tot", default.last)):
        raw = request.query.get(name, "").strip()
        if not raw:
            days[name] = fallback
            continue
        try:
            if len(raw) != 10:
                raise ValueError(raw)
            days[name] = dt.date.fromisoformat(raw)
        except ValueError:
            return t["report.recon.bad_date"].format(name=name, value=raw[:40])
        if not EARLIEST_DAY <= days[name] <= LATEST_DAY:
            return t["report.recon.bad_range"].format(
                name=name, value=raw, first=EARLIEST_DAY, last=LATEST_DAY
            )
    if days["tot"] < days["van"]:
        return t["report.recon.bad_order"].format(first=days["van"], last=days["tot"])
    return Period(days["van"], days["tot"])


async def _reconciliation(request: web.Request) -> Reconciliation | web.Response:
    store = request.app[DOSSIER_STORE]
    async with read_session(store.sessions) as session:
        now = await store.clock.now(session)
        period = _period(request, now)
        if isinstance(period, str):
            return _refusal(request, 400, "report.bad_request", period)
        return await reconciliation(session, period=period, now=now)


@_for_oversight
async def reconciliation_page(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer/verantwoording?van=YYYY-MM-DD&tot=YYYY-MM-DD"""
    report = await _reconciliation(request)
    if isinstance(report, web.Response):
        return report
    t = texts(language(request))
    return _page(
        request,
        "oversight/reconciliation.html",
        principal=principal,
        title=t["report.recon.title"],
        report=report,
        count_fields=COUNT_FIELDS,
        csv_href=f"/beheer/verantwoording.csv?van={report.period.first}&tot={report.period.last}",
    )


@_for_oversight
async def reconciliation_csv(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer/verantwoording.csv: the same report as CSV, in blocks with their own header
    (period, counts per service type with the total, violations)."""
    report = await _reconciliation(request)
    if isinstance(report, web.Response):
        return report
    t, origin = texts("nl"), request.app[SETTINGS].public_origin
    period = report.period
    rows: list[list[object]] = [
        ["periode_van", "periode_tot", "opgemaakt_op"],
        [period.first.isoformat(), period.last.isoformat(), iso(report.now)],
        [],
        ["dienst", "omschrijving", *_CSV_COUNTS],
    ]
    rows += [[line.service_type, line.label, *line.counts()] for line in report.lines]
    rows.append(["totaal", "", *report.total.counts()])
    rows += [[], ["dossier", "dienst", "wet", "overtreding", "datum", "toelichting", "spoor"]]
    rows += [
        [str(v.dossier_id), v.service_type, v.law, v.kind, iso(v.at),
         t[f"report.violation.{v.kind}"], f"{origin}/beheer/dossier/{v.dossier_id}"]
        for v in report.violations
    ]  # fmt: skip
    return _csv(rows, f"verantwoording-{period.first}-{period.last}.csv")


# --- One dossier's trail -----------------------------------------------------------------------


@_for_oversight
async def trail_page(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer/dossier/{id}: the dossier's metadata or tombstone, holds and audit events."""
    t = texts(language(request))
    raw = request.match_info["dossier_id"]
    try:
        dossier_id = uuid.UUID(raw)
    except ValueError:
        return _refusal(request, 400, "report.bad_request",
                        t["report.trail.bad_id"].format(value=raw[:40]))  # fmt: skip
    store = request.app[DOSSIER_STORE]
    async with read_session(store.sessions) as session:
        trail = await dossier_trail(session, dossier_id)
    if trail is None:
        return _refusal(request, 404, "report.not_found",
                        t["report.trail.unknown"].format(id=dossier_id))  # fmt: skip
    return _page(
        request,
        "oversight/dossier_trail.html",
        principal=principal,
        title=f"{t['report.trail.title']} {dossier_id}",
        trail=trail,
    )


# --- Destruction statements --------------------------------------------------------------------


@_for_oversight
async def destruction_page(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer/vernietiging: the batches and the months there are statements of."""
    store = request.app[DOSSIER_STORE]
    async with read_session(store.sessions) as session:
        batches = await destruction_batches(session)
        months = await destruction_months(session)
    t = texts(language(request))
    return _page(
        request,
        "oversight/destruction.html",
        principal=principal,
        title=t["report.destruction.title"],
        batches=batches,
        months=months,
    )


@_for_oversight
async def batch_statement(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer/vernietiging/batch/{id}[.csv|.pdf]"""
    t = texts(language(request))
    batch_id, suffix = _split_format(request.match_info["ref"])
    store = request.app[DOSSIER_STORE]
    async with read_session(store.sessions) as session:
        now = await store.clock.now(session)
        statement = await statement_for_batch(session, batch_id)
    if statement is None:
        return _refusal(request, 404, "report.not_found",
                        t["report.statement.no_batch"].format(value=batch_id[:64]))  # fmt: skip
    safe = _FILENAME_UNSAFE.sub("_", batch_id)
    return await _statement_response(
        request, principal, statement, now=now, suffix=suffix, name=f"batch-{safe}",
        scope_key="report.statement.scope.batch", scope_value={"id": batch_id},
    )  # fmt: skip


@_for_oversight
async def month_statement(request: web.Request, principal: Principal) -> web.Response:
    """GET /beheer/vernietiging/maand/{YYYY-MM}[.csv|.pdf]"""
    t = texts(language(request))
    month, suffix = _split_format(request.match_info["ref"])
    match = _MONTH.fullmatch(month)
    try:
        if match is None:
            raise ValueError(month)
        period = month_period(int(match[1]), int(match[2]))
    except ValueError:
        return _refusal(request, 400, "report.bad_request",
                        t["report.statement.bad_month"].format(value=month[:40]))  # fmt: skip
    store = request.app[DOSSIER_STORE]
    async with read_session(store.sessions) as session:
        now = await store.clock.now(session)
        statement = await statement_for_month(session, period)
    return await _statement_response(
        request, principal, statement, now=now, suffix=suffix, name=f"maand-{month}",
        scope_key="report.statement.scope.month", scope_value={"month": month},
    )  # fmt: skip


async def _statement_response(
    request: web.Request,
    principal: Principal,
    statement: Statement,
    *,
    now: dt.datetime,
    suffix: str,
    name: str,
    scope_key: str,
    scope_value: dict[str, str],
) -> web.Response:
    policy = request.app[POLICY].policy
    header = StatementHeader(
        municipality=policy.municipality,
        archiefvormer=policy.archiefvormer,
        policy_version=policy.version,
        scope=texts("nl")[scope_key].format(**scope_value),
        made_at=now,
    )
    filename = f"verklaring-van-vernietiging-{name}{suffix}"
    if suffix == ".pdf":
        pdf = await asyncio.to_thread(statement_pdf, header, statement)
        disposition = {"Content-Disposition": content_disposition(filename)}
        response = web.Response(body=pdf, content_type="application/pdf", headers=disposition)
        return _no_store(response)
    if suffix == ".csv":
        return _csv(_statement_rows(header, statement), filename)
    t = texts(language(request))
    base = request.path
    return _page(
        request,
        "oversight/destruction_statement.html",
        principal=principal,
        title=t["report.statement.title"],
        header=header,
        scope=t[scope_key].format(**scope_value),
        statement=statement,
        csv_href=f"{base}.csv",
        pdf_href=f"{base}.pdf",
    )


def _statement_rows(header: StatementHeader, statement: Statement) -> list[list[object]]:
    t = texts("nl")
    rows: list[list[object]] = [
        ["gemeente", "archiefvormer", "bewaarbeleid_in_werking", "betreft", "opgemaakt_op",
         "aantal_vernietigd"],
        [header.municipality, header.archiefvormer, header.policy_version, header.scope,
         iso(header.made_at), len(statement.lines)],
        [],
        ["dossier", "dienst", "omschrijving", "selectielijst", "aangemaakt", "bewaren_tot",
         "vernietigd_op", "uitkomst", "reden", "beleidsversie", "goedgekeurd_door",
         "verwijderd_door", "vernietigingsbatch"],
    ]  # fmt: skip
    rows += [
        [str(line.dossier_id), line.service_type, line.label, line.selectielijst,
         iso(line.created_at), iso(line.deadline), iso(line.removed_at), line.outcome,
         t[f"report.outcome.{line.outcome}"], line.policy_version, line.approved_by,
         line.removed_by, line.destruction_batch]
        for line in statement.lines
    ]  # fmt: skip
    return rows
