"""The offline RL table against a hand-computed case, its conservatism, and its folder."""

import numpy as np
import pytest

from dt_playground.envs.episodes import Episode
from dt_playground.errors import CheckpointError
from dt_playground.stitch import dp


def _ep(states, actions, rewards, terminated):
    return Episode(
        np.array(states, np.float32).reshape(-1, 1),
        np.array(actions),
        np.array(rewards, np.float32),
        terminated,
        not terminated,
    )


def tiny():
    """A chain 0 -> 1 -> 2 (goal, +10) and a detour 1 -> 3 -> 3 ... that times out.

    Hand-computed (horizon 5, undiscounted):
      Q(1, a1) = 10                     (into the terminal goal)
      Q(3, a0) = -1 + V(3): V(3) after k backups = -k, so Q(3, a0) = -5 at horizon 5
      Q(1, a0) = -1 + V(3) = -1 - 4 = -5
      Q(0, a1) = -1 + V(1) = -1 + 10 = 9
    Actions never tried (e.g. a0 at state 0) have no value.
    """
    return [
        _ep([0, 1, 2], [1, 1], [-1, 10], True),
        _ep([0, 1, 3, 3, 3], [1, 0, 0, 0], [-1, -1, -1, -1], False),
    ]


def test_values_match_the_hand_computed_case():
    t = dp.fit(tiny(), act_dim=2, horizon=5)
    q = {int(s[0]): row for s, row in zip(t.states, t.q)}
    assert q[1][1] == pytest.approx(10.0)
    assert q[3][0] == pytest.approx(-5.0)
    assert q[1][0] == pytest.approx(-5.0)
    assert q[0][1] == pytest.approx(9.0)
    assert np.isnan(q[0][0]) and np.isnan(q[3][1])
    assert t.value(np.array([0.0], np.float32)) == pytest.approx(9.0)
    assert t.value(np.array([2.0], np.float32)) is None  # the goal: never acted from


def test_it_stitches_and_never_picks_an_untried_action():
    # Episode A: 0 -> 1 then away to 4; episode B starts at 1 and reaches the goal 2.
    eps = [_ep([0, 1, 4], [1, 0], [-1, -1], False), _ep([1, 2], [1], [10], True)]
    t = dp.fit(eps, act_dim=2, horizon=4, unknown_value=-20.0)
    assert t.act(np.array([0.0], np.float32)) == 1  # the only tried action at 0
    assert t.act(np.array([1.0], np.float32)) == 1  # B's half, though A went the other way
    assert t.value(np.array([0.0], np.float32)) == pytest.approx(9.0)
    # State 4 was never acted from: pessimistic, so a0 at 1 is worth -1 + (-20).
    assert t.q[t.row(np.array([1.0], np.float32)), 0] == pytest.approx(-21.0)


def test_folder_round_trip_and_refusals(tmp_path):
    t = dp.fit(tiny(), act_dim=2, horizon=5)
    dp.save(t, tmp_path / "tab", {"env_id": "StitchMaze-v0"})
    back, cfg = dp.load(tmp_path / "tab")
    assert cfg["algo"] == dp.ALGO
    np.testing.assert_array_equal(np.isnan(back.q), np.isnan(t.q))
    np.testing.assert_allclose(np.nan_to_num(back.q), np.nan_to_num(t.q), rtol=1e-6)
    (tmp_path / "tab" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        dp.load(tmp_path / "tab")
