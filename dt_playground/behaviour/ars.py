"""Linear behaviour policies for the MuJoCo tasks, trained with Augmented Random Search.

ARS V2-t (Mania, Guy & Recht 2018): a linear policy ``a = clip(W (s - mu) / sigma, -1, 1)``
on online-normalised states. Each iteration draws ``N`` Gaussian directions
``delta``, plays ``W +- nu delta`` (both from the same reset seed, which lowers
the variance of ``r+ - r-``), keeps the ``b`` directions with the best
``max(r+, r-)`` and steps ``W += alpha / (b sigma_R) sum (r+ - r-) delta``.
While training, the env's alive bonus is subtracted from every reward (the
paper's trick against "stand still and collect the bonus"), optionally only
for the first ``shift_off_steps`` env steps. One seeded generator drives a run.

Every iterate is kept (a few hundred floats each); `save_snapshots` then grades
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dt_playground.behaviour.experts import (
    GaussianNoise,
    LinearPolicy,
    experts_dir,
    linear_action,
    write_snapshots,
)
from dt_playground.envs.episodes import run_episode
from dt_playground.envs.registry import EnvSpec, get_spec, make_env
from dt_playground.envs.seeds import ARS_GRADING_SEED

# Gaussian-noise versions of the best snapshot (kept where they fill a gap)
NOISE_SIGMAS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)

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
    "Walker2d-v5": ARSConfig(16, 8, 0.02, 0.025, max_steps=10_000_000, shift=1.0,
                             shift_off_steps=4_000_000),
}
# Training seeds of the shipped snapshots (Hopper seeds 0-2 peaked at 2976, 300
# (stuck hopping in place), 2917; seed 3 reached 3329).
DEFAULT_SEEDS: dict[str, int] = {"Hopper-v5": 3, "HalfCheetah-v5": 0, "Walker2d-v5": 0}


def default_config(env_id: str | EnvSpec) -> ARSConfig:
    """The shipped hyperparameters for an env (``shift`` = the spec's alive bonus)."""
    spec = get_spec(env_id)
    if spec.env_id not in DEFAULT_CONFIGS:
        raise ValueError(f"No ARS configuration for {spec.env_id}; MuJoCo envs only: "
                         f"{', '.join(DEFAULT_CONFIGS)}")
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


def train_ars(env_id: str | EnvSpec, seed: int = 0, config: ARSConfig | None = None,
              progress: Progress | None = None,
              log: Callable[[str], None] | None = None) -> History:
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
    hist_w, hist_mu, hist_sd, hist_steps, hist_proxy = [W.copy()], [stats.mean.copy()], \
        [stats.std.copy()], [0], []
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
                shifted, total, n = _rollout(env, W + sign * cfg.noise * d, mu, sd, s, shift,
                                             states)
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
            log(f"{spec.env_id} it {it} steps {steps_used} proxy {hist_proxy[-1]:.1f} "
                f"best {max(hist_proxy):.1f} t {time.perf_counter() - t0:.0f}s")
    env.close()
    return _history(hist_w, hist_mu, hist_sd, hist_steps, hist_proxy)


def _history(w, mu, sd, steps, proxy) -> History:
    proxy = list(proxy) + [float("nan")] * (len(w) - len(proxy))
    return History(np.asarray(w), np.asarray(mu), np.asarray(sd),
                   np.asarray(steps, dtype=np.int64), np.asarray(proxy))


# ---------------------------------------------------------------- snapshots


def _policy(weights, obs_mean, obs_std) -> LinearPolicy:
    """The policy exactly as a snapshot file stores it (float32 tensors)."""
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    return LinearPolicy(f32(weights), f32(obs_mean), f32(obs_std))


def evaluate(env_id: str | EnvSpec, policy, episodes: int = 10, seed: int = ARS_GRADING_SEED,
             env=None) -> np.ndarray:
    """Returns of ``episodes`` episodes with reset seeds ``seed + k`` (and
    ``rng = default_rng([seed, k])`` for stochastic policies), played with
    `episodes.run_episode`, exactly as the datasets are recorded."""
    own = env is None
    env = env or make_env(env_id)
    rets = np.array([run_episode(env, policy, seed + k, np.random.default_rng([seed, k])).ret
                     for k in range(episodes)])
    if own:
        env.close()
    return rets


def _float_list(x) -> list[float]:
    return [round(float(v), 4) for v in x]


def save_snapshots(env_id: str | EnvSpec, history: History, config: ARSConfig, seed: int,
                   out_dir: Path | str | None = None, n_snapshots: int = 12,
                   eval_episodes: int = 10, eval_seed: int = ARS_GRADING_SEED,
                   n_best_candidates: int = 30, quick_episodes: int = 3, pool_size: int = 80,
                   log: Callable[[str], None] | None = None) -> list[dict]:
    """Grade a run's iterates and write ~``n_snapshots`` of them plus ``snapshots.json``.

    1. The ``n_best_candidates`` iterates with the highest smoothed proxy are
       evaluated on ``eval_episodes`` episodes; the best mean is the best snapshot.
    2. For return levels spaced evenly between the initial policy and the best,
       a pool of earlier iterates (``pool_size`` evenly spaced + the three whose proxy is
       nearest each level) is quick-evaluated on ``quick_episodes`` episodes and
       the one closest to each level is kept (none if no iterate is within half
       a level spacing: ARS often jumps; the noisy versions fill such gaps).
    3. Each is evaluated on ``eval_episodes`` episodes; Gaussian-noise versions of
       the best (``NOISE_SIGMAS``) too, and those whose mean return is at least half
       a level spacing from every kept behaviour are kept (they fill the gaps).
       Files are written atomically; stale ``snap_*.safetensors`` in ``out_dir``
       are removed.
    """
    spec = get_spec(env_id)
    out = experts_dir(spec, out_dir)
    env = make_env(spec)
    K = len(history.weights)
    played = np.isfinite(history.proxy)
    proxy = np.where(played, history.proxy, -np.inf)
    # Smooth over 3 iterates so one lucky batch of perturbations doesn't win.
    smooth = np.array([np.mean(history.proxy[max(0, k - 1):k + 2][np.isfinite(
        history.proxy[max(0, k - 1):k + 2])]) if played[k] else -np.inf for k in range(K)])
    evals: dict[int, np.ndarray] = {}

    def ev(k: int, n: int = eval_episodes) -> np.ndarray:
        """Returns of iterate k on eval episodes 0..n-1 (cached, extended on demand)."""
        have = evals.get(k, np.zeros(0))
        if len(have) < n:
            pol = _policy(history.weights[k], history.obs_mean[k], history.obs_std[k])
            more = [run_episode(env, pol, eval_seed + j, np.random.default_rng([eval_seed, j])).ret
                    for j in range(len(have), n)]
            evals[k] = have = np.concatenate([have, more])
        return have[:n]

    # 1. the best: fully evaluate the top iterates by smoothed proxy (and the last)
    cands = set(np.argsort(-smooth, kind="stable")[:n_best_candidates].tolist()) | {K - 1}
    best = max(sorted(cands), key=lambda k: (ev(k).mean(), -k))
    best_ret = ev(best).mean()
    lo = ev(0).mean()
    chosen = {0, best}
    # 2. graded levels. Pool: iterates before the best, evenly spaced in index
    # plus the three whose proxy is nearest each level; quick-evaluate the pool and
    # keep, per level, the iterate whose return is closest to it.
    levels = np.linspace(lo, best_ret, n_snapshots)[1:-1]
    spacing = (best_ret - lo) / max(n_snapshots - 1, 1)
    before = [k for k in range(1, best) if played[k]]
    pool = set(before[i] for i in np.unique(np.linspace(0, len(before) - 1, pool_size)
                                            .astype(int))) if before else set()
    for level in levels:
        pool |= set(sorted(before, key=lambda k: (abs(proxy[k] - level), k))[:3])
    for level in levels:
        free = sorted(pool - chosen)
        if not free:
            break
        k = min(free, key=lambda k: (abs(ev(k, quick_episodes).mean() - level), k))
        # no iterate near this level (ARS often jumps): leave the gap to the noisy best
        if abs(ev(k, quick_episodes).mean() - level) <= 0.5 * spacing:
            chosen.add(k)
    # a level pick can beat the candidates on the full evaluation: best = best evaluated
    best = max(chosen, key=lambda k: (ev(k).mean(), -k))
    entries, policies = [], {}
    for k in sorted(chosen):
        rets = ev(k)
        name = f"snap_{k:04d}.safetensors"
        policies[name] = _policy(history.weights[k], history.obs_mean[k], history.obs_std[k])
        entries.append({
            "file": name, "iteration": int(k), "env_steps": int(history.env_steps[k]),
            "eval_return_mean": round(float(rets.mean()), 4),
            "eval_return_std": round(float(rets.std()), 4),
            "eval_seed": int(eval_seed), "eval_episodes": int(eval_episodes),
            "eval_returns": _float_list(rets), "best": bool(k == best),
        })
        if log:
            log(f"{spec.env_id} snapshot {k}: {rets.mean():.1f} +- {rets.std():.1f}")
    best_policy = _policy(history.weights[best], history.obs_mean[best], history.obs_std[best])
    noisy = []
    kept_rets = [ev(k).mean() for k in chosen]
    for sigma in NOISE_SIGMAS:
        rets = evaluate(spec, GaussianNoise(best_policy, env.action_space, sigma),
                        eval_episodes, eval_seed, env)
        keep = min(abs(rets.mean() - r) for r in kept_rets) >= 0.5 * spacing
        if keep:
            kept_rets.append(rets.mean())
            noisy.append({"sigma": sigma, "eval_return_mean": round(float(rets.mean()), 4),
                          "eval_return_std": round(float(rets.std()), 4)})
        if log:
            log(f"{spec.env_id} best + noise {sigma}: {rets.mean():.1f} +- {rets.std():.1f}"
                f"{'' if keep else ' (not kept)'}")
    env.close()
    meta = {
        "env_id": spec.env_id, "algorithm": "ARS V2-t (Mania et al. 2018), linear policy",
        "policy": "a = clip(weights @ ((obs - obs_mean) / obs_std), -1, 1)",
        "seed": int(seed), "hyperparameters": asdict(config),
        "iterations": int(K - 1), "env_steps": int(history.env_steps[-1]),
        "eval_seed": int(eval_seed), "eval_episodes": int(eval_episodes),
        "best": f"snap_{best:04d}.safetensors",
        "snapshots": entries, "noisy": noisy,
    }
    write_snapshots(out, policies, meta)
    return entries


def train_expert(env_id: str, seed: int | None = None, max_steps: int | None = None,
                 out_dir: Path | str | None = None, config: ARSConfig | None = None,
                 n_snapshots: int = 12, eval_episodes: int = 10,
                 eval_seed: int = ARS_GRADING_SEED, progress: Progress | None = None,
                 log: Callable[[str], None] | None = None) -> list[dict]:
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
    return save_snapshots(env_id, hist, cfg, seed, out_dir, n_snapshots, eval_episodes,
                          eval_seed, log=log)
