"""MDTO metadata in the package: well-formed, every required element, in the XSD's order.

The official XSD (MDTO-XML 1.0.1, github.com/NationaalArchief/MDTO-XSD, schema/v1.0.1) carries
no licence, so it is not in this repository. Point BALIE_MDTO_XSD at a downloaded copy to
validate against it as well; without it the structural tests below still check every element
the XSD requires, independently of the code under test.
"""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dossier.export.errors import PackageInvalid
from dossier.export.mdto import MDTO_NAMESPACE, check_object
from dossier.export.verify import verify_package

from export_sample import (
    build_package,
    read_members,
    replace,
    resign,
    sample_content,
    write_members,
)

NS = "{" + MDTO_NAMESPACE + "}"
CONTENT = (
    "documents/1-Geboorteakte_Zoe.pdf",
    "documents/2-foto_paspoort_1.jpg",
    "payments.csv",
    "transcript.html",
    "transcript.pdf",
)
PDF = "documents/1-Geboorteakte_Zoe.pdf"
# Written down from the XSD by hand, not taken from the code under test.
INFORMATIEOBJECT_REQUIRED = (
    "identificatie/identificatieKenmerk",
    "identificatie/identificatieBron",
    "naam",
    "waardering/begripLabel",
    "waardering/begripBegrippenlijst/verwijzingNaam",
    "archiefvormer/verwijzingNaam",
    "beperkingGebruik/beperkingGebruikType/begripLabel",
    "beperkingGebruik/beperkingGebruikType/begripBegrippenlijst/verwijzingNaam",
)
BESTAND_REQUIRED = (
    "identificatie/identificatieKenmerk",
    "identificatie/identificatieBron",
    "naam",
    "omvang",
    "bestandsformaat/begripLabel",
    "bestandsformaat/begripBegrippenlijst/verwijzingNaam",
    "checksum/checksumAlgoritme/begripLabel",
    "checksum/checksumAlgoritme/begripBegrippenlijst/verwijzingNaam",
    "checksum/checksumWaarde",
    "checksum/checksumDatum",
    "isRepresentatieVan/verwijzingNaam",
)
INFORMATIEOBJECT_ORDER = [
    "identificatie", "naam", "aggregatieniveau", "classificatie", "trefwoord", "omschrijving",
    "raadpleeglocatie", "dekkingInTijd", "dekkingInRuimte", "taal", "event", "waardering",
    "bewaartermijn", "informatiecategorie", "isOnderdeelVan", "bevatOnderdeel",
    "heeftRepresentatie", "aanvullendeMetagegevens", "gerelateerdInformatieobject",
    "archiefvormer", "betrokkene", "activiteit", "beperkingGebruik",
]  # fmt: skip
BESTAND_ORDER = [
    "identificatie", "naam", "omvang", "bestandsformaat", "checksum", "URLBestand",
    "isRepresentatieVan",
]  # fmt: skip


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def built(tmp_path_factory, key) -> dict[str, bytes]:
    return read_members(build_package(tmp_path_factory.mktemp("mdto"), key, sample_content()))


@pytest.fixture
def members(built) -> dict[str, bytes]:
    return dict(built)


def parse(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def find(root: ET.Element, path: str) -> ET.Element | None:
    return root.find("/".join(NS + part for part in path.split("/")))


def sidecars(members: dict[str, bytes]) -> dict[str, ET.Element]:
    return {p: parse(members[f"{p}.bestand.mdto.xml"]) for p in CONTENT}


def test_every_mdto_file_is_well_formed_and_holds_one_object(members):
    names = sorted(n for n in members if n.endswith(".mdto.xml"))
    assert names == sorted(["gespreksessie.mdto.xml", *(f"{p}.bestand.mdto.xml" for p in CONTENT)])
    for name in names:
        root = parse(members[name])
        assert root.tag == NS + "MDTO"
        (child,) = list(root)
        assert child.tag == NS + (
            "informatieobject" if name == "gespreksessie.mdto.xml" else "bestand"
        )


@pytest.mark.parametrize("path", INFORMATIEOBJECT_REQUIRED)
def test_informatieobject_has_required_element(members, path):
    element = find(parse(members["gespreksessie.mdto.xml"]), f"informatieobject/{path}")
    assert element is not None
    assert (element.text or "").strip()


@pytest.mark.parametrize("path", BESTAND_REQUIRED)
def test_every_bestand_has_required_element(members, path):
    for file, root in sidecars(members).items():
        element = find(root, f"bestand/{path}")
        assert element is not None, file
        assert (element.text or "").strip(), file


def test_elements_follow_the_xsd_sequence(members):
    def order(element: ET.Element, sequence: list[str]) -> list[int]:
        return [sequence.index(child.tag.removeprefix(NS)) for child in element]

    informatieobject = order(parse(members["gespreksessie.mdto.xml"])[0], INFORMATIEOBJECT_ORDER)
    assert informatieobject == sorted(informatieobject)
    for root in sidecars(members).values():
        bestand = order(root[0], BESTAND_ORDER)
        assert bestand == sorted(bestand)


def test_each_bestand_agrees_with_its_file(members):
    content = sample_content()
    for file, root in sidecars(members).items():
        assert find(root, "bestand/omvang").text == str(len(members[file]))
        assert (
            find(root, "bestand/checksum/checksumWaarde").text
            == hashlib.sha256(members[file]).hexdigest()
        )
        assert find(root, "bestand/checksum/checksumAlgoritme/begripLabel").text == "SHA256"
        assert find(root, "bestand/checksum/checksumDatum").text == "2026-03-02T10:00:00+00:00"
        reference = "bestand/isRepresentatieVan/verwijzingIdentificatie/identificatieKenmerk"
        assert find(root, reference).text == str(content.dossier_id)
    pdf = sidecars(members)[PDF]
    assert find(pdf, "bestand/bestandsformaat/begripCode").text == "application/pdf"
    assert find(pdf, "bestand/naam").text == "1-Geboorteakte_Zoe.pdf"


def test_the_policy_gives_retention_and_category(members):
    obj = parse(members["gespreksessie.mdto.xml"])[0]
    assert find(obj, "waardering/begripCode").text == "V"
    assert find(obj, "bewaartermijn/termijnLooptijd").text == "P1Y6M"
    assert find(obj, "informatiecategorie/begripCode").text == "7.1.21"
    assert find(obj, "archiefvormer/verwijzingNaam").text == "Gemeente Voorbeeldstad"
    assert len(obj.findall(NS + "heeftRepresentatie")) == len(CONTENT)


def test_permanent_records_are_valued_b_without_a_period(tmp_path, key):
    content = replace(sample_content(), bewaartermijn="permanent", informatiecategorie=None)
    root = parse(read_members(build_package(tmp_path, key, content))["gespreksessie.mdto.xml"])
    obj = root[0]
    assert find(obj, "waardering/begripLabel").text == "Blijvend te bewaren"
    assert find(obj, "waardering/begripCode").text == "B"
    assert find(obj, "bewaartermijn") is None
    assert find(obj, "informatiecategorie") is None
    assert check_object(root, "informatieobject") == []


@pytest.mark.parametrize("element", BESTAND_ORDER[:5] + BESTAND_ORDER[6:])
def test_check_object_names_a_missing_bestand_element(members, element):
    root = parse(members[f"{PDF}.bestand.mdto.xml"])
    root[0].remove(find(root, f"bestand/{element}"))
    assert check_object(root, "bestand") == [f"missing element bestand/{element}"]


@pytest.mark.parametrize(
    "element", ["identificatie", "naam", "waardering", "archiefvormer", "beperkingGebruik"]
)
def test_check_object_names_a_missing_informatieobject_element(members, element):
    root = parse(members["gespreksessie.mdto.xml"])
    root[0].remove(find(root, f"informatieobject/{element}"))
    assert check_object(root, "informatieobject") == [f"missing element informatieobject/{element}"]


def test_check_object_names_nested_and_order_problems(members):
    root = parse(members[f"{PDF}.bestand.mdto.xml"])
    checksum = find(root, "bestand/checksum")
    checksum.remove(find(root, "bestand/checksum/checksumDatum"))
    obj = root[0]
    naam = find(root, "bestand/naam")
    obj.remove(naam)
    obj.insert(0, naam)
    assert check_object(root, "bestand") == [
        "element bestand/identificatie is out of order (MDTO wants: "
        "identificatie, naam, omvang, bestandsformaat, checksum, URLBestand, isRepresentatieVan)",
        "missing element bestand/checksum/checksumDatum",
    ]
    assert check_object(root, "informatieobject") == [
        "MDTO must hold exactly one informatieobject; it holds bestand"
    ]


def rewritten(tmp_path: Path, members: dict[str, bytes], key) -> list[str]:
    resign(members, key)
    write_members(tmp_path / "p.zip", members)
    with pytest.raises(PackageInvalid) as caught:
        verify_package(tmp_path / "p.zip", key.public_key())
    return caught.value.problems


def test_verify_names_the_sidecar_and_the_file(tmp_path, members, key):
    name = f"{PDF}.bestand.mdto.xml"
    root = parse(members[name])
    root[0].remove(find(root, "bestand/checksum"))
    members[name] = ET.tostring(root, encoding="utf-8")
    assert rewritten(tmp_path, members, key) == [
        f"{name}: missing element bestand/checksum for {PDF}"
    ]


def test_verify_finds_a_checksum_that_disagrees_with_the_manifest(tmp_path, members, key):
    name = f"{PDF}.bestand.mdto.xml"
    root = parse(members[name])
    find(root, "bestand/checksum/checksumWaarde").text = "0" * 64
    members[name] = ET.tostring(root, encoding="utf-8")
    (problem,) = rewritten(tmp_path, members, key)
    assert problem.startswith(f"{name}: checksum '0000")
    assert problem.endswith(f"for {PDF}")


def test_verify_finds_a_missing_sidecar(tmp_path, members, key):
    name = f"{PDF}.bestand.mdto.xml"
    del members[name]
    resign(
        members, key, edit=lambda m: m.update(files=[f for f in m["files"] if f["path"] != name])
    )
    write_members(tmp_path / "p.zip", members)
    with pytest.raises(PackageInvalid) as caught:
        verify_package(tmp_path / "p.zip", key.public_key())
    assert caught.value.problems == [
        f"{name}: missing; every file needs its MDTO bestand (for {PDF})"
    ]


def test_verify_refuses_a_doctype(tmp_path, members, key):
    name = "gespreksessie.mdto.xml"
    members[name] = (
        b'<?xml version="1.0"?><!DOCTYPE MDTO [<!ENTITY a "aaaa">]>'
        + members[name].split(b"?>", 1)[1]
    )
    assert rewritten(tmp_path, members, key) == [
        f"{name}: has a DOCTYPE, which MDTO metadata never has"
    ]


def test_valid_against_the_official_xsd(members, tmp_path, key):
    xsd = os.environ.get("BALIE_MDTO_XSD")
    if not xsd or not Path(xsd).is_file():
        pytest.skip(
            "official MDTO XSD not available: set BALIE_MDTO_XSD to MDTO-XML1.0.1.xsd from "
            "github.com/NationaalArchief/MDTO-XSD (schema/v1.0.1); it is not redistributed here"
        )
    etree = pytest.importorskip("lxml.etree", reason="lxml validates against XSD")
    schema = etree.XMLSchema(etree.parse(xsd))
    empty = replace(
        sample_content(documents=()), chat=(), payments=(), bewaartermijn="permanent", bsn=None
    )
    for package in (members, read_members(build_package(tmp_path, key, empty))):
        for name in (n for n in package if n.endswith(".mdto.xml")):
            document = etree.fromstring(package[name])
            assert schema.validate(document), f"{name}: {schema.error_log}"
