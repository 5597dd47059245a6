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

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .envs import EnvSpec, get_spec

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray | int]


def cartpole_expert(obs: np.ndarray, rng=None, bias: float = 0.0) -> int:
    """PD controller on pole angle and angular velocity (plus a weak cart term).

    ``bias`` > 0 makes a coherent but worse controller: the cart drifts and
    eventually leaves the track (bias 0.3 -> ~280, 0.8 -> ~145).
    """
    x, x_dot, theta, theta_dot = obs
    return int(0.05 * x + 0.2 * x_dot + 10.0 * theta + 1.5 * theta_dot + bias > 0)


def pendulum_expert(obs: np.ndarray, rng=None, max_torque: float = 2.0) -> np.ndarray:
    """Energy-based swing-up, then PD balance near the top (theta = 0 is upright).

    A lower ``max_torque`` is a coherent but weaker controller (1.0 -> ~-220,
    0.5 -> ~-460, 0 -> ~-1160).
    """
    cos_t, sin_t, theta_dot = obs
    if cos_t > 0.8:  # close to upright: PD on the angle
        u = -10.0 * np.arctan2(sin_t, cos_t) - 2.0 * theta_dot
    else:
        # Pendulum-v1: theta_dd = 15 sin(theta) + 3 u; energy 0 = upright at rest.
        # Pump along the motion while short of energy, brake gently when over.
        energy = 0.5 * theta_dot**2 + 15.0 * (cos_t - 1.0)
        u = 2.0 * np.sign(theta_dot) if energy < 0 else -0.5 * np.sign(theta_dot)
    return np.clip(np.array([u], dtype=np.float32), -max_torque, max_torque)


def lunarlander_expert(
    obs: np.ndarray, rng=None, hover_bias: float = 0.0, angle_gain: float = 1.0
) -> int:
    """Gymnasium's LunarLander `heuristic` (same gains and thresholds), with two knobs
    for coherent but worse pilots: ``hover_bias`` < 0 under-uses the main engine
    (hard landings), > 0 over-uses it (hovers, burns fuel); ``angle_gain`` < 1 is
    sluggish attitude control. Defaults reproduce the heuristic exactly."""
    s = obs
    angle_targ = np.clip(s[0] * 0.5 + s[2] * 1.0, -0.4, 0.4)
    hover_targ = 0.55 * np.abs(s[0])
    angle_todo = ((angle_targ - s[4]) * 0.5 - s[5] * 1.0) * angle_gain
    hover_todo = (hover_targ - s[1]) * 0.5 - s[3] * 0.5 + hover_bias
    if s[6] or s[7]:  # legs have contact
        angle_todo = 0
        hover_todo = -s[3] * 0.5 + hover_bias
    if hover_todo > np.abs(angle_todo) and hover_todo > 0.05:
        return 2
    if angle_todo < -0.05:
        return 3
    if angle_todo > +0.05:
        return 1
    return 0


class LinearPolicy:
    """A linear policy on normalised observations: ``a = clip(W (obs - mu) / sigma)``.

    This is what ARS trains for the MuJoCo tasks (see `ars.py`).
    """

    def __init__(
        self,
        weights: np.ndarray,
        obs_mean: np.ndarray,
        obs_std: np.ndarray,
        low: float = -1.0,
        high: float = 1.0,
    ):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.asarray(obs_std, dtype=np.float64)
        self.low, self.high = low, high

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        z = (np.asarray(obs, dtype=np.float64) - self.obs_mean) / self.obs_std
        return np.clip(self.weights @ z, self.low, self.high).astype(np.float32)


EXPERTS: dict[str, Callable] = {
    "CartPole-v1": cartpole_expert,
    "Pendulum-v1": pendulum_expert,
    "LunarLander-v3": lunarlander_expert,
}


def expert_policy(env_id: str | EnvSpec, **knobs) -> Policy:
    """The expert for an env, optionally degraded by its knobs (see each expert).
    MuJoCo experts are the best shipped ARS snapshot."""
    spec = get_spec(env_id)
    if spec.env_id in EXPERTS:
        fn = EXPERTS[spec.env_id]
        return functools.partial(fn, **knobs) if knobs else fn
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


@dataclass(frozen=True)
class Behaviour:
    """One behaviour policy of a dataset: the expert with ``knobs``, plus sticky
    epsilon-random actions (probability ``eps``, held 1..``hold`` steps)."""

    eps: float = 0.0
    hold: int = 1
    knobs: tuple = ()  # (name, value) pairs passed to the expert

    def label(self) -> str:
        parts = [f"{k}={v:g}" for k, v in self.knobs] + ([f"eps={self.eps:g}"] if self.eps else [])
        return ", ".join(parts) or "expert"

    def make(self, env) -> Policy:
        base = expert_policy(env.spec.id, **dict(self.knobs))
        return StickyRandom(base, env.action_space, eps=self.eps, hold=self.hold)


def _knob(name: str, values, **kw) -> list[Behaviour]:
    return [Behaviour(knobs=((name, v),), **kw) for v in values]


def _eps(values, hold: int) -> list[Behaviour]:
    return [Behaviour(eps=e, hold=hold) for e in values]


# Behaviour grids for the mixed-quality datasets, chosen by trial on seeds 0-9
# so returns spread from near-random to expert. Most low-return episodes come
# from *coherent* worse controllers (a drifting cart, a weak motor, a pilot who
# lands too hard) rather than random actions: a DT can imitate a coherent
# policy when asked for its return, whereas random actions are not
# reproducible by a greedy policy (and barely hurt BC, which learns the mode).
# Episodes cycle through the grid.
BEHAVIOURS: dict[str, list[Behaviour]] = {
    "CartPole-v1": [
        Behaviour(),
        *_knob("bias", (0.2, 0.25, 0.3, 0.4, 0.5, 0.8, 1.2, 2.0, 2.3, 2.6, 3.0)),
        *_eps((0.5, 1.0), hold=1),
    ],
    "Pendulum-v1": [
        Behaviour(),
        *_knob("max_torque", (1.5, 1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)),
        *_eps((0.05, 0.2), hold=8),
    ],
    "LunarLander-v3": [
        Behaviour(),
        Behaviour(),
        *_knob("hover_bias", (-0.05, -0.07, -0.09, -0.1, -0.15, -0.2, -0.3)),
        *_knob("angle_gain", (0.3, 0.5)),
        *_eps((0.02, 0.05, 0.1, 0.3, 0.8), hold=8),
    ],
}
