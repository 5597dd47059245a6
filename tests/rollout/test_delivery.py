"""Each stretch of a re-prompted episode held to its target: over, under, met, or cut
short by the next switch (then only an overshoot can be told)."""

from dt_playground.app.formatting import delivery_markdown, schedule_markdown
from dt_playground.rollout.delivery import judge


def _seg(start, target, steps, ret):
    return {"start": start, "target": target, "steps": steps, "return": ret}


def test_hoppers_ignored_reprompt_is_an_overshoot():
    """Hopper asked for 500 after step 300 and collected 2240 more: say so, by how much."""
    segs = [_seg(0, 3000.0, 300, 900.0), _seg(300, 500.0, 700, 2240.0)]
    first, second = judge(segs, 1000)
    assert first["verdict"] == "cut short" and first["miss"] is None
    assert second["verdict"] == "over" and second["miss"] == 1740.0
    text = delivery_markdown([first, second])
    assert "From step 300" in text and "2240" in text and "1740 over" in text


def test_met_under_and_unreached():
    segs = [_seg(0, 100.0, 10, 30.0), _seg(10, 50.0, 40, 52.0), _seg(900, 5.0, 0, 0.0)]
    a, b, c = judge(segs, 50)
    assert (a["verdict"], b["verdict"], c["verdict"]) == ("cut short", "met", "not reached")
    assert b["miss"] == 2.0
    short = judge([_seg(0, 300.0, 40, 120.0)], 40)[0]
    assert short["verdict"] == "under" and short["miss"] == -180.0
    assert "180 short" in delivery_markdown([short])
    assert "kept to its target" in delivery_markdown([a, b, c])


def test_a_stretch_cut_short_can_still_overshoot():
    over = judge([_seg(0, 100.0, 10, 180.0), _seg(10, 5.0, 5, 1.0)], 15)[0]
    assert over["verdict"] == "over" and over["miss"] == 80.0


def test_best_has_no_number_to_miss():
    assert judge([_seg(0, "best", 20, 200.0)], 20)[0]["verdict"] == "best"


def test_the_summary_line_carries_the_verdict():
    segs = [_seg(0, 3000.0, 300, 900.0), _seg(300, 500.0, 700, 2240.0)]
    summary = {"achieved": 3140.0, "length": 1000, "segments": segs, "delivery": judge(segs, 1000)}
    md = schedule_markdown(summary)
    assert "from step 300 asked **500**" in md and "1740 over" in md
