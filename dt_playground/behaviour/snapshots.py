"""ARS snapshots: grading a trained linear policy on its own seeds and saving it, with the
noisier copies the datasets mix in, as the expert files `behaviour.collect` plays."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dt_playground.behaviour.experts import (
    GaussianNoise,
    LinearPolicy,
    experts_dir,
    write_snapshots,
)
from dt_playground.envs.episodes import run_episode
from dt_playground.envs.registry import EnvSpec, get_spec, make_env
from dt_playground.envs.seeds import ARS_GRADING_SEED

# Gaussian-noise versions of the best snapshot (kept where they fill a gap)

# Gaussian-noise versions of the best snapshot (kept where they fill a gap)
NOISE_SIGMAS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


def _policy(weights, obs_mean, obs_std) -> LinearPolicy:
    """The policy exactly as a snapshot file stores it (float32 tensors)."""
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    return LinearPolicy(f32(weights), f32(obs_mean), f32(obs_std))


def evaluate(
    env_id: str | EnvSpec, policy, episodes: int = 10, seed: int = ARS_GRADING_SEED, env=None
) -> np.ndarray:
    """Returns of ``episodes`` episodes with reset seeds ``seed + k`` (and
    ``rng = default_rng([seed, k])`` for stochastic policies), played with
    `episodes.run_episode`, exactly as the datasets are recorded."""
    own = env is None
    env = env or make_env(env_id)
    rets = np.array(
        [
            run_episode(env, policy, seed + k, np.random.default_rng([seed, k])).ret
            for k in range(episodes)
        ]
    )
    if own:
        env.close()
    return rets


def _float_list(x) -> list[float]:
    return [round(float(v), 4) for v in x]


def save_snapshots(
    env_id: str | EnvSpec,
    history: Any,  # an `ars.History` (not imported: ars imports this module)
    config: Any,  # an `ars.ARSConfig`
    seed: int,
    out_dir: Path | str | None = None,
    n_snapshots: int = 12,
    eval_episodes: int = 10,
    eval_seed: int = ARS_GRADING_SEED,
    n_best_candidates: int = 30,
    quick_episodes: int = 3,
    pool_size: int = 80,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
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
    smooth = np.array(
        [
            np.mean(
                history.proxy[max(0, k - 1) : k + 2][
                    np.isfinite(history.proxy[max(0, k - 1) : k + 2])
                ]
            )
            if played[k]
            else -np.inf
            for k in range(K)
        ]
    )
    evals: dict[int, np.ndarray] = {}

    def ev(k: int, n: int = eval_episodes) -> np.ndarray:
        """Returns of iterate k on eval episodes 0..n-1 (cached, extended on demand)."""
        have = evals.get(k, np.zeros(0))
        if len(have) < n:
            pol = _policy(history.weights[k], history.obs_mean[k], history.obs_std[k])
            more = [
                run_episode(env, pol, eval_seed + j, np.random.default_rng([eval_seed, j])).ret
                for j in range(len(have), n)
            ]
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
    pool = (
        set(before[i] for i in np.unique(np.linspace(0, len(before) - 1, pool_size).astype(int)))
        if before
        else set()
    )
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
        entries.append(
            {
                "file": name,
                "iteration": int(k),
                "env_steps": int(history.env_steps[k]),
                "eval_return_mean": round(float(rets.mean()), 4),
                "eval_return_std": round(float(rets.std()), 4),
                "eval_seed": int(eval_seed),
                "eval_episodes": int(eval_episodes),
                "eval_returns": _float_list(rets),
                "best": bool(k == best),
            }
        )
        if log:
            log(f"{spec.env_id} snapshot {k}: {rets.mean():.1f} +- {rets.std():.1f}")
    best_policy = _policy(history.weights[best], history.obs_mean[best], history.obs_std[best])
    noisy = []
    kept_rets = [ev(k).mean() for k in chosen]
    for sigma in NOISE_SIGMAS:
        rets = evaluate(
            spec, GaussianNoise(best_policy, env.action_space, sigma), eval_episodes, eval_seed, env
        )
        keep = min(abs(rets.mean() - r) for r in kept_rets) >= 0.5 * spacing
        if keep:
            kept_rets.append(rets.mean())
            noisy.append(
                {
                    "sigma": sigma,
                    "eval_return_mean": round(float(rets.mean()), 4),
                    "eval_return_std": round(float(rets.std()), 4),
                }
            )
        if log:
            log(
                f"{spec.env_id} best + noise {sigma}: {rets.mean():.1f} +- {rets.std():.1f}"
                f"{'' if keep else ' (not kept)'}"
            )
    env.close()
    meta = {
        "env_id": spec.env_id,
        "algorithm": "ARS V2-t (Mania et al. 2018), linear policy",
        "policy": "a = clip(weights @ ((obs - obs_mean) / obs_std), -1, 1)",
        "seed": int(seed),
        "hyperparameters": asdict(config),
        "iterations": int(K - 1),
        "env_steps": int(history.env_steps[-1]),
        "eval_seed": int(eval_seed),
        "eval_episodes": int(eval_episodes),
        "best": f"snap_{best:04d}.safetensors",
        "snapshots": entries,
        "noisy": noisy,
    }
    write_snapshots(out, policies, meta)
    return entries
