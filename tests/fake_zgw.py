"""A fake of the ZGW Documenten and Zaken APIs (as Open Zaak serves them) on 127.0.0.1.

    /documenten/api/v1/enkelvoudiginformatieobjecten          GET (?bronorganisatie, ?identificatie)
                                                              POST (inhoud, or bestandsomvang only:
                                                              then locked, with bestandsdelen)
    /documenten/api/v1/enkelvoudiginformatieobjecten/{uuid}   GET, DELETE (not while linked)
    /documenten/api/v1/enkelvoudiginformatieobjecten/{uuid}/unlock    POST {lock}: joins the parts
    /documenten/api/v1/bestandsdelen/{uuid}                   PUT multipart (inhoud, lock)
    /zaken/api/v1/zaken                                       GET (?identificatie, ?bronorganisatie)
    /zaken/api/v1/zaken/{uuid}                                GET
    /zaken/api/v1/zaakinformatieobjecten                      GET (?zaak, ?informatieobject), POST

Every request needs a ZGW JWT (HS256 under `secret`, naming `client_id`; 403 otherwise); the
zaken endpoints need `Accept-Crs: EPSG:4326` (412 otherwise). Bodies are checked as Open Zaak
does (required fields, lengths, enumerations, RSIN, identificatie unique per bronorganisatie,
bestandsomvang, the lock, part sizes, complete parts on unlock), and more strictly than Open
Zaak in one respect: an `integriteit` with `sha_256` must be the SHA-256 of the bytes received.

Controls: `fail(route, nth=, status=)` answers the nth matching request from now with an error
without doing it; `hang(route, nth=)` does it, then holds the answer until `release()` (the
client times out, or is killed, although the work was done; `holding` is set meanwhile);
`add_zaak`, `force_unlock`. For assertions: `requests` (everything received, with the JWT's
claims), `creations` (identificatie of every EIO made, deleted ones too), `deleted`,
`live(identificatie)`, `content(url)`, `links`.

Also here, for the exporter's tests and the subprocess of the kill test: `MemoryLedger`,
`JsonFileLedger`, and `sample_content` to build an ExportContent by hand.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from dossier.export.content import ExportContent, ExportDocument, ExportParticipant

from support import free_port

CLIENT_ID = "balie-test"
SECRET = "fake-zgw-shared-secret-0123456789"
RSIN = "123456782"  # passes the elfproef
CLERK_ID = "emp-1001"
CRS = "EPSG:4326"
VERTROUWELIJKHEID = {
    "openbaar", "beperkt_openbaar", "intern", "zaakvertrouwelijk", "vertrouwelijk",
    "confidentieel", "geheim", "zeer_geheim",
}  # fmt: skip
STATUSSEN = {"in_bewerking", "ter_vaststelling", "definitief", "gearchiveerd"}
ALGORITMEN = {
    "crc_16", "crc_32", "crc_64", "fletcher_4", "fletcher_8", "fletcher_16", "fletcher_32",
    "hmac", "md5", "sha_1", "sha_256", "sha_512", "sha_3",
}  # fmt: skip
IOT_UUID = "7d5b1c4e-0000-4000-8000-000000000001"
DOSSIER_ID = uuid.UUID("5f0f4a57-7d0a-4c55-9a51-1b2a3c4d5e6f")
JSON_BODY = web.RequestKey("fake_zgw_json_body", object)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _problem(status: int, code: str, detail: str, *fields: tuple[str, str]) -> web.Response:
    """A ZGW problem response; `fields` are (name, code) pairs for `invalidParams`."""
    body: dict[str, Any] = {
        "type": f"https://fake-zgw/fouten/{code}",
        "code": code,
        "title": detail,
        "status": status,
        "detail": detail,
        "instance": f"urn:uuid:{uuid.uuid4()}",
    }
    if fields:
        body["invalidParams"] = [{"name": n, "code": c, "reason": detail} for n, c in fields]
    return web.json_response(body, status=status, content_type="application/problem+json")


def _invalid(name: str, code: str, detail: str) -> web.Response:
    return _problem(400, "invalid", detail, (name, code))


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    headers: dict[str, str]
    claims: dict[str, Any] | None  # the JWT's, when its signature held
    body: Any = None  # the JSON body, when there was one


@dataclass
class _Rule:
    action: str  # fail, hang
    route: str | None
    countdown: int
    status: int = 503


@dataclass
class _Part:
    url: str
    eio: str  # uuid of its EIO
    volgnummer: int
    omvang: int
    data: bytes | None = None


@dataclass
class _Eio:
    uuid: str
    record: dict[str, Any]  # the stored fields, as the API shows them
    content: bytes | None = None
    lock: str | None = None
    parts: list[_Part] = field(default_factory=list)


class FakeZgw:
    """Start with `async with FakeZgw() as zgw:`; point ZgwExporter at its URLs."""

    def __init__(
        self, *, client_id: str = CLIENT_ID, secret: str = SECRET, part_size: int = 64 * 1024
    ) -> None:
        self.client_id = client_id
        self.part_size = part_size  # Open Zaak's DOCUMENTEN_UPLOAD_CHUNK_SIZE
        self._key = OctKey.import_key(secret)
        self.requests: list[Seen] = []
        self.creations: list[str] = []  # identificatie per EIO made
        self.deleted: list[str] = []  # URLs of EIOs deleted
        self.eios: dict[str, _Eio] = {}
        self.parts: dict[str, _Part] = {}
        self.zaken: dict[str, dict[str, Any]] = {}
        self.zios: dict[str, dict[str, Any]] = {}
        self.holding = asyncio.Event()
        self._rules: list[_Rule] = []
        self._release = asyncio.Event()
        self._port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def documenten_url(self) -> str:
        return f"{self.origin}/documenten/api/v1"

    @property
    def zaken_url(self) -> str:
        return f"{self.origin}/zaken/api/v1"

    @property
    def informatieobjecttype(self) -> str:
        return f"{self.origin}/catalogi/api/v1/informatieobjecttypen/{IOT_UUID}"

    async def __aenter__(self) -> FakeZgw:
        app = web.Application(middlewares=[self._gate], client_max_size=64 * 1024 * 1024)
        docs, zaken = "/documenten/api/v1", "/zaken/api/v1"
        eio = f"{docs}/enkelvoudiginformatieobjecten"
        routes = [
            ("GET", eio, self._list_eio, "list_eio"),
            ("POST", eio, self._create_eio, "create_eio"),
            ("GET", eio + "/{uuid}", self._get_eio, "get_eio"),
            ("DELETE", eio + "/{uuid}", self._delete_eio, "delete_eio"),
            ("POST", eio + "/{uuid}/unlock", self._unlock, "unlock"),
            ("PUT", f"{docs}/bestandsdelen/{{uuid}}", self._put_part, "put_part"),
            ("GET", f"{zaken}/zaken", self._list_zaken, "list_zaken"),
            ("GET", f"{zaken}/zaken/{{uuid}}", self._get_zaak, "get_zaak"),
            ("GET", f"{zaken}/zaakinformatieobjecten", self._list_zio, "list_zio"),
            ("POST", f"{zaken}/zaakinformatieobjecten", self._create_zio, "create_zio"),
        ]
        for method, path, handler, name in routes:
            app.router.add_route(method, path, handler, name=name)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        assert self._runner is not None
        await self._runner.cleanup()

    # Controls

    def fail(self, route: str | None = None, *, nth: int = 1, status: int = 503) -> None:
        """Answer the nth request to `route` (any route: None) from now with `status`."""
        self._rules.append(_Rule("fail", route, nth, status))

    def hang(self, route: str | None = None, *, nth: int = 1) -> None:
        """Do the nth request to `route` from now, then hold its answer until `release()`."""
        self._release.clear()
        self._rules.append(_Rule("hang", route, nth))

    def release(self) -> None:
        self._release.set()

    def add_zaak(self, identificatie: str, *, bronorganisatie: str = RSIN) -> str:
        """A zaak to link to; its URL."""
        key = str(uuid.uuid4())
        url = f"{self.zaken_url}/zaken/{key}"
        self.zaken[key] = {
            "url": url,
            "uuid": key,
            "identificatie": identificatie,
            "bronorganisatie": bronorganisatie,
            "omschrijving": "Geboorteaangifte",
            "zaakgeometrie": None,
        }
        return url

    def force_unlock(self, url: str) -> None:
        """What an administrator's forced unlock does to an unfinished upload (Open Zaak)."""
        eio = self.eios[url.rsplit("/", 1)[1]]
        eio.lock = None
        for part in eio.parts:
            self.parts.pop(part.url.rsplit("/", 1)[1])
        eio.parts = []
        eio.record["bestandsomvang"] = None

    # For assertions

    def live(self, identificatie: str) -> list[dict[str, Any]]:
        """The EIOs at the fake now with this identificatie."""
        return [
            self._show(e) for e in self.eios.values() if e.record["identificatie"] == identificatie
        ]

    def content(self, url: str) -> bytes | None:
        return self.eios[url.rsplit("/", 1)[1]].content

    @property
    def links(self) -> list[tuple[str, str]]:
        return [(z["zaak"], z["informatieobject"]) for z in self.zios.values()]

    def seen(self, route: str) -> list[Seen]:
        return [s for s in self.requests if s.route == route]

    # The gate: record, inject failures, check the JWT; hold answers

    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.name or "?"
        claims = self._claims(request.headers.get("Authorization", ""))
        body = None
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _problem(400, "parse_error", "the body is not JSON")
        request[JSON_BODY] = body
        self.requests.append(
            Seen(request.method, request.path, route, dict(request.query), dict(request.headers),
                 claims, body)
        )  # fmt: skip
        action = self._match(route)
        if action is not None and action.action == "fail":
            return _problem(action.status, "injected", f"the fake answers {action.status} now")
        if claims is None:
            return _problem(403, "not_authenticated", "Authenticatiegegevens zijn ongeldig.")
        if route in ("list_zaken", "get_zaak") and request.headers.get("Accept-Crs") != CRS:
            return _problem(412, "precondition_failed", "'Accept-Crs' header ontbreekt")
        response = await handler(request)
        if action is not None and action.action == "hang":
            self.holding.set()
            await self._release.wait()
        return response

    def _match(self, route: str) -> _Rule | None:
        chosen = None
        for rule in list(self._rules):
            if rule.route in (None, route):
                rule.countdown -= 1
                if rule.countdown == 0:
                    self._rules.remove(rule)
                    chosen = chosen or rule
        return chosen

    def _claims(self, authorization: str) -> dict[str, Any] | None:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return None
        try:
            decoded = jwt.decode(token, self._key, algorithms=["HS256"])
        except (JoseError, ValueError):
            return None
        claims = dict(decoded.claims)
        iat = claims.get("iat")
        now = dt.datetime.now(dt.UTC).timestamp()
        if claims.get("client_id") != self.client_id or not isinstance(iat, int):
            return None
        if not now - 3600 <= iat <= now + 60:  # Open Zaak's JWT_EXPIRY and leeway
            return None
        return claims

    # Documenten API

    def _eio_url(self, key: str) -> str:
        return f"{self.documenten_url}/enkelvoudiginformatieobjecten/{key}"

    def _show(self, eio: _Eio) -> dict[str, Any]:
        shown = dict(eio.record)
        shown["locked"] = eio.lock is not None
        shown["inhoud"] = (
            f"{self._eio_url(eio.uuid)}/download?versie=1" if eio.content is not None else None
        )
        shown["bestandsdelen"] = [
            {
                "url": p.url,
                "volgnummer": p.volgnummer,
                "omvang": p.omvang,
                "voltooid": p.data is not None,
            }
            for p in eio.parts
        ]
        return shown

    def _find_eio(self, request: web.Request) -> _Eio | None:
        return self.eios.get(request.match_info["uuid"])

    async def _list_eio(self, request: web.Request) -> web.Response:
        shown = [self._show(e) for e in self.eios.values()]
        found = _filtered(shown, request, "bronorganisatie", "identificatie")
        return web.json_response(
            {"count": len(found), "next": None, "previous": None, "results": found}
        )

    async def _create_eio(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        if (refused := self._validate_eio(body)) is not None:
            return refused
        content = None
        if body.get("inhoud") is not None:
            try:
                content = base64.b64decode(body["inhoud"], validate=True)
            except (binascii.Error, ValueError):
                return _invalid("inhoud", "invalid", "inhoud is geen base64")
            if body.get("bestandsomvang") not in (None, len(content)):
                return _invalid("nonFieldErrors", "file-size", "bestandsomvang wijkt af van inhoud")
            if (refused := _check_integriteit(body.get("integriteit"), content)) is not None:
                return refused
        key = str(uuid.uuid4())
        record = {k: v for k, v in body.items() if k not in ("inhoud", "lock")}
        record.update(url=self._eio_url(key), versie=1, beginRegistratie=_now())
        record["bestandsomvang"] = (
            len(content) if content is not None else body.get("bestandsomvang")
        )
        eio = _Eio(key, record, content)
        size = body.get("bestandsomvang") or 0
        if content is None and size > 0:
            eio.lock = uuid.uuid4().hex
            remaining = size
            for number in range(1, math.ceil(size / self.part_size) + 1):
                part_key = str(uuid.uuid4())
                omvang = min(self.part_size, remaining)
                remaining -= omvang
                part = _Part(f"{self.documenten_url}/bestandsdelen/{part_key}", key, number, omvang)
                eio.parts.append(part)
                self.parts[part_key] = part
        elif content is None:
            eio.content = b""
        self.eios[key] = eio
        self.creations.append(record["identificatie"])
        shown = self._show(eio)
        if eio.lock is not None:
            shown["lock"] = eio.lock
        return web.json_response(shown, status=201)

    def _validate_eio(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return _invalid("nonFieldErrors", "invalid", "de body is geen object")
        for name, limit in (("titel", 200), ("auteur", 200), ("identificatie", 40),
                            ("formaat", 255), ("bestandsnaam", 255)):  # fmt: skip
            value = body.get(name, "")
            if not isinstance(value, str) or len(value) > limit:
                return _invalid(name, "max_length", f"{name} is te lang of geen tekst")
        for name in (
            "titel",
            "auteur",
            "creatiedatum",
            "taal",
            "bronorganisatie",
            "informatieobjecttype",
        ):
            if not body.get(name):
                return _invalid(name, "required", f"{name} is verplicht")
        if not re.fullmatch(r"\d{9}", str(body["bronorganisatie"])):
            return _invalid("bronorganisatie", "invalid", "bronorganisatie is geen RSIN")
        if not isinstance(body["creatiedatum"], str) or not _DATE.fullmatch(body["creatiedatum"]):
            return _invalid("creatiedatum", "invalid", "creatiedatum is geen datum")
        if not isinstance(body["taal"], str) or len(body["taal"]) != 3:
            return _invalid("taal", "invalid", "taal is geen ISO 639-2/B-code")
        if body["informatieobjecttype"] != self.informatieobjecttype:
            return _invalid("informatieobjecttype", "bad-url", "onbekend informatieobjecttype")
        if body.get("vertrouwelijkheidaanduiding", "openbaar") not in VERTROUWELIJKHEID:
            return _invalid("vertrouwelijkheidaanduiding", "invalid_choice", "onbekende aanduiding")
        if body.get("status", "definitief") not in STATUSSEN:
            return _invalid("status", "invalid_choice", "onbekende status")
        if body.get("indicatieGebruiksrecht") is True:
            return _invalid(
                "indicatieGebruiksrecht", "missing-gebruiksrechten", "maak eerst gebruiksrechten"
            )
        size = body.get("bestandsomvang")
        if size is not None and (not isinstance(size, int) or size < 0):
            return _invalid("bestandsomvang", "invalid", "bestandsomvang is geen aantal bytes")
        integriteit = body.get("integriteit")
        if integriteit is not None:
            if not isinstance(integriteit, dict) or integriteit.get("algoritme") not in ALGORITMEN:
                return _invalid("integriteit.algoritme", "invalid_choice", "onbekend algoritme")
            if not isinstance(integriteit.get("waarde"), str) or len(integriteit["waarde"]) > 128:
                return _invalid("integriteit.waarde", "invalid", "waarde ontbreekt")
            if not _DATE.fullmatch(str(integriteit.get("datum"))):
                return _invalid("integriteit.datum", "invalid", "datum ontbreekt")
        identificatie = body.get("identificatie")
        if identificatie and any(
            e.record["identificatie"] == identificatie
            and e.record["bronorganisatie"] == body["bronorganisatie"]
            for e in self.eios.values()
        ):
            return _invalid(
                "identificatie", "identificatie-niet-uniek", "identificatie is niet uniek"
            )
        return None

    async def _get_eio(self, request: web.Request) -> web.Response:
        eio = self._find_eio(request)
        if eio is None:
            return _problem(404, "not_found", "Niet gevonden.")
        return web.json_response(self._show(eio))

    async def _delete_eio(self, request: web.Request) -> web.Response:
        eio = self._find_eio(request)
        if eio is None:
            return _problem(404, "not_found", "Niet gevonden.")
        url = self._eio_url(eio.uuid)
        if any(z["informatieobject"] == url for z in self.zios.values()):
            return _invalid(
                "nonFieldErrors", "pending-relations", "het informatieobject is gerelateerd"
            )
        for part in eio.parts:
            self.parts.pop(part.url.rsplit("/", 1)[1], None)
        del self.eios[eio.uuid]
        self.deleted.append(url)
        return web.Response(status=204)

    async def _put_part(self, request: web.Request) -> web.Response:
        part = self.parts.get(request.match_info["uuid"])
        if part is None:
            return _problem(404, "not_found", "Niet gevonden.")
        # Read by hand, not with request.post(): that spools files to temporary files, which
        # it leaves open when the client goes away mid-part.
        form: dict[str, bytes] = {}
        files: set[str] = set()
        reader = await request.multipart()
        while (field := await reader.next()) is not None:
            if isinstance(field, BodyPartReader) and field.name:
                form[field.name] = await field.read()
                if field.filename:
                    files.add(field.name)
        data, lock = form.get("inhoud"), form.get("lock", b"").decode()
        if data is None or "inhoud" not in files:
            return _invalid("inhoud", "required", "inhoud (een bestand) is verplicht")
        if len(data) != part.omvang:
            return _invalid(
                "nonFieldErrors", "file-size", f"verwacht {part.omvang}b, ontvangen {len(data)}b"
            )
        eio = self.eios[part.eio]
        if eio.lock is None or lock != eio.lock:
            return _invalid("nonFieldErrors", "incorrect-lock-id", "Lock id is not correct")
        part.data = data
        shown = {
            "url": part.url,
            "volgnummer": part.volgnummer,
            "omvang": part.omvang,
            "voltooid": True,
        }
        return web.json_response(shown)

    async def _unlock(self, request: web.Request) -> web.Response:
        eio = self._find_eio(request)
        if eio is None:
            return _problem(404, "not_found", "Niet gevonden.")
        body = request[JSON_BODY]
        if eio.lock is None or not isinstance(body, dict) or body.get("lock") != eio.lock:
            return _invalid("nonFieldErrors", "incorrect-lock-id", "Lock id is not correct")
        if any(p.data is None for p in eio.parts):
            return _invalid(
                "nonFieldErrors", "incomplete-upload", "Upload of part files is not complete"
            )
        content = b"".join(p.data or b"" for p in sorted(eio.parts, key=lambda p: p.volgnummer))
        if (refused := _check_integriteit(eio.record.get("integriteit"), content)) is not None:
            return refused
        eio.content, eio.lock = content, None
        for part in eio.parts:
            self.parts.pop(part.url.rsplit("/", 1)[1], None)
        eio.parts = []
        return web.Response(status=204)

    # Zaken API

    async def _list_zaken(self, request: web.Request) -> web.Response:
        found = _filtered(self.zaken.values(), request, "identificatie", "bronorganisatie")
        return web.json_response(
            {"count": len(found), "next": None, "previous": None, "results": found},
            headers={"Content-Crs": CRS},
        )

    async def _get_zaak(self, request: web.Request) -> web.Response:
        zaak = self.zaken.get(request.match_info["uuid"])
        if zaak is None:
            return _problem(404, "not_found", "Niet gevonden.")
        return web.json_response(zaak, headers={"Content-Crs": CRS})

    async def _list_zio(self, request: web.Request) -> web.Response:
        found = _filtered(self.zios.values(), request, "zaak", "informatieobject")
        return web.json_response(found)

    async def _create_zio(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        if not isinstance(body, dict):
            return _invalid("nonFieldErrors", "invalid", "de body is geen object")
        zaak, io = body.get("zaak"), body.get("informatieobject")
        if (
            not isinstance(zaak, str)
            or zaak.rsplit("/", 1)[-1] not in self.zaken
            or not zaak.startswith(self.zaken_url)
        ):
            return _invalid("zaak", "bad-url", "onbekende zaak")
        eio = self.eios.get(io.rsplit("/", 1)[-1]) if isinstance(io, str) else None
        if eio is None or io != self._eio_url(eio.uuid):
            return _invalid("informatieobject", "bad-url", "onbekend informatieobject")
        if eio.lock is not None or eio.content is None:
            return _invalid(
                "informatieobject", "locked", "het informatieobject is nog niet compleet"
            )
        if (zaak, io) in self.links:
            return _invalid(
                "nonFieldErrors", "unique", "zaak en informatieobject zijn al gerelateerd"
            )
        key = str(uuid.uuid4())
        self.zios[key] = {
            "url": f"{self.zaken_url}/zaakinformatieobjecten/{key}",
            "uuid": key,
            "zaak": zaak,
            "informatieobject": io,
            "aardRelatieWeergave": "Hoort bij, omgekeerd: kent",
            "registratiedatum": _now(),
        }
        return web.json_response(self.zios[key], status=201)


def _check_integriteit(integriteit: Any, content: bytes) -> web.Response | None:
    if (
        isinstance(integriteit, dict)
        and integriteit.get("algoritme") == "sha_256"
        and integriteit.get("waarde") != hashlib.sha256(content).hexdigest()
    ):
        return _invalid(
            "integriteit.waarde", "checksum-mismatch", "de sha_256 klopt niet met de inhoud"
        )
    return None


def _filtered(
    objects: Iterable[dict[str, Any]], request: web.Request, *names: str
) -> list[dict[str, Any]]:
    """The objects that match the query's filter parameters among `names`."""
    query = {name: request.query[name] for name in names if name in request.query}
    return [o for o in objects if all(o.get(k) == v for k, v in query.items())]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# The exporter's other inputs


class MemoryLedger:
    """The step ledger in memory. `fail_on(prefix)`: the next record() of a key starting with
    it raises, as if the process died between the target's answer and the ledger's commit."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self._fail: list[str] = []

    def fail_on(self, prefix: str) -> None:
        self._fail.append(prefix)

    async def done(self, key: str) -> dict[str, Any] | None:
        return self.steps.get(key)

    async def record(self, key: str, result: dict[str, Any]) -> None:
        for prefix in self._fail:
            if key.startswith(prefix):
                self._fail.remove(prefix)
                raise ConnectionError(f"the ledger's database went away while recording {key}")
        self.steps[key] = json.loads(json.dumps(result))


class JsonFileLedger:
    """The step ledger in a JSON file, replaced atomically on every record: it survives SIGKILL."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    async def done(self, key: str) -> dict[str, Any] | None:
        return self.load().get(key)

    async def record(self, key: str, result: dict[str, Any]) -> None:
        steps = self.load()
        steps[key] = result
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(steps, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


def document_bytes(seed: str, size: int) -> bytes:
    """Deterministic content: the same in the test and in its subprocess."""
    return random.Random(seed).randbytes(size)


def sample_content(
    documents: Sequence[tuple[str, str, bytes]],
    *,
    dossier_id: uuid.UUID = DOSSIER_ID,
    chunk: int = 10_000,
) -> ExportContent:
    """An ended dossier with `documents` ((name, media type, bytes)), built by hand. Document
    ids follow from the dossier id and the position, so a subprocess builds the same content."""
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def opener(data: bytes) -> Callable[[], AsyncIterator[bytes]]:
        async def stream() -> AsyncIterator[bytes]:
            for offset in range(0, len(data), chunk):
                yield data[offset : offset + chunk]

        return stream

    return ExportContent(
        dossier_id=dossier_id,
        appointment_id=uuid.uuid5(dossier_id, "appointment"),
        service_code="geboorteaangifte",
        service_label="Geboorteaangifte",
        department_code="burgerzaken",
        department_name="Burgerzaken",
        created_at=start - dt.timedelta(days=2),
        appointment_start=start,
        ended_at=start + dt.timedelta(minutes=25),
        deadline=start + dt.timedelta(days=30),
        participants=(
            ExportParticipant("clerk", CLERK_ID),
            ExportParticipant("resident", "pseudo-1"),
        ),
        bsn=None,
        chat=(),
        documents=tuple(
            ExportDocument(
                document_id=uuid.uuid5(dossier_id, f"document-{index}"),
                name=name,
                media_type=media_type,
                size=len(data),
                uploaded_by_role="resident",
                created_at=start + dt.timedelta(minutes=5 + index),
                open=opener(data),
            )
            for index, (name, media_type, data) in enumerate(documents)
        ),
        payments=(),
        policy_version="2026-01",
        policy_digest="0" * 64,
        archiefvormer="Gemeente Voorbeeld",
        archive_mode="export_required",
        selectielijst="1.1.2",
        bewaartermijn="P10Y",
        informatiecategorie=None,
        exported_at=start + dt.timedelta(hours=1),
        exported_by=CLERK_ID,
    )


TRANSCRIPT = b"%PDF-1.7\n% a transcript stands in here\n%%EOF\n"


def fixed_transcript(content: ExportContent) -> bytes:
    """A stand-in for the PDF renderer: the exporter's tests do not test the transcript."""
    return TRANSCRIPT


async def no_progress(fraction: float, text: str) -> None:
    return None
