"""RecordCipher: small records sealed to their dossier, row and kind."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dossier.crypto.records import RecordCipher
from dossier.errors import IntegrityError

DEK = bytes(range(32))
OTHER_DEK = bytes(range(64, 96))
DOSSIER = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_DOSSIER = uuid.UUID("22222222-2222-4222-8222-222222222222")
RECORD = uuid.UUID("55555555-5555-4555-8555-555555555555")
OTHER_RECORD = uuid.UUID("66666666-6666-4666-8666-666666666666")
MESSAGE = b"Goedemorgen, ik wil graag mijn paspoort verlengen."


@pytest.fixture
def cipher() -> RecordCipher:
    return RecordCipher(DEK, DOSSIER)


@pytest.fixture
def sealed(cipher: RecordCipher) -> bytes:
    return cipher.seal(record_id=RECORD, kind="chat", plaintext=MESSAGE)


@settings(max_examples=100, deadline=None, database=None)
@given(
    plaintext=st.binary(max_size=2000),
    kind=st.text(min_size=1, max_size=30),
)
def test_round_trip(plaintext: bytes, kind: str) -> None:
    cipher = RecordCipher(DEK, DOSSIER)
    sealed = cipher.seal(record_id=RECORD, kind=kind, plaintext=plaintext)
    assert cipher.open(record_id=RECORD, kind=kind, sealed=sealed) == plaintext


def test_another_cipher_for_the_same_dossier_opens_the_record(sealed: bytes) -> None:
    # What a later request does: build a new cipher from the same unwrapped DEK.
    assert RecordCipher(DEK, DOSSIER).open(record_id=RECORD, kind="chat", sealed=sealed) == MESSAGE


def test_sealed_record_hides_plaintext_and_differs_each_time(cipher: RecordCipher) -> None:
    first = cipher.seal(record_id=RECORD, kind="chat", plaintext=MESSAGE)
    second = cipher.seal(record_id=RECORD, kind="chat", plaintext=MESSAGE)
    assert first != second
    assert b"paspoort" not in first
    assert cipher.open(record_id=RECORD, kind="chat", sealed=second) == MESSAGE


def test_record_moved_to_another_dossier_with_the_same_dek_does_not_open(sealed: bytes) -> None:
    with pytest.raises(IntegrityError):
        RecordCipher(DEK, OTHER_DOSSIER).open(record_id=RECORD, kind="chat", sealed=sealed)


def test_record_moved_to_another_dossier_with_its_own_dek_does_not_open(sealed: bytes) -> None:
    with pytest.raises(IntegrityError):
        RecordCipher(OTHER_DEK, OTHER_DOSSIER).open(record_id=RECORD, kind="chat", sealed=sealed)


def test_record_opened_with_another_dek_does_not_open(sealed: bytes) -> None:
    with pytest.raises(IntegrityError):
        RecordCipher(OTHER_DEK, DOSSIER).open(record_id=RECORD, kind="chat", sealed=sealed)


def test_record_moved_to_another_record_id_does_not_open(
    cipher: RecordCipher, sealed: bytes
) -> None:
    with pytest.raises(IntegrityError):
        cipher.open(record_id=OTHER_RECORD, kind="chat", sealed=sealed)


@pytest.mark.parametrize("kind", ["file_name", "payment_note", "Chat", "chat ", "cha", ""])
def test_record_relabelled_as_another_kind_does_not_open(
    cipher: RecordCipher, sealed: bytes, kind: str
) -> None:
    with pytest.raises(IntegrityError):
        cipher.open(record_id=RECORD, kind=kind, sealed=sealed)


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data())
def test_any_bit_flip_is_detected(data: st.DataObject) -> None:
    cipher = RecordCipher(DEK, DOSSIER)
    sealed = cipher.seal(record_id=RECORD, kind="chat", plaintext=MESSAGE)
    position = data.draw(st.integers(0, len(sealed) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(sealed)
    damaged[position] ^= 1 << bit
    with pytest.raises(IntegrityError):
        cipher.open(record_id=RECORD, kind="chat", sealed=bytes(damaged))


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data())
def test_truncated_record_is_detected(data: st.DataObject) -> None:
    cipher = RecordCipher(DEK, DOSSIER)
    sealed = cipher.seal(record_id=RECORD, kind="chat", plaintext=MESSAGE)
    keep = data.draw(st.integers(0, len(sealed) - 1), label="kept bytes")
    with pytest.raises(IntegrityError):
        cipher.open(record_id=RECORD, kind="chat", sealed=sealed[:keep])


def test_truncated_empty_record_is_detected(cipher: RecordCipher) -> None:
    sealed = cipher.seal(record_id=RECORD, kind="chat", plaintext=b"")
    assert cipher.open(record_id=RECORD, kind="chat", sealed=sealed) == b""
    for keep in range(len(sealed)):
        with pytest.raises(IntegrityError):
            cipher.open(record_id=RECORD, kind="chat", sealed=sealed[:keep])


def test_extended_record_is_detected(cipher: RecordCipher, sealed: bytes) -> None:
    with pytest.raises(IntegrityError):
        cipher.open(record_id=RECORD, kind="chat", sealed=sealed + b"\x00")


@pytest.mark.parametrize("version", [b"\x00", b"\x02", b"\xff"])
def test_wrong_version_byte_is_rejected(
    cipher: RecordCipher, sealed: bytes, version: bytes
) -> None:
    assert sealed[:1] == b"\x01"
    with pytest.raises(IntegrityError):
        cipher.open(record_id=RECORD, kind="chat", sealed=version + sealed[1:])
