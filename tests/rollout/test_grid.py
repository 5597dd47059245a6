"""serve.glance, media.tiles, media.plots.glance, serve.formatting: the target grid,
re-prompting schedules and the figures drawn from cards alone."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from dt_playground.app import card_views, formatting
from dt_playground.checkpoints import cache
from dt_playground.envs.registry import get_spec
from dt_playground.errors import PlaygroundError, RenderError
from dt_playground.media import gl, replay, tiles
from dt_playground.media.plots import figures, glance
from dt_playground.media.replay import random_trace
from dt_playground.rollout import episode, grid, schedules
from dt_playground.rollout.policy import DTPolicy, run_episodes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small batched matmuls on a shared 2-core machine: one thread avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hopper():
    return cache.get_checkpoint("hopper-dt")


@pytest.fixture(scope="module")
def gl_backend():
    try:
        return gl.ensure_gl_backend()
    except RenderError as err:
        pytest.skip(str(err))


# ---------------------------------------------------------------- schedules


def test_parse_schedule():
    assert schedules.parse_schedule("0:3000, 300:500") == {0: 3000.0, 300: 500.0}
    assert schedules.parse_schedule("300:500;0:3000") == {0: 3000.0, 300: 500.0}  # sorted
    assert schedules.parse_schedule("0:best,200:10") == {0: "best", 200: 10.0}
    for bad, why in [
        ("", "empty"),
        ("300:500", "start at step 0"),
        ("0:1,0:2", "twice"),
        ("0:1,2.5:3", "whole number"),
        ("0:1,1000:3", "between 0 and 999"),
        ("0:abc", "must be a number"),
        ("0-100", "step:target"),
    ]:
        with pytest.raises(PlaygroundError, match=why):
            schedules.parse_schedule(bad)


def test_schedule_without_switch_is_the_plain_play(hopper):
    plain = episode.play_episode(hopper, 3000, 5)
    sched = schedules.play_schedule(hopper, "0:3000", 5)
    np.testing.assert_array_equal(sched.actions, plain.actions)
    np.testing.assert_array_equal(sched.rewards, plain.rewards)
    np.testing.assert_array_equal(sched.rtg, plain.rtg)
    assert sched.switches == {0: 3000.0}


def test_switch_resets_the_return_to_go_and_is_recorded(hopper):
    trace = schedules.play_schedule(hopper, "0:3000,300:500", 1)
    assert trace.length > 300  # this seed hops past the switch
    assert trace.switches == {0: 3000.0, 300: 500.0}
    assert trace.rtg[300] == pytest.approx(500.0)
    assert trace.rtg[299] == pytest.approx(3000.0 - trace.rewards[:299].sum())
    segs = schedules.segments(trace, "0:3000,300:500")
    assert [s["start"] for s in segs] == [0, 300]
    assert [s["steps"] for s in segs] == [300, trace.length - 300]
    assert sum(s["return"] for s in segs) == pytest.approx(trace.ret, abs=1e-2)
    summary = schedules.schedule_summary(trace, hopper, "0:3000,300:500")
    assert summary["segments"] == segs
    assert summary["schedule"] == [{"step": 0, "target": 3000.0}, {"step": 300, "target": 500.0}]
    assert "from step 300 asked **500**" in formatting.schedule_markdown(summary)


@pytest.mark.slow
def test_high_to_low_switch_lowers_hoppers_reward_rate(hopper):
    # Reward per step over the rest of the episode (0 once it has ended), mean of
    # 8 seeds: the same seeds without and with the switch, in one batched run.
    seeds = list(range(8))
    plain, switched = {0: 3000.0}, {0: 3000.0, 300: 500.0}
    policy = DTPolicy(hopper.model, hopper.norm, hopper.spec)
    traces = run_episodes(policy, [3000.0] * 16, seeds * 2, schedules=[plain] * 8 + [switched] * 8)
    rate = [float(t.rewards[300:].sum()) / 700 for t in traces]
    before = [float(t.rewards[:300].sum()) for t in traces]
    assert before[:8] == pytest.approx(before[8:], rel=1e-4)  # identical until the switch
    assert np.mean(rate[8:]) < np.mean(rate[:8]) - 0.1


def test_segment_never_reached_has_no_steps():
    trace = random_trace("CartPole-v1", 500, seed=0)  # falls within a few dozen steps
    segs = schedules.segments(trace, {0: 100.0, 900: 5.0})
    assert segs[1] == {"start": 900, "target": 5.0, "steps": 0, "return": 0.0}
    assert segs[0]["steps"] == trace.length


# ---------------------------------------------------------------- grid


def test_default_grid_targets_come_from_the_dataset(hopper):
    d = hopper.config["dataset"]
    targets, names = grid.default_grid_targets(hopper)
    expected = [d["return_p10"], d["return_median"], d["return_max"], 1.5 * d["return_max"]]
    assert targets == pytest.approx(expected, abs=0.06)
    assert names[-1] == "beyond the data"
    assert grid.parse_grid_targets("", hopper) == (targets, names)
    assert grid.parse_grid_targets("10, 20 30", hopper)[0] == [10.0, 20.0, 30.0]
    with pytest.raises(PlaygroundError, match="1 to 9"):
        grid.parse_grid_targets(",".join(["1"] * 10), hopper)
    with pytest.raises(PlaygroundError, match="number"):
        grid.parse_grid_targets("1,x", hopper)


def test_pendulum_beyond_the_data_asks_for_more():
    ck = cache.get_checkpoint("pendulum-dt")
    targets, _ = grid.default_grid_targets(ck)
    d = ck.config["dataset"]
    assert targets[-2] == pytest.approx(d["return_max"], abs=0.06)
    assert targets[-1] > targets[-2] + 0.4 * (d["return_max"] - d["return_min"])


@pytest.mark.slow
def test_grid_tiles_equal_single_plays(hopper):
    res = grid.play_grid(hopper, "", 7)
    summary = res.summary(hopper)
    assert [t["target"] for t in summary["tiles"]] == res.targets
    for tile, target in zip(summary["tiles"], res.targets):
        single = episode.play_episode(hopper, target, 7)
        # Batched rows differ from a batch of one only by float rounding.
        assert tile["achieved"] == pytest.approx(single.ret, rel=1e-4)
        assert tile["length"] == single.length
    assert "data max" in formatting.grid_markdown(summary)


def _decoded(path):
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def test_grid_video_tiles_freeze_when_their_episode_ends(tmp_path):
    spec_every = 2  # CartPole renders every 2nd step
    traces = [random_trace("CartPole-v1", 500, seed=s) for s in (0, 1, 2)]
    lengths = [t.length for t in traces]
    info = tiles.render_grid(traces, tmp_path / "g.mp4", size=(150, 100))
    frames = _decoded(info.path)
    assert len(frames) == info.n_frames == 1 + max(lengths) // spec_every
    rows, cols = tiles.grid_shape(3)
    assert (rows, cols) == (2, 2)
    h, w = rows * (tiles.LABEL_H + 100) + tiles.GAP, cols * 150 + tiles.GAP
    assert frames.shape[1:3] == (h, w)
    # The shortest episode's tile (its picture, below the label) stops changing.
    k = int(np.argmin(lengths))
    r, c = divmod(k, cols)
    y, x = r * (tiles.LABEL_H + 100 + tiles.GAP) + tiles.LABEL_H, c * (150 + tiles.GAP)
    pic = frames[:, y + 4 : y + 96, x + 4 : x + 146].astype(int)
    last = lengths[k] // spec_every
    assert np.abs(pic[-1] - pic[last]).mean() < 2.0  # frozen (up to codec noise)
    assert np.abs(pic[last] - pic[0]).mean() > 0.5  # but it did move before
    meta = iio.immeta(info.path, plugin="FFMPEG")
    assert meta["codec"] == "h264"


def test_grid_video_of_hopper(tmp_path, hopper, gl_backend):
    traces = [random_trace("Hopper-v5", 24, seed=s) for s in (0, 1)]
    info = tiles.render_grid(traces, tmp_path / "h.mp4")
    frames = _decoded(info.path)
    tw, th = tiles.tile_size("Hopper-v5")
    assert frames.shape[1:3] == (tiles.LABEL_H + th, 2 * tw + tiles.GAP)
    assert frames[-1, tiles.LABEL_H :, :tw].std() > 5  # a scene in each tile
    assert frames[-1, tiles.LABEL_H :, tw + tiles.GAP :].std() > 5


def test_grid_video_refuses_mixed_envs(tmp_path):
    with pytest.raises(ValueError, match="one env"):
        tiles.render_grid(
            [random_trace("CartPole-v1", 5), random_trace("Pendulum-v1", 5)], tmp_path / "x.mp4"
        )


# ---------------------------------------------------------------- figures


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
    with_card = {p.name for p in (REPO / "pretrained").glob("hopper-*/card.json")
                 for p in [p.parent] if json.loads((p / "config.json").read_text())
                 ["env_id"] == "Hopper-v5"}
    assert set(cards) == with_card and "hopper-dt" in cards
    fig = glance.cards_compare_figure(cards)
    bars = fig.data[0]
    assert set(bars.x) == set(cards) and bars.x[0].startswith("hopper-dt")
    means = dict(zip(bars.x, bars.y))
    for name, card in cards.items():
        assert means[name] == pytest.approx(card["top_target_mean"])


def test_tabs_on_arrival_read_files_only():
    fig, md, card = card_views.sweep_view("Hopper-v5", "hopper-dt")
    assert card["env_id"] == "Hopper-v5" and "held-out seeds" in md
    assert any(t.name.startswith("card: mean") for t in fig.data)
    fig, table = card_views.compare_view("Hopper-v5")
    assert table["hopper-dt"]["episodes"] == 30 and table["hopper-dt"]["source"] == "card"
    hist, lengths, quality, info = card_views.dataset_view("Hopper-v5", "hopper-dt")
    assert info["episodes"] == 300 and sum(hist.data[0].y) == 300
    with pytest.raises(PlaygroundError):
        card_views.sweep_view("Hopper-v5", "../etc")
    with pytest.raises(PlaygroundError):
        card_views.sweep_view("Hopper-v5", "cartpole-dt")  # another env's checkpoint


def test_tabs_on_arrival_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom dt_playground.app import card_views\n"
        "card_views.sweep_view('Hopper-v5', 'hopper-dt'); card_views.compare_view('Hopper-v5')\n"
        "card_views.dataset_view('Hopper-v5', 'hopper-dt')\nprint('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def _hopper_traces():
    return [random_trace("Hopper-v5", n, seed=s) for n, s in ((30, 1), (45, 2), (60, 3))]


def test_tiles_split_over_two_threads_draw_what_one_thread_does(gl_backend):
    """The grid draws odd tiles on a helper thread (EGL): every frame of every tile is
    the one drawn in turn, ended tiles give None alike, and the tiles differ."""
    traces, spec = _hopper_traces(), get_spec("Hopper-v5")
    n = 1 + 60 // spec.render_every
    in_turn = list(tiles._tiles_in_turn(traces, spec, (64, 48), n))
    split = list(tiles.lockstep_frames(traces, spec, (64, 48), n))
    assert len(split) == len(in_turn) == n
    for a, b in zip(in_turn, split):
        assert [f is None for f in a] == [f is None for f in b]
        for fa, fb in zip(a, b):
            if fa is not None:
                np.testing.assert_array_equal(fa, fb)
    for k, t in enumerate(traces):  # a tile has 1 + length // every frames, then None
        drawn = [i for i, now in enumerate(in_turn) if now[k] is not None]
        assert drawn == list(range(min(n, 1 + t.length // spec.render_every)))
    assert len({t.length for t in traces}) > 1  # tiles that end at different frames
    assert not np.array_equal(in_turn[2][0], in_turn[2][1])  # not one buffer thrice


def test_a_divergent_tile_on_the_helper_thread_raises_here(gl_backend):
    traces, spec = _hopper_traces(), get_spec("Hopper-v5")
    traces[1].rewards[5] += 1.0  # tile 1: drawn by the helper thread on EGL
    with pytest.raises(replay.ReplayDivergenceError):
        list(tiles.lockstep_frames(traces, spec, (64, 48), 4))
    early = tiles.lockstep_frames(_hopper_traces(), spec, (64, 48), 16)
    next(early), next(early)
    early.close()  # stops the helper too: a later grid still renders
    assert len(list(tiles.lockstep_frames(_hopper_traces(), spec, (64, 48), 3))) == 3


def test_a_schedule_target_line_steps_at_each_switch():
    """Re-prompted at step 3 to 5: from there the ask is what was collected by step 3
    plus 5; the title names the schedule."""
    import numpy as np

    from dt_playground.envs.episodes import Trace

    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    trace = Trace("CartPole-v1", 0, 10.0, np.zeros(6), rewards, np.zeros(6), False, 0.0,
                  {0: 10.0, 3: 5.0}, None)
    xs, ys = glance.schedule_target_line(trace)
    assert xs == [0, 3, None, 3, 6, None]
    assert ys == [10.0, 10.0, None, 6.0 + 5.0, 6.0 + 5.0, None]
    _, reward = glance.schedule_figures(trace)
    assert "schedule 0:10 → 3:5" in reward.layout.title.text
    target = [t for t in reward.data if t.name.startswith("target")][0]
    assert list(target.y) == ys
