"""Exactly-once admission by aggregate id."""

import numpy as np

from backend.store.gaps import IdLedger


def ids(*values):
    return np.array(values, dtype=np.int64)


def test_consecutive_ids_are_admitted_on_the_fast_path():
    led = IdLedger()
    r = led.admit(ids(5, 6, 7))
    assert r.all_accepted and r.new_gaps == [] and led.max_id == 7
    assert led.admit(ids(8)).all_accepted


def test_jump_opens_a_gap_and_backfill_closes_it_piecewise():
    led = IdLedger(max_id=10)
    r = led.admit(ids(11, 15, 16))
    assert r.accepted.tolist() == [True, True, True] and r.new_gaps == [(12, 14)]
    assert led.gaps == [(12, 14)] and led.missing_ids() == 3
    r = led.admit(ids(13))  # the middle first: the gap splits
    assert r.accepted.tolist() == [True] and led.gaps == [(12, 12), (14, 14)]
    r = led.admit(ids(12, 13, 14, 15, 17))  # a backfill page overlapping what we hold
    assert r.accepted.tolist() == [True, False, True, False, True]
    assert r.duplicates == 2 and led.gaps == [] and led.max_id == 17


def test_duplicates_and_old_ids_are_rejected():
    led = IdLedger()
    led.admit(ids(1, 2, 3))
    r = led.admit(ids(3, 2, 4, 4))
    assert r.accepted.tolist() == [False, False, True, False] and r.duplicates == 3


def test_give_up_closes_only_the_named_range():
    led = IdLedger(max_id=100, gaps=[(10, 20), (30, 40)])
    assert led.give_up(15, 35) == 6 + 6
    assert led.gaps == [(10, 14), (36, 40)]
    assert not led.admit(ids(16)).accepted[0]  # given up: a late copy is not admitted
