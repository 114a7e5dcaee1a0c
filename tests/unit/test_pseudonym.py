"""BSN validation (eleven-test) and keyed pseudonyms."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import InvalidBsn
from identity.pseudonym import bsn_pseudonym, is_valid_bsn, pseudonyms_match

KEY = b"k" * 32
OTHER_KEY = b"K" * 32
VALID = ["999993653", "111222333", "123456782", "999990019", "900000004"]


def _check_digit(first_eight: str) -> int | None:
    total = sum(int(d) * w for d, w in zip(first_eight, range(9, 1, -1), strict=True))
    digit = total % 11
    return digit if digit < 10 else None


@st.composite
def valid_bsns(draw: st.DrawFn) -> str:
    first_eight = draw(st.text("0123456789", min_size=8, max_size=8))
    digit = _check_digit(first_eight)
    bsn = f"{first_eight}{digit}"
    if digit is None or bsn == "000000000":
        return draw(st.sampled_from(VALID))
    return bsn


@pytest.mark.parametrize("bsn", VALID)
def test_known_valid_test_bsns_pass(bsn: str) -> None:
    assert is_valid_bsn(bsn)


@pytest.mark.parametrize(
    "bsn",
    [
        "999993654",  # wrong check digit
        "123456789",
        "111222334",
        "99999365",  # eight digits
        "9999936530",  # ten digits
        "",
        "99999365a",
        "abcdefghi",
        "000000000",  # passes the arithmetic, but is not a number anyone has
        " 99999365",
        "99999365 ",
        "999-99365",
        "+99993653",
        "\u0669\u0669\u0669\u0669\u0669\u0663\u0666\u0665\u0663",  # Arabic-Indic digits
        "\uff19\uff19\uff19\uff19\uff19\uff13\uff16\uff15\uff13",  # full-width digits
    ],
)
def test_invalid_bsns_fail(bsn: str) -> None:
    assert not is_valid_bsn(bsn)


@settings(max_examples=200, deadline=None, database=None)
@given(bsn=valid_bsns(), position=st.integers(0, 8), delta=st.integers(1, 9))
def test_changing_any_single_digit_makes_a_bsn_invalid(bsn: str, position: int, delta: int) -> None:
    assert is_valid_bsn(bsn)
    digit = (int(bsn[position]) + delta) % 10
    typo = bsn[:position] + str(digit) + bsn[position + 1 :]
    assert not is_valid_bsn(typo)


def test_pseudonym_is_deterministic_per_key() -> None:
    first = bsn_pseudonym(KEY, "999993653")
    assert bsn_pseudonym(KEY, "999993653") == first
    assert len(first) == 64
    assert all(c in "0123456789abcdef" for c in first)


def test_pseudonym_differs_per_key_and_per_bsn() -> None:
    assert bsn_pseudonym(KEY, "999993653") != bsn_pseudonym(OTHER_KEY, "999993653")
    assert bsn_pseudonym(KEY, "999993653") != bsn_pseudonym(KEY, "111222333")


def test_pseudonym_is_not_a_plain_hash() -> None:
    bsn = "999993653"
    plain = {
        hashlib.sha256(bsn.encode()).hexdigest(),
        hashlib.sha256(b"bsn:" + bsn.encode()).hexdigest(),
    }
    assert bsn_pseudonym(KEY, bsn) not in plain


@settings(max_examples=200, deadline=None, database=None)
@given(bsn=valid_bsns(), key=st.binary(min_size=16, max_size=64))
def test_pseudonym_never_contains_the_bsn(bsn: str, key: bytes) -> None:
    pseudonym = bsn_pseudonym(key, bsn)
    assert bsn not in pseudonym
    assert bsn[::-1] not in pseudonym


@pytest.mark.parametrize("bsn", ["999993654", "99999365", "000000000", "", "99999365a"])
def test_pseudonym_of_an_invalid_bsn_is_refused_without_echoing_it(bsn: str) -> None:
    with pytest.raises(InvalidBsn) as info:
        bsn_pseudonym(KEY, bsn)
    if bsn:
        assert bsn not in str(info.value)


def test_pseudonyms_match() -> None:
    a = bsn_pseudonym(KEY, "999993653")
    assert pseudonyms_match(a, bsn_pseudonym(KEY, "999993653"))
    assert not pseudonyms_match(a, bsn_pseudonym(KEY, "111222333"))
    assert not pseudonyms_match(a, bsn_pseudonym(OTHER_KEY, "999993653"))
    assert not pseudonyms_match(a, a[:-1])
    assert not pseudonyms_match(a, "")
