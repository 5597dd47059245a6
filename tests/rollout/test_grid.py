"""rollout.grid: one seed at several targets in one batched rollout."""

import pytest

from dt_playground.app import formatting
from dt_playground.checkpoints import cache
from dt_playground.errors import PlaygroundError
from dt_playground.rollout import episode, grid


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
