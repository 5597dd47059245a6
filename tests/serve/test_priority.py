"""Background jobs run on low-priority threads; the caller's thread keeps its own."""

from __future__ import annotations

import contextvars
import sys
import threading

import pytest

from dt_playground.serve import priority

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")
VAR = contextvars.ContextVar("VAR", default="unset")


@linux
def test_background_work_runs_niced_and_the_caller_is_untouched():
    before = priority.thread_nice()
    seen = priority.in_background(lambda: (priority.thread_nice(), threading.get_native_id()))
    assert seen[0] >= priority.BACKGROUND_NICE
    assert seen[1] != threading.get_native_id()
    assert priority.thread_nice() == before


def test_background_keeps_the_callers_context_and_raises_its_errors():
    token = VAR.set("from the caller")
    try:
        assert priority.in_background(VAR.get) == "from the caller"
    finally:
        VAR.reset(token)
    with pytest.raises(ZeroDivisionError):
        priority.in_background(lambda: 1 / 0)


@linux
def test_lowering_a_thread_never_raises_it_and_stays_on_that_thread():
    out = {}

    def worker():
        out["first"] = priority.lower_thread_priority(5)
        out["after_first"] = priority.thread_nice()
        out["again"] = priority.lower_thread_priority(2)  # asks for higher: a no-op
        out["after_again"] = priority.thread_nice()

    main_before = priority.thread_nice()
    t = threading.Thread(target=worker)
    t.start()
    t.join(timeout=10)
    assert out["first"] and out["again"]
    assert out["after_first"] == out["after_again"] == max(5, main_before)
    assert priority.thread_nice() == main_before
