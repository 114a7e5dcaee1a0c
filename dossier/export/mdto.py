"""MDTO metadata (Nationaal Archief, XML schema 1.0.1) for a packaged conversation.

MDTO puts exactly one object in each XML document (`<MDTO>` holds one `informatieobject` *or*
one `bestand`), and the SIP specification names them as sidecars: `<naam>.mdto.xml` for an
informatieobject and `<file name>.bestand.mdto.xml` next to each file. A package therefore has
one informatieobject for the conversation (`gespreksessie.mdto.xml`) and one bestand sidecar
per content file (documents, transcripts, payments.csv), each pointing back to the
conversation with `isRepresentatieVan`.

Choices that an archivist may want to know (and a municipality may adjust):
* `waardering` follows the policy's bewaartermijn: "permanent" is "Blijvend te bewaren" (B),
  a period is "Tijdelijk te bewaren" (V) with that period as `termijnLooptijd`. The start of
  the period is the municipality's zaak closing, which Balie does not know, so no end date.
* `informatiecategorie` is the policy's text with the selectielijst category as its code.
* `bestandsformaat` names the IANA media type (as sniffed at upload); PRONOM identification
  is left to the archive's ingest tooling (DROID, siegfried), which does it better.
* `beperkingGebruik` says that the record holds personal data (AVG).

`check_object` is a structural check of what the XSD requires (elements present, non-empty,
in the XSD's sequence order); `balie export verify` uses it, because the official XSD is not
shipped with Balie.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from dossier.export.content import ExportContent
from dossier.export.transcript import dutch_date

__all__ = [
    "INFORMATIEOBJECT_PATH",
    "MDTO_NAMESPACE",
    "MDTO_VERSION",
    "MdtoFile",
    "bestand_xml",
    "check_object",
    "conversation_name",
    "identification_source",
    "informatieobject_xml",
    "sidecar_path",
]

MDTO_NAMESPACE = "https://www.nationaalarchief.nl/mdto"
MDTO_VERSION = "1.0.1"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_SCHEMA_LOCATION = f"{MDTO_NAMESPACE} {MDTO_NAMESPACE}/MDTO-XML{MDTO_VERSION}.xsd"
INFORMATIEOBJECT_PATH = "gespreksessie.mdto.xml"
SELECTIELIJST = "Selectielijst gemeenten en intergemeentelijke organen 2020"
_MEDIA_LABELS = {
    "application/pdf": "Portable Document Format (PDF)",
    "image/jpeg": "JPEG-afbeelding",
    "image/png": "PNG-afbeelding",
    "text/html": "HTML-document",
    "text/csv": "CSV-bestand",
}


@dataclass(frozen=True, slots=True)
class MdtoFile:
    """A content file of the package as its bestand describes it."""

    path: str  # inside the package, e.g. documents/1-akte.pdf
    name: str  # `naam`: the file name in the package (unique, as the SIP wants)
    identifier: str  # `identificatieKenmerk`: the document id, or dossier id + path
    size: int
    media_type: str
    sha256: str


def sidecar_path(path: str) -> str:
    """The bestand sidecar of the file at `path` (SIP naming: next to the file)."""
    return f"{path}.bestand.mdto.xml"


def identification_source(content: ExportContent) -> str:
    """`identificatieBron` of every identifier Balie hands out for this archiefvormer."""
    return f"Digitale Balie {content.archiefvormer}"


def conversation_name(content: ExportContent) -> str:
    """`naam` of the conversation: service and Dutch date."""
    return f"Videogesprek {content.service_label}, {dutch_date(content.appointment_start)}"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _begrip(parent: ET.Element, tag: str, label: str, lijst: str, code: str = "") -> None:
    element = _sub(parent, tag)
    _sub(element, "begripLabel", label)
    if code:
        _sub(element, "begripCode", code)
    _sub(_sub(element, "begripBegrippenlijst"), "verwijzingNaam", lijst)


def _verwijzing(parent: ET.Element, tag: str, name: str, kenmerk: str, bron: str) -> None:
    element = _sub(parent, tag)
    _sub(element, "verwijzingNaam", name)
    ident = _sub(element, "verwijzingIdentificatie")
    _sub(ident, "identificatieKenmerk", kenmerk)
    _sub(ident, "identificatieBron", bron)


def _document(kind: str) -> tuple[ET.Element, ET.Element]:
    # The namespace goes in as plain attributes and the children stay unprefixed, so they
    # land in the default namespace without ElementTree's global register_namespace().
    root = ET.Element(
        "MDTO",
        {"xmlns": MDTO_NAMESPACE, "xmlns:xsi": _XSI, "xsi:schemaLocation": _SCHEMA_LOCATION},
    )
    return root, _sub(root, kind)


def _serialise(root: ET.Element) -> bytes:
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def informatieobject_xml(content: ExportContent, files: Sequence[MdtoFile]) -> bytes:
    """The conversation as one MDTO informatieobject, in the XSD's element order."""
    source = identification_source(content)
    root, obj = _document("informatieobject")
    ident = _sub(obj, "identificatie")
    _sub(ident, "identificatieKenmerk", str(content.dossier_id))
    _sub(ident, "identificatieBron", source)
    _sub(obj, "naam", conversation_name(content))
    _begrip(obj, "aggregatieniveau", "Archiefstuk", "Begrippenlijst Aggregatieniveaus MDTO")
    _sub(
        obj,
        "omschrijving",
        f"Videogesprek van {content.department_name} met een inwoner over "
        f"{content.service_label}: chat, gedeelde documenten en betalingen.",
    )
    _sub(obj, "taal", "nl")
    permanent = content.bewaartermijn == "permanent"
    _begrip(
        obj,
        "waardering",
        "Blijvend te bewaren" if permanent else "Tijdelijk te bewaren",
        "Begrippenlijst Waarderingen MDTO",
        code="B" if permanent else "V",
    )
    if content.bewaartermijn and not permanent:
        _sub(_sub(obj, "bewaartermijn"), "termijnLooptijd", content.bewaartermijn)
    if content.informatiecategorie:
        _begrip(
            obj,
            "informatiecategorie",
            content.informatiecategorie,
            SELECTIELIJST,
            code=content.selectielijst,
        )
    for file in files:
        _verwijzing(obj, "heeftRepresentatie", file.name, file.identifier, source)
    _sub(_sub(obj, "archiefvormer"), "verwijzingNaam", content.archiefvormer)
    _sub(_sub(obj, "activiteit"), "verwijzingNaam", content.service_label)
    restriction = _sub(obj, "beperkingGebruik")
    _begrip(
        restriction, "beperkingGebruikType", "Persoonsgegevens", "AVG (Verordening (EU) 2016/679)"
    )
    bsn = " en het BSN" if content.bsn else ""
    _sub(
        restriction,
        "beperkingGebruikNadereBeschrijving",
        f"Bevat persoonsgegevens van de inwoner{bsn}; alleen voor medewerkers van "
        f"{content.archiefvormer} die het nodig hebben voor de afhandeling.",
    )
    return _serialise(root)


def bestand_xml(content: ExportContent, file: MdtoFile) -> bytes:
    """One MDTO bestand for `file`, a representation of the conversation."""
    source = identification_source(content)
    root, obj = _document("bestand")
    ident = _sub(obj, "identificatie")
    _sub(ident, "identificatieKenmerk", file.identifier)
    _sub(ident, "identificatieBron", source)
    _sub(obj, "naam", file.name)
    _sub(obj, "omvang", str(file.size))
    media_type = file.media_type.split(";")[0].strip()
    _begrip(
        obj,
        "bestandsformaat",
        _MEDIA_LABELS.get(media_type, media_type),
        "IANA Media Types",
        code=media_type,
    )
    checksum = _sub(obj, "checksum")
    _begrip(checksum, "checksumAlgoritme", "SHA256", "Begrippenlijst ChecksumAlgoritme MDTO")
    _sub(checksum, "checksumWaarde", file.sha256)
    # The moment of export, not the wall clock: a rebuilt package must be byte-identical.
    _sub(checksum, "checksumDatum", content.exported_at.isoformat(timespec="seconds"))
    _verwijzing(
        obj, "isRepresentatieVan", conversation_name(content), str(content.dossier_id), source
    )
    return _serialise(root)


# --- the structure the XSD prescribes ---------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Per complex type of the XSD: (required children, all children in the XSD's sequence order).
_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "informatieobject": (
        _names("identificatie naam waardering archiefvormer beperkingGebruik"),
        _names(
            """identificatie naam aggregatieniveau classificatie trefwoord omschrijving
            raadpleeglocatie dekkingInTijd dekkingInRuimte taal event waardering bewaartermijn
            informatiecategorie isOnderdeelVan bevatOnderdeel heeftRepresentatie
            aanvullendeMetagegevens gerelateerdInformatieobject archiefvormer betrokkene
            activiteit beperkingGebruik"""
        ),
    ),
    "bestand": (
        _names("identificatie naam omvang bestandsformaat checksum isRepresentatieVan"),
        _names("identificatie naam omvang bestandsformaat checksum URLBestand isRepresentatieVan"),
    ),
    "identificatie": (_names("identificatieKenmerk identificatieBron"),) * 2,
    "verwijzing": (_names("verwijzingNaam"), _names("verwijzingNaam verwijzingIdentificatie")),
    "begrip": (
        _names("begripLabel begripBegrippenlijst"),
        _names("begripLabel begripCode begripBegrippenlijst"),
    ),
    "checksum": (_names("checksumAlgoritme checksumWaarde checksumDatum"),) * 2,
    "beperkingGebruik": (
        _names("beperkingGebruikType"),
        _names(
            """beperkingGebruikType beperkingGebruikNadereBeschrijving
            beperkingGebruikDocumentatie beperkingGebruikTermijn"""
        ),
    ),
    "termijn": (
        (),
        _names(
            "termijnTriggerStartLooptijd termijnStartdatumLooptijd termijnLooptijd termijnEinddatum"
        ),
    ),
}
# The type of each element that has children; the others hold a value.
_ELEMENT_TYPES = {
    "identificatie": "identificatie",
    "verwijzingIdentificatie": "identificatie",
    "checksum": "checksum",
    "beperkingGebruik": "beperkingGebruik",
    "bewaartermijn": "termijn",
    "beperkingGebruikTermijn": "termijn",
    **dict.fromkeys(
        _names(
            """aggregatieniveau classificatie waardering informatiecategorie bestandsformaat
            checksumAlgoritme beperkingGebruikType termijnTriggerStartLooptijd"""
        ),
        "begrip",
    ),
    **dict.fromkeys(
        _names(
            """begripBegrippenlijst dekkingInRuimte isOnderdeelVan bevatOnderdeel
            heeftRepresentatie aanvullendeMetagegevens archiefvormer activiteit
            isRepresentatieVan beperkingGebruikDocumentatie"""
        ),
        "verwijzing",
    ),
}
_SINGLE = frozenset(
    _names(
        """naam aggregatieniveau waardering bewaartermijn informatiecategorie activiteit omvang
        bestandsformaat URLBestand isRepresentatieVan"""
    )
)
_NON_EMPTY = frozenset(
    _names("naam identificatieKenmerk identificatieBron verwijzingNaam begripLabel checksumWaarde")
)
_DURATION = re.compile(r"-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")


def _local(tag: str) -> str:
    prefix = "{" + MDTO_NAMESPACE + "}"
    return tag[len(prefix) :] if tag.startswith(prefix) else tag


def check_object(root: ET.Element, kind: str) -> list[str]:
    """Problems of an MDTO document that should hold one `kind` ("informatieobject" or
    "bestand"), each naming the element path (`missing element bestand/checksum`). Empty when
    every element the XSD requires is there, non-empty, and in the XSD's order."""
    if root.tag != "{" + MDTO_NAMESPACE + "}MDTO":
        return [f"the root element is {root.tag}, not MDTO in namespace {MDTO_NAMESPACE}"]
    children = list(root)
    if len(children) != 1 or _local(children[0].tag) != kind:
        found = ", ".join(_local(c.tag) for c in children) or "nothing"
        return [f"MDTO must hold exactly one {kind}; it holds {found}"]
    problems: list[str] = []
    _check(children[0], kind, kind, problems)
    return problems


def _check(element: ET.Element, type_name: str, path: str, problems: list[str]) -> None:
    required, sequence = _TYPES[type_name]
    seen: list[str] = []
    position = -1
    for child in element:
        name = _local(child.tag)
        child_path = f"{path}/{name}"
        if name not in sequence:
            problems.append(f"unexpected element {child_path}")
            continue
        index = sequence.index(name)
        if index < position:
            problems.append(
                f"element {child_path} is out of order (MDTO wants: {', '.join(sequence)})"
            )
        if name in _SINGLE and name in seen:
            problems.append(f"element {child_path} occurs more than once")
        position = max(position, index)
        seen.append(name)
        if name in _ELEMENT_TYPES:
            _check(child, _ELEMENT_TYPES[name], child_path, problems)
        else:
            _check_value(child, name, child_path, problems)
    problems.extend(f"missing element {path}/{name}" for name in required if name not in seen)


def _check_value(element: ET.Element, name: str, path: str, problems: list[str]) -> None:
    text = (element.text or "").strip()
    if name in _NON_EMPTY and not text:
        problems.append(f"element {path} is empty")
    elif name == "omvang" and not text.isdigit():
        problems.append(f"element {path} is not a byte count: {text!r}")
    elif name == "checksumDatum" and not _is_datetime(text):
        problems.append(f"element {path} is not a date and time: {text!r}")
    elif name in ("termijnLooptijd",) and not _DURATION.fullmatch(text):
        problems.append(f"element {path} is not an ISO 8601 duration: {text!r}")


def _is_datetime(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text
