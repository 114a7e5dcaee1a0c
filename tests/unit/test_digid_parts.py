"""The small parts of DigiD support: levels of assurance, key pairs on disk, configuration
checks, artifacts, SAML instants and SP metadata."""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from identity.digid.certs import KeyPair, ensure_key_pair, generate_key_pair
from identity.digid.config import DigidSpConfig
from identity.digid.errors import (
    DigidArtifactInvalid,
    DigidConfigError,
    DigidError,
    DigidMalformedMessage,
    UnknownLevelOfAssurance,
)
from identity.digid.loa import LevelOfAssurance
from identity.digid.saml import format_instant, make_artifact, parse_artifact, parse_instant
from identity.digid.sp import DigidServiceProvider
from identity.errors import IdentityError

from digid_helpers import ACS_URL, IDP_ENTITY, SP_ENTITY, START, Keys, make_keys, make_world

PREFIX = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
MD = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#"}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@pytest.mark.parametrize(
    ("level", "suffix"),
    [
        (LevelOfAssurance.BASIS, "PasswordProtectedTransport"),
        (LevelOfAssurance.MIDDEN, "MobileTwoFactorContract"),
        (LevelOfAssurance.SUBSTANTIEEL, "Smartcard"),
        (LevelOfAssurance.HOOG, "SmartcardPKI"),
    ],
)
def test_level_maps_to_class_ref_and_back(level: LevelOfAssurance, suffix: str) -> None:
    assert level.class_ref == PREFIX + suffix
    assert LevelOfAssurance.from_class_ref(PREFIX + suffix) is level
    assert LevelOfAssurance.parse(f" {level.value.upper()} ") is level


def test_levels_are_ordered_by_strength() -> None:
    basis, midden, substantieel, hoog = LevelOfAssurance

    assert basis < midden < substantieel < hoog
    assert sorted([hoog, basis, substantieel, midden]) == [basis, midden, substantieel, hoog]
    assert hoog.satisfies(substantieel)
    assert substantieel.satisfies(substantieel)
    assert not midden.satisfies(substantieel)
    assert max(LevelOfAssurance) is hoog


@pytest.mark.parametrize("name", ["laag", "", "substantial"])
def test_unknown_level_name_is_named_in_error(name: str) -> None:
    with pytest.raises(UnknownLevelOfAssurance, match=repr(name)) as caught:
        LevelOfAssurance.parse(name)

    assert isinstance(caught.value, IdentityError)
    assert caught.value.code == "digid_unknown_loa"


def test_unknown_class_ref_is_named_in_error() -> None:
    bad = PREFIX + "Kerberos"

    with pytest.raises(UnknownLevelOfAssurance, match="Kerberos"):
        LevelOfAssurance.from_class_ref(bad)


def test_key_pair_generated_once_with_private_files(tmp_path: Path) -> None:
    directory = tmp_path / "var" / "digid"

    first = ensure_key_pair(directory, name="sp", common_name="sp", now=START, key_size=2048)
    again = ensure_key_pair(directory, name="sp", common_name="sp", now=START, key_size=2048)

    assert again == first
    for path in (directory / "sp.key.pem", directory / "sp.cert.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == ["sp.cert.pem", "sp.key.pem"]
    assert "PRIVATE KEY" not in repr(first)


def test_half_written_key_pair_is_replaced(tmp_path: Path) -> None:
    first = ensure_key_pair(tmp_path, name="idp", common_name="idp", now=START, key_size=2048)
    (tmp_path / "idp.key.pem").unlink()

    second = ensure_key_pair(tmp_path, name="idp", common_name="idp", now=START, key_size=2048)

    assert second.cert_pem != first.cert_pem


def test_mismatched_key_pair_on_disk_is_refused(tmp_path: Path, keys: Keys) -> None:
    (tmp_path / "sp.key.pem").write_text(keys.sp.key_pem)
    (tmp_path / "sp.cert.pem").write_text(keys.idp.cert_pem)

    with pytest.raises(DigidConfigError, match="does not belong"):
        ensure_key_pair(tmp_path, name="sp", common_name="sp", now=START)


def test_small_rsa_key_is_refused() -> None:
    with pytest.raises(DigidConfigError, match="2048"):
        generate_key_pair(common_name="x", now=START, valid_for=dt.timedelta(days=1), key_size=1024)


def _config(keys: Keys, **changes: object) -> DigidSpConfig:
    base = make_world(keys).sp.config
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("acs_url", "ftp://balie.example/acs", "acs_url"),
        ("acs_url", "http://balie.example/acs", "https outside loopback"),
        ("idp_sso_url", "/relative", "idp_sso_url"),
        ("entity_id", "", "entity_id"),
        ("idp_entity_id", "has space", "idp_entity_id"),
        ("idp_cert_pem", "not a certificate", "certificate"),
        ("sp_cert_pem", "", "certificate"),
        ("allowed_clock_skew", dt.timedelta(minutes=10), "allowed_clock_skew"),
    ],
)
def test_config_names_the_bad_field(keys: Keys, field: str, value: object, message: str) -> None:
    with pytest.raises(DigidConfigError, match=message):
        _config(keys, **{field: value})


def test_config_accepts_http_on_loopback_and_hides_key(keys: Keys) -> None:
    config = _config(keys, acs_url="http://127.0.0.1:8080/digid/acs")

    assert config.acs_url.startswith("http://127.0.0.1")
    assert "PRIVATE KEY" not in repr(config)


def test_config_refuses_sp_cert_of_another_key(keys: Keys) -> None:
    with pytest.raises(DigidConfigError, match="does not belong"):
        _config(keys, sp_cert_pem=keys.other.cert_pem)


@given(handle=st.binary(min_size=20, max_size=20), index=st.integers(0, 0xFFFF))
def test_artifact_round_trip(handle: bytes, index: int) -> None:
    artifact = make_artifact(idp_entity_id=IDP_ENTITY, endpoint_index=index, handle=handle)

    assert len(artifact) == 60
    assert parse_artifact(artifact, idp_entity_id=IDP_ENTITY) == handle
    with pytest.raises(DigidArtifactInvalid):
        parse_artifact(artifact, idp_entity_id="https://someone-else.example")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T09:00:00Z", dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)),
        ("2026-01-05T09:00:00.25Z", dt.datetime(2026, 1, 5, 9, 0, 0, 250000, tzinfo=dt.UTC)),
    ],
)
def test_instants_parse_as_utc(text: str, expected: dt.datetime) -> None:
    assert parse_instant(text, what="x") == expected
    assert format_instant(expected.replace(microsecond=0)) == text.replace(".25", "")


@pytest.mark.parametrize("text", ["2026-01-05T09:00:00", "2026-01-05T09:00:00+01:00", "", None])
def test_instants_need_utc_designator(text: str | None) -> None:
    with pytest.raises(DigidMalformedMessage):
        parse_instant(text, what="NotOnOrAfter")


def test_sp_metadata_is_signed_and_names_artifact_acs(keys: Keys) -> None:
    world = make_world(keys)

    root = etree.fromstring(world.sp.metadata().encode())

    assert root.get("entityID") == SP_ENTITY
    assert root.get("validUntil") == "2026-01-12T09:00:00Z"
    descriptor = root.find("md:SPSSODescriptor", MD)
    assert descriptor.get("AuthnRequestsSigned") == "true"
    assert descriptor.get("WantAssertionsSigned") == "true"
    acs = descriptor.find("md:AssertionConsumerService", MD)
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
    assert acs.get("Location") == ACS_URL
    assert root.find("ds:Signature", MD) is not None
    assert "PRIVATE" not in world.sp.metadata()


def test_every_digid_error_has_its_own_stable_code() -> None:
    import identity.digid.errors as errors

    classes = [getattr(errors, name) for name in errors.__all__]
    codes = [cls.code for cls in classes]

    assert all(issubclass(cls, DigidError) for cls in classes)
    assert len(set(codes)) == len(codes)
    assert all(code.startswith("digid_") for code in codes)


def test_service_provider_refuses_naive_now(keys: Keys) -> None:
    sp: DigidServiceProvider = make_world(keys).sp

    with pytest.raises(ValueError, match="aware"):
        sp.validate_response("<x/>", request_id_lookup=lambda _: None, now=dt.datetime(2026, 1, 5))


def test_key_pair_refuses_garbage() -> None:
    with pytest.raises(DigidConfigError):
        KeyPair(key_pem="nope", cert_pem="nope")
