"""Offline data as model inputs: dataset summaries, normalisation and windows.

`gather_windows` is the single function that turns per-episode buffers into
(B, K) model windows; the trainer's sampler and the rollout policy both call it,
so inference sees exactly what training saw (docs/ARCHITECTURE.md,
"Inference sees what training saw"). Minari I/O lives in `data/storage.py`,
episodes in `envs/episodes.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dt_playground.envs.episodes import Episode, behaviour_names, dataset_sha256, returns_to_go
from dt_playground.envs.registry import EnvSpec, action_scale
from dt_playground.errors import DatasetError

# ---------------------------------------------------------------- statistics


def dataset_summary(episodes: list[Episode], bins: int = 20) -> dict:
    """Return distribution and content hash of a dataset; travels inside every
    checkpoint (config.json's ``dataset``). Behaviours are named by `Episode.label`."""
    rets = np.array([e.ret for e in episodes])
    lens = np.array([len(e) for e in episodes])
    counts, edges = np.histogram(rets, bins=bins)
    top = np.sort(rets)[-max(1, len(rets) // 10) :]
    q = np.quantile(rets, [0.1, 0.25, 0.5, 0.75, 0.9])
    tags = np.array([e.behaviour for e in episodes])
    labels = behaviour_names(episodes)
    behaviours = {}
    for tag in sorted(set(tags[~np.isnan(tags)].tolist())):
        sel = rets[tags == tag]
        key = f"{tag:g}"
        behaviours[key] = {"episodes": int(len(sel)), "return_mean": float(sel.mean())}
        if key in labels:
            behaviours[key]["label"] = labels[key]
    return {
        "sha256": dataset_sha256(episodes),
        "episodes": int(len(rets)),
        "steps": int(lens.sum()),
        "return_min": float(rets.min()),
        "return_max": float(rets.max()),
        "return_mean": float(rets.mean()),
        "return_std": float(rets.std()),
        "return_p10": float(q[0]),
        "return_p25": float(q[1]),
        "return_median": float(q[2]),
        "return_p75": float(q[3]),
        "return_p90": float(q[4]),
        "return_deciles": np.quantile(rets, np.linspace(0, 1, 11)).tolist(),
        "return_top10_mean": float(top.mean()),
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "length_min": int(lens.min()),
        "length_mean": float(lens.mean()),
        "length_max": int(lens.max()),
        "lengths": lens.tolist(),
        "returns": rets.round(3).tolist(),
        "behaviours": behaviours,
    }


@dataclass
class Normaliser:
    """How raw states and returns become model inputs (stored in checkpoints)."""

    state_mean: np.ndarray
    state_std: np.ndarray
    return_scale: float

    def states(self, s: np.ndarray) -> np.ndarray:
        return ((s - self.state_mean) / self.state_std).astype(np.float32)

    def returns(self, r: np.ndarray | float) -> np.ndarray:
        return (np.asarray(r, dtype=np.float64) / self.return_scale).astype(np.float32)


def encode_actions(
    actions: np.ndarray, act_dim: int, discrete: bool, scale: np.ndarray | None = None
) -> np.ndarray:
    """Actions as model inputs/targets: one-hot (T, A) for discrete, (T, A) floats
    divided by the action half-range ``scale`` (so they lie in [-1, 1]) otherwise."""
    if discrete:
        return np.eye(act_dim, dtype=np.float32)[np.asarray(actions, dtype=np.int64).reshape(-1)]
    a = np.asarray(actions, dtype=np.float32).reshape(len(actions), act_dim)
    return a / scale if scale is not None else a


def gather_windows(
    states: np.ndarray,
    actions: np.ndarray,
    rtg: np.ndarray,
    rows: np.ndarray,
    ends: np.ndarray,
    K: int,
    max_ep_len: int,
) -> dict:
    """The last ``K`` steps ending at ``ends`` (inclusive) of episodes ``rows``.

    Buffers are (E, T, ...) with step ``t`` of episode ``e`` at ``[e, t]``.
    Windows shorter than ``K`` (early in an episode) are left-padded with zeros
    and ``mask == 0``. Timesteps are absolute positions in the episode.
    Returns float32/int64 arrays: states (B,K,S), actions (B,K,A), rtg (B,K,1),
    timesteps (B,K), mask (B,K).
    """
    idx = ends[:, None] - K + 1 + np.arange(K)[None, :]  # (B, K)
    mask = idx >= 0
    idx = np.where(mask, idx, 0)
    r = rows[:, None]
    m = mask[..., None]
    return {
        "states": np.where(m, states[r, idx], 0.0).astype(np.float32),
        "actions": np.where(m, actions[r, idx], 0.0).astype(np.float32),
        "rtg": np.where(m, rtg[r, idx][..., None], 0.0).astype(np.float32),
        "timesteps": np.minimum(idx, max_ep_len - 1).astype(np.int64),
        "mask": mask.astype(np.float32),
    }


@dataclass
class OfflineDataset:
    """Episodes packed into padded buffers for window sampling."""

    episodes: list[Episode]
    spec: EnvSpec
    act_dim: int
    norm: Normaliser = field(init=False)

    def __post_init__(self):
        if not self.episodes:
            raise DatasetError("No episodes to train on.")
        eps = self.episodes
        self.lengths = np.array([len(e) for e in eps])
        all_obs = np.concatenate([e.observations[:-1] for e in eps])
        self.state_dim = all_obs.shape[1]
        self.norm = Normaliser(all_obs.mean(0), all_obs.std(0) + 1e-6, self.spec.return_scale)
        E, T = len(eps), int(self.lengths.max())
        scale = action_scale(self.spec.env_id)
        self.states = np.zeros((E, T, self.state_dim), np.float32)
        self.actions = np.zeros((E, T, self.act_dim), np.float32)
        self.rtg = np.zeros((E, T), np.float32)
        for i, e in enumerate(eps):
            n = len(e)
            self.states[i, :n] = self.norm.states(e.observations[:-1])
            self.actions[i, :n] = encode_actions(e.actions, self.act_dim, self.spec.discrete, scale)
            self.rtg[i, :n] = self.norm.returns(returns_to_go(e.rewards))
        # Sampling an end step uniformly over all steps = episodes weighted by length.
        self.window_rows = np.repeat(np.arange(E), self.lengths)
        self.window_ends = np.concatenate([np.arange(n) for n in self.lengths])

    def summary(self) -> dict:
        return dataset_summary(self.episodes)

    def sample(self, batch_size: int, K: int, rng: np.random.Generator) -> dict:
        """A training batch of windows; ``targets`` are the actions to predict."""
        pick = rng.integers(len(self.window_rows), size=batch_size)
        return gather_windows(
            self.states,
            self.actions,
            self.rtg,
            self.window_rows[pick],
            self.window_ends[pick],
            K,
            self.spec.max_ep_len,
        )

    def top_fraction(self, fraction: float) -> OfflineDataset:
        """The best ``fraction`` of episodes by return (the data %BC trains on)."""
        order = np.argsort([-e.ret for e in self.episodes], kind="stable")
        keep = max(1, int(round(len(order) * fraction)))
        return OfflineDataset([self.episodes[i] for i in order[:keep]], self.spec, self.act_dim)
