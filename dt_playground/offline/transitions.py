"""A dataset as IQL's transitions, seen exactly as the DT trained on it sees it.

States are normalised by the same `data.windows.OfflineDataset` statistics as the DT's
(mean, std + 1e-6 over every step), actions are encoded as the DT's (one-hot, or divided
by the action half-range) and returns-to-go are over the env's return scale: the critic
scores a DT's candidate actions in the DT's own units, with no conversion in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dt_playground.data.windows import Normaliser, OfflineDataset
from dt_playground.envs.episodes import Episode
from dt_playground.envs.registry import EnvSpec


@dataclass
class Transitions:
    """(N, ...) float32 arrays of one dataset's steps, and how they were normalised."""

    s: np.ndarray  # (N, S) normalised states
    a: np.ndarray  # (N, A) encoded actions
    r: np.ndarray  # (N,) raw rewards
    s2: np.ndarray  # (N, S) normalised next states
    terminal: np.ndarray  # (N,) 1 where the episode ended in a terminal state (not a time limit)
    t: np.ndarray  # (N,) step / max_ep_len
    rtg: np.ndarray  # (N,) undiscounted return-to-go / return scale
    norm: Normaliser
    returns: np.ndarray  # (E,) episode returns

    def __len__(self) -> int:
        return len(self.r)

    def reward_scale(self) -> float:
        """IQL's D4RL recipe: rewards times 1000 / (max - min episode return), so a Q of
        any env spans a similar range."""
        span = float(self.returns.max() - self.returns.min())
        return 1000.0 / span if span > 1e-6 else 1.0

    def tensors(self, reward_scale: float) -> dict[str, torch.Tensor]:
        return {
            "s": torch.from_numpy(self.s),
            "a": torch.from_numpy(self.a),
            "r": torch.from_numpy(self.r * np.float32(reward_scale)),
            "s2": torch.from_numpy(self.s2),
            "terminal": torch.from_numpy(self.terminal),
            "t": torch.from_numpy(self.t),
            "rtg": torch.from_numpy(self.rtg),
        }


def transitions(episodes: list[Episode], spec: EnvSpec, act_dim: int) -> Transitions:
    """Every step of ``episodes`` as a transition, normalised as the DT's windows."""
    data = OfflineDataset(episodes, spec, act_dim)
    s, a, r, s2, term, t, rtg = [], [], [], [], [], [], []
    for i, e in enumerate(episodes):
        n = len(e)
        s.append(data.states[i, :n])
        a.append(data.actions[i, :n])
        r.append(np.asarray(e.rewards, np.float32))
        s2.append(data.norm.states(e.observations[1 : n + 1]))
        end = np.zeros(n, np.float32)
        end[-1] = float(e.terminated)
        term.append(end)
        t.append(np.arange(n, dtype=np.float32) / spec.max_ep_len)
        rtg.append(data.rtg[i, :n])
    cat = np.concatenate
    return Transitions(
        cat(s),
        cat(a),
        cat(r),
        cat(s2),
        cat(term),
        cat(t),
        cat(rtg),
        data.norm,
        np.array([e.ret for e in episodes], np.float64),
    )
