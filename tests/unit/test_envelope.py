"""Envelope encryption: wrapped data keys bound to their KEK id and dossier; HKDF subkeys."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dossier.crypto.envelope import (
    DEK_BYTES,
    derive_subkey,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from dossier.errors import IntegrityError

KEK = bytes(range(32))
OTHER_KEK = bytes(range(1, 33))
KEK_ID = "kek-202401"
DOSSIER = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_DOSSIER = uuid.UUID("22222222-2222-4222-8222-222222222222")


@pytest.fixture
def dek() -> bytes:
    return new_data_key()


@pytest.fixture
def wrapped(dek: bytes) -> bytes:
    return wrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, dek=dek)


def test_new_data_keys_are_random_256_bit_keys() -> None:
    keys = {new_data_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(key) == DEK_BYTES == 32 for key in keys)


def test_wrap_unwrap_round_trip(dek: bytes, wrapped: bytes) -> None:
    assert dek not in wrapped
    assert unwrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, wrapped=wrapped) == dek


def test_wrapping_twice_gives_different_blobs_that_both_unwrap(dek: bytes) -> None:
    first = wrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, dek=dek)
    second = wrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, dek=dek)
    assert first != second
    for wrapped in (first, second):
        assert unwrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, wrapped=wrapped) == dek


def test_wrapped_key_moved_to_another_dossier_does_not_unwrap(wrapped: bytes) -> None:
    with pytest.raises(IntegrityError):
        unwrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=OTHER_DOSSIER, wrapped=wrapped)


@pytest.mark.parametrize("kek_id", ["kek-202402", "kek-202301", "kek-20240", ""])
def test_wrapped_key_presented_with_another_kek_id_does_not_unwrap(
    wrapped: bytes, kek_id: str
) -> None:
    with pytest.raises(IntegrityError):
        unwrap_data_key(kek=KEK, kek_id=kek_id, dossier_id=DOSSIER, wrapped=wrapped)


def test_wrong_kek_does_not_unwrap(wrapped: bytes) -> None:
    with pytest.raises(IntegrityError):
        unwrap_data_key(kek=OTHER_KEK, kek_id=KEK_ID, dossier_id=DOSSIER, wrapped=wrapped)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data())
def test_any_damage_to_the_wrapped_key_is_detected(data: st.DataObject) -> None:
    wrapped = wrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, dek=bytes(32))
    if data.draw(st.booleans(), label="truncate"):
        damaged = wrapped[: data.draw(st.integers(0, len(wrapped) - 1), label="kept")]
    else:
        buffer = bytearray(wrapped)
        buffer[data.draw(st.integers(0, len(wrapped) - 1), label="position")] ^= data.draw(
            st.integers(1, 255), label="mask"
        )
        damaged = bytes(buffer)
    with pytest.raises(IntegrityError):
        unwrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, wrapped=damaged)


def test_wrapped_key_of_the_wrong_length_is_rejected() -> None:
    wrapped = wrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, dek=bytes(16))
    with pytest.raises(IntegrityError):
        unwrap_data_key(kek=KEK, kek_id=KEK_ID, dossier_id=DOSSIER, wrapped=wrapped)


# --- derive_subkey ----------------------------------------------------------------------------


def test_derive_subkey_is_deterministic_and_256_bit(dek: bytes) -> None:
    first = derive_subkey(dek, purpose="record", context=DOSSIER.bytes, salt=b"s" * 16)
    second = derive_subkey(dek, purpose="record", context=DOSSIER.bytes, salt=b"s" * 16)
    assert first == second
    assert len(first) == 32
    assert first != dek


def test_derive_subkey_differs_per_purpose(dek: bytes) -> None:
    keys = {derive_subkey(dek, purpose=p, context=DOSSIER.bytes) for p in ("record", "document")}
    assert len(keys) == 2


def test_derive_subkey_differs_per_context(dek: bytes) -> None:
    keys = {
        derive_subkey(dek, purpose="document", context=c)
        for c in (b"", DOSSIER.bytes, OTHER_DOSSIER.bytes)
    }
    assert len(keys) == 3


def test_derive_subkey_differs_per_salt(dek: bytes) -> None:
    keys = {
        derive_subkey(dek, purpose="document", context=DOSSIER.bytes, salt=s)
        for s in (None, b"a" * 16, b"b" * 16)
    }
    assert len(keys) == 3


def test_derive_subkey_differs_per_dek(dek: bytes) -> None:
    other = new_data_key()
    assert derive_subkey(dek, purpose="record") != derive_subkey(other, purpose="record")
