"""QDT's relabelling on a tiny dataset, by hand."""

import numpy as np
import pytest

from dt_playground.envs import maze
from dt_playground.envs.episodes import Episode
from dt_playground.stitch import datasets, dp, qdt


def _ep(states, actions, rewards, terminated):
    return Episode(
        np.array(states, np.float32).reshape(-1, 1),
        np.array(actions),
        np.array(rewards, np.float32),
        terminated,
        not terminated,
    )


def test_relabel_by_hand():
    # A: 0 -a1-> 1 -a0-> 4 (away; truncated). B: 1 -a1-> 2 (goal, +10).
    a = _ep([0, 1, 4], [1, 0], [-1, -1], False)
    b = _ep([1, 2], [1], [10], True)
    t = dp.fit([a, b], act_dim=2, horizon=4, unknown_value=-20.0)
    # V(1) = 10 (B's step); V(4) unknown (never acted from) -> not used.
    # A backwards: R̂_1 = -1 + max(0, V(4)=None) = -1; R̂_0 = -1 + max(R̂_1, V(1)) = -1 + 10 = 9.
    np.testing.assert_allclose(qdt.relabel(a, t), [9.0, -1.0])
    # B's last step enters a terminal state: its label is its reward.
    np.testing.assert_allclose(qdt.relabel(b, t), [10.0])
    # The data's own returns-to-go were -2, -1 for A: only the first step changed.


def test_relabelled_dataset_on_halves_lifts_the_start_to_the_stitched_return():
    eps = datasets.collect("halves", 30)
    t = dp.fit(eps, 4, maze.MAX_STEPS)
    ds, labels = qdt.relabelled_dataset(eps, t, maze.ENV_ID, 4)
    for i, (e, lab) in enumerate(zip(eps, labels)):
        assert lab[0] >= e.ret - 1e-6  # never below the data's own return
        np.testing.assert_allclose(ds.rtg[i, : len(lab)], lab / 10.0, rtol=1e-6)
    astray = [lab for e, lab in zip(eps, labels) if e.behaviour == 0]
    # The astray episodes' start is now worth the stitched path (13..15 less any detour
    # its first move makes), not -8: more than the prize (at most 7) ever earned.
    assert astray and all(11.0 - 1e-6 <= lab[0] <= 15.0 + 1e-6 for lab in astray)
    # ... but their step off the middle into the pit keeps its bad label.
    for e, lab in zip(eps, labels):
        if e.behaviour == 0:
            at_mid = int(np.flatnonzero((e.observations[:-1] == maze.MIDDLE).all(1))[0])
            assert lab[at_mid] < 0
    assert qdt.relabel(eps[0], t)[0] == pytest.approx(labels[0][0])
