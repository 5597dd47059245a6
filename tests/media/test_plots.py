"""media.plots.figures: every figure draws exactly the numbers it was given."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from dt_playground.data.windows import dataset_summary
from dt_playground.envs.episodes import Episode, Trace
from dt_playground.media.plots import figures, inspect


def by_name(fig: go.Figure) -> dict:
    return {t.name: t for t in fig.data}


@pytest.fixture
def trace():
    rewards = np.array([1.0, -2.0, 3.5, 0.25, 4.0, -1.0])
    rtg = 10.0 - np.concatenate([[0.0], np.cumsum(rewards)[:-1]])  # what DTPolicy feeds
    return Trace(
        "Hopper-v5", seed=7, target=10.0, actions=np.zeros((6, 3)), rewards=rewards, rtg=rtg
    )


@pytest.fixture
def summary():
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(40):
        n = int(rng.integers(5, 50))
        noise = (0.0, 0.3, 1.0)[i % 3]
        rewards = rng.normal(1.0 - noise, 0.1, n).astype(np.float32)
        episodes.append(
            Episode(
                np.zeros((n + 1, 2), np.float32),
                np.zeros(n, np.int64),
                rewards,
                True,
                False,
                seed=i,
                behaviour=i % 3,
            )
        )
    return dataset_summary(episodes)


def test_rtg_actual_is_reverse_cumsum(trace):
    fig = figures.rtg_figure(trace)
    lines = by_name(fig)
    actual = [sum(trace.rewards[t:]) for t in range(trace.length)]
    np.testing.assert_allclose(lines["actual return to go"].y, actual)
    np.testing.assert_allclose(lines["conditioned RTG"].y, trace.rtg)
    assert list(lines["actual return to go"].x) == list(range(trace.length))
    assert fig.layout.height == figures.HEIGHT and fig.layout.xaxis.title.text == "step"


def test_reward_curve_ends_at_the_return(trace):
    lines = by_name(figures.reward_figure(trace))
    cum = lines["cumulative reward"]
    assert cum.y[-1] == pytest.approx(trace.ret)
    assert cum.x[-1] == trace.length
    assert set(lines["target"].y) == {trace.target}


def test_spearman_known_orders():
    x = [1, 2, 3, 4, 5]
    assert figures.spearman(x, [10, 20, 25, 100, 101]) == pytest.approx(1.0)
    assert figures.spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(figures.spearman(x, [3, 3, 3, 3, 3]))
    assert math.isnan(figures.spearman([2, 2, 2], [1, 2, 3]))
    with pytest.raises(ValueError):
        figures.spearman([1, 2], [1, 2, 3])


def test_spearman_with_ties_hand_computed():
    # x ranks: 1, 2.5, 2.5, 4; y ranks: 1, 2, 3, 4 -> Pearson of the ranks.
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    expected = (rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum())
    assert figures.spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(expected)
    assert figures.spearman([1, 2, 2, 3], [40, 30, 20, 10]) == pytest.approx(-expected)


def sweep_rows():
    rows = []
    for target in (100.0, 200.0, 300.0):
        for seed, delta in enumerate((-10.0, 0.0, 25.0)):
            rows.append(
                {
                    "target": target,
                    "seed": seed,
                    "return": target * 0.9 + delta,
                    "length": 100 + seed,
                }
            )
    return rows


def test_sweep_identity_line_and_stats(summary):
    rows = sweep_rows()
    fig = figures.sweep_figure(rows, dataset=summary, references={"BC": 150.0, "10%BC": 260.0})
    lines = by_name(fig)
    ident = lines["y = x"]
    assert list(ident.x) == list(ident.y)  # on the diagonal
    returns = [r["return"] for r in rows]
    every = [*returns, 100.0, 300.0, summary["return_min"], summary["return_max"], 150.0, 260.0]
    # x spans the targets asked for (100..300), not the returns; y spans everything
    assert 90 < ident.x[0] < 100 and 300 < ident.x[-1] < 310
    assert list(fig.layout.xaxis.range) == [ident.x[0], ident.x[-1]]
    lo, hi = fig.layout.yaxis.range
    assert lo <= min(every) and hi >= max(every)
    mean = lines["mean ± std"]
    assert list(mean.x) == [100.0, 200.0, 300.0]
    np.testing.assert_allclose(mean.y, [0.9 * t + 5.0 for t in (100.0, 200.0, 300.0)])
    np.testing.assert_allclose(mean.error_y.array, [np.std([-10.0, 0.0, 25.0])] * 3)
    assert sorted(lines["episodes"].y) == sorted(returns)
    assert set(lines["BC (150)"].y) == {150.0} and set(lines["10%BC (260)"].y) == {260.0}
    rng_band = lines["dataset return range"]
    assert min(rng_band.y) == summary["return_min"] and max(rng_band.y) == summary["return_max"]
    top = lines["dataset top 10%"]
    assert min(top.y) == summary["return_p90"] and max(top.y) == summary["return_max"]
    assert "Spearman ρ of means = 1.00" in fig.layout.title.text  # means rise with the target
    assert figures.spearman([r["target"] for r in rows], returns) < 1.0  # episodes alone don't


def test_sweep_without_dataset_or_rows():
    lines = by_name(figures.sweep_figure(sweep_rows()))
    assert "dataset return range" not in lines and "y = x" in lines
    empty = figures.sweep_figure([])
    assert len(empty.data) == 0 and "No episodes" in empty.layout.annotations[0].text


def test_dataset_histogram_matches_summary(summary):
    fig = inspect.dataset_figure(summary)
    bars = by_name(fig)["episodes"]
    assert list(bars.y) == summary["histogram"]["counts"]
    edges = np.asarray(summary["histogram"]["edges"])
    np.testing.assert_allclose(bars.x, (edges[1:] + edges[:-1]) / 2)
    median = next(t for t in fig.data if t.name.startswith("median"))
    assert set(median.x) == {summary["return_median"]}


def test_lengths_and_quality(summary):
    assert list(by_name(inspect.lengths_figure(summary))["episodes"].x) == summary["lengths"]
    bars = by_name(inspect.quality_figure(summary))["mean return"]
    assert list(bars.x) == ["0", "1", "2"]  # sorted best first; behaviour 0 is least noisy
    levels = summary["behaviours"]
    assert list(bars.y) == [levels[k]["return_mean"] for k in ("0", "1", "2")]
    assert bars.y[0] > bars.y[-1]
    assert len(inspect.quality_figure({"behaviours": {}}).data) == 0


def test_loss_figure_with_lr_and_evals():
    curve = [{"step": s, "loss": 1.0 / (s + 1), "lr": 1e-4 * min(1, s / 10)} for s in range(50)]
    evals = [{"step": s, "target": t, "return": t * s / 50} for s in (10, 30) for t in (1.0, 2.0)]
    fig = inspect.loss_figure(curve, evals)
    lines = by_name(fig)
    assert list(lines["train/loss"].y) == [p["loss"] for p in curve]
    assert list(lines["train/lr"].y) == [p["lr"] for p in curve]
    assert list(lines["eval/return (target 2)"].y) == [2.0 * 10 / 50, 2.0 * 30 / 50]
    mixed = by_name(inspect.loss_figure(curve + evals))  # eval points inside the curve
    assert set(mixed) == set(lines)
    only_loss = by_name(inspect.loss_figure([{"step": 0, "loss": 1.0}]))
    assert set(only_loss) == {"train/loss"}


def test_compare_figure_mean_and_std():
    results = {"DT": [1.0, 2.0, 3.0], "BC": [5.0, 5.0], "10%BC": [0.0, 4.0]}
    lines = by_name(figures.compare_figure(results))
    bars = lines["mean ± std"]
    assert list(bars.x) == ["DT", "BC", "10%BC"]
    np.testing.assert_allclose(bars.y, [2.0, 5.0, 2.0])
    np.testing.assert_allclose(bars.error_y.array, [np.std([1, 2, 3]), 0.0, 2.0])
    assert len(lines["episodes"].y) == 7


def test_attention_figure_rows_and_tokens():
    att = {"step": 4, "tokens": ["R t", "s t"], "weights": [[[0.25, 0.75]], [[0.5, 0.5]]]}
    fig = inspect.attention_figure(att)
    (hm,) = fig.data
    assert list(hm.y) == ["block 1", "block 2"]
    assert [list(r) for r in hm.z] == [[0.25, 0.75], [0.5, 0.5]]
    assert list(fig.layout.xaxis.ticktext) == ["R t", "s t"]
    assert "step 4" in fig.layout.title.text
    assert inspect.attention_figure({"step": 0, "tokens": [], "weights": []}).data == ()
    tokens = [f"{k} t-{i}" for i in range(19, -1, -1) for k in "Rsa"]  # K=20: 60 tokens
    fig = inspect.attention_figure({"step": 30, "tokens": tokens, "weights": [[[1 / 60] * 60]]})
    ticks = list(fig.layout.xaxis.tickvals)
    assert len(ticks) <= inspect.MAX_TOKEN_LABELS and ticks[-1] == 59
    assert list(fig.layout.xaxis.ticktext) == [tokens[i] for i in ticks]


def test_two_behaviours_of_one_name_are_two_bars_with_whole_labels():
    """Two "expert" behaviours (LunarLander's data has them) are two bars, not one stacked
    bar above the data's max; the y range leaves room for the labels above and below."""
    levels = {
        "0": {"label": "expert", "return_mean": 240.0, "episodes": 38},
        "1": {"label": "expert", "return_mean": 214.0, "episodes": 38},
        "2": {"label": "eps=0.8", "return_mean": -230.0, "episodes": 37},
    }
    fig = inspect.quality_figure({"behaviours": levels})
    bars = by_name(fig)["mean return"]
    assert list(bars.x) == ["expert", "expert #2", "eps=0.8"]
    assert len(set(bars.x)) == 3 and bars.cliponaxis is False
    lo, hi = fig.layout.yaxis.range
    assert hi > 240 * 1.1 and lo < -230 * 1.1


def test_rtg_shows_the_critics_value_of_a_checked_episode(trace):
    import dataclasses

    assert "critic's value" not in by_name(figures.rtg_figure(trace))
    values = np.linspace(50.0, 0.0, trace.length)
    checked = dataclasses.replace(trace, critic_value=values, checked=True)
    np.testing.assert_allclose(by_name(figures.rtg_figure(checked))["critic's value"].y, values)


def test_a_sweep_run_keeps_the_cards_means_beside_its_own():
    card = {
        "per_target": [
            {"target": 100.0, "mean": 80.0, "n": 30},
            {"target": 300.0, "mean": 250.0, "n": 30},
        ]
    }
    lines = by_name(figures.sweep_figure(sweep_rows(), card=card))
    kept = lines["card: mean of 30 held-out seeds"]
    assert list(kept.x) == [100.0, 300.0] and list(kept.y) == [80.0, 250.0]
    assert "mean ± std" in lines  # the run's own means too
    assert not any(n.startswith("card:") for n in by_name(figures.sweep_figure(sweep_rows())))
