"""What an episode is, and how one is played: the leaf every other stage builds on.

`Episode` is a recorded episode in Minari's layout (one more observation than
actions: ``observations[T]`` is the state after the last action). `Trace` is
what a model's rollout keeps: actions, rewards and the returns-to-go it was
given, enough to replay it (gymnasium envs are deterministic from a seed).
`run_episode` plays a behaviour policy and records an `Episode`; datasets, ARS
grading and tests all call it, so "same seed, same policy" means the same
episode everywhere.

This module imports numpy only (no torch, no gymnasium), so rendering and plots
can use `Trace` without loading a model stack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Progress = Callable[[int, int], object]  # (done, total): how far a long call has got

# A behaviour policy: ``policy(obs, rng) -> action``. Any randomness comes from ``rng``.
Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray | int]


@dataclass
class Episode:
    """One episode. ``observations`` has ``len(actions) + 1`` rows (Minari layout)."""

    observations: np.ndarray  # (T+1, S)
    actions: np.ndarray  # (T,) int for discrete, (T, A) float otherwise
    rewards: np.ndarray  # (T,)
    terminated: bool
    truncated: bool
    seed: int | None = None
    behaviour: float = float("nan")  # which behaviour policy made it (grid index), if known
    label: str = ""  # that behaviour's readable name, if known

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))


@dataclass
class Trace:
    """What one episode did. ``rtg[t]`` is the return-to-go the model was given at step t."""

    env_id: str
    seed: int
    target: float | str  # a return, or "best" (dt.return_head)
    actions: np.ndarray  # (T,) ints or (T, A)
    rewards: np.ndarray  # (T,)
    rtg: np.ndarray  # (T,)
    terminated: bool = False
    wall_time: float = 0.0
    # Re-prompts: step -> the return-to-go the model was given anew at that step.
    switches: dict = field(default_factory=dict)
    # Per step, the p10/p50/p90 of the model's predicted return-to-go P(R_t | history)
    # (T, 3), raw units, NaN where not computed; None without a return head (dt.return_head).
    return_band: np.ndarray | None = None
    # Per step, the critic's value of the action played: the undiscounted return it
    # expects from there (T,), raw units; None when the episode was not checked.
    critic_value: np.ndarray | None = None
    checked: bool = False  # played with a critic choosing among candidate actions

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))

    def to_dict(self) -> dict:
        """The JSON record the CLI prints."""
        out = {
            "target": self.target if isinstance(self.target, str) else float(self.target),
            "seed": int(self.seed),
            "return": self.ret,
            "length": self.length,
        }
        if isinstance(self.target, str):  # "best": the returns-to-go it sampled, step by step
            out["rtg"] = [round(float(x), 4) for x in self.rtg]
        if self.checked:
            out["checked"] = True
        return out


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """Undiscounted returns-to-go: ``rtg[t] = sum(rewards[t:])``."""
    return np.cumsum(np.asarray(rewards, dtype=np.float64)[::-1])[::-1].copy()


def run_episode(
    env, policy: Policy, seed: int, rng: np.random.Generator, behaviour: float = float("nan")
) -> Episode:
    """Play one episode of ``policy`` from ``env.reset(seed=seed)`` and record it.

    Observations are stored as float32 and rewards as float32 (what Minari
    files hold), so an episode recorded here and one read back from disk are
    byte-identical (`dataset_sha256` relies on it).
    """
    obs, _ = env.reset(seed=int(seed))
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs, rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return Episode(
        np.asarray(observations, dtype=np.float32),
        np.asarray(actions),
        np.asarray(rewards, dtype=np.float32),
        bool(terminated),
        bool(truncated),
        int(seed),
        behaviour,
    )


def dataset_sha256(episodes: list[Episode]) -> str:
    """The dataset's content hash: what a model learns from, in a fixed byte form.

    SHA-256 over, for each episode in order: its step count ``T`` as a
    little-endian uint64, then its observations ``(T+1, S)``, actions ``(T, A)``
    (discrete actions as ``(T, 1)``) and rewards ``(T,)``, each as little-endian
    float32 in C order. Seeds, flags, labels and the file layout do not enter,
    so an episode collected in memory and the same one read back from Minari
    hash alike.
    """
    h = hashlib.sha256()
    for ep in episodes:
        T = len(ep)
        h.update(np.array([T], dtype="<u8").tobytes())
        for arr in (ep.observations, np.asarray(ep.actions).reshape(T, -1), ep.rewards):
            h.update(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    return h.hexdigest()


def behaviour_names(episodes: list[Episode]) -> dict[str, str]:
    """Behaviour index (as ``f"{index:g}"``) -> name, from the episodes that carry both."""
    return {f"{e.behaviour:g}": e.label for e in episodes if e.label and not np.isnan(e.behaviour)}
