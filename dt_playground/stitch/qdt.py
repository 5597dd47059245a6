"""QDT (Yamagata et al. 2023): the DT retrained on returns-to-go relabelled by a value function.

A DT learns P(action | state, return-to-go) from what the data did. On
`halves`, the return-to-go at every start state is about -10 (astray episodes
end in the pit), so asking the DT for more from S is asking for a pair it has
never seen. QDT rewrites the labels: walking each episode backwards,

    R̂_t = r_t + max(R̂_{t+1}, V(s_{t+1}))       (R̂ after the last step: 0)

where V is the offline RL table's value (dp.py). Where the data's own future
is worse than the best known continuation, the label becomes that
continuation's value. The astray episodes' "S -> M" steps are relabelled with
the value of reaching the goal from M; their "M -> dead end" step keeps its
true, bad label (V is taken *after* the step, so a bad action is not
credited). The retrained DT, asked for the stitched return at S, then has data
that says how to earn it.
"""

from __future__ import annotations

import numpy as np

from dt_playground.data.windows import OfflineDataset
from dt_playground.envs.episodes import Episode
from dt_playground.envs.registry import get_spec
from dt_playground.stitch.dp import QTable


def relabel(episode: Episode, table: QTable) -> np.ndarray:
    """QDT's returns-to-go (T,) for one episode (module docstring). The step into a
    terminal state has no future: its label is its reward."""
    T = len(episode)
    out = np.zeros(T, np.float64)
    future = 0.0  # R̂_{t+1}
    for t in range(T - 1, -1, -1):
        cont = future
        terminal = t == T - 1 and episode.terminated
        if not terminal:
            v = table.value(episode.observations[t + 1])
            if v is not None:
                cont = max(future, v)
        out[t] = float(episode.rewards[t]) + cont
        future = out[t]
    return out


def relabelled_dataset(
    episodes: list[Episode], table: QTable, env_id: str, act_dim: int
) -> tuple[OfflineDataset, list[np.ndarray]]:
    """An `OfflineDataset` of ``episodes`` whose returns-to-go are QDT's (states,
    actions and normalisation unchanged), and the relabelled returns-to-go."""
    ds = OfflineDataset(episodes, get_spec(env_id), act_dim)
    labels = [relabel(ep, table) for ep in episodes]
    for i, lab in enumerate(labels):
        ds.rtg[i, : len(lab)] = ds.norm.returns(lab)
    return ds, labels
