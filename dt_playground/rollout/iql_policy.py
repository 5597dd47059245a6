"""IQL acting in N episodes at once, through the DT's own lock-step runner.

`IQLPolicy` has the interface `run_episodes` drives (`reset`, `act`, `observe`, ...), so
an IQL checkpoint plays the same seeds, sweeps and cards as a DT. IQL's objective is
fixed: it takes no target, so every target plays the same greedy policy (the trace still
records the return asked for minus the return collected, as a DT's would).
"""

from __future__ import annotations

import numpy as np
import torch

from dt_playground.dt.return_head import is_best
from dt_playground.envs.registry import action_scale
from dt_playground.offline.store import IQLCheckpoint

IGNORES_TARGETS = (
    "IQL ignores the target return: its objective is fixed, so every target plays the same policy."
)


class IQLPolicy:
    """An IQL checkpoint's greedy actor acting in N episodes."""

    offers_best = False  # no return-distribution band: the trace's band stays None

    def __init__(self, ck: IQLCheckpoint):
        self.model, self.norm, self.spec = ck.model, ck.norm, ck.spec
        self.scale = action_scale(self.spec.env_id)

    def reset(self, targets, seeds, max_steps: int | None = None) -> None:
        n, T = len(targets), max_steps or self.spec.max_ep_len
        self.rtg_raw = np.zeros((n, T), np.float64)
        self.next_rtg = np.array([np.nan if is_best(x) else float(x) for x in targets])
        self.band = np.full((n, T, 3), np.nan)

    @torch.inference_mode()
    def act(self, rows: np.ndarray, t: int, obs: np.ndarray) -> list:
        self.rtg_raw[rows, t] = self.next_rtg[rows]
        out = self.model.act(torch.from_numpy(self.norm.states(obs))).numpy()
        if self.spec.discrete:
            return out.tolist()
        return list((out * self.scale).astype(np.float32))

    def observe(self, rows: np.ndarray, rewards: np.ndarray) -> None:
        self.next_rtg[rows] -= rewards

    def reprompt(self, row: int, target) -> None:
        self.next_rtg[row] = np.nan if is_best(target) else float(target)

    def fill_band(self, lengths) -> None:  # no return model
        return None
