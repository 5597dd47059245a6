"""Linear behaviour policies for the MuJoCo tasks, trained with Augmented Random Search.

ARS V2-t (Mania, Guy & Recht 2018): a linear policy ``a = clip(W (s - mu) / sigma, -1, 1)``
on online-normalised states. Each iteration draws ``N`` Gaussian directions
``delta``, plays ``W +- nu delta`` (both from the same reset seed, which lowers
the variance of ``r+ - r-``), keeps the ``b`` directions with the best
``max(r+, r-)`` and steps ``W += alpha / (b sigma_R) sum (r+ - r-) delta``.
While training, the env's alive bonus is subtracted from every reward (the
paper's trick against "stand still and collect the bonus"), optionally only
for the first ``shift_off_steps`` env steps. One seeded generator drives a run.

Every iterate is kept (a few hundred floats each); `snapshots.save_snapshots` then grades
them and writes ~12 whose returns spread from the initial (zero) policy to the
best, plus noisy versions of the best, as `experts.write_snapshots` files. The
datasets are played from those files (`collect.py`), never from a training run.

Shipped runs (one core of a 2-core CPU; returns: mean +- std over 10 episodes):
Hopper seed 3, 1.5M steps, ~3 min: best 3329 +- 19 (seeds 0-2 reached 2976,
~300 (hopping in place), 2917). HalfCheetah seed 0, 8M steps, ~6 min: best
5126 +- 30. Walker2d seed 0, 10M steps, bonus dropped after 4M, ~17 min: best
5779 +- 109 (with the bonus never subtracted: stands still, ~1006).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dt_playground.behaviour.experts import (
    linear_action,
)
from dt_playground.behaviour.snapshots import save_snapshots
from dt_playground.envs.registry import EnvSpec, get_spec, make_env
from dt_playground.envs.seeds import ARS_GRADING_SEED

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ARSConfig:
    """ARS V2-t hyperparameters.

    Attributes:
        n_directions: N, directions sampled per iteration (2N rollouts).
        top_b: b, best directions used in the update.
        step_size: alpha.
        noise: nu, exploration noise std on the weights.
        max_steps: training budget in env steps (stops after the iteration
            that crosses it).
        shift: reward subtracted per step during training (the env's alive bonus).
        shift_off_steps: after this many env steps the shift is dropped
            (``None``: never).
    """

    n_directions: int
    top_b: int
    step_size: float
    noise: float
    max_steps: int
    shift: float = 0.0
    shift_off_steps: int | None = None


DEFAULT_CONFIGS: dict[str, ARSConfig] = {
    "Hopper-v5": ARSConfig(8, 4, 0.01, 0.025, max_steps=1_500_000, shift=1.0),
    "HalfCheetah-v5": ARSConfig(32, 4, 0.02, 0.03, max_steps=8_000_000),
    "Walker2d-v5": ARSConfig(
        16, 8, 0.02, 0.025, max_steps=10_000_000, shift=1.0, shift_off_steps=4_000_000
    ),
}
# Training seeds of the shipped snapshots (Hopper seeds 0-2 peaked at 2976, 300
# (stuck hopping in place), 2917; seed 3 reached 3329).
DEFAULT_SEEDS: dict[str, int] = {"Hopper-v5": 3, "HalfCheetah-v5": 0, "Walker2d-v5": 0}


def default_config(env_id: str | EnvSpec) -> ARSConfig:
    """The shipped hyperparameters for an env (``shift`` = the spec's alive bonus)."""
    spec = get_spec(env_id)
    if spec.env_id not in DEFAULT_CONFIGS:
        raise ValueError(
            f"No ARS configuration for {spec.env_id}; MuJoCo envs only: "
            f"{', '.join(DEFAULT_CONFIGS)}"
        )
    return DEFAULT_CONFIGS[spec.env_id]


# ---------------------------------------------------------------- training


class RunningStats:
    """Running mean/variance of states (Chan et al.'s parallel update)."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.size)
        if len(x) == 0:
            return
        n_b, mean_b = len(x), x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        n = self.n + n_b
        d = mean_b - self.mean
        self.mean = self.mean + d * n_b / n
        self.m2 = self.m2 + m2_b + d**2 * self.n * n_b / n
        self.n = n

    @property
    def std(self) -> np.ndarray:
        if self.n < 2:
            return np.ones_like(self.mean)
        std = np.sqrt(self.m2 / self.n)
        return np.where(std < 1e-8, 1.0, std)


@dataclass
class History:
    """Every iterate of a run: policy ``k`` is the one after ``k`` updates.

    ``proxy[k]`` is the mean (unshifted) return of the 2N perturbed rollouts
    around policy ``k`` (NaN for the last one, which was never played).
    """

    weights: np.ndarray  # (K, A, S)
    obs_mean: np.ndarray  # (K, S)
    obs_std: np.ndarray  # (K, S)
    env_steps: np.ndarray  # (K,) env steps used before policy k existed
    proxy: np.ndarray  # (K,)


def _rollout(env, W, mu, sd, seed: int, shift: float, states: list) -> tuple[float, float, int]:
    """One episode of the linear policy: (shifted return, true return, steps)."""
    obs, _ = env.reset(seed=int(seed))
    total = shifted = 0.0
    steps = 0
    done = False
    while not done:
        states.append(obs)
        a = linear_action(W, mu, sd, obs)
        obs, r, term, trunc, _ = env.step(a)
        total += r
        shifted += r - shift
        steps += 1
        done = term or trunc
    return shifted, total, steps


def train_ars(
    env_id: str | EnvSpec,
    seed: int = 0,
    config: ARSConfig | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> History:
    """Run ARS V2-t and return every iterate (see `History`).

    ``progress(env_steps, max_steps)`` is called after each iteration; ``log``
    gets a one-line summary every 10 iterations.
    """
    spec = get_spec(env_id)
    cfg = config or default_config(spec)
    env = make_env(spec)
    obs_dim = int(np.prod(env.observation_space.shape or ()))
    act_dim = int(np.prod(env.action_space.shape or ()))
    rng = np.random.default_rng(seed)
    stats = RunningStats(obs_dim)
    W = np.zeros((act_dim, obs_dim))
    hist_w, hist_mu, hist_sd, hist_steps, hist_proxy = (
        [W.copy()],
        [stats.mean.copy()],
        [stats.std.copy()],
        [0],
        [],
    )
    steps_used = 0
    t0 = time.perf_counter()
    it = 0
    while steps_used < cfg.max_steps:
        shift_on = cfg.shift_off_steps is None or steps_used < cfg.shift_off_steps
        shift = cfg.shift if shift_on else 0.0
        mu, sd = stats.mean.copy(), stats.std.copy()
        deltas = rng.standard_normal((cfg.n_directions, act_dim, obs_dim))
        seeds = rng.integers(0, 2**31 - 1, size=cfg.n_directions)
        r_pos, r_neg, true_rets, states = [], [], [], []
        for d, s in zip(deltas, seeds):
            for sign, out in ((1.0, r_pos), (-1.0, r_neg)):
                shifted, total, n = _rollout(
                    env, W + sign * cfg.noise * d, mu, sd, s, shift, states
                )
                out.append(shifted)
                true_rets.append(total)
                steps_used += n
        r_pos, r_neg = np.array(r_pos), np.array(r_neg)
        top = np.argsort(-np.maximum(r_pos, r_neg), kind="stable")[: cfg.top_b]
        sigma_r = np.concatenate([r_pos[top], r_neg[top]]).std()
        if sigma_r < 1e-8:
            sigma_r = 1.0
        # A plain loop, not tensordot: BLAS's summation order depends on the CPU.
        step = np.zeros_like(W)
        for diff, d in zip(r_pos[top] - r_neg[top], deltas[top]):
            step += diff * d
        W = W + cfg.step_size / (cfg.top_b * sigma_r) * step
        stats.update(np.asarray(states))
        hist_proxy.append(float(np.mean(true_rets)))
        hist_w.append(W.copy())
        hist_mu.append(stats.mean.copy())
        hist_sd.append(stats.std.copy())
        hist_steps.append(steps_used)
        it += 1
        if progress:
            progress(min(steps_used, cfg.max_steps), cfg.max_steps)
        if it % 10 == 0 and log:
            log(
                f"{spec.env_id} it {it} steps {steps_used} proxy {hist_proxy[-1]:.1f} "
                f"best {max(hist_proxy):.1f} t {time.perf_counter() - t0:.0f}s"
            )
    env.close()
    return _history(hist_w, hist_mu, hist_sd, hist_steps, hist_proxy)


def _history(w, mu, sd, steps, proxy) -> History:
    proxy = list(proxy) + [float("nan")] * (len(w) - len(proxy))
    return History(
        np.asarray(w),
        np.asarray(mu),
        np.asarray(sd),
        np.asarray(steps, dtype=np.int64),
        np.asarray(proxy),
    )


def train_expert(
    env_id: str,
    seed: int | None = None,
    max_steps: int | None = None,
    out_dir: Path | str | None = None,
    config: ARSConfig | None = None,
    n_snapshots: int = 12,
    eval_episodes: int = 10,
    eval_seed: int = ARS_GRADING_SEED,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train a linear ARS expert and write its graded snapshots.

    Args:
        env_id: a MuJoCo env of the registry (Hopper-v5, HalfCheetah-v5, Walker2d-v5).
        seed: training seed; ``None`` = the shipped snapshots' (`DEFAULT_SEEDS`,
            also recorded in ``snapshots.json``).
        max_steps: env-step budget; ``None`` uses the shipped config's.
        out_dir: where to write; ``None`` = ``pretrained/experts/<EnvId>/``.
        config: ARS hyperparameters; ``None`` = `default_config(env_id)`.
        n_snapshots: how many iterates to keep, spread over the learning curve.
        eval_episodes: episodes per snapshot evaluation.
        eval_seed: first reset seed of the grading episodes.
        progress: ``progress(env_steps_done, max_steps)`` after each iteration.
        log: optional line logger.

    Returns:
        The snapshot entries written to ``snapshots.json``. The shipped
        snapshots were graded on seeds 1_000_000.. (their ``eval_seed``); pass
        ``eval_seed=1_000_000`` to grade as they were.
    """
    cfg = config or default_config(env_id)
    if seed is None:
        seed = DEFAULT_SEEDS.get(get_spec(env_id).env_id, 0)
    if max_steps is not None:
        cfg = replace(cfg, max_steps=int(max_steps))
    hist = train_ars(env_id, seed, cfg, progress=progress, log=log)
    return save_snapshots(
        env_id, hist, cfg, seed, out_dir, n_snapshots, eval_episodes, eval_seed, log=log
    )
