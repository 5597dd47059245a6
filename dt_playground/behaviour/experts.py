"""Behaviour policies and the ARS snapshots they are built from.

Each environment has an expert: a hand-written controller (CartPole, Pendulum,
LunarLander) or a linear policy trained with ARS (`ars.py`) for the MuJoCo
tasks. Knobs on the controllers, action noise (`GaussianNoise`) and sticky
random actions (`StickyRandom`) make coherent but worse versions of them;
`collect.py` arranges these into the graded behaviour grids datasets are
played with.

A policy is a callable ``policy(obs, rng) -> action`` (`episodes.Policy`).

ARS snapshots live in ``pretrained/experts/<EnvId>/`` as
``snap_<iter:04d>.safetensors`` (float32 tensors ``weights``, ``obs_mean``,
``obs_std``) plus ``snapshots.json`` (hyperparameters, seed, and each
snapshot's evaluation). This module reads and writes them; nothing is unpickled.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from dt_playground.atomic import atomic_path, write_json_atomic
from dt_playground.envs.episodes import Policy
from dt_playground.envs.registry import EnvSpec, get_spec
from dt_playground.paths import PRETRAINED_DIR

EXPERTS_ROOT = PRETRAINED_DIR / "experts"


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
        # math.atan2 (the C library's), not np.arctan2: numpy's AVX-512 version rounds
        # differently from its AVX2 one, and the dataset would depend on the CPU.
        u = -10.0 * math.atan2(sin_t, cos_t) - 2.0 * theta_dot
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

    This is what ARS trains for the MuJoCo tasks (see `ars.py`). The product is
    computed by `linear_action`, not a BLAS matvec, whose summation order
    depends on the CPU's kernel: the same snapshot gives the same actions, and
    so the same dataset, on any machine.
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
        return linear_action(self.weights, self.obs_mean, self.obs_std, obs, self.low, self.high)


def linear_action(
    weights, obs_mean, obs_std, obs, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """``clip(W (obs - mu) / sigma, low, high)`` as float32, the same on every CPU:
    elementwise IEEE products, then numpy's row sums, whose (pairwise) order is
    fixed in its source rather than chosen by a BLAS kernel for the CPU at hand."""
    z = (np.asarray(obs, dtype=np.float64) - obs_mean) / obs_std
    return np.clip(np.add.reduce(weights * z, axis=1), low, high).astype(np.float32)


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


# ---------------------------------------------------------------- ARS snapshots


def experts_dir(env_id: str | EnvSpec, root: Path | str | None = None) -> Path:
    """An env's snapshot folder: ``root`` if given, else ``pretrained/experts/<EnvId>``."""
    return Path(root) if root is not None else EXPERTS_ROOT / get_spec(env_id).env_id


def read_snapshots_json(env_id: str | EnvSpec, root: Path | str | None = None) -> dict:
    """The whole ``snapshots.json`` of an env (hyperparameters, snapshots, noisy)."""
    path = experts_dir(env_id, root) / "snapshots.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No expert snapshots for {get_spec(env_id).env_id} at {path}. "
            "Train them with `python -m dt_playground train-expert`."
        )
    return json.loads(path.read_text())


def list_snapshots(env_id: str | EnvSpec, root: Path | str | None = None) -> list[dict]:
    """The kept snapshots of an env, in training order (entries of ``snapshots.json``)."""
    return read_snapshots_json(env_id, root)["snapshots"]


def load_snapshot(env_id: str | EnvSpec, file: str, root: Path | str | None = None) -> LinearPolicy:
    """A snapshot file as a `LinearPolicy` (safetensors only; nothing is unpickled)."""
    t = load_file(str(experts_dir(env_id, root) / file))
    return LinearPolicy(t["weights"], t["obs_mean"], t["obs_std"])


def load_best_snapshot(env_id: str | EnvSpec, root: Path | str | None = None) -> LinearPolicy:
    """The snapshot with the highest recorded evaluation return."""
    best = max(list_snapshots(env_id, root), key=lambda e: e["eval_return_mean"])
    return load_snapshot(env_id, best["file"], root)


def write_snapshots(out: Path | str, policies: dict[str, LinearPolicy], meta: dict) -> None:
    """Write snapshot files (name -> policy, as float32) and ``snapshots.json``
    atomically, then remove ``snap_*.safetensors`` files not in ``policies``."""
    out = Path(out)
    for name, pol in policies.items():
        tensors = {
            k: np.asarray(getattr(pol, k), dtype=np.float32)
            for k in ("weights", "obs_mean", "obs_std")
        }
        with atomic_path(out / name, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp))
    write_json_atomic(out / "snapshots.json", meta)
    for f in out.glob("snap_*.safetensors"):
        if f.name not in policies:
            f.unlink()
