"""The payment state machine: the explicit table and what it promises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dossier.payments.mollie import MOLLIE_STATUSES
from dossier.payments.states import ALLOWED, FINAL, PaymentStatus, can_move

S = PaymentStatus
# The order in which a payment can only move forward.
RANK = {S.CREATED: 0, S.OPEN: 1, S.PENDING: 2, S.PAID: 3, S.FAILED: 3, S.CANCELED: 3, S.EXPIRED: 3}


def test_the_table_covers_every_status():
    assert set(ALLOWED) == set(PaymentStatus)
    assert {S.PAID, S.FAILED, S.CANCELED, S.EXPIRED} == FINAL


def test_the_table_as_written():
    assert ALLOWED[S.CREATED] == {S.OPEN, S.PENDING, S.PAID, S.FAILED, S.CANCELED, S.EXPIRED}
    assert ALLOWED[S.OPEN] == {S.PENDING, S.PAID, S.FAILED, S.CANCELED, S.EXPIRED}
    assert ALLOWED[S.PENDING] == {S.PAID, S.FAILED, S.CANCELED, S.EXPIRED}
    for final in FINAL:
        assert ALLOWED[final] == frozenset()


def test_the_table_cannot_be_changed_at_run_time():
    with pytest.raises(TypeError):
        ALLOWED[S.PAID] = frozenset({S.OPEN})  # type: ignore[index]


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_no_status_moves_to_itself(status):
    assert not can_move(status, status)


@pytest.mark.parametrize(("current", "reported"), [(a, b) for a in S for b in S])
def test_moves_only_go_forward(current, reported):
    if can_move(current, reported):
        assert RANK[reported] > RANK[current]
    if current in FINAL:
        assert not can_move(current, reported)
    if reported is S.CREATED:
        assert not can_move(current, reported)  # only Balie creates; no provider reports it


def test_examples_from_webhooks_out_of_order():
    assert can_move(S.OPEN, S.PAID)
    assert not can_move(S.PAID, S.OPEN)  # a late "open" after "paid"
    assert not can_move(S.PENDING, S.OPEN)
    assert not can_move(S.EXPIRED, S.PAID)  # final is final; a refund is a record of its own
    assert can_move(S.CREATED, S.PAID)  # a reconcile after a crash finds it paid already


@given(st.lists(st.sampled_from(list(PaymentStatus)), max_size=30))
def test_any_sequence_of_reports_settles_and_never_leaves_a_final_status(reports):
    status = S.CREATED
    seen_final = None
    for reported in reports:
        if can_move(status, reported):
            status = reported
        if status in FINAL:
            seen_final = seen_final or status
            assert status == seen_final


def test_mollie_statuses_map_onto_ours():
    assert MOLLIE_STATUSES["authorized"] is S.PENDING
    assert set(MOLLIE_STATUSES.values()) == set(PaymentStatus) - {S.CREATED}
    for name, status in MOLLIE_STATUSES.items():
        if name != "authorized":
            assert status.value == name
