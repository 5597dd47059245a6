"""media.plots.glance: the grid, re-prompt and card figures, drawn from cards alone."""

import json
from pathlib import Path

import numpy as np
import pytest

from dt_playground.app import card_views, formatting
from dt_playground.checkpoints import cache
from dt_playground.media.plots import figures, glance
from dt_playground.media.replay import random_trace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hopper():
    return cache.get_checkpoint("hopper-dt")


def test_grid_reward_figure_has_a_line_per_tile():
    traces = [random_trace("CartPole-v1", 500, seed=s) for s in (0, 1)]
    traces[0].target, traces[1].target = 100.0, 400.0
    fig = glance.grid_reward_figure(traces, ["low", "high"])
    lines = [t for t in fig.data if t.showlegend is not False]
    assert [t.name.split(" →")[0] for t in lines] == ["low", "high"]
    assert lines[0].y[-1] == pytest.approx(traces[0].ret)


def test_mark_switches_names_each_reprompt():
    trace = random_trace("Pendulum-v1", 200, seed=0)
    fig = glance.mark_switches(figures.rtg_figure(trace), {0: -100.0, 120: -900.0})
    names = [t.name for t in fig.data]
    assert "re-prompt at step 120 → -900" in names and not any("step 0" in n for n in names)
    trace.switches = {0: -100.0, 50: -20.0}
    for fig in glance.schedule_figures(trace):  # RTG and reward figures both marked
        assert "re-prompt at step 50 → -20" in [t.name for t in fig.data]


def _card(name):
    return json.loads((REPO / "pretrained" / name / "card.json").read_text())


def test_card_sweep_figure_from_the_card_alone(hopper):
    card = _card("hopper-dt")
    fig = glance.card_sweep_figure(card, hopper.config["dataset"])
    by = {t.name: t for t in fig.data}
    mean = next(t for n, t in by.items() if n.startswith("card: mean"))
    assert list(mean.y) == pytest.approx([r["mean"] for r in card["per_target"]])
    assert list(mean.error_y.array) == pytest.approx([r["std"] for r in card["per_target"]])
    assert {"dataset return range", "dataset top 10%", "y = x"} <= set(by)
    assert any(n.startswith("BC (") for n in by) and any(n.startswith("%BC (") for n in by)
    targets = [r["target"] for r in card["per_target"]]
    x0, x1 = fig.layout.xaxis.range  # the targets' span, however low a return fell
    span = max(targets) - min(targets)
    assert min(targets) - 0.05 * span < x0 < min(targets) < max(targets) < x1
    assert x1 < max(targets) + 0.05 * span
    empty = glance.card_sweep_figure(None)
    assert not empty.data and "no card" in empty.layout.annotations[0].text
    assert "Run sweep" in formatting.card_markdown(card)


def test_cards_compare_figure_covers_every_checkpoint_of_the_env():
    cards = card_views.env_cards("Hopper-v5")
    with_card = {
        p.name
        for p in (REPO / "pretrained").glob("hopper-*/card.json")
        for p in [p.parent]
        if json.loads((p / "config.json").read_text())["env_id"] == "Hopper-v5"
    }
    assert set(cards) == with_card and "hopper-dt" in cards
    fig = glance.cards_compare_figure(cards)
    bars = fig.data[0]
    assert set(bars.x) == set(cards) and bars.x[0].startswith("hopper-dt")
    means = dict(zip(bars.x, bars.y))
    for name, card in cards.items():
        assert means[name] == pytest.approx(card["top_target_mean"])


def test_a_schedule_target_line_steps_at_each_switch():
    """Re-prompted at step 3 to 5: from there the ask is what was collected by step 3
    plus 5; the title names the schedule."""
    from dt_playground.envs.episodes import Trace

    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    trace = Trace(
        "CartPole-v1",
        0,
        10.0,
        np.zeros(6),
        rewards,
        np.zeros(6),
        False,
        0.0,
        {0: 10.0, 3: 5.0},
        None,
    )
    xs, ys = glance.schedule_target_line(trace)
    assert xs == [0, 3, None, 3, 6, None]
    assert ys == [10.0, 10.0, None, 6.0 + 5.0, 6.0 + 5.0, None]
    _, reward = glance.schedule_figures(trace)
    assert "schedule 0:10 → 3:5" in reward.layout.title.text
    target = [t for t in reward.data if t.name.startswith("target")][0]
    assert list(target.y) == ys


def test_compare_labels_sit_under_the_bars_names():
    """Each model's kind reads under its name on the axis, at the axis's font size (drawn
    inside the bars it shrank to a few pixels on a phone)."""
    fig = glance.cards_compare_figure(card_views.env_cards("Hopper-v5"))
    bars = fig.data[0]
    assert bars.textposition == "none"
    ticks = dict(zip(fig.layout.xaxis.tickvals, fig.layout.xaxis.ticktext))
    assert set(ticks) == set(bars.x)
    assert all(ticks[n] == f"{n}<br>{t}" for n, t in zip(bars.x, bars.text))


def test_the_card_sweeps_title_has_one_subtitle():
    fig = glance.card_sweep_figure(_card("hopper-dt"))
    head, sub = fig.layout.title.text.split("<br>")
    assert head == "Achieved vs requested return"
    assert sub.startswith("<sup>checkpoint card, Spearman ρ = ") and sub.count("(") == 0
