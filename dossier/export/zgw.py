"""The ZGW Documenten and Zaken APIs (as Open Zaak offers them) as an export target.

Each document, and the conversation's transcript as PDF, becomes an EnkelvoudigInformatieObject
(EIO) with an `integriteit` checksum, linked to the zaak the clerk named (`options["zaak"]`: the
zaak's URL, or its identificatie):

    GET  {zaken}/zaken?identificatie=&bronorganisatie=      a zaak named by its identificatie
    GET  {documenten}/enkelvoudiginformatieobjecten?bronorganisatie=&identificatie=
                                          did an attempt that died unrecorded make it already?
    POST {documenten}/enkelvoudiginformatieobjecten
                                          up to `part_threshold` bytes with the content (`inhoud`,
                                          base64); above it with `bestandsomvang` only, and the
                                          API answers with a lock and the parts it expects
    PUT  {bestandsdeel}                   each part: multipart (`inhoud`, `lock`), streamed
    POST {eio}/unlock                     the API joins the parts; the EIO is complete
    GET  {zaken}/zaakinformatieobjecten?zaak=&informatieobject=     linked already?
    POST {zaken}/zaakinformatieobjecten   the link

Idempotency. The steps in the ledger (<item> is the document id or "transcript"):

    zaak                      {url}                       the zaak this export goes to
    eio-pending:<item>[:n]    {url, lock, sha256, parts}  a large EIO made, its parts due
    part:<item>[:n]:<k>       {url}                       part k of that attempt is uploaded
    eio:<item>                {url}                       the EIO is complete at the target
    zio:<item>                {url}                       the EIO is linked to the zaak

Every EIO has an identificatie derived from the item's id, which the API keeps unique per
bronorganisatie, and is looked up before it is made. A process killed after the API made an
EIO but before the step was recorded finds it on the retry: complete and with our checksum,
it is adopted; otherwise (a large EIO locked with a lock nobody recorded, or a transcript
rendered anew since) it is deleted and made again - it is ours and not linked to anything
yet. A recorded large EIO is continued with its recorded lock; if it is gone, or was unlocked
unfinished by someone else, it is deleted and the next attempt (`:2`, `:3`, ...) starts over.
Links are looked up before they are made too. So each item is at the target exactly once.

The requests, their authentication and their errors are `zgw_auth.ZgwClient`'s.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from dossier.export.base import ExportOutcome, Progress, StepLedger
from dossier.export.content import ExportContent, ExportDocument
from dossier.export.errors import ExportConfigError, ExportFailed, TargetUnavailable
from dossier.export.zgw_auth import ZgwClient, ZgwJwt, json_object, matching, results

__all__ = ["VERTROUWELIJKHEIDAANDUIDINGEN", "ZgwExporter", "is_rsin"]

log = logging.getLogger(__name__)

VERTROUWELIJKHEIDAANDUIDINGEN = frozenset(
    {"openbaar", "beperkt_openbaar", "intern", "zaakvertrouwelijk", "vertrouwelijk",
     "confidentieel", "geheim", "zeer_geheim"}
)  # fmt: skip
LOCAL_TIME = ZoneInfo("Europe/Amsterdam")  # the dates on the records are Dutch dates
_MiB = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_rsin(value: str) -> bool:
    """Nine digits passing the elfproef, as the ZGW APIs require of a bronorganisatie."""
    if not re.fullmatch(r"\d{9}", value):
        return False
    total = sum(int(d) * (9 - i) for i, d in enumerate(value[:8])) - int(value[8])
    return total % 11 == 0


def _transcript_pdf(content: ExportContent) -> bytes:
    # Imported when first needed: it pulls in the PDF library, which tests can do without.
    from dossier.export.transcript import transcript_pdf

    return transcript_pdf(content)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _local_date(moment: dt.datetime) -> str:
    return moment.astimezone(LOCAL_TIME).date().isoformat()


@dataclass(frozen=True)
class _Item:
    """One EIO to make: a document or the transcript."""

    key: str  # the ledger's <item>
    size: int
    open: Callable[[], AsyncIterator[bytes]]
    fields: Mapping[str, Any]  # the EIO's metadata, all but size, checksum and content
    today: str  # the date of the checksum


class ZgwExporter:
    """Documents and transcript to a ZGW Documenten API, linked to a zaak in its Zaken API.

    `documenten_url` and `zaken_url` are the APIs' roots (…/documenten/api/v1); content above
    `part_threshold` bytes goes up in the API's parts and is never held whole in memory.
    `timeout` bounds each request (an upload gets more time in proportion to its size).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        documenten_url: str,
        zaken_url: str,
        client_id: str,
        secret: str,
        informatieobjecttype: str,
        bronorganisatie: str,
        vertrouwelijkheidaanduiding: str = "vertrouwelijk",
        auteur: str = "Digitale Balie",
        part_threshold: int = 10 * _MiB,
        timeout: float = 30.0,
        id: str = "zgw",
        render_transcript: Callable[[ExportContent], bytes] = _transcript_pdf,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.id = id
        auth = ZgwJwt(client_id, secret, now=now)
        self._api = ZgwClient(
            http, documenten_url=documenten_url, zaken_url=zaken_url, auth=auth, timeout=timeout
        )
        self._informatieobjecttype = informatieobjecttype
        self._bronorganisatie = bronorganisatie
        self._vertrouwelijkheid = vertrouwelijkheidaanduiding
        self._auteur = auteur
        self._part_threshold = part_threshold
        self._render_transcript = render_transcript
        self._now = now

    def __repr__(self) -> str:
        return f"ZgwExporter({self._api!r}, client_id={self._api.auth.client_id!r})"

    async def check_config(self) -> None:
        """Check the settings, then search both APIs (for nothing) with our credentials.
        Raises ExportConfigError; TargetUnavailable if an API cannot be reached."""
        self._check_settings()
        probe = {"bronorganisatie": self._bronorganisatie, "identificatie": "balie-config-check"}
        documenten, zaken = self._api.documenten, self._api.zaken
        await self._api.call("GET", f"{documenten}/enkelvoudiginformatieobjecten", params=probe)
        await self._api.call("GET", f"{zaken}/zaken", params=probe)

    async def export(
        self,
        content: ExportContent,
        *,
        options: Mapping[str, str],
        steps: StepLedger,
        progress: Progress,
    ) -> ExportOutcome:
        """Every document and the transcript as EIOs linked to the zaak; returns their URLs
        once the APIs confirmed all of it. See the module docstring for what a retry skips."""
        self._check_settings()
        run = _Run(
            self._api, steps, content.exported_by, self._bronorganisatie, self._part_threshold
        )
        await progress(0.0, "Zaak opzoeken in het zaaksysteem")
        zaak = await run.zaak(options.get("zaak", ""))
        references = {"zaak": zaak}
        documents = content.documents
        total = len(documents) + 1
        for index, document in enumerate(documents):
            label = f"Document {index + 1} van {len(documents)} naar het zaaksysteem"
            references[f"document:{document.document_id}"] = await run.hand_over(
                str(document.document_id),
                functools.partial(self._document_item, document),
                zaak,
                _Report(progress, index, total, label),
            )
        label = "Gespreksverslag naar het zaaksysteem"
        references["transcript"] = await run.hand_over(
            "transcript",
            lambda: self._transcript_item(content),
            zaak,
            _Report(progress, len(documents), total, label),
        )
        await progress(1.0, "Alles staat in het zaaksysteem")
        return ExportOutcome(references=references)

    def _check_settings(self) -> None:
        for name, url in (("Documenten API", self._api.documenten),
                          ("Zaken API", self._api.zaken),
                          ("informatieobjecttype", self._informatieobjecttype)):  # fmt: skip
            if not url.startswith(("https://", "http://")):
                raise ExportConfigError(f"the {name} URL is not set to an http(s) URL: {url!r}")
        if not is_rsin(self._bronorganisatie):
            raise ExportConfigError(
                f"the bronorganisatie {self._bronorganisatie!r} is not an RSIN (9 digits, elfproef)"
            )
        if self._vertrouwelijkheid not in VERTROUWELIJKHEIDAANDUIDINGEN:
            raise ExportConfigError(
                f"{self._vertrouwelijkheid!r} is not a ZGW vertrouwelijkheidaanduiding"
            )
        if self._part_threshold < 1:
            raise ExportConfigError("the part threshold must be at least one byte")
        self._api.auth.check()

    async def _document_item(self, document: ExportDocument) -> _Item:
        fields = self._fields(
            identificatie=f"balie-d-{document.document_id.hex}",
            titel=document.name[:200],
            bestandsnaam=document.name,
            formaat=document.media_type,
            creatiedatum=_local_date(document.created_at),
        )
        today = _local_date(self._now())
        return _Item(str(document.document_id), document.size, document.open, fields, today)

    async def _transcript_item(self, content: ExportContent) -> _Item:
        pdf = await asyncio.to_thread(self._render_transcript, content)
        day = _local_date(content.ended_at or content.appointment_start)
        fields = self._fields(
            identificatie=f"balie-t-{content.dossier_id.hex}",
            titel="Gespreksverslag",
            bestandsnaam=f"gespreksverslag-{day}.pdf",
            formaat="application/pdf",
            creatiedatum=day,
        )
        today = _local_date(self._now())
        return _Item("transcript", len(pdf), lambda: _chunks(pdf), fields, today)

    def _fields(self, **fields: str) -> dict[str, Any]:
        return {
            **fields,
            "bronorganisatie": self._bronorganisatie,
            "auteur": self._auteur,
            "taal": "nld",
            "status": "definitief",
            "vertrouwelijkheidaanduiding": self._vertrouwelijkheid,
            "indicatieGebruiksrecht": False,
            "informatieobjecttype": self._informatieobjecttype,
        }


class _Run:
    """One export: the ledger, and the clerk on whose behalf the requests are made."""

    def __init__(
        self, api: ZgwClient, steps: StepLedger, user: str, bronorganisatie: str, threshold: int
    ) -> None:
        self.api, self.steps, self.user = api, steps, user
        self.bronorganisatie, self.threshold = bronorganisatie, threshold

    async def call(self, method: str, url: str, **request: Any) -> Any:
        return await self.api.call(method, url, user=self.user, **request)

    # The zaak

    async def zaak(self, reference: str) -> str:
        reference = reference.strip()
        if not reference:
            raise ExportFailed("an export to the zaak system needs a zaak (option 'zaak')")
        zaak = await self._resolve(reference)
        recorded = await self._recorded("zaak")
        if recorded is None:
            await self.steps.record("zaak", {"url": zaak})
        elif recorded != zaak:
            raise ExportFailed(
                f"this export was started for zaak {recorded}; it cannot go on with {reference!r}"
            )
        return zaak

    async def _resolve(self, reference: str) -> str:
        zaken = self.api.zaken
        if reference.startswith(("http://", "https://")):
            if not reference.startswith(f"{zaken}/zaken/"):
                raise ExportFailed(f"{reference[:200]!r} is not a zaak of {zaken}")
            zaak = await self.call("GET", reference, missing_ok=True)
            if zaak is None:
                raise ExportFailed(f"the Zaken API has no zaak {reference}")
            return self.api.own(json_object(zaak).get("url"), zaken, "zaak")
        if len(reference) > 40 or _CONTROL.search(reference):
            raise ExportFailed(f"{reference[:60]!r} is neither a zaak URL nor an identificatie")
        query = {"identificatie": reference, "bronorganisatie": self.bronorganisatie}
        found = matching(await self.call("GET", f"{zaken}/zaken", params=query), query)
        if len(found) != 1:
            what = "no zaak" if not found else f"{len(found)} zaken"
            raise ExportFailed(
                f"the Zaken API has {what} with identificatie {reference!r} "
                f"(bronorganisatie {self.bronorganisatie})"
            )
        return self.api.own(found[0].get("url"), zaken, "zaak")

    # One item: its EIO, then the link

    async def hand_over(
        self, key: str, make_item: Callable[[], Awaitable[_Item]], zaak: str, report: _Report
    ) -> str:
        """The URL of the item's EIO, complete at the target and linked to the zaak."""
        await report(0.0)
        eio = await self._recorded(f"eio:{key}")
        if eio is None:
            eio = await self._upload(await make_item(), report)
            await self.steps.record(f"eio:{key}", {"url": eio})
        if await self._recorded(f"zio:{key}") is None:
            await self.steps.record(f"zio:{key}", {"url": await self._link(zaak, eio)})
        return eio

    async def _upload(self, item: _Item, report: _Report) -> str:
        """The item's complete EIO: continued, found, or made now."""
        inhoud, sha = await self._read(item)
        attempt, pending = 0, None
        while (found := await self.steps.done(_pending_key(item.key, attempt + 1))) is not None:
            attempt, pending = attempt + 1, found
        if pending is not None:
            continued = await self._continue(item, sha, pending, attempt, report)
            if continued is not None:
                return continued
        documenten = self.api.documenten
        url = f"{documenten}/enkelvoudiginformatieobjecten"
        query = {
            "bronorganisatie": self.bronorganisatie,
            "identificatie": item.fields["identificatie"],
        }
        existing = matching(await self.call("GET", url, params=query), query)
        if len(existing) > 1:
            raise ExportFailed(f"the Documenten API holds {query['identificatie']} more than once")
        if existing:
            found_url = self.api.own(existing[0].get("url"), documenten, "informatieobject")
            if _complete(existing[0], item.size, sha):
                log.info("informatieobject %s was made by an earlier attempt", found_url)
                return found_url
            await self._discard(found_url, "left unfinished by an earlier attempt")
        body = {**item.fields, "bestandsomvang": item.size}
        body["integriteit"] = {"algoritme": "sha_256", "waarde": sha, "datum": item.today}
        if inhoud is not None:
            body["inhoud"] = base64.b64encode(inhoud).decode("ascii")
            created = json_object(await self.call("POST", url, body=body, upload=item.size))
            return self.api.own(created.get("url"), documenten, "informatieobject")
        created = json_object(await self.call("POST", url, body=body))
        pending = self._pending(created, item)
        pending["sha256"] = sha
        attempt += 1
        await self.steps.record(_pending_key(item.key, attempt), pending)
        return await self._finish_parts(item, pending, attempt, report)

    async def _continue(
        self, item: _Item, sha: str, pending: Mapping[str, Any], attempt: int, report: _Report
    ) -> str | None:
        """Finish a recorded large EIO; None if it cannot be (then it is gone from the target)."""
        url = pending.get("url")
        if not isinstance(url, str):
            raise ExportFailed(f"the ledger's step {_pending_key(item.key, attempt)} is damaged")
        answer = await self.call("GET", url, missing_ok=True)
        if answer is None:
            return None
        if pending.get("sha256") != sha:  # the content changed since: a transcript made anew
            await self._discard(url, "made from content that has changed since")
            return None
        current = json_object(answer)
        if _complete(current, item.size, sha):
            return url
        if current.get("locked") is not True:
            await self._discard(url, "unlocked by someone else before it was complete")
            return None
        return await self._finish_parts(item, pending, attempt, report)

    def _pending(self, created: Mapping[str, Any], item: _Item) -> dict[str, Any]:
        """What a retry needs to finish a large EIO, from the API's answer to its creation."""
        documenten = self.api.documenten
        url = self.api.own(created.get("url"), documenten, "informatieobject")
        lock, raw = created.get("lock"), created.get("bestandsdelen")
        if not isinstance(lock, str) or not lock or not isinstance(raw, list) or not raw:
            raise ExportFailed(f"the Documenten API offered no upload in parts for {url}")
        numbered: list[tuple[int, dict[str, Any]]] = []
        for part in results(raw):
            number, omvang = part.get("volgnummer"), part.get("omvang")
            if not isinstance(number, int) or not isinstance(omvang, int) or omvang <= 0:
                raise ExportFailed(f"the Documenten API asked for a part {number!r} of {omvang!r}")
            own = self.api.own(part.get("url"), documenten, "bestandsdeel")
            numbered.append((number, {"url": own, "omvang": omvang}))
        parts = [part for _, part in sorted(numbered, key=lambda pair: pair[0])]
        if sum(p["omvang"] for p in parts) != item.size:
            raise ExportFailed(f"the parts the Documenten API asked for {url} do not add up")
        return {"url": url, "lock": lock, "parts": parts}

    async def _finish_parts(
        self, item: _Item, pending: Mapping[str, Any], attempt: int, report: _Report
    ) -> str:
        url, lock, parts = str(pending["url"]), str(pending["lock"]), pending["parts"]
        keys = [_part_key(item.key, attempt, k) for k in range(1, len(parts) + 1)]
        done = [await self.steps.done(key) is not None for key in keys]
        if not all(done):
            stream = item.open()
            cursor = _Cursor(stream)
            try:
                for k, (part, key) in enumerate(zip(parts, keys, strict=True), start=1):
                    if done[k - 1]:
                        await cursor.skip(part["omvang"])
                        continue
                    await report((k - 1) / len(parts), f"deel {k} van {len(parts)}")
                    await self._put_part(part["url"], part["omvang"], lock, cursor)
                    await self.steps.record(key, {"url": part["url"]})
            finally:
                await _close(stream)
        await self.call("POST", f"{url}/unlock", body={"lock": lock})
        return url

    async def _put_part(self, url: str, size: int, lock: str, cursor: _Cursor) -> None:
        """One part as multipart/form-data, streamed from the document with its exact length."""
        boundary = secrets.token_hex(16)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="lock"\r\n\r\n{lock}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="inhoud"; filename="deel"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            yield head
            async for chunk in cursor.take(size):
                yield chunk
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        try:
            await self.call("PUT", url, data=body(), headers=headers, upload=size)
        except ExportFailed:
            if cursor.error is not None:  # the document's stream failed, not the API
                raise cursor.error from None
            raise

    async def _discard(self, url: str, why: str) -> None:
        log.warning("deleting informatieobject %s: %s", url, why)
        try:
            await self.call("DELETE", url, missing_ok=True)
        except TargetUnavailable:
            raise
        except (ExportFailed, ExportConfigError) as exc:
            raise type(exc)(
                f"informatieobject {url} was {why} and must be deleted before this export can "
                f"go on, but it could not be: {exc}"
            ) from exc

    async def _link(self, zaak: str, eio: str) -> str:
        url = f"{self.api.zaken}/zaakinformatieobjecten"
        query = {"zaak": zaak, "informatieobject": eio}
        existing = matching(await self.call("GET", url, params=query), query)
        answer = existing[0] if existing else json_object(await self.call("POST", url, body=query))
        return self.api.own(answer.get("url"), self.api.zaken, "zaakinformatieobject")

    async def _read(self, item: _Item) -> tuple[bytes | None, str]:
        """The SHA-256 of the item, and its bytes if it is small enough to send whole."""
        keep = item.size <= self.threshold
        digest, chunks, size = hashlib.sha256(), [], 0
        stream = item.open()
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > item.size:
                    break
                digest.update(chunk)
                if keep:
                    chunks.append(chunk)
        finally:
            await _close(stream)
        if size != item.size:
            raise ExportFailed(
                f"{item.key} gave {'more than ' if size > item.size else ''}{size} bytes "
                f"where {item.size} were expected"
            )
        return (b"".join(chunks) if keep else None), digest.hexdigest()

    async def _recorded(self, key: str) -> str | None:
        result = await self.steps.done(key)
        if result is None:
            return None
        url = result.get("url")
        if not isinstance(url, str):
            raise ExportFailed(f"the ledger's step {key} has no URL")
        return url


class _Report:
    """Progress of one item, as a share of the whole export."""

    def __init__(self, progress: Progress, index: int, total: int, label: str) -> None:
        self._progress, self._index, self._total, self._label = progress, index, total, label

    async def __call__(self, within: float, detail: str = "") -> None:
        text = f"{self._label} ({detail})" if detail else self._label
        await self._progress((self._index + within) / self._total, text)


class _Cursor:
    """A document's stream handed out in consecutive pieces of exactly the sizes asked for."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self._rest = b""
        self.error: Exception | None = None  # why the stream failed, if it did

    async def take(self, size: int) -> AsyncIterator[bytes]:
        try:
            while size > 0:
                chunk = self._rest
                while not chunk:
                    try:
                        chunk = await anext(self._stream)
                    except StopAsyncIteration:
                        raise ExportFailed("a document ended before its last part") from None
                chunk, self._rest = chunk[:size], chunk[size:]
                size -= len(chunk)
                yield chunk
        except Exception as exc:
            self.error = exc
            raise

    async def skip(self, size: int) -> None:
        async for _ in self.take(size):
            pass


def _pending_key(key: str, attempt: int) -> str:
    return f"eio-pending:{key}" if attempt == 1 else f"eio-pending:{key}:{attempt}"


def _part_key(key: str, attempt: int, number: int) -> str:
    return f"part:{key}:{number}" if attempt == 1 else f"part:{key}:{attempt}:{number}"


def _complete(eio: Mapping[str, Any], size: int, sha: str) -> bool:
    """Whether the API holds the EIO unlocked, whole, and with our checksum."""
    integriteit = eio.get("integriteit")
    if not isinstance(integriteit, dict) or integriteit.get("waarde") != sha:
        return False
    whole = not eio.get("bestandsdelen") and bool(eio.get("inhoud"))
    return eio.get("locked") is False and whole and eio.get("bestandsomvang") == size


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _close(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
