"""The lab's moving parts: the history knob masks exactly the older steps, success counts
the goal only, the CLI's JSON has the issue's shape, and the tab's functions answer."""

import json

import numpy as np
import pytest
import torch

from dt_playground.app import stitch_view
from dt_playground.checkpoints.checkpoint import load_checkpoint
from dt_playground.cli.main import main
from dt_playground.envs import maze
from dt_playground.envs.episodes import Trace
from dt_playground.errors import PlaygroundError
from dt_playground.stitch import lab
from dt_playground.stitch.lab import METHODS, HistoryPolicy, folder


def test_history_h_equals_the_model_on_the_last_h_steps_only():
    ck = load_checkpoint(folder("halves", "dt"))
    K = ck.model.cfg.context_len
    pol = HistoryPolicy(ck, history=3)
    pol.reset([12.0, 12.0], [5, 6])
    rng = np.random.default_rng(0)
    t = 9
    pol.states[:, : t + 1] = rng.normal(size=pol.states[:, : t + 1].shape)
    pol.rtg[:, : t + 1] = rng.normal(size=(2, t + 1))
    pol.actions[:, :t, rng.integers(4)] = 1.0
    rows = np.array([0, 1])
    w = pol.window(rows, t, K)
    assert w["mask"].sum(1).tolist() == [3.0, 3.0]
    pol.history = K
    full = pol.window(rows, t, K)
    short = {k: torch.from_numpy(v[:, -3:]) for k, v in full.items()}
    masked = {k: torch.from_numpy(v) for k, v in w.items()}
    with torch.no_grad():
        a = ck.model(
            short["rtg"], short["states"], short["actions"], short["timesteps"], short["mask"]
        )[:, -1]
        b = ck.model(
            masked["rtg"], masked["states"], masked["actions"], masked["timesteps"], masked["mask"]
        )[:, -1]
        c = ck.model(
            *(torch.from_numpy(full[k]) for k in ("rtg", "states", "actions", "timesteps", "mask"))
        )[:, -1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(b, c)  # the older steps did matter before they were masked
    assert HistoryPolicy(ck).history == K


def test_success_counts_the_goal_only():
    def tr(rewards, term):
        return Trace(
            maze.ENV_ID,
            0,
            0.0,
            np.zeros(len(rewards)),
            np.array(rewards),
            np.zeros(len(rewards)),
            term,
        )

    traces = [tr([-1, 20], True), tr([-1, 8], True), tr([-1, -1], True), tr([-1] * 3, False)]
    assert lab.success(traces) == 0.25


def test_cli_json_shape(capsys):
    assert main(["stitch", "--data", "halves", "--episodes", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"] == "halves" and set(out["methods"]) == set(METHODS)
    for r in out["methods"].values():
        assert set(r) == {"success", "return"} and 0.0 <= r["success"] <= 1.0
        assert isinstance(r["return"], float)
    assert main(["stitch", "--data", "halves", "--episodes", "0", "--json"]) == 1
    assert main(["stitch", "--data", "halves", "--episodes", "2", "--history", "99"]) == 1


@pytest.mark.parametrize(
    "bad",
    [
        ("nope", 1, 5),
        ("halves", -1, 5),
        ("halves", 1.5, 5),
        ("halves", 1, 0),
        ("halves", 1, 21),
        ("halves", True, 5),
        ("halves", "1", 5),
        (None, 1, 5),
    ],
)
def test_view_refuses_bad_inputs_with_a_sentence(bad):
    with pytest.raises(PlaygroundError) as err:
        stitch_view.stitching_view(*bad)
    assert str(err.value).endswith(".") and "/" not in str(err.value)


def test_views_answer_from_shipped_files(tmp_path):
    first = stitch_view.arrival_view("halves", video_path=tmp_path / "a.mp4")
    names = {t.name for t in first.figure.data}
    assert {stitch_view.LABELS[m] for m in METHODS} <= names and "goal" in names
    assert first.video and first.video.endswith(".mp4")
    assert [r[0] for r in first.table][:1] == ["DT (history 20)"]
    assert first.markdown.count(". ") >= 2
    # Work, not seconds (benchmarks/stitch_bench.py times it): a run loads each model of
    # its dataset once, and a second run loads nothing.
    stitch_view.stitching_view("halves", 1_000_000, 20, video_path=tmp_path / "b.mp4")
    before = stitch_view._loaded.cache_info().misses
    v = stitch_view.stitching_view("random-walks", 1_000_003, 4, video_path=tmp_path / "c.mp4")
    assert stitch_view._loaded.cache_info().misses - before <= len(METHODS) - 1  # no DP model
    assert any(r[0] == "DT (history 4)" for r in v.table)
    assert len(v.outputs()) == 4
    loaded = stitch_view._loaded.cache_info().misses
    stitch_view.stitching_view("random-walks", 1_000_004, 4, video_path=tmp_path / "d.mp4")
    assert stitch_view._loaded.cache_info().misses == loaded
