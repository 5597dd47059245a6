import numpy as np
import pytest
from gymnasium.envs.box2d.lunar_lander import heuristic

from dt_playground.behaviour.collect import BEHAVIOURS, collect_episodes
from dt_playground.behaviour.experts import lunarlander_expert
from dt_playground.data.windows import dataset_summary
from dt_playground.envs.registry import make_env


def test_lunarlander_expert_is_gymnasiums_heuristic():
    env = make_env("LunarLander-v3")
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        a = lunarlander_expert(obs)
        assert a == heuristic(env, obs)
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset()


@pytest.mark.parametrize("env_id", list(BEHAVIOURS))
def test_behaviour_grid_spreads_returns(env_id):
    """One episode per behaviour: the expert is near the top, and the grid spans
    a wide return range (the dataset is graded, not a lump)."""
    grid = BEHAVIOURS[env_id]
    eps = collect_episodes(env_id, len(grid), seed=0)
    rets = np.array([e.ret for e in eps])
    assert rets[0] >= np.quantile(rets, 0.75)  # behaviour 0 is the expert
    s = dataset_summary(eps)
    assert s["return_max"] - s["return_min"] > 0.5 * abs(s["return_max"])
    assert s["behaviours"]["0"]["label"] == "expert"
    assert [e.label for e in eps] == [b.label() for b in grid]
