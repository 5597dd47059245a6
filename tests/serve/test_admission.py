"""Fairness without a server: per-session admission, background limits, the cheap-event
bucket and the play slots (serve/admission.py)."""

import threading
import time

import pytest

from dt_playground.errors import PlaygroundError
from dt_playground.serve.admission import Admission, PlaySlots


def _wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not (ok := condition()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ok


def test_a_session_runs_one_waits_one_and_is_refused_a_third_at_once():
    adm = Admission()
    release, order = threading.Event(), []

    def first():
        with adm.interactive("greedy", "play"):
            order.append("first")
            release.wait(10)

    def second():
        with adm.interactive("greedy", "play"):
            order.append("second")

    t1 = threading.Thread(target=first)
    t1.start()
    _wait_until(lambda: order == ["first"])
    t2 = threading.Thread(target=second)
    t2.start()
    _wait_until(lambda: adm.in_flight("greedy") == (2, 0))
    refused = []

    def third():
        try:
            with adm.interactive("greedy", "play"):
                refused.append("admitted")
        except PlaygroundError as exc:
            refused.append(str(exc))

    t3 = threading.Thread(target=third, daemon=True)
    t3.start()
    t3.join(10)  # a queued third would wait for the first, which is never released here
    assert len(refused) == 1 and "already have a play running and another" in refused[0]
    assert order == ["first"]  # refused while the first still runs: never queued
    with adm.interactive("someone else", "play"):  # other sessions are not held up
        assert order == ["first"]
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == ["first", "second"] and adm.in_flight("greedy") == (0, 0)


def test_one_background_job_per_session():
    adm = Admission()
    with adm.background_job("a", "sweep"):
        with pytest.raises(PlaygroundError, match="already have a sweep running"):  # the one
            with adm.background_job("a", "comparison"):
                pass
        with adm.background_job("b", "sweep"):
            pass
    with adm.background_job("a", "comparison"):  # free again once it ended
        pass


def test_cheap_events_beyond_the_rate_are_dropped_then_refill():
    adm = Admission(rate=50.0, burst=5)
    taken = [adm.cheap("tab") for _ in range(8)]
    assert taken == [True] * 5 + [False] * 3
    assert adm.cheap("another tab")
    _wait_until(lambda: adm.cheap("tab"), timeout=2.0)  # 50/s: a token within 20 ms


def test_play_slots_serve_in_turn_and_say_how_many_are_ahead():
    slots = PlaySlots(1)
    notes, release = [], threading.Event()

    def holder():
        with slots.turn(notes.append):
            release.wait(10)

    t1 = threading.Thread(target=holder)
    t1.start()
    _wait_until(lambda: slots.ahead() == 1)
    got = []
    t2 = threading.Thread(target=lambda: slots.turn(notes.append).__enter__() or got.append(1))
    t2.start()
    _wait_until(lambda: slots.ahead() == 2)
    assert notes == ["simulating", "waiting for a free worker: 1 ahead"] and not got
    release.set()
    t1.join(10)
    t2.join(10)
    assert got == [1]
