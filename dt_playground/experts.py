"""Behaviour policies of graded quality.

Each environment has an expert (a hand-written controller, or a linear ARS
policy for MuJoCo) and a way to degrade it by a *level* in [0, 1]:
1 is the expert, 0 is near-random. Discrete envs mix in "sticky" random
actions (a random action held for a few steps, which is a more coherent
mistake than a single flipped action); continuous envs add Gaussian action
noise. A dataset is many episodes at many levels, so its returns spread from
near-random to expert.

A policy is a callable ``policy(obs, rng) -> action``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .envs import EnvSpec, get_spec

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray | int]


def cartpole_expert(obs: np.ndarray, rng: np.random.Generator) -> int:
    """PD controller on pole angle and angular velocity (plus a weak cart term)."""
    x, x_dot, theta, theta_dot = obs
    u = 0.05 * x + 0.2 * x_dot + 10.0 * theta + 1.5 * theta_dot
    return int(u > 0)


def pendulum_expert(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Energy-based swing-up, then PD balance near the top (theta = 0 is upright)."""
    cos_t, sin_t, theta_dot = obs
    if cos_t > 0.8:  # close to upright: PD on the angle
        u = -10.0 * np.arctan2(sin_t, cos_t) - 2.0 * theta_dot
    else:
        # Pendulum-v1: theta_dd = 15 sin(theta) + 3 u; energy 0 = upright at rest.
        # Pump along the motion while short of energy, brake gently when over.
        energy = 0.5 * theta_dot**2 + 15.0 * (cos_t - 1.0)
        u = 2.0 * np.sign(theta_dot) if energy < 0 else -0.5 * np.sign(theta_dot)
    return np.clip(np.array([u], dtype=np.float32), -2.0, 2.0)


class _DiscreteLander:
    """The two attributes gymnasium's LunarLander `heuristic` reads from `env`."""

    class unwrapped:  # noqa: N801 - mimics env.unwrapped
        continuous = False


def lunarlander_expert(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Gymnasium's own LunarLander heuristic."""
    from gymnasium.envs.box2d.lunar_lander import heuristic

    return int(heuristic(_DiscreteLander, obs))


class LinearPolicy:
    """A linear policy on normalised observations: ``a = clip(W (obs - mu) / sigma)``.

    This is what ARS trains for the MuJoCo tasks (see `ars.py`).
    """

    def __init__(self, weights: np.ndarray, obs_mean: np.ndarray, obs_std: np.ndarray,
                 low: float = -1.0, high: float = 1.0):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.asarray(obs_std, dtype=np.float64)
        self.low, self.high = low, high

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        z = (np.asarray(obs, dtype=np.float64) - self.obs_mean) / self.obs_std
        return np.clip(self.weights @ z, self.low, self.high).astype(np.float32)


EXPERTS: dict[str, Policy] = {
    "CartPole-v1": cartpole_expert,
    "Pendulum-v1": pendulum_expert,
    "LunarLander-v3": lunarlander_expert,
}


def expert_policy(env_id: str | EnvSpec) -> Policy:
    """The expert for an env (MuJoCo experts are the best shipped ARS snapshot)."""
    spec = get_spec(env_id)
    if spec.env_id in EXPERTS:
        return EXPERTS[spec.env_id]
    from .ars import load_best_snapshot

    return load_best_snapshot(spec.env_id)


class StickyRandom:
    """Expert with epsilon-random actions: with probability ``eps`` per step a
    uniformly random action starts and is held for 1..``hold`` steps (a held
    mistake is more coherent than a single flipped action)."""

    def __init__(self, base: Policy, action_space, eps: float, hold: int = 1):
        self.base, self.space, self.eps, self.hold = base, action_space, eps, hold
        self._held, self._left = None, 0

    def __call__(self, obs: np.ndarray, rng: np.random.Generator):
        if self._left > 0:
            self._left -= 1
            return self._held
        if rng.random() < self.eps:
            if hasattr(self.space, "n"):
                self._held = int(rng.integers(self.space.n))
            else:
                self._held = rng.uniform(self.space.low, self.space.high).astype(np.float32)
            self._left = int(rng.integers(0, self.hold))
            return self._held
        return self.base(obs, rng)


class GaussianNoise:
    """Expert plus Gaussian action noise of scale ``sigma`` (in units of the half-range)."""

    def __init__(self, base: Policy, action_space, sigma: float):
        self.base, self.sigma = base, sigma
        self.low, self.high = action_space.low, action_space.high

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = np.asarray(self.base(obs, rng), dtype=np.float32)
        noise = rng.normal(0.0, self.sigma, size=a.shape) * (self.high - self.low) / 2.0
        return np.clip(a + noise, self.low, self.high).astype(np.float32)


# Per-env noise grids for the mixed-quality datasets: (eps, hold) pairs chosen
# (by trial on seeds 0-9) so that episode returns spread from near-random to
# expert instead of piling up at the ends. Episodes cycle through the grid.
NOISE_GRIDS: dict[str, list[tuple[float, int]]] = {
    "CartPole-v1": [(e, 1) for e in (0.0, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 1.0)],
    "Pendulum-v1": [(e, 8) for e in (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)],
    "LunarLander-v3": [(e, 8) for e in (0.0, 0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)],
}


def behaviour_policy(env, eps: float, hold: int = 1, base: Policy | None = None) -> Policy:
    """The env's expert (or ``base``) degraded by sticky epsilon-random actions."""
    base = base or expert_policy(env.spec.id)
    return StickyRandom(base, env.action_space, eps=eps, hold=hold)
